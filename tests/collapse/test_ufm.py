"""UFM theory: solvers against Dang et al.'s and Zhu et al.'s closed forms, the mixup UFM, Tirer et al.'s central path."""

import math

import pytest
import torch

from equinets.collapse import nc_metrics
from equinets.collapse.heads import simplex_etf
from equinets.collapse.ufm import (
    ce_balanced_closed_form,
    central_path,
    dang_closed_form,
    dang_point,
    labels_from_sizes,
    minority_collapse_threshold,
    mixup_ufm_features,
    solve_ufm,
    ufm_objective,
)

F64 = torch.float64
SIZES = [200, 100, 50, 10]


def _check_against_dang(r, sol, atol=1e-4):
    P = r.product
    K = P.shape[0]
    off = ~torch.eye(K, dtype=torch.bool)
    PPt = P @ P.T
    assert torch.allclose(torch.diag(PPt), sol.pp_diag, atol=atol, rtol=0)
    assert PPt[off].abs().max() < atol  # rows of P orthogonal
    mu = r.class_means()
    G = mu @ mu.T
    assert torch.allclose(torch.diag(G), sol.feature_sq_norm, atol=atol, rtol=0)
    assert G[off].abs().max() < atol  # class means orthogonal
    logits = mu @ P.T
    assert torch.allclose(torch.diag(logits), sol.logit, atol=atol, rtol=0)
    assert logits[off].abs().max() < atol
    # features collapse onto their class means
    assert (r.features - mu[r.labels]).abs().max() < atol


def test_dang_m1_explicit_formula():
    lw, lh = 5e-3, 2e-3
    sol = dang_closed_form(SIZES, lambda_W=lw, lambda_H=lh)
    N = sum(SIZES)
    n = torch.tensor(SIZES, dtype=F64)
    s2 = torch.clamp(torch.sqrt(n * lh / lw) - N * lh, min=0)  # s_k^2 = sqrt(n_k lh / lw) - N lh
    assert torch.allclose(sol.pp_diag, s2, atol=1e-12, rtol=1e-12)
    assert torch.allclose(sol.logit, torch.clamp(1 - N * torch.sqrt(lw * lh / n), min=0), atol=1e-12)
    assert sol.threshold == pytest.approx(N * N * lw * lh, rel=1e-15)


@pytest.mark.parametrize("M", [1, 2, 3])
def test_dang_x_is_the_global_minimiser_of_psi(M):
    # an independent brute-force minimisation of psi_k(x) = n_k / (x^M + 1) + b x on a fine grid
    sol = dang_closed_form(SIZES, lambda_W=5e-3, lambda_H=5e-3, num_layers=M)
    x = torch.linspace(0, 20, 400001, dtype=F64)
    for nk, xk in zip(SIZES, sol.x.tolist()):
        psi = nk / (x**M + 1) + sol.b * x
        grid = float(x[psi.argmin()])
        assert xk == pytest.approx(grid, abs=1e-3)
        assert nk / (xk**M + 1) + sol.b * xk <= float(psi.min()) + 1e-12


@pytest.mark.parametrize("lam", [5e-3, 1e-2])
@pytest.mark.parametrize("seed", [0, 1])
def test_solver_matches_dang_m1_from_random_starts(lam, seed):
    sol = dang_closed_form(SIZES, lambda_W=lam, lambda_H=lam)
    assert sol.alive.tolist() == [True, True, True, lam == 5e-3]  # 10 <= 360^2 * 1e-4 = 12.96: minority collapse
    r = solve_ufm(SIZES, 6, lambda_W=lam, lambda_H=lam, seed=seed, init_scale=0.5)
    _check_against_dang(r, sol)


def test_solver_matches_dang_m2_near_prediction_and_random_start_falls_into_zero():
    lam = 5e-3
    sol = dang_closed_form(SIZES, lambda_W=lam, lambda_H=lam, num_layers=2)
    assert sol.threshold < SIZES[-1] and bool(sol.alive.all())
    Ws, H = dang_point(SIZES, 5, lambda_W=lam, lambda_H=lam, num_layers=2)
    exact = float(ufm_objective(Ws, H, labels_from_sizes(SIZES), lambda_W=lam, lambda_H=lam))
    g = torch.Generator().manual_seed(0)
    noisy = ([W + 1e-2 * torch.randn(W.shape, generator=g, dtype=F64) for W in Ws],
             H + 1e-2 * torch.randn(H.shape, generator=g, dtype=F64))
    near = solve_ufm(SIZES, 5, num_layers=2, lambda_W=lam, lambda_H=lam, init=noisy)
    _check_against_dang(near, sol)
    assert near.objective == pytest.approx(exact, abs=1e-10)
    # the research note's warning: from a small random start the minority class dies at a local minimum
    rand = solve_ufm(SIZES, 5, num_layers=2, lambda_W=lam, lambda_H=lam, seed=0, init_scale=0.1, max_iter=600)
    P = rand.product
    assert float((P @ P.T)[3, 3]) < 1e-3 < float(sol.pp_diag[3])
    assert rand.objective > exact + 1e-4


