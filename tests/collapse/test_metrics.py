"""nc_metrics: known answers, invariances and an independent slow reference (numpy loops, explicit pinv)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from e3nn import o3

from equinets.collapse import METRIC_KEYS, WEIGHT_KEYS, nc_metrics


def reference_metrics(H, y, W=None, b=None, global_mean="class"):
    """Papyan et al.'s formulas, written independently: per-sample loops, an explicit d x d pseudo-inverse."""
    H = np.asarray(H, dtype=np.float64)
    y = np.asarray(y)
    K = int(y.max()) + 1
    N, d = H.shape
    mus = np.stack([H[y == k].mean(axis=0) for k in range(K)])
    mu_G = mus.mean(axis=0) if global_mean == "class" else H.mean(axis=0)
    Sw = np.zeros((d, d))
    for i in range(N):
        r = H[i] - mus[y[i]]
        Sw += np.outer(r, r)
    Sw /= N
    Sb = np.zeros((d, d))
    for k in range(K):
        r = mus[k] - mu_G
        Sb += np.outer(r, r)
    Sb /= K
    out = {"nc1": np.trace(Sw @ np.linalg.pinv(Sb, hermitian=True)) / K, "nc1_quotient": np.trace(Sw) / np.trace(Sb)}
    V = [np.mean([np.sum((h - mus[k]) ** 2) for h in H[y == k]]) for k in range(K)]
    out["cdnv"] = np.mean([(V[i] + V[j]) / (2 * np.sum((mus[i] - mus[j]) ** 2))
                           for i, j in itertools.combinations(range(K), 2)])

    def geometry(R, suffix):
        norms = [math.sqrt(sum(v * v for v in r)) for r in R]
        res = {f"equinorm_{suffix}": np.std(norms, ddof=1) / np.mean(norms)}
        cos = [float(np.dot(R[i], R[j])) / (norms[i] * norms[j]) for i, j in itertools.combinations(range(K), 2)]
        res[f"equiangular_{suffix}"] = np.std(cos, ddof=1)
        res[f"max_angle_{suffix}"] = np.mean([abs(c + 1 / (K - 1)) for c in cos])
        G = np.array([[np.dot(a, c) for c in R] for a in R])
        E = (np.eye(K) - np.ones((K, K)) / K) / math.sqrt(K - 1)
        res[f"etf_distance_{suffix}"] = np.linalg.norm(G / np.linalg.norm(G) - E)
        return res

    Mc = mus - mu_G
    out.update(geometry(Mc, "means"))
    if W is not None:
        W = np.asarray(W, dtype=np.float64)
        out.update(geometry(W, "weights"))
        out["nc3"] = np.sum((W / np.linalg.norm(W) - Mc / np.linalg.norm(Mc)) ** 2)
        bb = np.zeros(K) if b is None else np.asarray(b, dtype=np.float64)
        wrong = 0
        for h in H:
            ncc = min(range(K), key=lambda k: np.sum((h - mus[k]) ** 2))
            wrong += int(np.argmax(W @ h + bb) != ncc)
        out["nc4"] = wrong / N
    return out


def unit_etf(K, d, gen):
    """(K, d) rows of a unit simplex ETF: sqrt(K/(K-1)) U (I - 11^T/K), U^T U = I."""
    U, _ = torch.linalg.qr(torch.randn(d, K, dtype=torch.float64, generator=gen))
    return (math.sqrt(K / (K - 1)) * U @ (torch.eye(K, dtype=torch.float64) - 1.0 / K)).T


def _data(K=6, d=9, gen_seed=0, imbalanced=True):
    g = torch.Generator().manual_seed(gen_seed)
    counts = [5 + 7 * k for k in range(K)] if imbalanced else [20] * K
    y = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    y = y[torch.randperm(len(y), generator=g)]
    mu = torch.randn(K, d, dtype=torch.float64, generator=g) * 2
    h = mu[y] + torch.randn(len(y), d, dtype=torch.float64, generator=g) * torch.rand(d, dtype=torch.float64, generator=g)
    W = mu + 0.5 * torch.randn(K, d, dtype=torch.float64, generator=g)
    b = torch.randn(K, dtype=torch.float64, generator=g)
    return h, y, W, b


@pytest.mark.parametrize("global_mean", ["class", "sample"])
@pytest.mark.parametrize("K,d", [(6, 9), (7, 3), (4, 4)])  # d > K, d < K - 1, d = K
def test_matches_independent_reference(global_mean, K, d):
    h, y, W, b = _data(K, d)
    got = nc_metrics(h, y, W, b, global_mean=global_mean)
    ref = reference_metrics(h.numpy(), y.numpy(), W.numpy(), b.numpy(), global_mean)
    assert set(got) == set(METRIC_KEYS) | set(WEIGHT_KEYS)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=1e-8, abs=1e-14), k


