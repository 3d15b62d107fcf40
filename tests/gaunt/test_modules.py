"""GauntTensorProduct, GauntConv and GauntManyBody against the slow reference and e3nn's representations.

The reference (equinets.gaunt.reference) is the dense c(l1,l2,l3) * o3.wigner_3j tensor, itself tested against
quadrature of e3nn harmonics; layouts are converted here by an independent loop over ``Irreps.slices()``;
rotations and inversion act through e3nn's ``Irreps.D_from_matrix`` (built in float64).
"""

from __future__ import annotations

import math

import pytest
import torch
from e3nn import o3
from torch.autograd import gradcheck, gradgradcheck

from equinets.gaunt.modules import GauntConv, GauntManyBody, GauntTensorProduct
from equinets.gaunt.reference import e3nn_gaunt_tensor_product, gaunt_tensor, reference_gaunt_product

F64 = torch.float64


def e3nn_D(irreps, R):
    old = torch.get_default_dtype()
    try:  # e3nn builds its generators in the default dtype
        torch.set_default_dtype(F64)
        return o3.Irreps(irreps).D_from_matrix(R)
    finally:
        torch.set_default_dtype(old)


def to_sh(x, irreps):
    """mul_ir (..., dim) -> (..., u, (L+1)**2), zeros for absent degrees (independent of the modules' index maps)."""
    irreps = o3.Irreps(irreps)
    u, L = irreps[0].mul, irreps.lmax
    out = x.new_zeros(*x.shape[:-1], u, (L + 1) ** 2)
    for s, (mul, ir) in zip(irreps.slices(), irreps):
        out[..., ir.l ** 2:(ir.l + 1) ** 2] = x[..., s].reshape(*x.shape[:-1], mul, ir.dim)
    return out


def from_sh(z, irreps):
    """(..., u, (Lz+1)**2) -> mul_ir (..., dim) of the entries of ``irreps``."""
    parts = [z[..., ir.l ** 2:(ir.l + 1) ** 2].reshape(*z.shape[:-2], -1) for _, ir in o3.Irreps(irreps)]
    return torch.cat(parts, -1)


def rotations():
    R = o3.rand_matrix(dtype=F64)
    return [R, -o3.rand_matrix(dtype=F64), -torch.eye(3, dtype=F64)]


def assert_close_rel(a, b, dtype):
    err = (a - b).abs().max()
    if dtype == F64:
        assert err < 1e-10, float(err)
    else:
        assert err / b.abs().max() < 1e-5, float(err / b.abs().max())


# ------------------------------------------------------------------------------------------- tensor product

TP_CASES = [
    ("3x0e + 3x1o + 3x2e", "3x0e + 3x1o", "3x0e + 3x1o + 3x2e + 3x3o"),
    ("2x2e + 2x0e", "2x1o", "2x3o + 2x1o"),  # unordered, a degree missing, outputs a subset
    ("2x0o + 2x1e", "2x0e + 2x1o + 2x2e", "2x0o + 2x1e + 2x2o + 2x3e"),  # p_val = -1 times p_val = +1
    ("1x0o + 1x1e", "1x0o + 1x1e", "1x0e + 1x2e"),  # p_val = -1 squared
]


@pytest.mark.parametrize("route", ["auto", "grid", "fourier"])
@pytest.mark.parametrize("i1,i2,io", TP_CASES)
def test_tp_unit_weights_equals_reference_per_channel(i1, i2, io, route):
    tp = GauntTensorProduct(i1, i2, io, route=route).double()
    x1 = torch.randn(5, tp.irreps_in1.dim, dtype=F64)
    x2 = torch.randn(5, tp.irreps_in2.dim, dtype=F64)
    Lo = o3.Irreps(io).lmax
    want = from_sh(reference_gaunt_product(to_sh(x1, i1), to_sh(x2, i2), Lo), io)
    assert (tp(x1, x2) - want).abs().max() < 1e-13


