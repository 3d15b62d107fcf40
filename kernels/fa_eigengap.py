"""Frame-averaging equivariance error against the relative eigen-gap, float32 and float64.

Clouds of ``n`` points are built with an *exact* sample covariance ``diag(1, 1 + 2g, 2)`` (whitened
Gaussian samples, rescaled, then randomly rotated), so the relative gap ``(l2 - l1) / l3`` is ``g``
and the other gap is about 0.5. A small PointNet (eval mode) is wrapped in
:class:`equinets.frames.FrameAveraging` (E3, outputs ``0e + 1o``) with the default degenerate
policy (``blend``, ``tol = sqrt(eps)``), with the paper's sign frames only (``none``), and with the tie
policy ``harmonic`` (a near-degenerate plane oriented by its 3rd/4th angular moments, ``tie_tol = 0.1``), with
all signs and with shrunk signs. For each gap, :func:`equinets.testing.assert_equivariant` applies random
O(3) elements and translations ``t ~ N(0, 10^2)`` and returns the worst relative error
``max|f(gX) - rho(g) f(X)| / max|rho(g) f(X)|``.

The cube and cylinder cases: an exact cube (8 corners plus the 12 edge midpoints: a triple eigenvalue), an exact
cylinder (rings of 24 points: a double eigenvalue, no 3rd/4th angular moment), a square prism (4-fold rings at
asymmetric heights: a double eigenvalue with a strong 4th moment), and area-uniform surface samples of a cube and a
cylinder (``--points`` points; their gaps come from the sampling noise).

Writes ``kernels/results/fa_eigengap.csv``, ``kernels/results/fa_eigengap_shapes.csv`` and
``kernels/results/fa_eigengap.png``.

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
POLICIES = {"blend": dict(degenerate="blend"), "none": dict(degenerate="none"),
            "harmonic": dict(degenerate="harmonic"), "shrink/harmonic": dict(degenerate="harmonic", signs="shrink")}


def shape_cases(n: int) -> dict[str, torch.Tensor]:
    """The cube and cylinder cases (float64, canonical pose)."""
    import numpy as np

    from equinets.data import _surfaces as S

    f64 = torch.float64
    corners = torch.cartesian_prod(*[torch.tensor([-1.0, 1.0], dtype=f64)] * 3)
    mids = torch.cat([torch.roll(torch.cartesian_prod(torch.tensor([0.0], dtype=f64), *[torch.tensor([-1.0, 1.0],
                      dtype=f64)] * 2), k, dims=1) for k in range(3)])
    ang = torch.arange(24, dtype=f64) * torch.pi / 12
    rings = torch.cat([torch.stack([ang.cos(), ang.sin(), torch.full_like(ang, z)], 1) for z in (-1.5, -0.5, 0.5, 1.5)])
    sq = []
    for (x, y), z in (((1.0, 0.3), -1.0), ((0.7, -0.2), 0.4), ((0.9, 0.1), 2.5)):
        for k in range(4):
            c, s_ = [(1, 0), (0, 1), (-1, 0), (0, -1)][k]
            sq.append((c * x - s_ * y, s_ * x + c * y, z))
    rng = np.random.default_rng(0)
    cube_s = torch.from_numpy(S.sample_patches(rng, S.box(1.0, 1.0, 1.0), n)[0])
    cyl_s = torch.from_numpy(S.sample_patches(rng, S.cylinder(1.0, -1.5, 1.5), n)[0])
    return {"cube (exact)": torch.cat([corners, mids]), "cylinder (exact rings)": rings,
            "square prism (exact)": torch.tensor(sq, dtype=f64), "cube (sampled)": cube_s.to(f64),
            "cylinder (sampled)": cyl_s.to(f64)}


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
    net = PointNet(0, 4, hidden_channels=(32, 32), emb_dims=64, head_channels=(32,)).eval()
    rows, shape_rows = [], []
    for dtype in (torch.float32, torch.float64):
        for policy, kw in POLICIES.items():
            fa = FrameAveraging(net.to(dtype), "E3", irreps_out="0e + 1o", **kw).eval()
            for name, pos in shape_cases(args.points).items():
                torch.manual_seed(2)
                fr = pca_frames(pos.to(dtype), **kw)
                with torch.no_grad():
                    err = assert_equivariant(fa, pos.to(dtype), group="E3", irreps_out="0e + 1o",
                                             n_trials=args.trials, rtol=1e9)
                shape_rows.append({"dtype": str(dtype).removeprefix("torch."), "policy": policy, "case": name,
                                   "rel_gaps": " ".join(f"{g:.2e}" for g in fr.rel_gaps[0].tolist()),
                                   "frames": int((fr.weights > 0).sum()), "max_rel_error": f"{err:.3e}"})
                print(shape_rows[-1])
            for gap in GAPS:
                torch.manual_seed(1)
                pos = controlled_cloud(args.points, gap).to(dtype)
                measured = float(pca_frames(pos).rel_gaps[0, 0])
                with torch.no_grad():
                    err = assert_equivariant(
                        fa, pos, group="E3", irreps_out="0e + 1o", n_trials=args.trials, rtol=1e9
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
    write_csv(shape_rows, args.out / "fa_eigengap_shapes.csv")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    zero_at = 1e-10  # where gap = 0 is drawn
    for dtype, colour in (("float32", "C0"), ("float64", "C1")):
        for policy, style in (("blend", "-o"), ("none", "--x"), ("harmonic", "-s"), ("shrink/harmonic", ":^")):
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