def test_exact_etf_features_give_zero_everywhere():
    g = torch.Generator().manual_seed(1)
    K, d, n = 10, 64, 50
    M = unit_etf(K, d, g)
    offset = 3 * torch.randn(d, dtype=torch.float64, generator=g)
    y = torch.arange(K).repeat_interleave(n)
    h = 2.5 * M[y] + offset
    W = 0.7 * M
    b = -W @ offset
    m = nc_metrics(h, y, W, b)
    assert set(m) == set(METRIC_KEYS) | set(WEIGHT_KEYS)
    assert max(abs(v) for v in m.values()) <= 1e-10
    # NC4 needs the bias: with b = 0 the global offset moves the decisions away from the nearest class means
    no_bias = nc_metrics(h, y, W)["nc4"]
    assert no_bias > 0.5 and no_bias == reference_metrics(h.numpy(), y.numpy(), W.numpy())["nc4"]


def test_isotropic_noise_nc1_closed_form():
    """E[NC1] = sigma^2 (K-1)^2/K (N-K)/N for isotropic noise on unit ETF means: Sigma_W -> sigma^2 (N-K)/N I and
    Sigma_B has K-1 eigenvalues 1/(K-1). The formula was checked on larger samples first: 6 seeds of 2e5 samples
    deviate by -0.09% ... +0.22% (mean +0.04%), so the issue's formula is right; here 5000 samples, within 2%."""
    g = torch.Generator().manual_seed(2)
    K, d, n, sigma = 10, 64, 500, 0.1
    M = unit_etf(K, d, g)
    y = torch.arange(K).repeat_interleave(n)
    h = M[y] + sigma * torch.randn(K * n, d, dtype=torch.float64, generator=g)
    N = K * n
    m = nc_metrics(h, y)
    assert m["nc1"] == pytest.approx(sigma**2 * (K - 1) ** 2 / K * (N - K) / N, rel=0.02)
    assert m["nc1_quotient"] == pytest.approx(sigma**2 * d * (N - K) / N / (1.0 / K * K), rel=0.02)  # Tr Sb = 1
    assert m["cdnv"] == pytest.approx(sigma**2 * d * (n - 1) / n * (K - 1) / (2 * K), rel=0.02)


def test_invariance_to_scaling_rotation_translation():
    h, y, W, b = _data(5, 3)
    torch.manual_seed(3)
    Q = o3.rand_matrix(dtype=torch.float64) * -1.0  # an improper rotation (O(3))
    t = torch.tensor([5.0, -2.0, 7.0], dtype=torch.float64)
    h2 = 7.0 * h @ Q.T + t
    W2 = 0.3 * W @ Q.T
    b2 = 2.1 * b - W2 @ t  # W2 h2 + b2 = 2.1 (W h + b): the same decisions
    m1, m2 = nc_metrics(h, y, W, b), nc_metrics(h2, y, W2, b2)
    for k in m1:
        assert m2[k] == pytest.approx(m1[k], rel=1e-9, abs=1e-12), k


def test_float32_input_is_used_in_float64():
    h, y, W, b = _data()
    m64 = nc_metrics(h, y, W, b)
    m32 = nc_metrics(h.float(), y, W.float(), b.float())
    ref = nc_metrics(h.float().double(), y, W.float().double(), b.float().double())
    assert m32 == ref and m64["nc1"] == pytest.approx(m32["nc1"], rel=1e-5)


def test_numpy_input_and_num_classes():
    h, y, W, b = _data()
    assert nc_metrics(h.numpy(), y.numpy(), W.numpy(), b.numpy()) == nc_metrics(h, y, W, b)
    assert nc_metrics(h, y, num_classes=6) == nc_metrics(h, y)


def test_absent_classes_error_or_drop():
    h, y, W, b = _data(5, 4)
    keep = y != 2
    with pytest.raises(ValueError, match="class 2"):
        nc_metrics(h[keep], y[keep], num_classes=5)
    dropped = nc_metrics(h[keep], y[keep], W, b, num_classes=5, absent="drop")
    relabel = torch.tensor([0, 1, -1, 2, 3])
    idx = torch.tensor([0, 1, 3, 4])
    direct = nc_metrics(h[keep], relabel[y[keep]], W[idx], b[idx])
    for k, v in direct.items():
        assert dropped[k] == pytest.approx(v, rel=1e-12, abs=1e-15), k


