"""Bad input to the triton route of the Gaunt product: each error is raised at entry and names the argument."""

import importlib.util
import os
import sys

import pytest
import torch

from equinets.gaunt import _triton as T

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _x(L, rows=3, dtype=torch.float64, device="cpu"):
    return torch.randn(rows, (L + 1) ** 2, dtype=dtype, device=device)


def test_missing_triton_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` now raises ImportError
    monkeypatch.setitem(sys.modules, "triton.language", None)
    with pytest.raises(ImportError, match=r"route='triton'.*pip install 'equinets\[gpu\]'"):
        T.gaunt_product_triton(_x(1), _x(1))


@needs_triton
def test_cpu_tensors_without_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match=r"x1 is on cpu.*CUDA.*TRITON_INTERPRET=1"):
        T.gaunt_product_triton(_x(1), _x(2))
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match=r"x1 is on cpu.*route='grid'"):
        T.check_supported(_x(1), _x(2))


@needs_triton
@pytest.mark.parametrize("name,dtype", [("x1", torch.float16), ("x2", torch.bfloat16)])
def test_half_precision_is_refused_naming_the_dtype(interpret, name, dtype):
    args = {"x1": _x(1), "x2": _x(1)}
    args[name] = args[name].to(dtype)
    with pytest.raises(TypeError, match=rf"{name} must be .*float32 or float64.*{dtype}"):
        T.gaunt_product_triton(args["x1"], args["x2"])
    with pytest.raises(TypeError, match=rf"{name} must be float32 or float64 for route='triton', got dtype {dtype}"):
        T.check_supported(args["x1"], args["x2"])  # the route's own check (used behind gaunt_product)


@needs_triton
def test_mismatched_devices(interpret):
    with pytest.raises(ValueError, match=r"x1 and x2 must be on the same device.*x1 on cpu.*x2 on meta"):
        T.gaunt_product_triton(_x(1), _x(1, device="meta"))
    with pytest.raises(ValueError, match=r"x1 and x2 must be on the same device"):
        T.check_supported(_x(1), _x(1, device="meta"))


@needs_triton
def test_mismatched_dtypes(interpret):
    with pytest.raises(TypeError, match=r"x1 and x2 must have the same dtype.*float64.*float32"):
        T.gaunt_product_triton(_x(1), _x(1, dtype=torch.float32))


@needs_triton
@pytest.mark.parametrize("lmax_out,match", [(4, r"lmax_out must be <= L1 \+ L2 = 3.*got 4"), (-1, r"lmax_out")])
def test_lmax_out_out_of_range(interpret, lmax_out, match):
    with pytest.raises(ValueError, match=match):
        T.gaunt_product_triton(_x(1), _x(2), lmax_out)


@needs_triton
def test_not_a_square_number_of_coefficients(interpret):
    with pytest.raises(ValueError, match=r"x2 must have \(L\+1\)\*\*2 coefficients.*got 5"):
        T.gaunt_product_triton(_x(1), torch.randn(3, 5, dtype=torch.float64))


@needs_triton
def test_nan_coefficients(interpret):
    x2 = _x(1)
    x2[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"x2 must be finite.*\(1, 2\)"):
        T.gaunt_product_triton(_x(1), x2)


@needs_triton
def test_unknown_normalization(interpret):
    with pytest.raises(ValueError, match=r"normalization"):
        T.gaunt_product_triton(_x(1), _x(1), normalization="unit")


@needs_triton
def test_non_contiguous_inputs_are_handled(interpret):
    """Not an error: strided and transposed views are read through their strides, same numbers as a copy."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(9, 6, generator=g, dtype=torch.float64).T  # (6, 9) column-major
    b = torch.randn(6, 8, generator=g, dtype=torch.float64)[:, ::2]  # (6, 4) with column stride 2
    out = T.gaunt_product_triton(a, b, 2)
    ref = T.gaunt_product_triton(a.contiguous(), b.contiguous(), 2)
    assert (out - ref).abs().max() < 1e-14 and out.is_contiguous()
    assert os.environ["TRITON_INTERPRET"] == "1"