@pytest.mark.parametrize("M", [2, 3])
def test_minority_collapse_jump_at_threshold_for_deep_models(M):
    lam = 5e-3
    # n_K just above and just below n*(N): alive with x >= (M-1)^(1/M) (the jump), or exactly collapsed
    for nK in range(2, 40):
        sizes = SIZES[:3] + [nK]
        sol = dang_closed_form(sizes, lambda_W=lam, lambda_H=lam, num_layers=M)
        thr = minority_collapse_threshold(sum(sizes), lam, lam, M)
        assert bool(sol.alive[3]) == (nK > thr), nK
        if sol.alive[3]:
            assert float(sol.x[3]) >= (M - 1) ** (1 / M) - 1e-12
        else:
            assert float(sol.pp_diag[3]) == 0.0 and float(sol.feature_sq_norm[3]) == 0.0
    assert any(dang_closed_form(SIZES[:3] + [k], lambda_W=lam, lambda_H=lam, num_layers=M).alive[3] for k in range(2, 40))


def test_solver_ce_balanced_matches_zhu_closed_form_simplex_etf():
    lam = 1e-3
    sol = ce_balanced_closed_form(4, 10, lambda_W=lam, lambda_H=lam)
    r = solve_ufm([10] * 4, 6, loss="ce", lambda_W=lam, lambda_H=lam, bias=True, seed=2)
    assert r.objective == pytest.approx(sol.objective, abs=1e-10)
    W, mu = r.weights[0], r.class_means()
    assert torch.allclose(W.norm(dim=1), torch.full((4,), sol.weight_norm, dtype=F64), atol=1e-6)
    assert torch.allclose(mu.norm(dim=1), torch.full((4,), sol.feature_norm, dtype=F64), atol=1e-6)
    assert (r.bias - r.bias.mean()).abs().max() < 1e-5  # CE is blind to a constant shift of the bias
    m = nc_metrics(r.features, r.labels, W, r.bias)
    for key in ("nc1", "etf_distance_means", "etf_distance_weights", "nc3", "nc4"):
        assert m[key] < 1e-6, key


def test_ce_closed_form_collapses_to_zero_with_strong_decay():
    sol = ce_balanced_closed_form(4, 10, lambda_W=0.2, lambda_H=0.2)  # sqrt(K N lw lh) = 2.5 >= 1
    assert sol.rho == 0.0 and sol.objective == pytest.approx(math.log(4), abs=1e-15)


def test_solver_mse_with_bias_balanced_gives_simplex_etf_means():
    r = solve_ufm([5] * 3, 4, lambda_W=1e-3, lambda_H=1e-3, bias=True, seed=1)
    m = nc_metrics(r.features, r.labels, r.weights[0], r.bias)
    assert m["nc1"] < 1e-8 and m["etf_distance_means"] < 1e-6 and m["etf_distance_weights"] < 1e-6


@pytest.mark.parametrize("d", [9, 16])
def test_mixup_ufm_logit_gap_tends_to_log_odds(d):
    K = 10
    W = simplex_etf(K, d)
    lams = torch.tensor([0.55, 0.7, 0.9, 0.96], dtype=F64)  # the documented range: lambda <= 0.965 at lambda_H = 1e-4
    pairs = torch.tensor([[2, 7]] * 4)
    h = mixup_ufm_features(W, pairs, lams, lambda_H=1e-4)
    z = h @ W.T
    gap = z[:, 2] - z[:, 7]
    assert (gap - torch.log(lams / (1 - lams))).abs().max() < 1e-2
    # the optimal features lie in span{w_c, w_c'}
    B = W[[2, 7]].T
    coef = torch.linalg.lstsq(B, h.T).solution
    assert (B @ coef - h.T).abs().max() < 1e-10
    # stationarity W^T (softmax(W h) - y) + lambda_H h = 0
    Y = torch.zeros(4, K, dtype=F64)
    Y[:, 2], Y[:, 7] = lams, 1 - lams
    assert ((torch.softmax(z, 1) - Y) @ W + 1e-4 * h).abs().max() < 1e-10
    # stronger feature decay moves the posterior away from lambda (0.911 vs 0.9 at lambda_H = 1e-2)
    z2 = mixup_ufm_features(W, pairs[2:3], lams[2:3], lambda_H=1e-2) @ W.T
    assert float(torch.sigmoid(z2[0, 2] - z2[0, 7])) == pytest.approx(0.911, abs=2e-3)


def test_mixup_ufm_logit_gap_error_grows_beyond_the_documented_range():
    """The docstring's figures at K = 10, d = 9, lambda_H = 1e-4: the gap error passes 1e-2 between lambda = 0.965 and
    0.97 and grows monotonically (0.027 at 0.99, 0.044 at 0.995); symmetric under lambda -> 1 - lambda."""
    W = simplex_etf(10, 9)
    lams = torch.tensor([0.9, 0.965, 0.97, 0.99, 0.995, 0.01], dtype=F64)
    h = mixup_ufm_features(W, torch.tensor([[0, 1]] * 6), lams, lambda_H=1e-4)
    z = h @ W.T
    err = (z[:, 0] - z[:, 1] - torch.log(lams / (1 - lams))).abs()
    assert bool((err[1:5] > err[:4]).all())
    assert err[1] < 1e-2 < err[2]
    assert float(err[3]) == pytest.approx(0.0271, abs=5e-4) and float(err[4]) == pytest.approx(0.0443, abs=5e-4)
    assert float(err[5]) == pytest.approx(float(err[3]), rel=1e-10)  # lambda = 0.01 mirrors 0.99
    Y = torch.zeros(6, 10, dtype=F64)
    Y[:, 0], Y[:, 1] = lams, 1 - lams
    grad = (torch.softmax(z, 1) - Y) @ W + 1e-4 * h  # stationarity of the returned point, every sample
    assert float(grad.norm(dim=1).max()) < 1e-12


