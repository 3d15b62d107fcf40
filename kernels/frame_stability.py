"""Frame stability: how often the selected PCA frame changes when the same shape is resampled or jittered, per policy.

For every class of ``shapes-hard`` (and a few near-symmetric ``shapes`` classes), ``--instances`` solids are built
(fixed proportions each) and sampled ``--resamples + 1`` times with ``--points`` surface points (another set of
points each time, same pose); each base cloud is also jittered ``--resamples`` times with Gaussian noise of standard
deviation ``--jitter`` (the training jitter). For each frame policy of :func:`equinets.frames.pca_frames`
(``signs`` x ``degenerate``) and each perturbed cloud against its base cloud:

* ``top_frame_change``: probability that the selected (highest-weight) frame differs, a frame counting as the same
  when the rotation between them is below ``--angle`` degrees; frames tied for the highest weight are picked
  uniformly, so the paper's 8 equally weighted sign frames change with probability >= 7/8 by construction;
* ``sampled_frame_change``: probability that a frame drawn from the base cloud's weights differs from one drawn from
  the perturbed cloud's (what one-frame stochastic training sees): 1 - sum_ab w_a w_b [same(a, b)];
* ``top_view_change``, ``sampled_view_change``: the same with "same" meaning the same *view*: the framed clouds
  R_a^T (x - t) and R_b^T (x' - t') are within 1.5x the Chamfer distance between the base cloud and a resample
  of it in their common pose (the sampling-noise floor; ``--chamfer-points`` points each). Two frames related by a
  symmetry of the shape give the same view, so this counts only the changes a backbone can see;
* ``frames``: mean number of frames with positive weight (the cost of the full average).

Writes ``kernels/results/frame_stability.csv`` (per class) and ``frame_stability_summary.csv`` (per policy);
``--name`` names other files (for a ``--policies`` subset, so that the full table is not overwritten).

Usage::

    python kernels/frame_stability.py [--points 1024] [--instances 4] [--resamples 4] [--threads 1]
                                      [--policies NAME ...] [--name frame_stability]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from equinets.data import _surfaces as S
from equinets.data import shapes as shapes_mod
from equinets.data import shapes_hard as hard_mod
from equinets.frames import pca_frames
from equinets.train.bench import write_csv

POLICIES = {
    "all/blend (paper)": dict(signs="all", degenerate="blend"),
    "all/harmonic": dict(signs="all", degenerate="harmonic"),
    "shrink/blend": dict(signs="shrink", degenerate="blend"),
    "shrink/harmonic": dict(signs="shrink", degenerate="harmonic"),
    "extent/harmonic": dict(signs="extent", degenerate="harmonic"),
    "detail/harmonic": dict(signs="detail", degenerate="harmonic"),
    "faces/harmonic": dict(signs="faces", degenerate="harmonic"),
}
METRICS = ("top_frame_change", "sampled_frame_change", "top_view_change", "sampled_view_change")
SHAPES_CLASSES = ["cylinder", "cube", "box", "cone", "pyramid", "capsule"]  # near-symmetric classes of `shapes`


def _classes():
    for name, build in hard_mod._CLASSES:
        yield "shapes-hard", name, build
    for name, build in shapes_mod._CLASSES:
        if name in SHAPES_CLASSES:
            yield "shapes", name, (lambda rng, b=build: b(rng)[0])


def _sample(patches, rng, n):
    p, _, _ = S.sample_patches(rng, patches, n)
    return p - p.mean(0)


def _angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Rotation angles (degrees) between every frame of ``A`` ``(Fa, 3, 3)`` and of ``B`` ``(Fb, 3, 3)``."""
    rel = A.mT[:, None] @ B[None]
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))