@pytest.mark.parametrize("normalization", ["component", "integral", "norm"])
def test_tp_per_degree_weights_equal_reference_with_folded_path_weights(normalization):
    i1, i2, io = "2x0e + 2x1o + 2x2e", "2x0e + 2x1o", "2x0e + 2x1o + 2x2e + 2x3o"
    tp = GauntTensorProduct(i1, i2, io, normalization=normalization).double()
    with torch.no_grad():
        for w in (tp.weight1, tp.weight2, tp.weight_out):
            w.normal_()
    x1, x2 = torch.randn(4, tp.irreps_in1.dim, dtype=F64), torch.randn(4, tp.irreps_in2.dim, dtype=F64)
    # w_{c, l1 l2 l3} = a_{c,l1} b_{c,l2} d_{c,l3} folded into the dense Gaunt tensor of each channel
    T = gaunt_tensor(2, 1, 3, normalization)
    deg = lambda L: torch.tensor([l for l in range(L + 1) for _ in range(2 * l + 1)])  # noqa: E731
    a, b, d = tp.weight1[:, deg(2)], tp.weight2[:, deg(1)], tp.weight_out[:, deg(3)]
    Tw = torch.einsum("ijk,ci,cj,ck->cijk", T, a, b, d)
    want = from_sh(torch.einsum("nci,ncj,cijk->nck", to_sh(x1, i1), to_sh(x2, i2), Tw), io)
    assert (tp(x1, x2) - want).abs().max() < 1e-13


@pytest.mark.parametrize("p1,p2", [(1, 1), (-1, 1)])
def test_tp_swaps_in_for_the_e3nn_gaunt_path_tensor_product(p1, p2):
    """Same irreps, same mul_ir layout, same numbers as e3nn's TensorProduct on the Gaunt paths (weights c^2)."""
    e3 = e3nn_gaunt_tensor_product(2, 3, 4, channels=3, p_val1=p1, p_val2=p2, dtype=F64)
    tp = GauntTensorProduct(e3.irreps_in1, e3.irreps_in2, e3.irreps_out).double()
    x1, x2 = torch.randn(5, e3.irreps_in1.dim, dtype=F64), torch.randn(5, e3.irreps_in2.dim, dtype=F64)
    assert (tp(x1, x2) - e3(x1, x2)).abs().max() < 1e-12


def test_tp_broadcasts_leading_axes():
    tp = GauntTensorProduct("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x2e").double()
    x1, x2 = torch.randn(3, 1, 8, dtype=F64), torch.randn(4, 8, dtype=F64)
    out = tp(x1, x2)
    assert out.shape == (3, 4, 12)
    assert (out[1, 2] - tp(x1[1, 0], x2[2])).abs().max() < 1e-14


@pytest.mark.parametrize("mixing", [False, True])
@pytest.mark.parametrize("i1,i2,io", TP_CASES[:3])
def test_tp_is_o3_equivariant(i1, i2, io, mixing, dtype):
    kw = {"channel_mixing": True, "channels": 3} if mixing else {}
    if mixing:  # any multiplicities with mixing
        io = o3.Irreps([(4, ir) for _, ir in o3.Irreps(io)])
    tp = GauntTensorProduct(i1, i2, io, **kw).to(dtype)
    x1 = torch.randn(6, tp.irreps_in1.dim, dtype=dtype)
    x2 = torch.randn(6, tp.irreps_in2.dim, dtype=dtype)
    for R in rotations():
        D1, D2, Do = (e3nn_D(i, R).to(dtype) for i in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out))
        assert_close_rel(tp(x1 @ D1.T, x2 @ D2.T), tp(x1, x2) @ Do.T, dtype)


def test_tp_channel_mixing_is_linears_around_the_channelwise_product():
    tp = GauntTensorProduct("2x0e + 1x1o + 0e", "3x1o", "5x0e + 2x2e", channel_mixing=True, channels=3).double()
    assert tp.channels == 3
    x1, x2 = torch.randn(4, tp.irreps_in1.dim, dtype=F64), torch.randn(4, tp.irreps_in2.dim, dtype=F64)
    m1, m2 = tp.lin1(x1), tp.lin2(x2)
    z = reference_gaunt_product(to_sh(m1, "3x0e + 3x1o"), to_sh(m2, "3x1o"), 2)
    want = tp.lin_out(from_sh(z, "3x0e + 3x2e"))
    assert (tp(x1, x2) - want).abs().max() < 1e-13


def test_tp_float32_agrees_with_float64():
    tp = GauntTensorProduct("4x0e + 4x1o + 4x2e", "4x0e + 4x1o + 4x2e", "4x0e + 4x1o + 4x2e + 4x3o + 4x4e")
    x1, x2 = torch.randn(8, 36), torch.randn(8, 36)
    lo, hi = tp(x1, x2), tp.double()(x1.double(), x2.double())
    assert ((lo.double() - hi).abs().max() / hi.abs().max()) < 1e-6


