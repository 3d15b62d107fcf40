"""Bad inputs to the Gaunt modules (GauntTensorProduct, GauntConv, GauntManyBody) and the slow reference.

Every case is refused where the input enters (constructor or forward, before any product), with the exception
type and a message naming the argument.
"""

from __future__ import annotations

import pytest
import torch

from equinets.gaunt.modules import GauntConv, GauntManyBody, GauntTensorProduct
from equinets.gaunt.reference import e3nn_gaunt_tensor_product, gaunt_tensor, reference_gaunt_product

TP = lambda **kw: GauntTensorProduct("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x2e", **kw)  # noqa: E731
CONV = lambda **kw: GauntConv("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o", max_radius=2.0, **kw)  # noqa: E731
MB = lambda **kw: GauntManyBody("2x0e + 2x1o", "2x0e + 2x1o", correlation=2, **kw)  # noqa: E731
X = torch.randn(3, 8)
POS = torch.tensor([[0.0, 0, 0], [0.5, 0, 0], [0, 0.5, 0]])
EI = torch.tensor([[0, 1, 2], [1, 2, 0]])


def _nan(t, at=(1, 2)):
    t = t.clone()
    t[at] = float("nan")
    return t


CASES = {
    # ---- constructors: irreps
    "tp_irreps_unparsable": (lambda: GauntTensorProduct("2x0q", "0e", "0e"), ValueError, "irreps_in1"),
    "tp_irreps_empty": (lambda: GauntTensorProduct("0e", "", "0e"), ValueError, "irreps_in2"),
    "tp_mixed_multiplicities_in_one_input": (lambda: GauntTensorProduct("2x0e + 3x1o", "2x0e", "2x0e"),
                                             ValueError, "irreps_in1"),
    "tp_channelwise_multiplicities_differ": (lambda: GauntTensorProduct("2x0e + 2x1o", "3x0e", "2x0e"),
                                             ValueError, "irreps_in2"),
    "tp_out_multiplicity_differs": (lambda: GauntTensorProduct("2x0e", "2x0e", "3x0e"), ValueError, "irreps_out"),
    "tp_degree_twice": (lambda: GauntTensorProduct("2x1o + 2x1o", "2x0e", "2x1o"), ValueError, "irreps_in1"),
    "tp_mixed_parity_conventions": (lambda: GauntTensorProduct("0e + 1e", "0e", "0e"), ValueError, "irreps_in1"),
    "tp_cross_product_impossible": (lambda: GauntTensorProduct("1o", "1o", "1e"), ValueError, "irreps_out.*1e"),
    "tp_wrong_output_parity": (lambda: GauntTensorProduct("0e + 1o", "0o", "0e + 1o"), ValueError,
                               "irreps_out.*0e, 1o"),
    "tp_output_degree_unreachable": (lambda: GauntTensorProduct("1o", "1o", "0e + 3o"), ValueError,
                                     "irreps_out.*3o"),
    "tp_degree_beyond_range": (lambda: GauntTensorProduct("0e + 70e", "0e", "0e"), ValueError,
                               "irreps_in1.*supported range"),
    "tp_channels_without_mixing": (lambda: TP(channels=4), ValueError, "channels"),
    "tp_channels_zero": (lambda: TP(channel_mixing=True, channels=0), ValueError, "channels"),
    "tp_mixing_not_bool": (lambda: TP(channel_mixing="yes"), TypeError, "channel_mixing"),
    "tp_normalization": (lambda: TP(normalization="unit"), ValueError, "normalization"),
    "tp_route": (lambda: TP(route="cuda"), ValueError, "route"),
    # ---- forward: tensors
    "tp_x1_last_axis": (lambda: TP()(torch.randn(3, 7), X), ValueError, "x1 must have irreps"),
    "tp_x2_last_axis": (lambda: TP()(X, torch.randn(3, 4)), ValueError, "x2 must have irreps"),
    "tp_x1_not_tensor": (lambda: TP()(X.tolist(), X), TypeError, "x1"),
    "tp_x2_integer": (lambda: TP()(X, torch.ones(3, 8, dtype=torch.long)), TypeError, "x2"),
    "tp_x1_dtype_vs_module": (lambda: TP()(X.double(), X), TypeError, "x1 has dtype"),
    "tp_x2_dtype_vs_module": (lambda: TP()(X, X.double()), TypeError, "x2 has dtype"),
    "tp_x1_device": (lambda: TP()(torch.randn(3, 8, device="meta"), X), ValueError, "x1 is on device meta"),
    "tp_x2_device": (lambda: TP()(X, torch.randn(3, 8, device="meta")), ValueError, "x2 is on device meta"),
    "tp_x1_nan": (lambda: TP()(_nan(X), X), ValueError, "x1 must be finite"),
    "tp_x2_inf": (lambda: TP()(X, X.clone().fill_(float("inf"))), ValueError, "x2 must be finite"),
    # ---- convolution
    "conv_sh_multiplicity": (lambda: GauntConv("0e", "2x0e + 1o", "0e"), ValueError, "irreps_sh"),
    "conv_sh_pseudo_parity": (lambda: GauntConv("0e", "0o + 1e", "0o"), ValueError, "irreps_sh"),
    "conv_sh_beyond_e3nn": (lambda: GauntConv("0e", "0e + 13o", "0e"), ValueError, "irreps_sh.*range"),
    "conv_out_impossible": (lambda: GauntConv("2x0e", "0e + 1o", "2x2e"), ValueError, "irreps_out.*2e"),
    "conv_node_multiplicities": (lambda: GauntConv("2x0e + 1x1o", "0e", "2x0e"), ValueError, "irreps_node"),
    "conv_max_radius_zero": (lambda: GauntConv("0e", "0e", "0e", max_radius=0.0), ValueError, "max_radius"),
    "conv_max_radius_negative": (lambda: GauntConv("0e", "0e", "0e", max_radius=-1.0), ValueError, "max_radius"),
    "conv_num_basis": (lambda: GauntConv("0e", "0e", "0e", num_basis=1), ValueError, "num_basis"),
    "conv_aggr": (lambda: CONV(aggr="min"), ValueError, "aggr"),
    "conv_x_last_axis": (lambda: CONV()(torch.randn(3, 5), POS, EI), ValueError, "x must have irreps"),
    "conv_x_not_2d": (lambda: CONV()(torch.randn(2, 3, 8), POS, EI), ValueError, "x must have shape"),
    "conv_pos_shape": (lambda: CONV()(X, POS[:2], EI), ValueError, "pos must have shape"),
    "conv_pos_integer": (lambda: CONV()(X, POS.long(), EI), TypeError, "pos"),
    "conv_pos_dtype": (lambda: CONV()(X, POS.double(), EI), TypeError, "pos must have the dtype"),
    "conv_pos_device": (lambda: CONV()(X, torch.zeros(3, 3, device="meta"), EI), ValueError, "pos must be on"),
    "conv_pos_nan": (lambda: CONV()(X, _nan(POS), EI), ValueError, "pos must be finite"),
    "conv_x_nan": (lambda: CONV()(_nan(X), POS, EI), ValueError, "x must be finite"),
    "conv_x_dtype": (lambda: CONV()(X.double(), POS.double(), EI), TypeError, "x has dtype"),
    "conv_edge_index_range": (lambda: CONV()(X, POS, torch.tensor([[0, 3], [1, 0]])), ValueError,
                              r"edge_index must hold node ids in \[0, 3\)"),
    "conv_edge_index_negative": (lambda: CONV()(X, POS, torch.tensor([[0, -1], [1, 0]])), ValueError, "edge_index"),
    "conv_edge_index_float": (lambda: CONV()(X, POS, EI.float()), TypeError, "edge_index"),
    "conv_edge_index_shape": (lambda: CONV()(X, POS, EI.T), ValueError, r"edge_index must have shape \(2, E\)"),
    "conv_edge_index_not_tensor": (lambda: CONV()(X, POS, EI.tolist()), TypeError, "edge_index"),
    "conv_self_loop": (lambda: CONV()(X, POS, torch.tensor([[0, 1], [0, 2]])), ValueError,
                       "edge_index holds an edge of zero length"),
    # ---- many-body
    "mb_correlation_zero": (lambda: GauntManyBody("0e", "0e", correlation=0), ValueError, "correlation"),
    "mb_correlation_float": (lambda: GauntManyBody("0e", "0e", correlation=2.0), TypeError, "correlation"),
    "mb_out_unreachable": (lambda: GauntManyBody("2x0e + 2x2e", "2x1o", correlation=3), ValueError,
                           "irreps_out.*1o"),
    "mb_out_parity": (lambda: GauntManyBody("2x0e + 2x1o", "2x0o", correlation=3), ValueError, "irreps_out.*0o"),
    "mb_power_beyond_range": (lambda: GauntManyBody("0e + 40e", "40e", correlation=3), ValueError,
                              "irreps_in.*power 2.*supported range"),
    "mb_x_last_axis": (lambda: MB()(torch.randn(2, 9)), ValueError, "x must have irreps"),
    "mb_x_nan": (lambda: MB()(_nan(X)), ValueError, "x must be finite"),
    "mb_x_device": (lambda: MB()(torch.randn(2, 8, device="meta")), ValueError, "x is on device meta"),
    "mb_x_dtype": (lambda: MB()(X.double()), TypeError, "x has dtype"),
    # ---- the reference
    "ref_x1_size": (lambda: reference_gaunt_product(torch.randn(5), torch.randn(4)), ValueError, "x1 must have"),
    "ref_x2_dtype": (lambda: reference_gaunt_product(torch.randn(4), torch.randn(4).double()), TypeError, "x2"),
    "ref_x2_device": (lambda: reference_gaunt_product(torch.randn(4), torch.randn(4, device="meta")), ValueError,
                      "x2 must be on"),
    "ref_lmax_out_negative": (lambda: reference_gaunt_product(torch.randn(4), torch.randn(4), -1), ValueError,
                              "lmax_out"),
    "ref_normalization": (lambda: gaunt_tensor(1, 1, normalization="unit"), ValueError, "normalization"),
    "ref_e3nn_p_val": (lambda: e3nn_gaunt_tensor_product(1, 1, p_val1=0), ValueError, "p_val1"),
    "ref_e3nn_channels": (lambda: e3nn_gaunt_tensor_product(1, 1, channels=0), ValueError, "channels"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_naming_the_argument(name):
    call, exc, match = CASES[name]
    with pytest.raises(exc, match=match):
        call()


def test_refused_before_any_product(monkeypatch):
    """Forward checks run first: a NaN input never reaches the Gaunt product."""
    import equinets.gaunt.modules as mod

    def boom(*args, **kwargs):
        raise AssertionError("the product ran")

    monkeypatch.setattr(mod, "_product", boom)
    with pytest.raises(ValueError, match="x1 must be finite"):
        TP()(_nan(X), X)
    with pytest.raises(ValueError, match="edge_index"):
        CONV()(X, POS, torch.tensor([[0, 5], [1, 0]]))
