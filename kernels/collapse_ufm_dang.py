"""Minority collapse in deep linear UFMs (Dang et al., ICML 2023): closed form against the solver, M = 1, 2, 3.

Imbalanced, bias-free MSE unconstrained-feature model with M linear layers
(:func:`equinets.collapse.ufm.solve_ufm`): three majority classes [200, 100, 50] and a minority class of
n_K = 1..40 samples, lambda_W = lambda_H = 5e-3, d = 5. For every n_K the script draws the minority class's
classifier energy (P P^T)_KK = s_K^{2M} of the global minimiser (:func:`~equinets.collapse.ufm.dang_closed_form`),
with the minority-collapse threshold n* (:func:`~equinets.collapse.ufm.minority_collapse_threshold`): for M = 1
the energy goes to 0 continuously at n* = N^2 lambda_W lambda_H, for M >= 2 it jumps from x = (M-1)^(1/M) to 0.
The curves are the closed form on a fine real-valued grid of n_K (step 0.05; rows ``closed_form_fine``), broken
at the jump so the M >= 2 discontinuity shows as one.
Solver points (L-BFGS, float64) overlay it: M = 1 from random starts, M = 2 from starts near the prediction (both
match), and M = 2 from small random starts, which fall into the zero local minimum near the threshold (the research
note's warning: compare the objectives, which the CSV records).

Writes ``kernels/results/collapse_ufm_dang.csv`` (closed form per M and n_K; solver rows with their objective
and the closed form's) and ``collapse_ufm_dang.png``. About a minute on one core::

    OMP_NUM_THREADS=1 python kernels/collapse_ufm_dang.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from equinets._atomic import atomic_open, write_csv
from equinets.collapse.ufm import (
    _psi_argmin,
    dang_closed_form,
    dang_point,
    labels_from_sizes,
    minority_collapse_threshold,
    solve_ufm,
    ufm_objective,
)

RESULTS = Path(__file__).resolve().parent / "results"
MAJORITY = [200, 100, 50]


def minority_energy(n_K: float, lam: float, M: int) -> float:
    """(P P^T)_KK of the closed form at a real-valued minority size n_K (the formulas of
    :func:`~equinets.collapse.ufm.dang_closed_form` with N = sum(MAJORITY) + n_K; a weighted UFM between integers)."""
    N = sum(MAJORITY) + n_K
    b = M * N * lam * (N * lam) ** (1.0 / M)
    return N * lam * _psi_argmin(n_K, b, M) ** M


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lam", type=float, default=5e-3)
    ap.add_argument("--dim", type=int, default=5)
    ap.add_argument("--solver-sizes", default="2,4,6,8,10,12,16,24")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    lam, d = args.lam, args.dim
    out = Path(args.out)
    rows = []
    for M in (1, 2, 3):
        for nK in range(1, 41):
            sizes = MAJORITY + [nK]
            s = dang_closed_form(sizes, lambda_W=lam, lambda_H=lam, num_layers=M)
            rows.append({"kind": "closed_form", "M": M, "n_K": nK, "pp_KK": float(s.pp_diag[-1]),
                         "h_sq_K": float(s.feature_sq_norm[-1]), "alive": bool(s.alive[-1]),
                         "threshold": minority_collapse_threshold(sum(sizes), lam, lam, M)})
    g = torch.Generator().manual_seed(0)
    for nK in [int(v) for v in args.solver_sizes.split(",")]:
        sizes = MAJORITY + [nK]
        labels = labels_from_sizes(sizes)
        for M, start in ((1, "random"), (2, "near_prediction"), (2, "random")):
            s = dang_closed_form(sizes, lambda_W=lam, lambda_H=lam, num_layers=M)
            Ws, H = dang_point(sizes, d, lambda_W=lam, lambda_H=lam, num_layers=M)
            exact = float(ufm_objective(Ws, H, labels, lambda_W=lam, lambda_H=lam))
            if start == "near_prediction":
                init = ([W + 1e-2 * torch.randn(W.shape, generator=g, dtype=W.dtype) for W in Ws],
                        H + 1e-2 * torch.randn(H.shape, generator=g, dtype=H.dtype))
                r = solve_ufm(sizes, d, num_layers=M, lambda_W=lam, lambda_H=lam, init=init)
            else:
                r = solve_ufm(sizes, d, num_layers=M, lambda_W=lam, lambda_H=lam, seed=nK, init_scale=0.1 if M > 1 else 0.5)
            P = r.product
            rows.append({"kind": f"solver_{start}", "M": M, "n_K": nK, "pp_KK": float((P @ P.T)[-1, -1]),
                         "closed_form_pp_KK": float(s.pp_diag[-1]),
                         "max_abs_err_pp": float((torch.diag(P @ P.T) - s.pp_diag).abs().max()),
                         "objective": r.objective, "closed_form_objective": exact, "grad_norm": r.grad_norm})
            print(rows[-1], flush=True)
    fine = torch.linspace(1.0, 40.0, 781, dtype=torch.float64).tolist()  # step 0.05: the jump is visible
    for M in (1, 2, 3):
        for nK in fine:
            rows.append({"kind": "closed_form_fine", "M": M, "n_K": round(nK, 4), "pp_KK": minority_energy(nK, lam, M)})
    write_csv(rows, out / "collapse_ufm_dang.csv")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}
    for M in (1, 2, 3):
        cf = [r for r in rows if r["kind"] == "closed_form_fine" and r["M"] == M]
        xs, ys = [cf[0]["n_K"]], [cf[0]["pp_KK"]]
        for a, c in zip(cf, cf[1:]):  # break the line at a jump (M >= 2): a discontinuity, not a steep segment
            if M > 1 and (a["pp_KK"] == 0.0) != (c["pp_KK"] == 0.0):
                xs.append(float("nan"))
                ys.append(float("nan"))
                ax.plot([c["n_K"]], [c["pp_KK"]], "o", color=colors[M], ms=4)  # the value right of the jump
                ax.plot([a["n_K"]], [a["pp_KK"]], "o", color=colors[M], ms=4, mfc="white")
            xs.append(c["n_K"])
            ys.append(c["pp_KK"])
        ax.plot(xs, ys, "-", color=colors[M], label=f"closed form, M={M} (real n_K, step 0.05)")
        # n* depends on N = 350 + n_K: the self-consistent threshold is where the fine closed form leaves 0
        thr = next(c["n_K"] for a, c in zip(cf, cf[1:]) if a["pp_KK"] == 0.0 < c["pp_KK"])
        ax.axvline(thr, color=colors[M], ls=":", lw=1)
    marks = {("solver_random", 1): ("o", "solver M=1, random start"),
             ("solver_near_prediction", 2): ("s", "solver M=2, start near prediction"),
             ("solver_random", 2): ("x", "solver M=2, random start (zero local min.)")}
    for (kind, M), (m, label) in marks.items():
        pts = [r for r in rows if r["kind"] == kind and r["M"] == M]
        ax.plot([r["n_K"] for r in pts], [r["pp_KK"] for r in pts], m, color=colors[M], mfc="none", ms=7,
                label=label)
    ax.set_xlabel("minority class size n_K (others 200, 100, 50)")
    ax.set_ylabel("(P P^T)_KK of the minority class")
    ax.set_title(f"Dang et al.: minority collapse (lambda_W = lambda_H = {lam:g}); dotted: thresholds n*\n"
                 "M >= 2: a jump (filled: right limit, open: 0 just below n*)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_open(out / "collapse_ufm_dang.png", "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    return rows


if __name__ == "__main__":
    main()