def test_degenerate_cases_documented_values():
    h = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    m = nc_metrics(h, torch.tensor([0, 0, 1]))  # zero within-class spread, one single-sample class
    assert m["nc1"] == 0 and m["cdnv"] == 0 and m["equiangular_means"] == 0.0  # K = 2: one pair
    same = nc_metrics(torch.tensor([[1.0], [2.0], [1.0], [2.0]]), torch.tensor([0, 0, 1, 1]))  # equal means
    assert same["cdnv"] == math.inf and same["nc1_quotient"] == math.inf and same["nc1"] == math.inf
    assert all(math.isnan(same[k]) for k in ("equinorm_means", "equiangular_means", "etf_distance_means"))


def test_rank_deficient_d_smaller_than_k_minus_1():
    """d = 2 < K - 1 = 4: Sigma_B has rank 2 and the SVD route equals the explicit pinv."""
    h, y, W, b = _data(5, 2)
    ref = reference_metrics(h.numpy(), y.numpy())
    assert nc_metrics(h, y)["nc1"] == pytest.approx(ref["nc1"], rel=1e-10)


def _pinv_nc1(H, y, K):
    """NC1 with an explicit d x d pinv of Sigma_B in numpy (rcond 1e-10 on the eigenvalues), per-class loops."""
    H = np.asarray(H, dtype=np.float64)
    mus = np.stack([H[y == k].mean(axis=0) for k in range(K)])
    Mc = mus - mus.mean(axis=0)
    D = H - mus[y]
    Sw, Sb = D.T @ D / len(H), Mc.T @ Mc / K
    return float(np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-10, hermitian=True))) / K


@pytest.mark.parametrize("offset", [0.0, 100.0, 1e6])
def test_nc1_with_d_at_least_k_and_a_large_offset(offset):
    """d = 64 >= K = 10, unit ETF means, noise 0.1, a common offset per coordinate: the K-th singular value of the
    centred means is round-off (~1e-14 at offset 100) and must not be inverted (it gave NC1 = 1e25); the rank cap
    min(K-1, d) keeps NC1 at the explicit-pinv answer, for nc_metrics and for the streaming tracker."""
    from equinets.collapse import CollapseTracker

    g = torch.Generator().manual_seed(7)
    K, d, n = 10, 64, 50
    y = torch.arange(K).repeat_interleave(n)
    h = unit_etf(K, d, g)[y] + 0.1 * torch.randn(K * n, d, dtype=torch.float64, generator=g) + offset
    ref = _pinv_nc1(h.numpy(), y.numpy(), K)
    assert 0.05 < ref < 0.1
    assert nc_metrics(h, y)["nc1"] == pytest.approx(ref, rel=1e-8)
    tr = CollapseTracker(K, d)
    perm = torch.randperm(K * n, generator=g)
    for i in range(0, K * n, 128):
        tr.update(h[perm[i:i + 128]], y[perm[i:i + 128]])
    assert tr.compute()["nc1"] == pytest.approx(ref, rel=1e-8)


def test_invariance_with_d_larger_than_k():
    """7 Q h + t with t = 50 per coordinate at d = 64 > K = 10 (the K-th singular value of the centred means is
    round-off there): every metric unchanged, NC1 equal to the explicit pinv before and after."""
    g = torch.Generator().manual_seed(8)
    K, d, n = 10, 64, 30
    y = torch.arange(K).repeat_interleave(n)
    M = unit_etf(K, d, g)
    h = M[y] + 0.1 * torch.randn(K * n, d, dtype=torch.float64, generator=g)
    W, b = M + 0.05 * torch.randn(K, d, dtype=torch.float64, generator=g), torch.randn(K, dtype=torch.float64, generator=g)
    Q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=g))
    t = torch.full((d,), 50.0, dtype=torch.float64)
    h2, W2 = 7.0 * h @ Q.T + t, 0.3 * W @ Q.T
    b2 = 2.1 * b - W2 @ t
    m1, m2 = nc_metrics(h, y, W, b), nc_metrics(h2, y, W2, b2)
    assert m1["nc1"] == pytest.approx(_pinv_nc1(h.numpy(), y.numpy(), K), rel=1e-8)
    assert m2["nc1"] == pytest.approx(_pinv_nc1(h2.numpy(), y.numpy(), K), rel=1e-8)
    for k in m1:
        assert m2[k] == pytest.approx(m1[k], rel=1e-9, abs=1e-12), k


def test_drop_of_a_stray_huge_label_needs_no_k_by_d_state():
    """absent='drop' relabels to the present classes: a label 5,000,000 is one more class, not 5M rows of means."""
    h, y, W, b = _data(4, 3)
    y2 = torch.where(y == 3, torch.tensor(5_000_000), y)
    assert nc_metrics(h, y2, absent="drop") == nc_metrics(h, y)
