"""Tirer, Huang & Niles-Weed's central path (ICML 2023, Thm. 3.1): Tr(Sigma_W)/Tr(Sigma_B) strictly decreases.

Features H_0 of K = 4 classes x n = 20 samples in d = 8 (Gaussian class centres plus unit noise, seed 0) flow
along dH/dt = -N grad_H f(W*(H), H) (:func:`equinets.collapse.ufm.central_path`, RK4 in float64) for
lambda_W = 0.1 and lambda_H in {0, 0.1, 0.5}. The figure shows the quotient NC1 (``nc1_quotient`` of
:func:`equinets.collapse.nc_metrics`), Papyan's NC1 and e^{2 lambda_H t} Tr(Sigma_W) (non-increasing by the
theorem); the CSV records every point and whether the quotient decreased strictly at every step.

Writes ``kernels/results/collapse_central_path.csv`` and ``collapse_central_path.png``; seconds on one core::

    OMP_NUM_THREADS=1 python kernels/collapse_central_path.py
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from equinets._atomic import atomic_open, write_csv
from equinets.collapse.ufm import central_path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--t-end", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    K, n, d, lw = 4, 20, 8, 0.1
    g = torch.Generator().manual_seed(0)
    y = torch.arange(K).repeat_interleave(n)
    H0 = torch.randn(K, d, generator=g, dtype=torch.float64)[y] + torch.randn(K * n, d, generator=g, dtype=torch.float64)
    rows, paths = [], {}
    for lh in (0.0, 0.1, 0.5):
        p = central_path(H0, y, lambda_W=lw, lambda_H=lh, t_end=args.t_end, num_steps=args.steps, record_every=10)
        paths[lh] = p
        strict = bool((p.ratio[1:] < p.ratio[:-1]).all())
        print(f"lambda_H={lh}: ratio {float(p.ratio[0]):.4f} -> {float(p.ratio[-1]):.3e}, strictly decreasing: {strict}")
        for i in range(len(p.times)):
            t = float(p.times[i])
            rows.append({"lambda_W": lw, "lambda_H": lh, "t": t, "nc1_quotient": float(p.ratio[i]),
                         "nc1": float(p.nc1[i]), "trace_within": float(p.trace_within[i]),
                         "trace_between": float(p.trace_between[i]),
                         "scaled_trace_within": math.exp(2 * lh * t) * float(p.trace_within[i]),
                         "strictly_decreasing": strict})
    write_csv(rows, Path(args.out) / "collapse_central_path.csv")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for lh, p in paths.items():
        axes[0].semilogy(p.times, p.ratio, label=f"lambda_H = {lh:g}")
        axes[1].semilogy(p.times, p.nc1, label=f"lambda_H = {lh:g}")
        axes[2].plot(p.times, torch.exp(2 * lh * p.times) * p.trace_within, label=f"lambda_H = {lh:g}")
    for ax, t in zip(axes, ("Tr(Sigma_W) / Tr(Sigma_B)", "NC1 = Tr(Sigma_W Sigma_B^+) / K",
                            "exp(2 lambda_H t) Tr(Sigma_W)")):
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("flow time t")
        ax.legend(fontsize=7)
    fig.suptitle(f"Tirer et al. central path, K={K}, n={n}, d={d}, lambda_W={lw}", fontsize=9)
    fig.tight_layout()
    with atomic_open(Path(args.out) / "collapse_central_path.png", "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    return rows


if __name__ == "__main__":
    main()
