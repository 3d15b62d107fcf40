"""The triton route of the Gaunt product, run on CPU in Triton's interpreter (``TRITON_INTERPRET=1``).

Against the torch grid route (same tables), the independent reference c(l1, l2, l3) * o3.wigner_3j,
torch autograd of the grid route, gradcheck / gradgradcheck, and e3nn's rotations (O(3)).
"""

import os

import pytest

pytest.importorskip("triton")

import torch  # noqa: E402
from e3nn import o3  # noqa: E402

from equinets.gaunt import _triton as T  # noqa: E402
from equinets.gaunt import gaunt_product, sh_irreps  # noqa: E402
from equinets.gaunt.reference import reference_gaunt_product  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _interpreter():
    """CPU tensors run in Triton's interpreter: ``TRITON_INTERPRET=1`` for this module only (not leaked to others).

    The kernels are defined on first use per interpreter setting and use no ``triton.jit`` library function, so it
    does not matter whether triton was imported before (``equinets.typing`` imports it to detect it).
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        yield


# (L1, L2, lmax_out): equal and unequal degrees, full and truncated outputs
CASES = [(1, 1, 2), (1, 2, 3), (2, 1, 1), (2, 2, 4), (3, 1, 2), (2, 3, 5), (3, 3, 3)]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _inputs(L1, L2, rows=5, dtype=torch.float64, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(rows, (L1 + 1) ** 2, generator=g, dtype=dtype).requires_grad_(grad)
    x2 = torch.randn(rows, (L2 + 1) ** 2, generator=g, dtype=dtype).requires_grad_(grad)
    return x1, x2


def _rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("normalization", ["component", "integral", "norm"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("L1,L2,Lo", CASES)
def test_forward_equals_grid_route_and_reference(L1, L2, Lo, dtype, normalization):
    x1, x2 = _inputs(L1, L2, dtype=dtype)
    out = T.gaunt_product_triton(x1, x2, Lo, normalization=normalization)
    assert out.shape == (5, (Lo + 1) ** 2) and out.dtype == dtype
    grid = gaunt_product(x1, x2, Lo, normalization=normalization, route="grid")
    assert _rel(out, grid) < TOL[dtype]
    ref = reference_gaunt_product(x1.double(), x2.double(), Lo, normalization)  # c * w3j, path by path
    assert _rel(out.double(), ref) < TOL[dtype]


def test_forward_multiple_tiles():
    """Row tails (70 rows, 32-row blocks), grid chunks (G = 325 points) and two output tiles (169 columns)."""
    x1, x2 = _inputs(6, 6, rows=70)
    out = T.gaunt_product_triton(x1, x2)
    assert out.shape == (70, 169)
    assert _rel(out, reference_gaunt_product(x1, x2)) < 1e-10
    x1f, x2f = x1.float(), x2.float()
    assert _rel(T.gaunt_product_triton(x1f, x2f), gaunt_product(x1f, x2f, route="grid")) < 1e-5


def test_default_lmax_symmetry_and_constant():
    x1, x2 = _inputs(2, 3)
    out = T.gaunt_product_triton(x1, x2)
    assert out.shape == (5, 36)
    assert _rel(T.gaunt_product_triton(x2, x1), out) < 1e-12  # the product of functions is symmetric
    one = torch.ones(5, 1, dtype=torch.float64)  # the constant 1 in the component basis
    assert _rel(T.gaunt_product_triton(x1, one), x1) < 1e-12


def test_broadcast_leading_axes_and_non_contiguous():
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(2, 3, 9, generator=g, dtype=torch.float64)
    x2 = torch.randn(3, 4, generator=g, dtype=torch.float64)
    out = T.gaunt_product_triton(x1, x2, 2)
    assert out.shape == (2, 3, 9)
    assert _rel(out, gaunt_product(x1, x2, 2, route="grid")) < 1e-10
    # non-contiguous views (strided rows, transposed storage) are read through their strides
    a = torch.randn(9, 10, generator=g, dtype=torch.float64).T  # (10, 9), column-major
    b = torch.randn(10, 8, generator=g, dtype=torch.float64)[:, ::2]  # (10, 4), column stride 2
    assert not a.is_contiguous() and not b.is_contiguous()
    assert _rel(T.grid_product(a, b, 2, 1, 3, "component"), T.grid_product(a.contiguous(), b.contiguous(), 2, 1, 3,
                                                                               "component")) < 1e-14


def test_empty_batch():
    x1 = torch.randn(0, 4, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(0, 9, dtype=torch.float64)
    out = T.gaunt_product_triton(x1, x2)
    assert out.shape == (0, 16)
    out.sum().backward()
    assert x1.grad.shape == (0, 4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("L1,L2,Lo", [(1, 2, 3), (2, 2, 4), (3, 2, 2)])
def test_backward_equals_grid_autograd(L1, L2, Lo, dtype):
    x1, x2 = _inputs(L1, L2, rows=37, dtype=dtype, grad=True)
    go = torch.randn(37, (Lo + 1) ** 2, dtype=dtype, generator=torch.Generator().manual_seed(3))
    g1, g2 = torch.autograd.grad(T.gaunt_product_triton(x1, x2, Lo), (x1, x2), go)
    r1, r2 = torch.autograd.grad(gaunt_product(x1, x2, Lo, route="grid"), (x1, x2), go)
    assert _rel(g1, r1) < TOL[dtype] and _rel(g2, r2) < TOL[dtype]
    # one input only (the kernel skips the other gradient), and an expanded (stride-0) output gradient
    x2d = x2.detach()
    (h1,) = torch.autograd.grad(T.gaunt_product_triton(x1, x2d, Lo).sum(), (x1,))
    (s1,) = torch.autograd.grad(gaunt_product(x1, x2d, Lo, route="grid").sum(), (x1,))
    assert _rel(h1, s1) < TOL[dtype]


def test_double_backward_equals_grid_route():
    """create_graph: the gradient is built from forward products, so it is differentiable again."""
    x1, x2 = _inputs(2, 1, rows=6, grad=True)
    go = torch.randn(6, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

    def second(fn):
        g1, g2 = torch.autograd.grad(fn(x1, x2, 2), (x1, x2), go, create_graph=True)
        return torch.autograd.grad((g1 ** 2).sum() + (g2 * g2.detach().sin()).sum(), (x1, x2))

    a = second(T.gaunt_product_triton)
    b = second(lambda p, q, lo: gaunt_product(p, q, lo, route="grid"))
    assert all(_rel(u, v) < 1e-10 for u, v in zip(a, b))


def test_gradcheck_gradgradcheck():
    x1, x2 = _inputs(1, 2, rows=1, grad=True)
    fn = lambda a, b: T.gaunt_product_triton(a, b, 2, normalization="norm")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x1, x2))
    assert torch.autograd.gradgradcheck(fn, (x1, x2))


def _wigner_D(L, p_val, R):
    """e3nn's D of ``sh_irreps(L, p_val)`` at ``R``; e3nn builds its generators in the default dtype: float64 here."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return o3.Irreps(sh_irreps(L, p_val)).D_from_matrix(R)
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("det,p1,p2", [(1, 1, 1), (-1, 1, 1), (-1, 1, -1), (-1, -1, -1)])
def test_o3_equivariance(dtype, det, p1, p2):
    L1, L2, Lo = 2, 3, 4
    torch.manual_seed(5)
    R = o3.rand_matrix(dtype=torch.float64) * det
    D1, D2, Do = (_wigner_D(L, p, R).to(dtype) for L, p in ((L1, p1), (L2, p2), (Lo, p1 * p2)))
    x1, x2 = _inputs(L1, L2, rows=4, dtype=dtype)
    out = T.gaunt_product_triton(x1, x2, Lo)
    rot = T.gaunt_product_triton(x1 @ D1.T, x2 @ D2.T, Lo)
    assert _rel(rot, out @ Do.T) < TOL[dtype]


