"""Partition prediction: EM against a loop reference and finite differences, merging, assignments, order."""

import math

import numpy as np
import pytest
import torch

from equinets.piecewise import (
    Mixture,
    assign,
    fit_mixture,
    fps_candidates,
    gmm_em,
    init_mixture,
    merge_components,
    partition_from_labels,
)

F64 = torch.float64


def _blobs(centres, n=10, s=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(n, 3, dtype=F64, generator=g) * s + torch.tensor(c, dtype=F64) for c in centres])


def _em_reference(y, means, pi, var, iters):
    """EM for one cloud written point by point in numpy (an independent second formula)."""
    y, mu, pi = y.numpy(), means.numpy().copy(), pi.numpy().copy()
    n, K = y.shape[0], mu.shape[0]
    for _ in range(iters + 1):
        R = np.zeros((n, K))
        for i in range(n):
            w = np.array([pi[j] * math.exp(-np.sum((y[i] - mu[j]) ** 2) / (2 * var)) for j in range(K)])
            R[i] = w / w.sum()
        if _ == iters:
            break
        for j in range(K):
            mu[j] = (R[:, j:j + 1] * y).sum(0) / R[:, j].sum()
            pi[j] = R[:, j].sum() / n
    return mu, pi, R


def test_em_matches_a_pointwise_reference_on_two_clouds():
    ya, yb = _blobs([[0, 0, 0], [0.4, 0, 0]], 8, 0.2), _blobs([[1, 1, 0], [1, 1.5, 0], [3, 0, 1]], 6, 0.3, 1)
    y = torch.cat([ya, yb])
    batch = torch.cat([torch.zeros(16, dtype=torch.long), torch.ones(18, dtype=torch.long)])
    means = torch.stack([torch.cat([ya[[0, 9]], ya[[5]]]), yb[[0, 7, 13]]])
    alive = torch.tensor([[True, True, False], [True, True, True]])
    pi = alive.double() / alive.sum(1, keepdim=True)
    out = gmm_em(y, batch, Mixture(means, pi, alive, None, 0.08), 4)
    for b, (yy, sl) in enumerate([(ya, slice(0, 2)), (yb, slice(0, 3))]):
        mu, p, R = _em_reference(yy, means[b, sl], pi[b, sl], 0.08, 4)
        assert np.allclose(out.means[b, sl].numpy(), mu, atol=1e-12, rtol=0)
        assert np.allclose(out.pi[b, sl].numpy(), p, atol=1e-12, rtol=0)
        assert np.allclose(out.log_resp[batch == b][:, sl].exp().numpy(), R, atol=1e-12, rtol=0)
    assert torch.isneginf(out.log_resp[:16, 2]).all() and out.pi[0, 2] == 0
    assert torch.allclose(out.pi.sum(1), torch.ones(2, dtype=F64), atol=1e-14)


def test_unrolled_em_gradient_matches_finite_differences():
    """d(means, log Q)/d(votes) of the unrolled EM against central finite differences (float64 gradcheck)."""
    y0 = _blobs([[0, 0, 0], [0.5, 0.2, 0]], 4, 0.15)
    batch = torch.zeros(8, dtype=torch.long)

    def em(y):
        alive = torch.ones(1, 3, dtype=torch.bool)
        mix = Mixture(y[None, [0, 4, 6]], torch.full((1, 3), 1 / 3, dtype=F64), alive, None, 0.05)
        out = gmm_em(y, batch, mix, 3)
        return out.means, out.log_resp, out.pi

    assert torch.autograd.gradcheck(em, (y0.clone().requires_grad_(),), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_merge_is_transitive_and_independent_of_slot_order():
    means = torch.tensor([[[0.0, 0, 0], [3.0, 0, 0], [0.08, 0, 0], [0.16, 0, 0], [3.05, 0, 0], [7.0, 0, 0]]], dtype=F64)
    pi = torch.tensor([[0.1, 0.2, 0.1, 0.2, 0.3, 0.1]], dtype=F64)
    alive = torch.ones(1, 6, dtype=torch.bool)
    out = merge_components(Mixture(means, pi, alive, None, 1.0), 0.1)
    got = sorted((round(float(out.pi[0, j]), 12), round(float(out.means[0, j, 0]), 12)) for j in range(6) if out.alive[0, j])
    # {0, 0.08, 0.16} chain-merge (pi-weighted mean 0.088), {3, 3.05} merge, 7 alone
    assert got == sorted([(0.4, round((0.1 * 0 + 0.1 * 0.08 + 0.2 * 0.16) / 0.4, 12)), (0.5, 3.03), (0.1, 7.0)])
    for seed in range(3):
        perm = torch.randperm(6, generator=torch.Generator().manual_seed(seed))
        o2 = merge_components(Mixture(means[:, perm], pi[:, perm], alive, None, 1.0), 0.1)
        g2 = sorted((round(float(o2.pi[0, j]), 12), round(float(o2.means[0, j, 0]), 12)) for j in range(6) if o2.alive[0, j])
        assert g2 == got


def test_prune_keeps_the_heaviest_and_renormalises():
    means = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]]], dtype=F64)
    out = merge_components(Mixture(means, torch.tensor([[0.96, 0.03, 0.01]], dtype=F64),
                                   torch.ones(1, 3, dtype=torch.bool), None, 1.0), 0.0, min_weight=0.05)
    assert out.alive.tolist() == [[True, False, False]] and out.pi.tolist() == [[1.0, 0.0, 0.0]]


