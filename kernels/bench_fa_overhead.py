"""Benchmark: what frame averaging adds on top of the one folded backbone call it makes.

For B clouds of N points (eval mode, forward only, no autograd), two sides doing the same backbone work:

* ``backbone``: the backbone called on **exactly** the input :class:`equinets.frames.FrameAveraging`
  feeds it -- the ``(B |F| N, 3)`` framed positions and the ``batch`` vector of the ``B |F|`` framed
  clouds, captured from a real frame-averaging call by a forward pre-hook (the same tensors, the same
  layout, the same keywords) -- the baseline;
* ``frame_averaging``: ``FrameAveraging`` end to end: PCA frames in float64, the fold into every
  frame, that same backbone call, rotation back and the weighted average.

So ``frame_averaging / backbone - 1`` is the cost of frames and transforms only. ``pca_frames`` alone
is timed beside them. The three run interleaved over the repeats after a warm-up, at each thread
count in turn (default 1 and 2), with a steady heap (``--allocator steady``, see
:func:`equinets._bench.set_allocator`). With glibc's default every block over 32 MB is mapped and
zeroed afresh at each call: about 1.03 million page faults (4 GB) per call on either side at
32 x 8 x 1024 points, 3.5-4.8 s per call instead of about 0.7 s, and kernel time that varied 2x
between identical calls -- enough to put frame averaging "below" its own backbone call when the two
sides were timed one after the other. Each row reports min, median and max, the overhead as a ratio
of medians, of minima and per repeat (paired), and the minor page faults per call, with the CPU
model, torch version and thread count beside it. Writes ``kernels/results/fa_overhead.csv``.

Usage::

    python kernels/bench_fa_overhead.py [--threads 1 2] [--repeats 7] [--allocator steady] [--quick]
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch

from equinets._bench import ALLOCATORS, compare, machine_info, pin_threads, set_allocator, timing_row, write_results
from equinets.frames import FrameAveraging, pca_frames
from equinets.nn import create_model

RESULTS = Path(__file__).resolve().parent / "results"


def captured_backbone_call(fa: FrameAveraging, *inputs):
    """Run ``fa(*inputs)`` once and return ``(args, kwargs)`` of the single backbone call it makes."""
    calls = []
    hook = fa.backbone.register_forward_pre_hook(lambda m, a, kw: calls.append((a, dict(kw))), with_kwargs=True)
    try:
        fa(*inputs)
    finally:
        hook.remove()
    if len(calls) != 1:
        raise RuntimeError(f"FrameAveraging called its backbone {len(calls)} times; this benchmark expects one call")
    return calls[0]


@torch.no_grad()
def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["pointnet"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-points", type=int, default=1024)
    p.add_argument("--group", default="E3")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--allocator", choices=ALLOCATORS, default="steady")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 2 repeats (a smoke test of the script)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--verbose", action="store_true", help="print every repeat's time")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.num_points, args.repeats = 2, 64, 2
    allocator = set_allocator(args.allocator)
    torch.manual_seed(0)
    B, N = args.batch_size, args.num_points
    pos = torch.randn(B, N, 3) * torch.tensor([3.0, 2.0, 1.0])  # distinct covariance eigenvalues
    flat = pos.reshape(B * N, 3)
    batch = torch.arange(B).repeat_interleave(N)
    rows = []
    for threads, name in [(t, m) for t in args.threads for m in args.models]:
        threads = pin_threads(threads)
        kw = {"emb_dims": 64} if args.quick else {}
        net = create_model(name, out_channels=40, **kw).eval()
        fa = FrameAveraging(net, args.group, degenerate="none").eval()
        call_args, call_kwargs = captured_backbone_call(fa, flat, None, batch)
        F = int(pca_frames(flat, batch, args.group, degenerate="none").rotations.shape[1])
        assert call_args[0].shape == (B * F * N, 3), call_args[0].shape
        t = compare({
            "backbone": partial(net, *call_args, **call_kwargs),
            "frame_averaging": partial(fa, flat, None, batch),
            "pca_frames": partial(pca_frames, flat, batch, args.group, degenerate="none"),
        }, repeats=args.repeats, warmup=args.warmup)
        base = t["backbone"]
        row = {"model": name, "group": args.group, "B": B, "N": N, "frames": F, "threads": threads,
               "allocator": allocator}
        for side in ("backbone", "frame_averaging", "pca_frames"):
            r = timing_row(t[side])
            row.update({f"{side}_{k}": v for k, v in r.items() if k != "repeats"})
        fa_row = timing_row(t["frame_averaging"], base)
        row.update(repeats=args.repeats, overhead=round(fa_row["ratio"] - 1, 4),
                   overhead_of_minima=round(t["frame_averaging"].min_ms / base.min_ms - 1, 4),
                   overhead_paired_min=round(fa_row["paired_ratio_min"] - 1, 4),
                   overhead_paired_median=round(fa_row["paired_ratio_median"] - 1, 4),
                   overhead_paired_max=round(fa_row["paired_ratio_max"] - 1, 4))
        rows.append(row)
        if args.verbose:
            for side, tm in t.items():
                print(side, [round(1e3 * x, 1) for x in tm.times])
        print(f"{name} {args.group} B={B} N={N} |F|={F} threads={threads} allocator={allocator}: "
              f"backbone {row['backbone_median_ms']:.1f} ms [{row['backbone_min_ms']:.1f}, {row['backbone_max_ms']:.1f}], "
              f"frame averaging {row['frame_averaging_median_ms']:.1f} ms "
              f"[{row['frame_averaging_min_ms']:.1f}, {row['frame_averaging_max_ms']:.1f}], "
              f"pca_frames {row['pca_frames_median_ms']:.2f} ms; overhead {100 * row['overhead']:+.1f} % of medians, "
              f"{100 * row['overhead_of_minima']:+.1f} % of minima "
              f"(paired {100 * row['overhead_paired_min']:+.1f} .. {100 * row['overhead_paired_max']:+.1f} %)")
    info = {k: v for k, v in machine_info().items() if k != "threads"}
    print(f"# {info}")
    write_results(rows, args.out / "fa_overhead.csv", info)
    return rows


if __name__ == "__main__":
    main()
