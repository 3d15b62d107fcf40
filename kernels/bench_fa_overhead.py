"""Benchmark: what frame averaging adds on top of the |F| backbone calls it folds into one batch.

For B clouds of N points, times (eval mode, forward only, threads pinned, warm-up, medians):

* ``backbone``: the backbone alone on the B*|F| already-framed clouds (one call) -- the baseline;
* ``frame_averaging``: :class:`equinets.frames.FrameAveraging` end to end (PCA frames in float64,
  rotation into every frame, the same backbone call, rotation back and the average).

The overhead ``frame_averaging / backbone - 1`` is what frames cost. Writes
``kernels/results/fa_overhead.csv``.

Usage::

    python kernels/bench_fa_overhead.py [--threads 2] [--models pointnet dgcnn]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path

import torch

from equinets.frames import FrameAveraging, pca_frames
from equinets.nn import create_model
from equinets.train.bench import write_csv

RESULTS = Path(__file__).resolve().parent / "results"


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["pointnet"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-points", type=int, default=1024)
    p.add_argument("--group", default="E3")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, N = args.batch_size, args.num_points
    pos = torch.randn(B, N, 3) * torch.tensor([3.0, 2.0, 1.0])
    flat = pos.reshape(B * N, 3)
    batch = torch.arange(B).repeat_interleave(N)
    rows = []
    for name in args.models:
        net = create_model(name, out_channels=40).eval()
        fa = FrameAveraging(net, args.group, degenerate="none").eval()
        fr = pca_frames(flat, batch, args.group, degenerate="none")
        F = fr.rotations.shape[1]
        # the framed clouds the backbone sees: R^T (x - t) for every frame, folded into one batch
        framed = torch.einsum("bfji,bnj->bfni", fr.rotations.to(pos.dtype), pos - fr.translation[:, None].to(pos.dtype))
        framed = framed.reshape(B * F * N, 3)
        fbatch = torch.arange(B * F).repeat_interleave(N)
        t_backbone = median_ms(partial(net, framed, None, fbatch), args.repeats)
        t_fa = median_ms(partial(fa, flat, None, batch), args.repeats)
        t_frames = median_ms(partial(pca_frames, flat, batch, args.group, degenerate="none"), args.repeats)
        rows.append({"model": name, "group": args.group, "B": B, "N": N, "frames": F, "threads": args.threads,
                     "backbone_ms": round(t_backbone, 2), "frame_averaging_ms": round(t_fa, 2),
                     "pca_frames_ms": round(t_frames, 2), "overhead": round(t_fa / t_backbone - 1, 4)})
        print(rows[-1])
    RESULTS.mkdir(exist_ok=True)
    write_csv(rows, RESULTS / "fa_overhead.csv")


if __name__ == "__main__":
    main()