def _chamfer(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Symmetric mean nearest-neighbour distance between the clouds of ``A`` ``(Fa, n, 3)`` and ``B`` ``(Fb, n, 3)``."""
    d = torch.cdist(A[:, None], B[None])  # (Fa, Fb, n, n)
    return 0.5 * (d.min(-1).values.mean(-1) + d.min(-2).values.mean(-1))


def _changes(fa, fb, xa, xb, angle, sub, floor):
    """(top, sampled) change probabilities of frames (rotation angle) and of views (framed clouds, Chamfer)."""
    wa, wb = fa.weights[0], fb.weights[0]
    ka, kb = wa > 0, wb > 0
    Ra, Rb = fa.rotations[0, ka], fb.rotations[0, kb]
    ta = (wa[ka] >= wa.max() - 1e-12).double()
    tb = (wb[kb] >= wb.max() - 1e-12).double()
    va = (xa[:sub] - fa.centroid[0]) @ Ra  # (Fa, sub, 3) framed clouds R^T (x - t)
    vb = (xb[:sub] - fb.centroid[0]) @ Rb
    out = []
    for same in (_angles(Ra, Rb) < angle, _chamfer(va, vb) < 1.5 * floor):
        same = same.double()
        out += [1.0 - float(ta @ same @ tb) / float(ta.sum() * tb.sum()), 1.0 - float(wa[ka] @ same @ wb[kb])]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--instances", type=int, default=4)
    ap.add_argument("--resamples", type=int, default=4)
    ap.add_argument("--jitter", type=float, default=0.01)
    ap.add_argument("--angle", type=float, default=10.0)
    ap.add_argument("--chamfer-points", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--policies", nargs="+", default=list(POLICIES), metavar="NAME",
                    help=f"policies to measure (default: all of {list(POLICIES)})")
    ap.add_argument("--name", default="frame_stability",
                    help="stem of the output files: NAME.csv and NAME_summary.csv (default: frame_stability)")
    args = ap.parse_args(argv)
    bad = [p for p in args.policies if p not in POLICIES]
    if bad:
        ap.error(f"--policies: expected names from {list(POLICIES)}, got {bad}")
    if not args.name or "/" in args.name or args.name.startswith("."):
        ap.error(f"--name: expected a plain file stem, got {args.name!r}")
    policies = {p: POLICIES[p] for p in args.policies}
    torch.set_num_threads(args.threads)
    rows = []
    for ds, name, build in _classes():
        acc = {(p, kind): [] for p in policies for kind in ("resample", "jitter")}
        for inst in range(args.instances):
            patches = build(np.random.default_rng([11, inst, len(name)]))
            rng = np.random.default_rng([12, inst, len(name)])
            base = _sample(patches, rng, args.points)
            scale = np.linalg.norm(base, axis=1).max()
            others = {"resample": [_sample(patches, rng, args.points) for _ in range(args.resamples)],
                      "jitter": [base + args.jitter * scale * rng.standard_normal(base.shape)
                                 for _ in range(args.resamples)]}
            xb = torch.from_numpy(base)
            x1 = torch.from_numpy(others["resample"][0])
            sub = args.chamfer_points  # noise floor: a resample against the base cloud, both in their common pose
            floor = float(_chamfer((xb[:sub] - xb.mean(0))[None], (x1[:sub] - x1.mean(0))[None])[0, 0])
            for pol, kw in policies.items():
                fb = pca_frames(xb, **kw)
                for kind, clouds in others.items():
                    for c in clouds:
                        xc = torch.from_numpy(c)
                        fc = pca_frames(xc, **kw)
                        ch = _changes(fb, fc, xb, xc, args.angle, sub, floor)
                        acc[(pol, kind)].append((*ch, int((fc.weights > 0).sum())))
        for (pol, kind), vals in acc.items():
            v = np.array(vals, dtype=float).mean(0)
            rows.append({"dataset": ds, "class": name, "policy": pol, "perturbation": kind,
                         **{k: f"{x:.3f}" for k, x in zip(METRICS, v[:4])}, "frames": f"{v[4]:.1f}"})
        print(ds, name, " | ".join(f"{r['policy']} {r['perturbation']}: " + " ".join(r[k] for k in METRICS)
                                   + f" F {r['frames']}" for r in rows[-len(acc):]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / f"{args.name}.csv")
    summary = []
    for ds in ("shapes-hard", "shapes"):
        for pol in policies:
            for kind in ("resample", "jitter"):
                sel = [r for r in rows if r["dataset"] == ds and r["policy"] == pol and r["perturbation"] == kind]
                summary.append({"dataset": ds, "policy": pol, "perturbation": kind,
                                **{k: f"{np.mean([float(r[k]) for r in sel]):.3f}" for k in METRICS},
                                "frames": f"{np.mean([float(r['frames']) for r in sel]):.1f}"})
                print(summary[-1])
    write_csv(summary, args.out / f"{args.name}_summary.csv")
    print(f"wrote {args.out / (args.name + '.csv')} and {args.name}_summary.csv")


if __name__ == "__main__":
    main()
