"""Benchmark: training throughput (clouds/s) and peak memory of equinets' backbones.

Each model is timed in a fresh subprocess by :func:`equinets.train.bench.bench_training`: full
training steps (forward, cross-entropy, backward, Adam) on random clouds at ``B`` clouds of ``N``
points, threads pinned, warm-up, then the median step time. Peak memory is the growth of the
process's peak RSS on CPU (``torch.cuda.max_memory_allocated`` on CUDA).

Writes ``kernels/results/train.csv`` and ``kernels/results/train.png``. Same numbers from the CLI:
``equinets bench --models pointnet dgcnn gnn --csv out.csv``.

Usage::

    python kernels/bench_train.py [--threads 2] [--steps 3] [--models pointnet dgcnn gnn]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from equinets.train.bench import bench_training, write_csv

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["pointnet", "dgcnn", "gnn"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-points", type=int, default=1024)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    rows = bench_training(args.models, batch_size=args.batch_size, num_points=args.num_points, steps=args.steps,
                          warmup=args.warmup, threads=args.threads, device=args.device)
    RESULTS.mkdir(exist_ok=True)
    write_csv(rows, RESULTS / "train.csv")
    for r in rows:
        print(f"{r['model']:>9s} {r['device']}: {r['step_ms_median']:9.1f} ms/step  {r['clouds_per_s']:7.2f} clouds/s"
              f"  peak {r['peak_mem_mb']:8.1f} MB ({r['mem_kind']})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    names = [r["model"] for r in rows]
    axes[0].bar(names, [r["clouds_per_s"] for r in rows])
    axes[0].set_ylabel("clouds / s (training)")
    axes[1].bar(names, [r["peak_mem_mb"] for r in rows])
    axes[1].set_ylabel("peak memory (MB)")
    fig.suptitle(f"B={args.batch_size}, N={args.num_points}, {rows[0]['device']}, {rows[0]['threads']} threads")
    fig.tight_layout()
    fig.savefig(RESULTS / "train.png", dpi=90)


if __name__ == "__main__":
    main()
