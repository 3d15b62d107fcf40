"""Benchmark: the cost of an APEN forward against a frame-averaged PointNet, and its growth with parts and points.

Eval mode, forward only, no autograd, CPU, random anisotropic Gaussian clouds (float32), steady heap
(:func:`equinets._bench.set_allocator`), threads pinned, one warm-up, sides interleaved over the repeats
(:func:`equinets._bench.compare`), medians with min and max. Three tables, one CSV
(``kernels/results/apen_bench.csv``) and one figure (``apen_bench.png``):

* ``cost``: at ``B x N`` (default 8 x 2048) the baseline ``FrameAveraging(PointNet)`` (same group, PointNet widths
  = APEN's block widths, embedding width = the last block width, so both run the same MLP widths per row)
  against APEN with predicted partitions (the full forward: EM, merging, per-part frames, all blocks) and with a
  known partition of ``K`` parts; the ratio of medians to the baseline, and the **peak memory** of each side
  (increase of the peak resident set ``VmHWM`` of a fresh child process over one forward);
* ``parts``: APEN time against the number of candidate parts ``K`` (default 8, 16, 32, 64) at fixed ``B x N``,
  predicted and known (``K`` parts from a farthest-point Voronoi partition), with the rows the blocks ran
  (``pairs x frames``); the sparse fold makes the block cost independent of ``K``. All ``K`` (and the
  FA-PointNet baseline) run in **one** interleaved comparison, so a drift of the machine's load falls on every
  ``K`` alike;
* ``points``: APEN time against ``N`` at fixed ``K`` (all ``N`` interleaved in one comparison): linear in points.

Usage::

    python kernels/bench_apen.py [--threads 1] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from functools import partial
from pathlib import Path

import torch

from equinets._bench import compare, machine_info, pin_threads, set_allocator, timing_row, write_results
from equinets.frames import FrameAveraging
from equinets.nn import PointNet
from equinets.piecewise import APEN, gmm_em, init_mixture

RESULTS = Path(__file__).resolve().parent / "results"
WIDTHS = {"channels": (64, 128), "num_scalars": 32, "num_vectors": 8, "k": 8, "head_channels": (128, 128)}


def make_apen(num_parts: int, group: str, quick: bool) -> APEN:
    kw = dict(WIDTHS)
    if quick:
        kw.update(channels=(8, 16), num_scalars=4, num_vectors=2, k=4, head_channels=(8,))
    return APEN(out_channels=24, task="seg", group=group, num_parts=num_parts, num_blocks=3, **kw).eval()


def make_fa(group: str, quick: bool) -> FrameAveraging:
    ch = (8, 16) if quick else WIDTHS["channels"]
    head = (8,) if quick else WIDTHS["head_channels"]
    net = PointNet(0, 24, "seg", hidden_channels=ch[:-1], emb_dims=ch[-1], seg_channels=head)
    return FrameAveraging(net, group, degenerate="none").eval()


def clouds(B: int, N: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(B * N, 3, generator=g) * torch.tensor([0.6, 0.4, 0.25])
    return pos, torch.arange(B).repeat_interleave(N)


def voronoi_parts(pos: torch.Tensor, batch: torch.Tensor, K: int) -> torch.Tensor:
    """``K`` parts per cloud: the nearest of ``K`` farthest-point samples (one E-step of equal-weight components)."""
    return gmm_em(pos, batch, init_mixture(pos, batch, K, 0.01), 0).log_resp.argmax(1)


def rows_run(model: APEN, pos, batch, partition=None) -> tuple[int, int]:
    """(rows of the blocks' folded batch summed over blocks: pairs x frames; mean parts per cloud and block)."""
    from equinets.frames.pca import frame_pairs
    from equinets.piecewise import part_frames

    res = model.forward_all(pos, None, batch, partition)
    rows = 0
    for p in res.partitions:
        fr = part_frames(pos, p, model.group)
        part_of, _, _ = frame_pairs(fr)
        rows += int(torch.bincount(p.part, minlength=p.num_parts)[part_of].sum())
    B = int(batch[-1]) + 1
    return rows, round(sum(p.num_parts for p in res.partitions) / (len(res.partitions) * B), 2)


def child_peak(side: str, B: int, N: int, K: int, group: str, threads: int, quick: bool) -> float:
    """Peak memory (MiB) of one forward of ``side``, measured in a fresh process (``VmHWM`` increase)."""
    code = (f"import sys; sys.argv = ['x', '--child', {side!r}, '--batch-size', '{B}', '--num-points', '{N}', "
            f"'--parts', '{K}', '--group', {group!r}, '--threads', '{threads}'] + (['--quick'] if {quick} else []); "
            f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import bench_apen; bench_apen.main()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])


