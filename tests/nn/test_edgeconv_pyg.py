"""EdgeConv against torch_geometric.nn.EdgeConv (an independent reference) on knn_graph edges.

PyG's order is the contract: ``edge_index[0]`` the source j, ``edge_index[1]`` the target i; EdgeConv
computes ``max_j LReLU(BN(W [h_i, h_j - h_i]))``.
"""

from __future__ import annotations

import pytest
import torch
import torch_geometric.nn as pyg_nn

from equinets.nn import EdgeConv, knn_dense, knn_graph


def _pair(c_in, c_out, dtype, fused, seed=0):
    """An equinets EdgeConv with non-trivial BN parameters/statistics and PyG's EdgeConv with copied weights."""
    g = torch.Generator().manual_seed(seed)
    ours = EdgeConv(c_in, c_out, 0.2, fused=fused).to(dtype)
    with torch.no_grad():
        ours.lin.weight.copy_(torch.randn(c_out, 2 * c_in, generator=g, dtype=dtype))
        sign = torch.where(torch.arange(c_out) % 3 == 1, -1.0, 1.0).to(dtype)  # negative gammas too
        ours.norm.weight.copy_(sign * (0.5 + torch.rand(c_out, generator=g, dtype=dtype)))
        ours.norm.bias.copy_(0.3 * torch.randn(c_out, generator=g, dtype=dtype))
        ours.norm.running_mean.copy_(0.2 * torch.randn(c_out, generator=g, dtype=dtype))
        ours.norm.running_var.copy_(0.5 + torch.rand(c_out, generator=g, dtype=dtype))
    mlp = torch.nn.Sequential(
        torch.nn.Linear(2 * c_in, c_out, bias=False), torch.nn.BatchNorm1d(c_out), torch.nn.LeakyReLU(0.2)
    ).to(dtype)
    ref = pyg_nn.EdgeConv(mlp, aggr="max")  # resets mlp's parameters: copy after construction
    mlp[0].load_state_dict(ours.lin.state_dict())
    mlp[1].load_state_dict(ours.norm.state_dict())
    return ours, ref


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per_edge"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_edgeconv_matches_pyg_edgeconv_on_knn_graph_edges(dtype, fused, train):
    torch.manual_seed(0)
    sizes, k, c_in, c_out = [9, 14, 5], 4, 3, 6
    h = torch.randn(sum(sizes), c_in, dtype=dtype)
    batch = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    edge_index = knn_graph(h, k, batch, loop=True)  # row 0 source j, row 1 target i
    ours, ref = _pair(c_in, c_out, dtype, fused)
    ours.train(train), ref.train(train)
    hr, hp = h.clone().requires_grad_(), h.clone().requires_grad_()
    out, out_ref = ours(hr, edge_index=edge_index), ref(hp, edge_index)
    torch.testing.assert_close(out, out_ref, **_tol(dtype))
    gout = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    (g1,) = torch.autograd.grad(out, hr, gout)
    (g2,) = torch.autograd.grad(out_ref, hp, gout)
    torch.testing.assert_close(g1, g2, **_tol(dtype))
    if train:  # batch statistics over the E edge features, as BatchNorm1d computes them
        torch.testing.assert_close(ours.norm.running_mean, ref.nn[1].running_mean, **_tol(dtype))
        torch.testing.assert_close(ours.norm.running_var, ref.nn[1].running_var, **_tol(dtype))


def test_edgeconv_edge_order_is_source_then_target():
    """One directed edge j -> i: only target i receives a message, and it depends on h_j."""
    ours, ref = _pair(2, 3, torch.float64, fused=False)
    ours.eval(), ref.eval()
    h = torch.randn(3, 2, dtype=torch.float64)
    e = torch.tensor([[2], [0]])  # source 2, target 0
    out = ours(h, edge_index=e)
    torch.testing.assert_close(out, ref(h, e), rtol=0, atol=1e-12)
    assert out[1:].abs().max() == 0 and out[0].abs().max() > 0
    h2 = h.clone()
    h2[2] += 1.0
    assert not torch.allclose(ours(h2, edge_index=e)[0], out[0])


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per_edge"])
def test_edgeconv_dense_path_equals_flat_path(dtype, fused):
    torch.manual_seed(2)
    B, n, k = 3, 16, 5
    h = torch.randn(B * n, 4, dtype=dtype)
    ours, _ = _pair(4, 7, dtype, fused, seed=3)
    ours.eval()
    idx = knn_dense(h.view(B, n, 4), k)
    batch = torch.arange(B).repeat_interleave(n)
    dense = ours(h, idx=idx)
    flat = ours(h, edge_index=knn_graph(h, k, batch, loop=True))
    torch.testing.assert_close(dense, flat, **_tol(dtype))