def test_fine_to_coarse_merges_as_the_variance_grows():
    y = _blobs([[0, 0, 0], [0.3, 0, 0], [3, 0, 0]], 15, 0.03)
    batch = torch.zeros(45, dtype=torch.long)
    counts = []
    for var in (0.002, 0.2):  # sigma 0.045 keeps the 0.3-apart blobs apart; sigma 0.45 merges them
        mix = fit_mixture(y, batch, init_mixture(y, batch, 8, var), var)
        counts.append(int(mix.alive.sum()))
        assert torch.allclose(mix.log_resp.exp().sum(1), torch.ones(45, dtype=F64), atol=1e-12)
    assert counts == [3, 2]


def test_candidates_and_partition_do_not_depend_on_point_order():
    y = _blobs([[0, 0, 0], [1, 0, 0], [0, 2, 0], [3, 1, 1]], 12, 0.3, seed=2)
    batch = torch.zeros(48, dtype=torch.long)
    idx, _ = fps_candidates(y, batch, 6)
    mix = fit_mixture(y, batch, init_mixture(y, batch, 6, 0.05), 0.05)
    lab = assign(mix, batch).label
    for seed in range(3):
        perm = torch.randperm(48, generator=torch.Generator().manual_seed(seed))
        idx2, _ = fps_candidates(y[perm], batch, 6)
        assert torch.equal(perm[idx2], idx)  # the same points, picked in the same order
        mix2 = fit_mixture(y[perm], batch, init_mixture(y[perm], batch, 6, 0.05), 0.05)
        lab2 = assign(mix2, batch).label
        assert torch.equal(lab2[:, None] == lab2[None, :], lab[perm][:, None] == lab[perm][None, :])
        assert torch.allclose(mix2.means, mix.means, atol=1e-12, rtol=0)


def test_fps_small_clouds_and_ragged_batches():
    pos = torch.randn(9, 3, dtype=F64)
    batch = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 1])
    idx, valid = fps_candidates(pos, batch, 4)
    assert valid.tolist() == [[True, True, False, False], [True] * 4]
    assert set(idx[0, :2].tolist()) == {0, 1} and all(2 <= i < 9 for i in idx[1].tolist())
    assert len(set(idx[1].tolist())) == 4


def test_hard_assignment_ties_and_straight_through_gradient():
    lq = torch.log(torch.tensor([[0.5, 0.5], [0.2, 0.8]], dtype=F64)).requires_grad_()
    mix = Mixture(torch.zeros(1, 2, 3, dtype=F64), torch.full((1, 2), 0.5, dtype=F64),
                  torch.ones(1, 2, dtype=torch.bool), lq, 1.0)
    p = assign(mix, torch.zeros(2, dtype=torch.long))
    assert p.label.tolist() == [0, 1]  # a tie goes to the lowest slot
    assert p.weight.detach().tolist() == [1.0, 1.0]
    p.weight.sum().backward()  # d/d log q of q = q: the straight-through gradient of Q
    assert torch.allclose(lq.grad, torch.tensor([[0.5, 0.0], [0.0, 0.8]], dtype=F64))


def test_soft_assignment_pairs_are_sparse_and_normalised():
    y = _blobs([[0, 0, 0], [0.2, 0, 0], [5, 0, 0]], 10, 0.1)
    batch = torch.zeros(30, dtype=torch.long)
    mix = gmm_em(y, batch, init_mixture(y, batch, 3, 0.05), 5)
    p = assign(mix, batch, "soft", topk=2, min_pair_weight=1e-3)
    tot = torch.zeros(30, dtype=F64).index_add_(0, p.point, p.weight)
    assert torch.allclose(tot, torch.ones(30, dtype=F64), atol=1e-14)
    assert p.point.shape[0] <= 2 * 30 and (p.weight >= 1e-3 - 1e-15).all()
    assert bool((p.part[1:] >= p.part[:-1]).all())  # sorted by part
    assert p.point[p.part == p.label[20]].tolist() == list(range(20, 30))  # the far blob is alone, weight 1


def test_partition_from_labels_is_per_cloud_and_skips_unused_ids():
    p = partition_from_labels(torch.tensor([5, 5, 0, 5, 0]), torch.tensor([0, 0, 0, 1, 1]), 8)
    assert p.num_parts == 4 and p.part_batch.tolist() == [0, 0, 1, 1]
    assert p.label.tolist() == [1, 1, 0, 3, 2]


@pytest.mark.parametrize("k", [1, 4])
def test_em_single_component_is_the_mean(k):
    y = torch.randn(20, 3, dtype=F64)
    mix = gmm_em(y, None, init_mixture(y, None, k, 1e3), 50)
    assert torch.allclose(mix.means[0, 0], y.mean(0), atol=1e-6)


def test_fps_candidates_of_a_ragged_batch_equal_those_of_each_cloud_alone():
    """Clouds of 5 and 13 points, K = 4: the larger cloud's sampler runs longer; its first 4 picks are kept."""
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(5, 3, dtype=F64, generator=g), torch.randn(13, 3, dtype=F64, generator=g)
    idx, valid = fps_candidates(torch.cat([a, b]), torch.tensor([0] * 5 + [1] * 13), 4)
    ia, _ = fps_candidates(a, None, 4)
    ib, _ = fps_candidates(b, None, 4)
    assert valid.all() and torch.equal(idx[0], ia[0]) and torch.equal(idx[1], ib[0] + 5)
