"""Benchmark: equinets' pure-torch kNN against one ``torch.cdist`` on the same batch.

Times, in float32 with pinned threads (warm-up, then the median of repeats):

* ``cdist``: one ``torch.cdist(pos, pos)`` on ``(B, N, 3)`` -- the baseline (distances only, no selection);
* ``knn_dense``: :func:`equinets.nn.knn_dense` ``(B, N, 3) -> (B, N, k)``;
* ``knn_graph``: :func:`equinets.nn.knn_graph` on the equivalent flat batch ``(B N, 3)`` + ``batch``.

Writes ``kernels/results/knn.csv`` and ``kernels/results/knn.png``.

Usage::

    python kernels/bench_knn.py [--threads 2] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path

import torch

from equinets.nn import knn_dense, knn_graph
from equinets.train.bench import write_csv

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = [(32, 1024, 20), (32, 512, 20), (32, 2048, 20)]


def median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for B, N, k in SIZES:
        pos = torch.randn(B, N, 3)
        flat, batch = pos.reshape(-1, 3), torch.arange(B).repeat_interleave(N)
        ops = {
            "cdist": partial(torch.cdist, pos, pos),
            "knn_dense": partial(knn_dense, pos, k, loop=False),
            "knn_graph": partial(knn_graph, flat, k, batch, batch_size=B),
        }
        base = None
        for op, fn in ops.items():
            ms = median_ms(fn, args.repeats)
            base = ms if op == "cdist" else base
            rows.append(dict(op=op, B=B, N=N, k=k, threads=args.threads, median_ms=round(ms, 3),
                             ratio_vs_cdist=round(ms / base, 3)))
            print(f"{op:10s} B={B} N={N:5d} k={k} threads={args.threads}: {ms:9.2f} ms", end=" ")
            print(f"({ms / base:.2f}x cdist)")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "knn.csv")
    plot(rows, args.out / "knn.png")
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = ["cdist", "knn_dense", "knn_graph"]
    sizes = sorted({r["N"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(ops)
    for i, op in enumerate(ops):
        ms = [next(r["median_ms"] for r in rows if r["op"] == op and r["N"] == n) for n in sizes]
        ax.bar([j + i * width for j in range(len(sizes))], ms, width, label=op)
    ax.set_xticks([j + width for j in range(len(sizes))], [f"N={n}" for n in sizes])
    ax.set_ylabel("median time (ms)")
    r0 = rows[0]
    ax.set_title(f"kNN (k={r0['k']}, B={r0['B']}, float32, {r0['threads']} threads) vs one torch.cdist")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
