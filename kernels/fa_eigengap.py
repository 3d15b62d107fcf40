"""Frame-averaging equivariance error against the relative eigen-gap, float32 and float64.

Clouds of ``n`` points are built with an *exact* sample covariance ``diag(1, 1 + 2g, 2)`` (whitened
Gaussian samples, rescaled, then randomly rotated), so the relative gap ``(l2 - l1) / l3`` is ``g``
and the other gap is about 0.5. A small PointNet (eval mode) is wrapped in
:class:`equinets.frames.FrameAveraging` (E3, outputs ``0e + 1o``) with the default degenerate
policy (``blend``, ``tol = sqrt(eps)``) and with the paper's sign frames only (``none``). For each
gap, :func:`equinets.testing.assert_equivariant` applies random O(3) elements and translations
``t ~ N(0, 10^2)`` and returns the worst relative error ``max|f(gX) - rho(g) f(X)| / max|rho(g) f(X)|``.

Writes ``kernels/results/fa_eigengap.csv`` and ``kernels/results/fa_eigengap.png``.

Usage::

    python kernels/fa_eigengap.py [--points 256] [--trials 10] [--threads 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from e3nn import o3

from equinets.frames import FrameAveraging, default_tol, pca_frames
from equinets.nn import PointNet
from equinets.testing import assert_equivariant
from equinets.train.bench import write_csv

GAPS = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 0.0]


def controlled_cloud(n: int, gap: float) -> torch.Tensor:
    """``(n, 3)`` float64 cloud whose covariance has eigenvalues exactly ``(1, 1 + 2 gap, 2)``."""
    x = torch.randn(n, 3, dtype=torch.float64)
    x = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(x.T @ x / n)
    x = x @ evecs @ torch.diag(evals.rsqrt())  # whitened: covariance I
    x = x * torch.tensor([1.0, 1.0 + 2 * gap, 2.0], dtype=torch.float64).sqrt()
    return x @ o3.rand_matrix(dtype=torch.float64).T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = PointNet(0, 4, channels=(32, 32), emb_dims=64, head_channels=(32,)).eval()
    rows = []
    for dtype in (torch.float32, torch.float64):
        for policy in ("blend", "none"):
            fa = FrameAveraging(net.to(dtype), "E3", irreps_out="0e + 1o", degenerate=policy).eval()
            for gap in GAPS:
                torch.manual_seed(1)
                pos = controlled_cloud(args.points, gap).to(dtype)
                measured = float(pca_frames(pos).rel_gaps[0, 0])
                with torch.no_grad():
                    err = assert_equivariant(
                        fa, pos, group="E3", irreps_out="0e + 1o", n_trials=args.trials, rtol=float("inf")
                    )
                rows.append(
                    {
                        "dtype": str(dtype).removeprefix("torch."),
                        "policy": policy,
                        "tol": f"{default_tol(dtype):.2e}",
                        "rel_gap": gap,
                        "measured_rel_gap": f"{measured:.3e}",
                        "max_rel_error": f"{err:.3e}",
                    }
                )
                print(rows[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "fa_eigengap.csv")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    zero_at = 1e-10  # where gap = 0 is drawn
    for dtype, colour in (("float32", "C0"), ("float64", "C1")):
        for policy, style in (("blend", "-o"), ("none", "--x")):
            sel = [r for r in rows if r["dtype"] == dtype and r["policy"] == policy]
            xs = [r["rel_gap"] or zero_at for r in sel]
            ys = [max(float(r["max_rel_error"]), 1e-17) for r in sel]
            ax.loglog(xs, ys, style, color=colour, label=f"{dtype}, {policy}")
        ax.axvline(default_tol(getattr(torch, dtype)), color=colour, lw=0.8, ls=":")
    ax.set_xlabel("relative eigen-gap (l2 - l1) / l3   (leftmost point: gap 0)")
    ax.set_ylabel("worst relative equivariance error")
    ax.set_title(f"FA-PointNet, E(3), n={args.points}, |t|~10, {args.trials} trials")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "fa_eigengap.png", dpi=120)
    print(f"wrote {args.out / 'fa_eigengap.csv'} and .png")


if __name__ == "__main__":
    main()
