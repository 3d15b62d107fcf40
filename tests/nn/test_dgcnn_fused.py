"""DGCNN's fused EdgeConv (batch norm and activation moved past the max) equals the per-edge one."""

from __future__ import annotations

import copy

import pytest
import torch

from equinets.nn import DGCNN, EdgeConv, knn_dense, knn_graph

F64 = torch.float64


def _pair(module):
    """``(fused, naive)`` deep copies of ``module`` (same parameters and buffers)."""
    fused, naive = copy.deepcopy(module), copy.deepcopy(module)
    for m in naive.modules():
        if isinstance(m, EdgeConv):
            m.fused = False
    for m in fused.modules():
        if isinstance(m, EdgeConv):
            m.fused = True
    return fused, naive


def _mixed_signs(module, seed=0):
    """Batch-norm weights of both signs and non-trivial biases / running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                c = m.num_features
                sign = torch.where(torch.arange(c) % 3 == 1, -1.0, 1.0)
                m.weight.copy_(sign * (0.5 + torch.rand(c, generator=g)))
                m.bias.copy_(torch.randn(c, generator=g) * 0.3)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return module


def _grads(module, inputs, out):
    params = [p for p in module.parameters() if p.requires_grad]
    gout = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype)
    return torch.autograd.grad(out, [*inputs, *params], gout, allow_unused=True)


def _assert_same(fused, naive, fused_in, naive_in, call, rtol=1e-9, atol=1e-10):
    out_f, out_n = call(fused, *fused_in), call(naive, *naive_in)
    torch.testing.assert_close(out_f, out_n, rtol=rtol, atol=atol)
    for gf, gn in zip(_grads(fused, fused_in, out_f), _grads(naive, naive_in, out_n)):
        if gn is None:
            assert gf is None or not gf.any()
            continue
        torch.testing.assert_close(gf, gn, rtol=rtol, atol=atol)
    for bf, bn in zip(fused.buffers(), naive.buffers()):
        torch.testing.assert_close(bf, bn, rtol=rtol, atol=atol)


def _dense_idx(h, B, n, k):
    hb = h.detach().view(B, n, -1)
    return knn_dense(hb, k)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("slope", [0.2, 0.0])
def test_edgeconv_dense_matches_naive(train, slope):
    torch.manual_seed(0)
    B, n, k, cin, cout = 3, 17, 5, 4, 7
    conv = _mixed_signs(EdgeConv(cin, cout, slope).to(F64)).train(train)
    fused, naive = _pair(conv)
    h = torch.randn(B * n, cin, dtype=F64)
    idx = _dense_idx(h, B, n, k)
    hf, hn = h.clone().requires_grad_(), h.clone().requires_grad_()
    _assert_same(fused, naive, (hf,), (hn,), lambda m, x: m(x, idx=idx))


@pytest.mark.parametrize("train", [True, False])
def test_edgeconv_ragged_matches_naive(train):
    torch.manual_seed(1)
    sizes, k, cin, cout = [6, 11, 2, 9], 4, 3, 6
    conv = _mixed_signs(EdgeConv(cin, cout).to(F64)).train(train)
    fused, naive = _pair(conv)
    h = torch.randn(sum(sizes), cin, dtype=F64)
    batch = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    ei = knn_graph(h, k, batch, loop=True)  # (source j, target i)
    perm = torch.randperm(ei.shape[1])  # unsorted edge lists work too
    ei = ei[:, perm]
    ei = ei[:, ei[1] != 5]  # target 5 without edges: zeros
    hf, hn = h.clone().requires_grad_(), h.clone().requires_grad_()
    _assert_same(fused, naive, (hf,), (hn,), lambda m, x: m(x, edge_index=ei))
    assert not fused(h, edge_index=ei)[5].any()


@pytest.mark.parametrize("train", [True, False])
def test_edgeconv_ties_and_zero_gamma(train):
    """Duplicate points (tied maxima: the gradient is split evenly) and gamma = 0 channels."""
    torch.manual_seed(2)
    B, n, k, cin, cout = 2, 12, 6, 3, 6
    conv = _mixed_signs(EdgeConv(cin, cout).to(F64)).train(train)
    with torch.no_grad():
        conv.norm.weight[2] = 0.0
    fused, naive = _pair(conv)
    h = torch.randn(B, n, cin, dtype=F64)
    h[:, 1] = h[:, 0]  # duplicates: tied neighbours
    h[:, 2] = h[:, 0]
    h[:, 7] = h[:, 5]
    h = h.reshape(B * n, cin)
    idx = _dense_idx(h, B, n, k)
    hf, hn = h.clone().requires_grad_(), h.clone().requires_grad_()
    _assert_same(fused, naive, (hf,), (hn,), lambda m, x: m(x, idx=idx))
    batch = torch.arange(B).repeat_interleave(n)
    ei = knn_graph(h, k, batch, loop=True)
    _assert_same(fused, naive, (hf,), (hn,), lambda m, x: m(x, edge_index=ei))


def test_edgeconv_running_stats_and_momentum_none():
    torch.manual_seed(4)
    B, n, k = 2, 10, 4
    conv = _mixed_signs(EdgeConv(3, 5).to(F64)).train()
    conv.norm.momentum = None  # cumulative average
    fused, naive = _pair(conv)
    h = torch.randn(B * n, 3, dtype=F64)
    idx = _dense_idx(h, B, n, k)
    for _ in range(3):
        fused(h, idx=idx), naive(h, idx=idx)
    torch.testing.assert_close(fused.norm.running_mean, naive.norm.running_mean, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fused.norm.running_var, naive.norm.running_var, rtol=1e-9, atol=1e-12)
    assert int(fused.norm.num_batches_tracked) == int(naive.norm.num_batches_tracked) == 3


def test_edgeconv_float32_statistics_stay_accurate():
    """Large offsets in ``a`` and ``b`` (cancellation-prone) still give BatchNorm's statistics."""
    torch.manual_seed(5)
    conv = EdgeConv(3, 8).train()
    fused, naive = _pair(conv)
    h = torch.randn(4 * 64, 3) * 0.1 + 50.0
    idx = _dense_idx(h, 4, 64, 8)
    out_f, out_n = fused(h, idx=idx), naive(h, idx=idx)
    torch.testing.assert_close(out_f, out_n, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(fused.norm.running_var, naive.norm.running_var, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("task", ["cls", "seg"])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("ragged", [False, True])
def test_dgcnn_fused_matches_naive(task, train, ragged):
    torch.manual_seed(6)
    model = DGCNN(
        2,
        5,
        task,
        num_categories=3 if task == "seg" else 0,
        k=5,
        hidden_channels=(8, 8, 6),
        emb_dims=16,
        head_channels=(8,),
        seg_channels=(8,),
        dropout=0.0,
    )
    model = _mixed_signs(model.to(F64)).train(train)
    fused, naive = _pair(model)
    sizes = [9, 14, 4] if ragged else [12, 12, 12]
    pos = torch.randn(sum(sizes), 3, dtype=F64)
    x = torch.randn(sum(sizes), 2, dtype=F64)
    batch = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    cat = torch.tensor([0, 2, 1]) if task == "seg" else None
    pf, xf = pos.clone().requires_grad_(), x.clone().requires_grad_()
    pn, xn = pos.clone().requires_grad_(), x.clone().requires_grad_()
    _assert_same(fused, naive, (pf, xf), (pn, xn), lambda m, p, f: m(p, f, batch, category=cat))