@torch.no_grad()
def _child(args) -> None:
    pin_threads(args.threads[0])
    torch.manual_seed(0)
    pos, batch = clouds(args.batch_size, args.num_points)
    K = args.parts[0]
    if args.child == "fa_pointnet":
        call = partial(make_fa(args.group, args.quick), pos, None, batch)
    else:
        model = make_apen(K, args.group, args.quick)
        part = voronoi_parts(pos, batch, K) if args.child == "apen_known" else None
        call = partial(model, pos, None, batch, part)
    base = _high_water_kib()
    call()
    print(json.dumps({"peak_mib": round((_high_water_kib() - base) / 1024.0, 1)}))


def _high_water_kib() -> int:
    """Peak resident set of this process in KiB: ``VmHWM`` of ``/proc/self/status`` (reset by ``execve``, unlike
    ``ru_maxrss``, which a child started from a large parent inherits), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@torch.no_grad()
def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-points", type=int, default=2048)
    p.add_argument("--parts", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--points", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    p.add_argument("--cost-parts", type=int, default=16, help="candidate parts K of the cost comparison")
    p.add_argument("--group", default="SE3")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke test of the script)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    if args.quick:
        args.batch_size, args.num_points, args.repeats, args.warmup = 2, 128, 1, 0
        args.parts, args.points, args.cost_parts = [4, 8], [64], 4
    allocator = set_allocator("steady")
    B, N, G = args.batch_size, args.num_points, args.group
    rows = []
    for threads in args.threads:
        threads = pin_threads(threads)
        common = {"group": G, "threads": threads, "allocator": allocator}
        # -- cost: APEN vs FA-PointNet at B x N ---------------------------------------------------------
        torch.manual_seed(0)
        pos, batch = clouds(B, N)
        K = args.cost_parts
        apen, fa = make_apen(K, G, args.quick), make_fa(G, args.quick)
        known = voronoi_parts(pos, batch, K)
        t = compare({"fa_pointnet": partial(fa, pos, None, batch), "apen": partial(apen, pos, None, batch),
                     "apen_known": partial(apen, pos, None, batch, known)}, repeats=args.repeats, warmup=args.warmup)
        for side in ("fa_pointnet", "apen", "apen_known"):
            r = timing_row(t[side], t["fa_pointnet"])
            nrows, nparts = rows_run(apen, pos, batch, known if side == "apen_known" else None) \
                if side != "fa_pointnet" else (int(pos.shape[0] * (4 if G in ("SO3", "SE3") else 8)), 1)
            peak = float("nan") if args.no_memory else child_peak(side, B, N, K, G, threads, args.quick)
            rows.append({"table": "cost", "side": side, "B": B, "N": N, "K": K, "parts_per_block": nparts,
                         "rows": nrows, "peak_mib": peak, **common, **r})
            print(f"cost {side:12s} B={B} N={N} K={K}: {r['median_ms']:.0f} ms [{r['min_ms']:.0f}, {r['max_ms']:.0f}]"
                  f" ratio {r['ratio']:.2f} (paired {r['paired_ratio_min']:.2f}..{r['paired_ratio_max']:.2f}), "
                  f"rows {nrows}, peak {peak:.0f} MiB", flush=True)
        # -- time against the number of candidate parts: every K in one interleaved comparison ----------
        fns, meta = {"fa_pointnet": partial(fa, pos, None, batch)}, {}
        for K in args.parts:
            apen = make_apen(K, G, args.quick)
            known = voronoi_parts(pos, batch, K)
            fns[f"apen_K{K}"] = partial(apen, pos, None, batch)
            fns[f"apen_known_K{K}"] = partial(apen, pos, None, batch, known)
            meta[f"apen_K{K}"] = ("apen", K, rows_run(apen, pos, batch))
            meta[f"apen_known_K{K}"] = ("apen_known", K, rows_run(apen, pos, batch, known))
        t = compare(fns, repeats=args.repeats, warmup=args.warmup)
        for name, (side, K, (nrows, nparts)) in meta.items():
            r = timing_row(t[name], t["fa_pointnet"])
            rows.append({"table": "parts", "side": side, "B": B, "N": N, "K": K, "parts_per_block": nparts,
                         "rows": nrows, **common, **r})
            print(f"parts {side:10s} K={K}: {r['median_ms']:.0f} ms [{r['min_ms']:.0f}, {r['max_ms']:.0f}], "
                  f"x{r['ratio']:.2f} FA-PointNet, {nparts} parts per cloud and block, rows {nrows}", flush=True)
        # -- time against the number of points: every N in one interleaved comparison -------------------
        K = args.cost_parts
        apen = make_apen(K, G, args.quick)
        fns, meta = {}, {}
        for n in args.points:
            pos_n, batch_n = clouds(B, n, seed=1)
            known = voronoi_parts(pos_n, batch_n, K)
            fns[f"apen_N{n}"] = partial(apen, pos_n, None, batch_n)
            fns[f"apen_known_N{n}"] = partial(apen, pos_n, None, batch_n, known)
            meta[f"apen_N{n}"] = ("apen", n, rows_run(apen, pos_n, batch_n))
            meta[f"apen_known_N{n}"] = ("apen_known", n, rows_run(apen, pos_n, batch_n, known))
        t = compare(fns, repeats=args.repeats, warmup=args.warmup)
        for name, (side, n, (nrows, nparts)) in meta.items():
            r = timing_row(t[name])
            rows.append({"table": "points", "side": side, "B": B, "N": n, "K": K, "parts_per_block": nparts,
                         "rows": nrows, **common, **r})
            print(f"points {side:10s} N={n}: {r['median_ms']:.0f} ms [{r['min_ms']:.0f}, {r['max_ms']:.0f}], "
                  f"rows {nrows}", flush=True)
    info = {k: v for k, v in machine_info().items() if k != "threads"}
    print(f"# {info}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(rows, args.out / "apen_bench.csv", info)
    plot(rows, args.out / "apen_bench.png")
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from equinets._atomic import atomic_open

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, table, key, label in ((axes[0], "parts", "K", "candidate parts K"), (axes[1], "points", "N", "points N")):
        for side, style in (("apen", "o-"), ("apen_known", "s--")):
            pts = sorted((r[key], r["median_ms"]) for r in rows if r["table"] == table and r["side"] == side)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                        label="predicted partitions" if side == "apen" else "known partition")
        base = [r["median_ms"] for r in rows if r["table"] == "cost" and r["side"] == "fa_pointnet"]
        if base and table == "parts":
            ax.axhline(base[0], color="gray", ls=":", label="FA-PointNet (same widths)")
        ax.set_xscale("log", base=2)
        if table == "points":  # log-log: linear growth is a line of slope 1
            ax.set_yscale("log")
            pts = sorted((r["N"], r["median_ms"]) for r in rows if r["table"] == "points" and r["side"] == "apen")
            if pts:
                ax.plot([p[0] for p in pts], [pts[0][1] * p[0] / pts[0][0] for p in pts], "k:", lw=1,
                        label="linear in N")
        ax.set_xlabel(label)
        ax.set_ylabel("forward time, median (ms)")
        ax.legend()
        ax.grid(alpha=0.3)
    cost = [r for r in rows if r["table"] == "cost"]
    if cost:
        fig.suptitle(f"APEN forward, B={cost[0]['B']}, N={cost[0]['N']} (parts sweep), group {cost[0]['group']}, "
                     f"{cost[0]['threads']} thread(s)")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