def test_tp_gradcheck_and_gradgradcheck():
    tp = GauntTensorProduct("1x0e + 1x1o", "1x0e + 1x1o + 1x2e", "1x1o + 1x2e + 1x3o").double()
    with torch.no_grad():
        tp.weight1.normal_()
    x1 = torch.randn(2, 4, dtype=F64, requires_grad=True)
    x2 = torch.randn(2, 9, dtype=F64, requires_grad=True)
    assert gradcheck(tp, (x1, x2))
    assert gradgradcheck(tp, (x1, x2))
    tp(x1, x2).pow(2).sum().backward()
    assert all(w.grad.abs().sum() > 0 for w in (tp.weight1, tp.weight2, tp.weight_out))


def test_tp_reset_parameters_and_repr():
    tp = GauntTensorProduct("2x0e + 2x1o", "2x0e", "2x0e + 2x1o")
    with torch.no_grad():
        tp.weight1.zero_()
        tp.weight_out.fill_(3.0)
    tp.reset_parameters()
    assert all(bool((w == 1).all()) for w in (tp.weight1, tp.weight2, tp.weight_out))
    r = repr(tp)
    assert "2x0e+2x1o x 2x0e -> 2x0e+2x1o" in r and "2 channels" in r
    mix = GauntTensorProduct("3x0e", "3x0e", "2x0e", channel_mixing=True)
    w0 = mix.lin1.weight.detach().clone()
    mix.reset_parameters()
    assert not torch.equal(w0, mix.lin1.weight) and "channel_mixing" in repr(mix)


def test_tp_attributes_are_e3nn_irreps():
    tp = GauntTensorProduct("2x0e + 2x1o", "2x1o", "2x0e + 2x2e")
    for a in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out):
        assert isinstance(a, o3.Irreps)
    assert (tp.p_val1, tp.p_val2, tp.p_val_out) == (1, 1, 1)


# ---------------------------------------------------------------------------------------------- convolution


