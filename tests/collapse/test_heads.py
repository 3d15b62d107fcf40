"""Fixed classifier heads (simplex ETF, EBV, sparse ETF) and attach_head on equinets models."""

import copy
import math

import pytest
import torch
from torch import nn

from equinets.collapse import FeatureCapture, find_classifier, nc_metrics
from equinets.collapse.heads import (
    EBVHead,
    SimplexETFHead,
    SparseETFHead,
    attach_head,
    generate_ebv,
    helmert_basis,
    simplex_etf,
    welch_bound,
)
from equinets.frames import FrameAveraging
from equinets.nn import DGCNN, PointNet
from equinets.testing import assert_equivariant

F64 = torch.float64


def _centring(K):
    return torch.eye(K, dtype=F64) - torch.full((K, K), 1.0 / K, dtype=F64)


@pytest.mark.parametrize("K,d", [(5, 4), (5, 5), (10, 9), (10, 64), (3, 100)])
def test_etf_gram_is_scaled_centring_matrix(K, d):
    head = SimplexETFHead(d, K, scale=2.5, dtype=F64)
    W = head.weight
    assert W.shape == (K, d)
    G = W @ W.T
    assert torch.allclose(G, 2.5**2 * K / (K - 1) * _centring(K), atol=1e-12, rtol=0)
    # unit rows before the scale, columns sum to zero, rank K - 1
    assert torch.allclose(W.norm(dim=1), torch.full((K,), 2.5, dtype=F64), atol=1e-12)
    assert W.sum(0).abs().max() < 1e-12
    assert torch.linalg.matrix_rank(W) == K - 1
    # the logits are a linear map of the features
    h = torch.randn(7, d, dtype=F64)
    assert torch.allclose(head(h), h @ W.T, atol=1e-13)


def test_etf_minimal_dimension_uses_complement_of_ones():
    K = 6
    B = helmert_basis(K)
    assert torch.allclose(B @ B.T, torch.eye(K - 1, dtype=F64), atol=1e-14)
    assert B.sum(1).abs().max() < 1e-14
    assert torch.allclose(B.T @ B, _centring(K), atol=1e-14)
    W = simplex_etf(K, K - 1, seed=None)
    assert torch.allclose(W, math.sqrt(K / (K - 1)) * B.T, atol=1e-15)
    # d = K - 1 is the smallest dimension holding K equiangular vectors: it meets Welch's bound exactly
    cos = W @ W.T
    assert torch.allclose(cos - torch.diag(torch.diag(cos)), -(1 / (K - 1)) * (1 - torch.eye(K, dtype=F64)), atol=1e-14)
    assert welch_bound(K, K - 1) == pytest.approx(1 / (K - 1), abs=1e-15)


def test_etf_weight_is_a_fixed_buffer_and_seeded():
    head = SimplexETFHead(12, 4, bias=True)
    assert [n for n, _ in head.named_parameters()] == ["bias"]
    assert "weight" in head.state_dict() and "weight" in dict(head.named_buffers())
    assert torch.equal(SimplexETFHead(12, 4).weight, head.weight)
    assert not torch.allclose(SimplexETFHead(12, 4, seed=1).weight, head.weight)
    h = torch.randn(3, 12)
    head(h).sum().backward()
    assert head.bias.grad is not None
    # the fixed ETF measured as a classifier: every weight-geometry metric of nc_metrics is zero
    labels = torch.arange(4).repeat(5)
    feats = simplex_etf(4, 12).repeat(5, 1)
    m = nc_metrics(feats, labels, simplex_etf(4, 12))
    for key in ("equinorm_weights", "equiangular_weights", "max_angle_weights", "etf_distance_weights", "nc3"):
        assert m[key] < 1e-12, key


@pytest.mark.parametrize("K,d,factor", [(20, 8, 1.5), (40, 16, 1.6), (12, 5, 1.6)])
def test_ebv_respects_tau_and_welch(K, d, factor):
    bound = welch_bound(K, d)
    assert bound == pytest.approx(math.sqrt((K - d) / (d * (K - 1))), rel=1e-15)
    tau = factor * bound
    res = generate_ebv(K, d, tau, seed=3)
    u = res.vectors
    assert u.shape == (K, d) and u.dtype == F64
    assert torch.allclose(u.norm(dim=1), torch.ones(K, dtype=F64), atol=1e-12)
    c = (u @ u.T).abs()
    c.fill_diagonal_(0)
    assert float(c.max()) == pytest.approx(res.max_abs_cos, abs=1e-15)
    assert bound <= res.max_abs_cos <= tau
    again = generate_ebv(K, d, tau, seed=3)
    assert torch.equal(again.vectors, u) and again.steps == res.steps
    assert not torch.equal(generate_ebv(K, d, tau, seed=4).vectors, u)


def test_ebv_fewer_classes_than_dimensions_is_orthonormal():
    res = generate_ebv(6, 10, 0.0)
    assert res.steps == 0 and res.welch_bound == 0.0
    assert torch.allclose(res.vectors @ res.vectors.T, torch.eye(6, dtype=F64), atol=1e-14)
    assert res.max_abs_cos < 1e-14