def test_large_inputs_use_two_forward_products_for_the_gradient():
    """Above 128 input coefficients (L1 = 11: 144) the backward is two forward-kernel products."""
    x1, x2 = _inputs(11, 1, rows=3, grad=True)
    go = torch.randn(3, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    out = T.gaunt_product_triton(x1, x2, 2)
    assert _rel(out, gaunt_product(x1, x2, 2, route="grid")) < 1e-10
    g1, g2 = torch.autograd.grad(out, (x1, x2), go)
    r1, r2 = torch.autograd.grad(gaunt_product(x1, x2, 2, route="grid"), (x1, x2), go)
    assert _rel(g1, r1) < 1e-10 and _rel(g2, r2) < 1e-10


def test_wide_output_gradients_run_as_torch_products_and_stay_exact_to_second_order(monkeypatch):
    """Under create_graph the gradient is T(g, b; R^T, Q, P^T): at L_out = 16 (289 output coefficients, padded to
    512) g is wider than the kernel's tiles, so those products run in torch; first and second derivatives equal
    the grid route's."""
    calls = []
    monkeypatch.setattr(T, "_torch_trilinear", lambda *a: calls.append(a[0].shape) or ((a[0] @ a[2]) * (a[1] @ a[3])) @ a[4])
    x1, x2 = _inputs(8, 8, rows=2, grad=True)
    go = torch.randn(2, 289, dtype=torch.float64, generator=torch.Generator().manual_seed(8))

    def second(fn):
        g1, g2 = torch.autograd.grad(fn(x1, x2, 16), (x1, x2), go, create_graph=True)
        return (g1, g2, *torch.autograd.grad((g1 ** 2).sum() + (g2 * g2.detach().cos()).sum(), (x1, x2)))

    a = second(T.gaunt_product_triton)
    assert calls and all(c[-1] == 289 for c in calls)  # only the wide compositions left the kernel
    b = second(lambda p, q, lo: gaunt_product(p, q, lo, route="grid"))
    assert all(_rel(u, v) < 1e-10 for u, v in zip(a, b))


@pytest.mark.parametrize("L1, L2", [(16, 1), (1, 16)])
def test_inputs_beyond_degree_15_are_refused_naming_the_input(L1, L2):
    x1, x2 = _inputs(L1, L2, rows=1)
    name = "x1" if L1 == 16 else "x2"
    with pytest.raises(ValueError, match=rf"route='triton' supports inputs of degree L <= 15.*{name} has 289 "
                                         r"coefficients.*route='grid'"):
        T.gaunt_product_triton(x1, x2, 2)
    with pytest.raises(ValueError, match="degree L <= 15"):
        gaunt_product(x1, x2, 2, route="triton")


_COMPILE_AHEAD = r"""
import json, os, re, subprocess, sys, tempfile, torch, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from equinets.gaunt import _triton as T

cap, out = int(sys.argv[1]), {}
shapes = json.loads(sys.argv[2]) if len(sys.argv) > 2 else [[49, 49, 169]]  # default: L = 6 -> 12
cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
cubin = os.path.join(tempfile.mkdtemp(), "k.cubin")
_, fwd, bwd = T._kernels(False)
for (NA, NB, NO), dtype, tdt, (name, kernel) in [(s, d, t, k) for s in shapes
                                                  for d, t in (("fp32", torch.float32), ("fp64", torch.float64))
                                                  for k in (("forward", fwd), ("backward", bwd))]:
        if name == "backward" and max(NA, NB) > T._FUSED_BACKWARD_MAX:
            continue
        cons = T._config(name, tdt, NA, NB, NO)
        opts = {k: cons.pop(k) for k in ("num_warps", "num_stages")}
        if name == "backward":
            cons |= {"NEED_A": True, "NEED_B": True}
        sig = {n: ("constexpr" if n in cons else ("*" + dtype if n.endswith("_ptr") else "i32")) for n in kernel.arg_names}
        k = triton.compile(ASTSource(kernel, sig, cons), target=GPUTarget("cuda", cap, 32), options=opts)
        open(cubin, "wb").write(k.asm["cubin"])
        use = subprocess.run([cuobjdump, "--dump-resource-usage", cubin], capture_output=True, text=True).stdout
        f64_mma = "mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64" in k.asm["ptx"]
        out[f"{name}-{dtype}-{NA}-{NB}-{NO}"] = [k.metadata.shared, f64_mma, int(re.findall(r"STACK:(\d+)", use)[0])]
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("cap", [80, 90])
def test_kernels_compile_for_nvidia_gpus_within_shared_memory(cap, request):
    """Without a GPU: the compiled (not interpreted) kernels at L = 6 build for sm_80 / sm_90 with Triton's
    bundled ptxas, fit in 100 KB of shared memory without register spills (cuobjdump's resource usage), and
    float64 lowers to the double-precision MMA (no fallback needed).

    In a fresh process: triton imported under the interpreter cannot compile for a GPU. About 15 s from a cold
    Triton cache, so opt-in (``-m slow``) as the marker says.
    """
    import json
    import subprocess
    import sys

    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("opt-in: run with -m slow")
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", _COMPILE_AHEAD, str(cap)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(res) == 4
    for name, (shared, f64_mma, stack) in res.items():
        assert shared <= 100 * 1024, (name, shared)
        assert f64_mma == ("fp64" in name), name
        assert stack == 0, (name, "register spills", stack)


@pytest.mark.slow
def test_kernels_at_the_largest_supported_sizes_fit_hopper_shared_memory(request):
    """Without a GPU: the forward kernel at degree 12 -> 24, at the widest supported inputs (degree 15 -> 30) and
    at the widest gradient composition it runs (256 output-gradient columns), and the fused backward at its
    largest size (degree 10 -> 20), compiled for sm_90 in both dtypes, fit in its 227 KB of shared memory per
    block (float64 at degree 12 used 233 KB before its tiles shrank; ``-m slow``, about a minute)."""
    import json
    import subprocess
    import sys

    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("opt-in: run with -m slow")
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    shapes = [[169, 169, 625], [256, 256, 1089], [256, 169, 169], [121, 121, 441]]
    run = subprocess.run([sys.executable, "-c", _COMPILE_AHEAD, "90", json.dumps(shapes)], capture_output=True,
                         text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(res) == 2 * 5  # four forward shapes and one fused backward, each in both dtypes
    for name, (shared, f64_mma, _) in res.items():
        assert shared <= 227 * 1024, (name, shared)
        assert f64_mma == ("fp64" in name), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (compiled, not interpreted, kernels)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_kernels_on_cuda(dtype, monkeypatch):
    """On a GPU: the compiled kernels at L = 6 -> 12 (4100 rows: many row blocks) against the torch grid route."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x1, x2 = (t.cuda().requires_grad_() for t in _inputs(6, 6, rows=4100, dtype=dtype))
    out = T.gaunt_product_triton(x1, x2)
    ref = gaunt_product(x1, x2, route="grid")
    assert _rel(out, ref) < TOL[dtype]
    go = torch.randn_like(out)
    for u, v in zip(torch.autograd.grad(out, (x1, x2), go), torch.autograd.grad(ref, (x1, x2), go)):
        assert _rel(u, v) < TOL[dtype]
    if dtype == torch.float64:
        a, b = (t.detach()[:2, :9].clone().requires_grad_() for t in (x1, x2))
        assert torch.autograd.gradgradcheck(lambda p, q: T.gaunt_product_triton(p, q, 3), (a, b))


def test_gaunt_product_route_triton_is_this_route():
    x1, x2 = _inputs(2, 2)
    out = gaunt_product(x1, x2, 3, normalization="integral", route="triton")
    assert _rel(out, T.gaunt_product_triton(x1, x2, 3, normalization="integral")) < 1e-15
