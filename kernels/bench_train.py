"""Benchmark: training throughput (clouds/s) and peak memory of equinets' backbones.

Each model is timed in a fresh subprocess by :func:`equinets.train.bench.bench_training`: full
training steps (forward, cross-entropy, backward, Adam) on random clouds at ``B`` clouds of ``N``
points, threads pinned, warm-up, then min, median and max step times, with the CPU model, torch
version and thread count in every row. Peak memory is the growth of the process's peak RSS on CPU
(``torch.cuda.max_memory_allocated`` on CUDA). The models run one after the other (each needs its
own process for its peak memory), so these are per-model throughputs, not an interleaved comparison:
measure them on a quiet machine.

Writes ``kernels/results/train.csv`` and ``kernels/results/train.png``. Same numbers from the CLI:
``equinets bench --models pointnet dgcnn gnn --csv out.csv``.

Usage::

    python kernels/bench_train.py [--threads 2] [--steps 3] [--models pointnet dgcnn gnn] [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from equinets._bench import ALLOCATORS
from equinets.train.bench import bench_training, write_csv

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["pointnet", "dgcnn", "gnn"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-points", type=int, default=1024)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--allocator", choices=ALLOCATORS, default="default")
    p.add_argument("--quick", action="store_true", help="PointNet only, tiny sizes (a smoke test of the script)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    kw = {}
    if args.quick:
        args.models, args.batch_size, args.num_points, args.steps, args.warmup = ["pointnet"], 4, 64, 2, 1
        kw = {"emb_dims": 32}
    rows = bench_training(args.models, batch_size=args.batch_size, num_points=args.num_points, steps=args.steps,
                          warmup=args.warmup, threads=args.threads, device=args.device, allocator=args.allocator,
                          model_kwargs=kw)
    write_csv(rows, args.out / "train.csv")
    for r in rows:
        print(f"{r['model']:>9s} {r['device']}: {r['step_ms_median']:9.1f} ms/step [{r['step_ms_min']:.1f}, "
              f"{r['step_ms_max']:.1f}]  {r['clouds_per_s']:7.2f} clouds/s  peak {r['peak_mem_mb']:8.1f} MB "
              f"({r['mem_kind']})")
    print(f"# cpu={rows[0]['cpu']!r} torch={rows[0]['torch']} threads={rows[0]['threads']} "
          f"load_avg_1min={rows[0]['load_avg_1min']}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    names = [r["model"] for r in rows]
    axes[0].bar(names, [r["clouds_per_s"] for r in rows])
    axes[0].set_ylabel("clouds / s (training)")
    axes[1].bar(names, [r["peak_mem_mb"] for r in rows])
    axes[1].set_ylabel("peak memory (MB)")
    fig.suptitle(f"B={args.batch_size}, N={args.num_points}, {rows[0]['device']} ({rows[0]['cpu']}), "
                 f"{rows[0]['threads']} threads", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "train.png", dpi=90)
    plt.close(fig)
    return rows


if __name__ == "__main__":
    main()