def _graph(n=6, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    pos = 0.4 * torch.randn(n, 3, generator=g, dtype=dtype)
    src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = src != dst
    return pos, torch.stack([src[keep], dst[keep]])


def test_conv_unit_weights_equals_reference_messages_pyg_order():
    irreps_node, irreps_sh, irreps_out = "2x0e + 2x1o", "0e + 1o + 2e", "2x0e + 2x1o + 2x2e + 2x3o"
    conv = GauntConv(irreps_node, irreps_sh, irreps_out, max_radius=3.0).double()
    with torch.no_grad():  # radial MLP -> all per-degree weights 1
        conv.radial[-1].weight.zero_()
        conv.radial[-1].bias.fill_(1.0)
    pos = torch.randn(4, 3, dtype=F64)
    edge_index = torch.tensor([[0, 2, 3, 1], [1, 1, 1, 2]])  # sources -> targets; nodes 0 and 3 receive nothing
    x = torch.randn(4, 8, dtype=F64)
    out = conv(x, pos, edge_index)
    want = torch.zeros_like(out)
    for j, i in edge_index.T.tolist():
        vec = pos[j] - pos[i]
        r = float(vec.norm())
        env = 0.5 * (1 + math.cos(math.pi * r / 3.0))
        Y = o3.spherical_harmonics([0, 1, 2], vec, normalize=True, normalization="component")
        z = reference_gaunt_product(to_sh(x[j], irreps_node), Y.expand(2, -1), 3)
        want[i] += env * from_sh(z, irreps_out)
    assert (out - want).abs().max() < 1e-13
    assert out[0].abs().max() == 0 and out[3].abs().max() == 0
    # mean aggregation divides by the in-degree
    conv.aggr = "mean"
    assert (conv(x, pos, edge_index)[1] - want[1] / 3).abs().max() < 1e-13


def test_empty_batch_and_graph_without_edges():
    tp = GauntTensorProduct("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x2e")
    assert tp(torch.randn(0, 8), torch.randn(0, 8)).shape == (0, 12)
    conv = GauntConv("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o")
    out = conv(torch.randn(3, 8), torch.randn(3, 3), torch.zeros(2, 0, dtype=torch.long))
    assert out.shape == (3, 8) and out.abs().max() == 0


def test_conv_cutoff_edges_beyond_max_radius_send_nothing():
    conv = GauntConv("1x0e", "0e + 1o", "1x0e + 1x1o", max_radius=1.0).double()
    pos = torch.tensor([[0.0, 0, 0], [2.0, 0, 0]], dtype=F64)
    out = conv(torch.ones(2, 1, dtype=F64), pos, torch.tensor([[0, 1], [1, 0]]))
    assert out.abs().max() == 0


CONV_CASES = {  # node irreps, output irreps, mixing
    "channelwise": ("2x0e + 2x1o + 2x2e", "2x0e + 2x1o + 2x2e + 2x3o", False),
    "pseudo": ("2x0o + 2x1e", "2x0o + 2x1e + 2x2o", False),  # p_val = -1 features: outputs keep p_val = -1
    "mixing": ("2x0e + 1x1o + 1x2e", "3x0e + 1x1o + 2x2e", True),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_is_e3_equivariant(case, dtype):
    node, out_irreps, mixing = CONV_CASES[case]
    kw = {"channel_mixing": True, "channels": 3} if mixing else {}
    conv = GauntConv(node, "0e + 1o + 2e", out_irreps, max_radius=2.0, **kw).to(dtype)
    pos, edge_index = _graph(dtype=dtype)
    x = torch.randn(pos.shape[0], conv.irreps_node.dim, dtype=dtype)
    t = torch.randn(3, dtype=dtype)
    for R in rotations():
        Dx, Do = e3nn_D(conv.irreps_node, R).to(dtype), e3nn_D(conv.irreps_out, R).to(dtype)
        lhs = conv(x @ Dx.T, pos @ R.to(dtype).T + t, edge_index)
        assert_close_rel(lhs, conv(x, pos, edge_index) @ Do.T, dtype)


def test_conv_forces_are_equivariant_and_double_backward_works():
    conv = GauntConv("2x0e + 2x1o", "0e + 1o + 2e", "2x0e + 2x1o", max_radius=2.0).double()
    pos, edge_index = _graph(5)
    x = torch.randn(5, 8, dtype=F64)

    def forces(x_, p_):
        p_ = p_.clone().requires_grad_(True)
        energy = conv(x_, p_, edge_index)[:, :2].sum()
        (g,) = torch.autograd.grad(energy, p_, create_graph=True)
        return -g

    F = forces(x, pos)
    assert F.abs().max() > 0
    for R in rotations():
        Dx = e3nn_D(conv.irreps_node, R)
        assert (forces(x @ Dx.T, pos @ R.T + 1.5) - F @ R.T).abs().max() < 1e-10
    F.pow(2).sum().backward()  # force loss: double backward into the radial MLP
    assert conv.radial[0].weight.grad.abs().sum() > 0


def test_conv_gradcheck_and_gradgradcheck_in_x_and_pos():
    conv = GauntConv("1x0e + 1x1o", "0e + 1o", "1x0e + 1x1o + 1x2e", num_basis=3, radial_hidden=4,
                     max_radius=2.0).double()
    pos, edge_index = _graph(3)
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    pos.requires_grad_(True)
    f = lambda x_, p_: conv(x_, p_, edge_index)  # noqa: E731
    assert gradcheck(f, (x, pos))
    assert gradgradcheck(f, (x, pos))


def test_conv_reset_parameters_and_repr():
    conv = GauntConv("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o", max_radius=1.5)
    w0 = conv.radial[0].weight.detach().clone()
    conv.reset_parameters()
    assert not torch.equal(w0, conv.radial[0].weight)
    r = repr(conv)
    assert "2x0e+2x1o x Y(1x0e+1x1o) -> 2x0e+2x1o" in r and "max_radius=1.5" in r
    assert isinstance(conv.irreps_in, o3.Irreps) and isinstance(conv.irreps_out, o3.Irreps)


# ---------------------------------------------------------------------------------------------- many-body


def _full_power_reference(f, k, normalization="component"):
    """f^k by the reference at full degree (no truncation)."""
    p = f
    for _ in range(k - 1):
        p = reference_gaunt_product(p, f, normalization=normalization)
    return p


@pytest.mark.parametrize("normalization", ["component", "integral"])
def test_many_body_unit_weights_equal_sum_of_untruncated_powers(normalization):
    irreps_in, irreps_out = "2x0e + 2x1o + 2x2e", "2x0e + 2x1o + 2x2e"
    mb = GauntManyBody(irreps_in, irreps_out, correlation=3, normalization=normalization).double()
    x = torch.randn(3, mb.irreps_in.dim, dtype=F64)
    f = to_sh(x, irreps_in)
    want = sum(from_sh(_full_power_reference(f, k, normalization), irreps_out) for k in (1, 2, 3))
    assert (mb(x) - want).abs().max() < 1e-12
    with torch.no_grad():
        mb.weight.normal_()
    ne = len(o3.Irreps(irreps_out))
    idx = torch.tensor([c * ne + e for e, (mul, ir) in enumerate(o3.Irreps(irreps_out)) for c in range(mul)
                        for _ in range(ir.dim)])  # w[k, c, entry] at each mul_ir position
    want = sum(from_sh(_full_power_reference(f, k, normalization), irreps_out) * mb.weight[k - 1].reshape(-1)[idx]
               for k in (1, 2, 3))
    assert (mb(x) - want).abs().max() < 1e-12


def test_many_body_pseudo_signal_orders_by_parity():
    # p_val = -1: odd powers have irreps (l, -(-1)^l), even powers (l, (-1)^l)
    irreps_in, irreps_out = "2x0o + 2x1e", "2x0e + 2x0o + 2x1o + 2x1e + 2x2e"
    mb = GauntManyBody(irreps_in, irreps_out, correlation=3).double()
    x = torch.randn(4, mb.irreps_in.dim, dtype=F64)
    f = to_sh(x, irreps_in)
    P = {k: _full_power_reference(f, k) for k in (1, 2, 3)}
    P[1] = torch.nn.functional.pad(P[1], (0, 5))  # degree 1 -> degrees 0..2
    odd, even = P[1] + P[3][..., :9], P[2][..., :9]
    want = torch.cat([from_sh(even, "2x0e"), from_sh(odd, "2x0o"), from_sh(even, "2x1o"), from_sh(odd, "2x1e"),
                      from_sh(even, "2x2e")], -1)
    assert (mb(x) - want).abs().max() < 1e-12
    for R in rotations():
        Di, Do = e3nn_D(mb.irreps_in, R), e3nn_D(mb.irreps_out, R)
        assert (mb(x @ Di.T) - mb(x) @ Do.T).abs().max() < 1e-10


@pytest.mark.parametrize("mixing", [False, True])
def test_many_body_is_o3_equivariant(mixing, dtype):
    kw = {"channel_mixing": True, "channels": 3} if mixing else {}
    irreps_in = "4x0e + 2x1o + 1x2e" if mixing else "3x0e + 3x1o + 3x2e"
    irreps_out = "2x0e + 1x1o + 3x2e + 1x3o" if mixing else "3x0e + 3x1o + 3x2e + 3x3o"
    mb = GauntManyBody(irreps_in, irreps_out, correlation=3, **kw).to(dtype)
    with torch.no_grad():
        mb.weight.normal_()
    x = torch.randn(5, mb.irreps_in.dim, dtype=dtype)
    for R in rotations():
        Di, Do = e3nn_D(mb.irreps_in, R).to(dtype), e3nn_D(mb.irreps_out, R).to(dtype)
        assert_close_rel(mb(x @ Di.T), mb(x) @ Do.T, dtype)


def test_many_body_correlation_one_is_a_per_degree_linear_map():
    mb = GauntManyBody("2x0e + 2x1o", "2x1o", correlation=1).double()
    x = torch.randn(3, 8, dtype=F64)
    assert (mb(x) - x[:, 2:]).abs().max() == 0


def test_many_body_gradcheck_gradgradcheck_reset_and_repr():
    mb = GauntManyBody("1x0e + 1x1o", "1x0e + 1x1o + 1x2e", correlation=3).double()
    x = torch.randn(2, 4, dtype=F64, requires_grad=True)
    assert gradcheck(mb, (x,))
    assert gradgradcheck(mb, (x,))
    with torch.no_grad():
        mb.weight.zero_()
    mb.reset_parameters()
    assert bool((mb.weight == 1).all())
    assert "1x0e+1x1o -> 1x0e+1x1o+1x2e | correlation=3" in repr(mb)


# ------------------------------------------------------------------------------------------------ compile


def test_tp_compiles_without_graph_breaks():
    tp = GauntTensorProduct("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x1o + 2x2e")
    x1, x2 = torch.randn(5, 8), torch.randn(5, 8)
    eager = tp(x1, x2)  # builds the tables (the compiled graph reads them from the cache)
    compiled = torch.compile(tp, fullgraph=True)
    assert (compiled(x1, x2) - eager).abs().max() < 1e-6


@pytest.mark.slow
def test_conv_and_many_body_compile_without_graph_breaks():
    conv = GauntConv("2x0e + 2x1o", "0e + 1o + 2e", "2x0e + 2x1o", max_radius=3.0, channel_mixing=True)
    mb = GauntManyBody("2x0e + 2x1o", "2x0e + 2x1o", correlation=3)
    x, pos, edge_index = torch.randn(5, 8), torch.randn(5, 3), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    eager_conv, eager_mb = conv(x, pos, edge_index), mb(x)
    assert (torch.compile(conv, fullgraph=True)(x, pos, edge_index) - eager_conv).abs().max() < 1e-5
    assert (torch.compile(mb, fullgraph=True)(x) - eager_mb).abs().max() < 1e-5