def test_mixup_ufm_same_class_features_align_with_w_c_for_every_lambda():
    W = simplex_etf(5, 8)
    lams = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    h = mixup_ufm_features(W, torch.tensor([[3, 3]] * 3), lams, lambda_H=1e-3)
    cos = (h @ W[3]) / h.norm(dim=1)
    assert torch.allclose(cos, torch.ones(3, dtype=F64), atol=1e-12)
    assert torch.allclose(h, h[:1].expand(3, -1), atol=1e-12)


def test_central_path_ratio_strictly_decreases_and_velocity_is_the_gradient():
    K, n, d, lw, lh = 4, 20, 8, 0.1, 0.1
    g = torch.Generator().manual_seed(0)
    y = torch.arange(K).repeat_interleave(n)
    H0 = torch.randn(K, d, generator=g, dtype=F64)[y] + torch.randn(K * n, d, generator=g, dtype=F64)
    path = central_path(H0, y, lambda_W=lw, lambda_H=lh, t_end=20.0, num_steps=2000, record_every=20)
    r = path.ratio
    assert bool((r[1:] < r[:-1]).all()) and float(r[-1]) < 0.5 * float(r[0])
    decayed = torch.exp(2 * lh * path.times) * path.trace_within  # Thm 3.1: non-increasing
    assert bool((decayed[1:] <= decayed[:-1] * (1 + 1e-12)).all())
    assert torch.allclose(path.trace_within / path.trace_between, r, rtol=1e-12)
    # the flow is -N grad_H f(W*(H), H) (Tirer's Eq. 2): compare with autograd through W*(H)
    H = H0.clone().requires_grad_(True)
    Y = torch.nn.functional.one_hot(y, K).to(F64)
    Wst = torch.linalg.solve(H.T @ H + n * lw * torch.eye(d, dtype=F64), H.T @ Y).T
    N = K * n
    f = ((H @ Wst.T - Y).pow(2).sum() / (2 * N) + lw / (2 * K) * Wst.pow(2).sum() + lh / (2 * N) * H.pow(2).sum())
    (grad,) = torch.autograd.grad(f, H)
    step = central_path(H0, y, lambda_W=lw, lambda_H=lh, t_end=1e-6, num_steps=1).features
    assert torch.allclose((step - H0) / 1e-6, -N * grad, atol=1e-5, rtol=1e-5)


def test_solver_ce_imbalanced_minority_classifier_shrinks():
    # Fang et al. (PNAS 2021) minority collapse, onset: the minority row of W is the shortest, the two equal
    # majority classes stay symmetric, and the solution is a stationary point (gradient at the float64 floor)
    r = solve_ufm([40, 40, 5], 4, loss="ce", lambda_W=5e-3, lambda_H=5e-3, seed=0, init_scale=0.5)
    norms = r.weights[0].norm(dim=1)
    assert float(norms[2]) < 0.8 * float(norms[0]) and abs(float(norms[0] - norms[1])) < 1e-6
    assert r.grad_norm < 1e-7


def test_theory_scripts_write_their_tables_and_figures(tmp_path, kernel_script):
    rows = kernel_script("collapse_ufm_dang").main(["--solver-sizes", "10", "--out", str(tmp_path)])
    cf2 = {r["n_K"]: r for r in rows if r["kind"] == "closed_form" and r["M"] == 2}
    assert cf2[9]["pp_KK"] == 0.0 and cf2[10]["pp_KK"] > 1.5  # the M = 2 jump at n* = 9.66
    near = next(r for r in rows if r["kind"] == "solver_near_prediction")
    assert near["max_abs_err_pp"] < 1e-4 and near["objective"] == pytest.approx(near["closed_form_objective"], abs=1e-9)
    rows = kernel_script("collapse_ufm_mixup").main(["--out", str(tmp_path)])
    assert max(abs(r["gap_minus_log_odds"]) for r in rows if r["lambda_H"] == 1e-4 and r["lambda"] <= 0.9) < 1e-2
    rows = kernel_script("collapse_central_path").main(["--t-end", "3", "--steps", "60", "--out", str(tmp_path)])
    assert all(r["strictly_decreasing"] for r in rows)
    for stem in ("collapse_ufm_dang", "collapse_ufm_mixup", "collapse_central_path"):
        assert (tmp_path / f"{stem}.csv").stat().st_size > 0 and (tmp_path / f"{stem}.png").stat().st_size > 0
