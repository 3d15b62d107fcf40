"""Benchmark: equinets' pure-torch kNN against one ``torch.cdist`` on the same batch.

On the same float32 batch of ``B`` Gaussian clouds of ``N`` points, with ``k`` neighbours:

* ``cdist``: one ``torch.cdist(pos, pos)`` on ``(B, N, 3)`` -- the baseline (distances only, no selection);
* ``knn_dense``: :func:`equinets.nn.knn_dense` ``(B, N, 3) -> (B, N, k)``, ``loop=False``;
* ``knn_graph``: :func:`equinets.nn.knn_graph` on the same points as a flat batch ``(B N, 3)`` +
  ``batch`` (``loop=False``), the ``(2, B N k)`` PyG ``edge_index``.

Before timing, the two kNN ops are checked to find the same neighbours. The three run interleaved
over the repeats (``cdist, knn_dense, knn_graph``, then rotated), after a warm-up, at each thread
count in turn (default 1 and 2). Rows give min, median and max, the ratio of medians to the cdist of
the same run, the per-repeat (paired) ratios and the minor page faults per call, with the CPU model,
torch version and thread count. Writes ``kernels/results/knn.csv`` and ``kernels/results/knn.png``.

**Allocator.** By default glibc runs as users run it (``--allocator default``): cdist's ``(B, N, N)``
output (128 MB at 32 x 1024) is then mapped and zeroed afresh at every call (32 769 page faults),
while the kNN ops work in cache-sized chunks the heap recycles (no page faults) -- a real cost of
materialising the distance matrix. ``--allocator steady`` (:func:`equinets._bench.set_allocator`)
recycles cdist's output too and gives cdist's best case.

Usage::

    python kernels/bench_knn.py [--threads 1 2] [--repeats 7] [--sizes 32x1024x20] [--allocator default|steady] [--quick]
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch

from equinets._bench import ALLOCATORS, compare, machine_info, pin_threads, set_allocator, timing_row, write_results
from equinets.nn import knn_dense, knn_graph

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = [(32, 1024, 20), (32, 512, 20), (32, 2048, 20)]
OPS = ("cdist", "knn_dense", "knn_graph")


def same_neighbours(dense: torch.Tensor, edge_index: torch.Tensor) -> bool:
    """Whether ``knn_dense``'s ``(B, N, k)`` local indices and ``knn_graph``'s ``edge_index`` (row 0 the
    neighbour j, row 1 the centre i) hold the same neighbour set for every point."""
    B, N, k = dense.shape
    glob = (dense + torch.arange(B).view(B, 1, 1) * N).reshape(B * N, k).sort(1).values
    src, dst = edge_index
    if dst.numel() != B * N * k or not bool((torch.bincount(dst, minlength=B * N) == k).all()):
        return False
    order = torch.argsort(dst, stable=True)
    return torch.equal(src[order].reshape(B * N, k).sort(1).values, glob)


def _size(text: str) -> tuple[int, int, int]:
    try:
        B, N, k = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"bench_knn.py: error: --sizes takes B x N x k such as 32x1024x20, got {text!r}") from None
    return B, N, k


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--allocator", choices=ALLOCATORS, default="default")
    ap.add_argument("--sizes", nargs="+", default=None, metavar="BxNxK",
                    help="sizes as B x N x k, e.g. 32x1024x20 (default: "
                    + " ".join(f"{b}x{n}x{k}" for b, n, k in SIZES) + ")")
    ap.add_argument("--quick", action="store_true", help="one tiny size, 2 repeats (a smoke test of the script)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sizes = SIZES if args.sizes is None else [_size(s) for s in args.sizes]
    if args.quick:
        sizes = [(4, 128, 8)]
    if args.quick:
        args.repeats = 2
    allocator = set_allocator(args.allocator)
    rows = []
    for threads in args.threads:
        threads = pin_threads(threads)
        for B, N, k in sizes:
            torch.manual_seed(0)
            pos = torch.randn(B, N, 3)
            flat, batch = pos.reshape(-1, 3), torch.arange(B).repeat_interleave(N)
            if not same_neighbours(knn_dense(pos, k, loop=False), knn_graph(flat, k, batch, loop=False)):
                raise RuntimeError(f"knn_dense and knn_graph disagree at B={B}, N={N}, k={k}")
            t = compare({
                "cdist": partial(torch.cdist, pos, pos),
                "knn_dense": partial(knn_dense, pos, k, loop=False),
                "knn_graph": partial(knn_graph, flat, k, batch, loop=False, batch_size=B),
            }, repeats=args.repeats, warmup=args.warmup)
            for op in OPS:
                r = timing_row(t[op], t["cdist"])
                rows.append({"op": op, "B": B, "N": N, "k": k, "threads": threads, "allocator": allocator, **r})
                print(f"{op:10s} B={B} N={N:5d} k={k} threads={threads}: median {r['median_ms']:8.2f} ms "
                      f"[{r['min_ms']:.2f}, {r['max_ms']:.2f}]  {r['ratio']:.2f}x cdist "
                      f"(paired {r['paired_ratio_min']:.2f}..{r['paired_ratio_max']:.2f})")
    info = {k: v for k, v in machine_info().items() if k != "threads"}
    print(f"# {info}")
    write_results(rows, args.out / "knn.csv", info)
    plot(rows, args.out / "knn.png", info["cpu"])
    return rows


def plot(rows: list[dict], path: Path, cpu: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r["threads"] for r in rows})
    sizes = sorted({r["N"] for r in rows})
    fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 4), squeeze=False)
    width = 0.8 / len(OPS)
    for ax, th in zip(axes[0], threads):
        for i, op in enumerate(OPS):
            sel = [next(r for r in rows if r["op"] == op and r["N"] == n and r["threads"] == th) for n in sizes]
            med = [r["median_ms"] for r in sel]
            err = [[r["median_ms"] - r["min_ms"] for r in sel], [r["max_ms"] - r["median_ms"] for r in sel]]
            ax.bar([j + i * width for j in range(len(sizes))], med, width, yerr=err, capsize=3, label=op)
        ax.set_xticks([j + width for j in range(len(sizes))], [f"N={n}" for n in sizes])
        ax.set_ylabel("time (ms): median, bars min..max")
        ax.set_title(f"{th} thread{'s' if th > 1 else ''}")
        ax.legend()
    r0 = rows[0]
    fig.suptitle(f"kNN (k={r0['k']}, B={r0['B']}, float32) vs one torch.cdist -- {cpu}, "
                 f"{r0['allocator']} allocator", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