def test_ebv_head_logits_are_cosines_over_temperature():
    head = EBVHead(8, 20, temperature=0.1, dtype=F64)
    assert head.tau == pytest.approx(1.5 * welch_bound(20, 8))
    assert head.max_abs_cos <= head.tau
    assert len(list(head.parameters())) == 0 and head.bias is None
    h = torch.randn(5, 8, dtype=F64)
    cos = (h / h.norm(dim=1, keepdim=True)) @ head.weight.T
    assert torch.allclose(head(h), cos / 0.1, atol=1e-12)
    # the prediction is that of the linear classifier (weight, 0) the collapse metrics read
    assert torch.equal(head(h).argmax(1), (h @ head.weight.T).argmax(1))
    plain = EBVHead(8, 20, normalize=False, temperature=0.1, dtype=F64)
    assert torch.allclose(plain(h), h @ plain.weight.T / 0.1, atol=1e-12)


def test_sparse_etf_sparsity_and_near_equiangularity():
    K, d = 10, 64
    head = SparseETFHead(d, K, sparsity=0.6, steps=100, dtype=F64)
    W = head.weight
    s = head.stats
    assert int((W == 0).sum()) == round(0.6 * K * d) and s["sparsity"] == pytest.approx(0.6, abs=1e-12)
    assert torch.allclose(W.norm(dim=1), torch.ones(K, dtype=F64), atol=1e-12)
    u = W / W.norm(dim=1, keepdim=True)
    off = (u @ u.T)[~torch.eye(K, dtype=torch.bool)]
    assert float(off.max()) == pytest.approx(s["max_cos"], abs=1e-12)
    # sparsifying breaks the ETF (a positive cosine appears); re-optimising the non-zeros restores it closely
    assert s["max_cos_sparsified"] > 0
    assert s["max_cos"] < -1 / (K - 1) + 0.02
    assert float(off.mean()) == pytest.approx(-1 / (K - 1), abs=5e-3)
    assert s["cos_std"] < 0.02 and s["norm_cov"] < 0.01
    zero_pattern = SparseETFHead(d, K, sparsity=0.6, steps=0, dtype=F64).weight == 0
    assert torch.equal(zero_pattern, W == 0)  # the mask is kept exactly through the optimisation


def _small_pointnet(K=4):
    return PointNet(0, K, hidden_channels=(8,), emb_dims=16, head_channels=(12,), dropout=0.0)


def _small_dgcnn(K=4):
    return DGCNN(0, K, k=4, hidden_channels=(8, 8), emb_dims=16, head_channels=(12,), dropout=0.0)


@pytest.mark.parametrize("make", [_small_pointnet, _small_dgcnn])
@pytest.mark.parametrize("name", ["etf", "ebv", "sparse_etf", "linear"])
def test_attach_head_changes_logits_only_through_the_head(make, name):
    torch.manual_seed(0)
    base = make().double().eval()
    model = attach_head(copy.deepcopy(base), name, **({"steps": 20} if name == "sparse_etf" else {}))
    parent, attr = find_classifier(model)
    head = getattr(parent, attr)
    expected = {"etf": SimplexETFHead, "ebv": EBVHead, "sparse_etf": SparseETFHead, "linear": nn.Linear}[name]
    assert type(head) is expected and head.weight.dtype == F64 and head.weight.shape == (4, 12)
    pos = torch.randn(3, 10, 3, dtype=F64)
    with FeatureCapture(base) as cb:
        base(pos)
    with FeatureCapture(model) as cm:
        logits = model(pos)
    assert torch.equal(cb.features, cm.features)  # everything before the classifier is untouched
    assert torch.allclose(logits, head(cm.features), atol=1e-12)


def test_attach_head_on_frame_averaged_pointnet_stays_invariant():
    torch.manual_seed(1)
    fa = FrameAveraging(_small_pointnet(5).double(), "E3").eval()
    attach_head(fa, "etf", scale=3.0)
    head = fa.backbone.head[-1]
    assert isinstance(head, SimplexETFHead) and head.scale == 3.0
    pos = torch.randn(4, 12, 3, dtype=F64)
    with FeatureCapture(fa) as cap:
        logits = fa(pos)
    # linear head: the frame average of the logits is the head applied to the frame-mean feature
    assert torch.allclose(logits, cap.features @ head.weight.T, atol=1e-12)
    assert_equivariant(fa, pos, group="E3", n_trials=2)
    attach_head(fa, "ebv")  # a non-linear head (normalised features) keeps the exact invariance too
    assert isinstance(fa.backbone.head[-1], EBVHead)
    assert_equivariant(fa, pos, group="E3", n_trials=2)


def test_attach_head_accepts_the_config_name_simplex_etf():
    assert isinstance(attach_head(_small_pointnet(), "simplex_etf").head[-1], SimplexETFHead)


def test_attach_head_with_a_module_and_new_class_count():
    model = attach_head(_small_pointnet(), SimplexETFHead(12, 4, bias=True))
    assert model.head[-1].bias is not None
    model = attach_head(_small_pointnet(), "linear", num_classes=4, bias=False)
    assert model.head[-1].bias is None
