"""Bad inputs to equinets.gaunt.gaunt_product: each is refused at entry with an error naming the argument."""

from __future__ import annotations

import pytest
import torch

from equinets.gaunt import gaunt_product, gaunt_product_all_parities
from equinets.gaunt.tables import MAX_DEGREE

X1, X2 = torch.randn(3, 9), torch.randn(3, 4)
NAN = X1.clone()
NAN[1, 4] = float("nan")

BAD = {
    "x1 not a square": (dict(x1=torch.randn(3, 8)), ValueError, r"x1 must have \(L\+1\)\*\*2 coefficients.*got 8"),
    "x2 not a square": (dict(x2=torch.randn(3, 5)), ValueError, r"x2 must have \(L\+1\)\*\*2 coefficients.*got 5"),
    "x1 empty last axis": (dict(x1=torch.randn(3, 0)), ValueError, r"x1 must have \(L\+1\)\*\*2"),
    "x1 0-d": (dict(x1=torch.tensor(1.0)), ValueError, "x1 must have shape"),
    "x1 not a tensor": (dict(x1=[1.0, 2.0, 3.0, 4.0]), TypeError, "x1 must be a torch.Tensor"),
    "x1 beyond the supported degree": (dict(x1=torch.zeros(1, (MAX_DEGREE + 2) ** 2)), ValueError,
                                       f"x1 has degree L = {MAX_DEGREE + 1}, beyond the supported maximum"),
    "lmax_out negative": (dict(lmax_out=-1), ValueError, "lmax_out must be an integer >= 0, got -1"),
    "lmax_out beyond L1 + L2": (dict(lmax_out=4), ValueError, r"lmax_out must be <= L1 \+ L2 = 3.*got 4"),
    "lmax_out float": (dict(lmax_out=2.0), TypeError, "lmax_out must be None or an integer"),
    "unknown normalization": (dict(normalization="unit"), ValueError, "normalization must be one of 'component'"),
    "normalization not a string": (dict(normalization=None), TypeError, "normalization must be a string"),
    "unknown route": (dict(route="cuda"), ValueError, "route must be one of 'auto', 'grid', 'fourier', 'triton'"),
    "mismatched dtypes": (dict(x2=X2.double()), TypeError, "x1 and x2 must have the same dtype"),
    "integer x1": (dict(x1=torch.ones(3, 9, dtype=torch.long)), TypeError, "x1 must be a float32 or float64"),
    "complex x2": (dict(x2=torch.ones(3, 4, dtype=torch.complex64)), TypeError, "x2 must be a float32 or float64"),
    "half x1": (dict(x1=torch.ones(3, 9, dtype=torch.float16)), TypeError, "x1 must be a float32 or float64"),
    "NaN coefficient": (dict(x1=NAN), ValueError,
                        r"x1 must be finite, but 1 entry is NaN or Inf \(first at index \(1, 4\)\)"),
    "Inf coefficient in x2": (dict(x2=torch.full((3, 4), float("inf"))), ValueError, "x2 must be finite"),
    "non-broadcastable leading axes": (dict(x2=torch.randn(2, 4)), ValueError,
                                       r"leading axes of x1 \(3,\) and x2 \(2,\) must broadcast"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_gaunt_product_refuses(case):
    kwargs, exc, match = BAD[case]
    args = dict(x1=X1, x2=X2, lmax_out=None, normalization="component", route="auto") | kwargs
    with pytest.raises(exc, match=match):
        gaunt_product(args["x1"], args["x2"], args["lmax_out"], normalization=args["normalization"],
                      route=args["route"])


def test_mismatched_devices_are_refused():
    if not torch.cuda.is_available():
        meta = torch.randn(3, 4, device="meta")
        with pytest.raises(ValueError, match="x1 and x2 must be on the same device, got x1 on cpu and x2 on meta"):
            gaunt_product(X1, meta)
    else:
        with pytest.raises(ValueError, match="x1 and x2 must be on the same device"):
            gaunt_product(X1, X2.cuda())


def test_all_parities_refuses_a_non_pair_and_mismatched_halves():
    with pytest.raises(TypeError, match=r"x1 must be a pair \(x_plus, x_minus\)"):
        gaunt_product_all_parities(X1, (X2, X2))
    with pytest.raises(ValueError, match="x2's x_plus and x_minus must have the same shape"):
        gaunt_product_all_parities((X1, X1), (X2, torch.randn(3, 9)))
