"""Mixed-example geometry against the mixup UFM and closed forms; ECE and the reliability diagram."""

import math

import numpy as np
import pytest
import torch

from equinets.collapse.calibration import calibration_bins, expected_calibration_error, reliability_diagram
from equinets.collapse.heads import simplex_etf
from equinets.collapse.mixup import mixup_geometry
from equinets.collapse.ufm import mixup_ufm_features

F64 = torch.float64


def test_geometry_of_mixup_ufm_optimum_recovers_log_odds_and_alignment():
    K = 6
    W = simplex_etf(K, 8)
    g = torch.Generator().manual_seed(0)
    S = 120
    ya = torch.randint(0, K, (S,), generator=g)
    yb = torch.randint(0, K, (S,), generator=g)
    yb[:20] = ya[:20]  # some same-class mixtures
    lam = 0.05 + 0.9 * torch.rand(S, generator=g, dtype=F64)
    h = mixup_ufm_features(W, torch.stack([ya, yb], 1), lam, lambda_H=1e-4)
    rows = mixup_geometry(h, ya, yb, lam, weight=W, num_bins=5)
    assert sum(r["count"] for r in rows) == S
    diff = [r for r in rows if r["c"] != r["c2"]]
    same = [r for r in rows if r["c"] == r["c2"]]
    assert diff and same
    for r in diff:
        assert abs(r["gap_minus_log_odds"]) < 1e-2  # Fisher et al.: z_c - z_c' -> log(lambda / (1 - lambda))
        assert r["c"] < r["c2"] and r["lambda_lo"] <= r["lambda_mean"] < r["lambda_hi"]
        # the boundary distance is the gap divided by ||w_c - w_c'|| (ETF rows: sqrt(2K/(K-1)))
        assert r["boundary_distance"] == pytest.approx(r["gap_mean"] / math.sqrt(2 * K / (K - 1)), rel=1e-12)
    for r in same:
        assert r["cos_c"] == pytest.approx(1.0, abs=1e-12) and math.isnan(r["gap_mean"])


def test_geometry_by_hand_and_orientation():
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]], dtype=F64)
    b = torch.tensor([0.5, -0.5, 0.0], dtype=F64)
    h = torch.tensor([[2.0, 1.0]], dtype=F64)
    (r,) = mixup_geometry(h, torch.tensor([1]), torch.tensor([0]), 0.3, weight=W, bias=b, num_bins=10)
    # read as c = 0, c' = 1 with lambda_c = 0.7
    assert (r["c"], r["c2"], r["lambda_bin"]) == (0, 1, 7) and r["lambda_mean"] == pytest.approx(0.7)
    z = h @ W.T + b  # [2.5, 1.5, -3]
    assert r["gap_mean"] == pytest.approx(1.0, abs=1e-15)
    assert r["boundary_distance"] == pytest.approx((2.0 - 2.0 + 1.0) / math.sqrt(5), abs=1e-15)
    assert r["cos_c"] == pytest.approx(2 / math.sqrt(5), abs=1e-15)
    assert r["cos_c2"] == pytest.approx(2 / (math.sqrt(5) * 2), abs=1e-15)
    assert r["gap_minus_log_odds"] == pytest.approx(1.0 - math.log(0.7 / 0.3), abs=1e-15)
    # logits given explicitly take precedence over W h + b
    (r2,) = mixup_geometry(h, torch.tensor([0]), torch.tensor([1]), 0.7, weight=W, bias=b, logits=2 * z)
    assert r2["gap_mean"] == pytest.approx(2.0) and r2["boundary_distance"] == pytest.approx(r["boundary_distance"])


def _calibrated(n, K, rng, over=0.0):
    conf = rng.uniform(1.0 / K, 1.0, n)
    pred = rng.integers(0, K, n)
    correct = rng.uniform(size=n) < np.clip(conf - over, 0, 1)
    other = (pred + rng.integers(1, K, n)) % K
    labels = np.where(correct, pred, other)
    p = np.repeat(((1 - conf) / (K - 1))[:, None], K, 1)
    p[np.arange(n), pred] = conf
    return torch.tensor(p), torch.tensor(labels)


def test_ece_of_perfectly_calibrated_predictions_is_within_the_sampling_bound():
    rng = np.random.default_rng(0)
    p, y = _calibrated(60000, 5, rng)
    bins = calibration_bins(p, y)
    n = bins.count.sum()
    bound = float((4 * torch.sqrt(0.25 * bins.count) / n).sum())  # 4 sigma of each bin's accuracy
    assert bins.ece < bound < 0.03
    # the same predictions made overconfident by 0.1 (accuracy = confidence - 0.1) are measured as such
    p2, y2 = _calibrated(60000, 5, rng, over=0.1)
    assert expected_calibration_error(p2, y2) == pytest.approx(0.1, abs=bound + 0.01)


def test_ece_hand_computed_and_against_a_loop_reference():
    p = torch.tensor([[0.875, 0.125], [0.625, 0.375], [0.25, 0.75], [0.5625, 0.4375]], dtype=F64)
    y = torch.tensor([0, 1, 1, 0])
    assert expected_calibration_error(p, y, num_bins=4) == 3 / 64  # (|2 - 1.9375| + |1 - 0.875|) / 4, exactly
    b = calibration_bins(p, y, num_bins=4)
    assert b.count.tolist() == [0, 0, 3, 1] and b.accuracy[2] == pytest.approx(2 / 3)
    # an independent loop over explicit (lo, hi] edges, on random logits
    g = torch.Generator().manual_seed(3)
    logits = 3 * torch.randn(500, 7, generator=g, dtype=F64)
    labels = torch.randint(0, 7, (500,), generator=g)
    probs = torch.softmax(logits, 1).numpy()
    conf, pred = probs.max(1), probs.argmax(1)
    ece = 0.0
    for j in range(15):
        lo, hi = j / 15, (j + 1) / 15
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs((pred[m] == labels.numpy()[m]).mean() - conf[m].mean())
    assert expected_calibration_error(logits, labels, from_logits=True) == pytest.approx(ece, abs=1e-13)


def test_reliability_diagram_writes_the_file_atomically(tmp_path):
    rng = np.random.default_rng(1)
    p, y = _calibrated(2000, 4, rng)
    out = tmp_path / "fig" / "rel.png"
    bins = reliability_diagram(p, y, out, title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bins.ece == pytest.approx(expected_calibration_error(p, y))
    assert sorted(x.name for x in out.parent.iterdir()) == ["rel.png"]  # no temporary file left
