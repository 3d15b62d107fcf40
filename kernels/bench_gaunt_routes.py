"""Benchmark: the Gaunt tensor-product suite, the ``route="auto"`` thresholds, and the speed bars of issue #8.

A script around :func:`equinets.train.bench.bench_gaunt` (the same suite as ``equinets bench gaunt``).
Products ``(L, L) -> 2L`` of SH-parity irreps ``0e + 1o + ... + L``, float32, pinned threads (one by
default), steady heap, warm-up, interleaved repeats and medians (:func:`equinets._bench.compare`):

* **routes** (L = 1..``--lmax``): ``grid_dense`` (dense GEMMs with precomputed harmonics matrices),
  ``grid_sep`` (per-(sign, |m|) Legendre matmuls + one azimuthal GEMM over the whole circle),
  ``grid_sep_fft`` (the same with ``torch.fft`` over the azimuth) and ``fourier`` (the paper's
  2D-Fourier route), forward, one channel; from them the thresholds of ``route="auto"``
  (``grid_dense_max_D``, ``fourier_D``; ``--write-thresholds`` rewrites ``equinets/gaunt/_thresholds.py``)
  and the fitted exponent of the fastest route's median time in L over L = 4..16;
* **baselines** (``vs_e3nn``): ``gaunt_product(..., normalization="integral")`` (``route="auto"``) against
  e3nn's ``TensorProduct`` restricted to the Gaunt paths (``uuu``, path weights ``c(l1, l2, l3)**2``,
  ``'none'`` normalisations: the same numbers, checked before timing) up to ``--e3nn-lmax``, against
  e3nn's ``FullTensorProduct`` up to ``--full-lmax``, and on CUDA against cuEquivariance's and
  OpenEquivariance's channel-wise products when installed; forward and forward+backward, each
  baseline interleaved with equinets in its own run (the ratio of one run);
* **sweeps** at L = ``--sweep-l``: batch (one channel) and channels (batch ``--batch``);
* ``--bars``: only the issue's bar measurement, e3nn's Gaunt-path TensorProduct against
  ``route="auto"`` at L = 6 and 12, batch 256, one channel, ``--repeats`` repeats (``gaunt_bars.csv``),
  ``--number`` calls per timed run (1, the default: each call right after the other side's, with the caches
  holding the other side's data; more: back-to-back calls, the steady state that ``timeit`` measures).

Writes ``gaunt_routes.csv``, ``gaunt_vs_e3nn.csv``, ``gaunt_sweeps.csv`` and the log-log plots
``gaunt_routes.png``, ``gaunt_sweeps.png`` into ``--out`` (default ``kernels/results``), with the CPU
model, GPU, torch version, threads, load and the measured copy bandwidth in every row.

Usage::

    python kernels/bench_gaunt_routes.py [--lmax 16] [--e3nn-lmax 12] [--full-lmax 8] [--sweep-l 6]
                                         [--device cpu] [--repeats 15] [--write-thresholds] [--out DIR]
    python kernels/bench_gaunt_routes.py --bars [--repeats 41] [--number 5]
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from equinets._bench import ALLOCATORS, machine_info, pin_threads, set_allocator, write_results
from equinets.train.bench import CLOCKS, bench_gaunt, gaunt_vs_baselines

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
THRESHOLDS = ROOT.parent / "equinets" / "gaunt" / "_thresholds.py"


def thresholds_from(rows: list[dict]) -> dict:
    """``route="auto"`` thresholds from the route sweep's forward medians (keys of ``_thresholds.THRESHOLDS``).

    ``grid_dense_max_D``: the largest ``D`` up to which dense GEMMs beat both separable variants at every
    measured size; ``fourier_D``: the ``(D, D)`` ranges where the Fourier route beat the grid route.

    >>> rows = [{"D": 4, "impl": "grid_dense", "median_ms": 1.0}, {"D": 4, "impl": "grid_sep", "median_ms": 2.0},
    ...         {"D": 4, "impl": "grid_sep_fft", "median_ms": 3.0}, {"D": 4, "impl": "fourier", "median_ms": 4.0},
    ...         {"D": 8, "impl": "grid_dense", "median_ms": 5.0}, {"D": 8, "impl": "grid_sep", "median_ms": 2.0},
    ...         {"D": 8, "impl": "grid_sep_fft", "median_ms": 3.0}, {"D": 8, "impl": "fourier", "median_ms": 1.0}]
    >>> thresholds_from(rows)
    {'grid_dense_max_D': 4, 'fourier_D': [(8, 8)]}
    """
    by = {}
    for r in rows:
        by.setdefault(r["D"], {})[r["impl"]] = r["median_ms"]
    Ds = sorted(by)
    dense_max = 0
    for D in Ds:
        if by[D]["grid_dense"] <= min(by[D]["grid_sep"], by[D]["grid_sep_fft"]):
            dense_max = D
        else:
            break
    fourier = []
    for D in Ds:
        grid = by[D]["grid_dense"] if D <= dense_max else by[D]["grid_sep"]
        if by[D]["fourier"] < grid:
            fourier.append((D, D))
    return {"grid_dense_max_D": dense_max, "fourier_D": fourier}


def write_thresholds(th: dict, source: str, path: Path = THRESHOLDS) -> None:
    text = path.read_text()
    head = text[: text.index("SOURCE = ")]
    parts = [source[i:i + 100] for i in range(0, len(source), 100)]
    src = "(\n" + "".join(f"    {p!r}\n" for p in parts) + ")"
    path.write_text(head + f"SOURCE = {src}\n\nTHRESHOLDS = {{\n    \"cpu\": {th!r},\n}}\n")


def bars(args) -> list[dict]:
    """The issue's bar measurement: e3nn's Gaunt-path TensorProduct against ``route="auto"`` at L = 6 and 12."""
    alloc = set_allocator(args.allocator)
    pin_threads(args.threads)
    info = {**machine_info(), "allocator": alloc}
    print(f"{info['cpu']} | torch {info['torch']} | threads {info['threads']} | load {info['load_avg_1min']}", flush=True)
    rows = gaunt_vs_baselines([6, 12], batch=args.batch, device=args.device, repeats=args.repeats, warmup=3,
                              e3nn_lmax=12, full_lmax=0, budget_ms=float("inf"), table="bars", clock=args.clock,
                              number=args.number, log=lambda s: print(s, flush=True))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for r in rows:
        r["measured"] = stamp
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gaunt_bars.csv"
    if path.exists():  # keep earlier bar runs: append this one's rows after theirs
        import csv

        with open(path) as f:
            old = list(csv.DictReader(f))
        rows = old + [{**r, **{k: v for k, v in info.items() if k not in r}} for r in rows]
        write_results(rows, path, {})
    else:
        write_results(rows, path, info)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lmax", type=int, default=16)
    ap.add_argument("--e3nn-lmax", type=int, default=12)
    ap.add_argument("--full-lmax", type=int, default=8)
    ap.add_argument("--sweep-l", type=int, default=6)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256, 1024])
    ap.add_argument("--channels", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--allocator", choices=ALLOCATORS, default="steady")
    ap.add_argument("--clock", choices=CLOCKS, default="wall",
                    help="wall clock, or the timing thread's CPU clock (leaves out time given to other jobs)")
    ap.add_argument("--write-thresholds", action="store_true")
    ap.add_argument("--number", type=int, default=1,
                    help="--bars: calls per timed run (1: each call right after the other side's, cold caches; "
                         "more: back-to-back calls, the steady state)")
    ap.add_argument("--bars", action="store_true", help="only the bar measurement (L = 6 and 12 against e3nn)")
    ap.add_argument("--no-plots", dest="plots", action="store_false")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.number < 1:
        ap.error(f"--number must be a positive integer (calls per timed run), got {args.number}")
    if args.number != 1 and not args.bars:
        ap.error(f"--number applies to --bars only (the suite times one call per run), got --number {args.number} "
                 "without --bars")
    if args.bars:
        return bars(args)
    res = bench_gaunt(lmax=args.lmax, e3nn_lmax=args.e3nn_lmax, full_lmax=args.full_lmax, device=args.device,
                      batch=args.batch, sweep_L=args.sweep_l, batches=args.batches, channels=args.channels,
                      repeats=args.repeats, threads=args.threads, out=args.out, plots=args.plots,
                      allocator=args.allocator, clock=args.clock, log=lambda s: print(s, flush=True))
    if res["routes"]:
        th = thresholds_from(res["routes"])
        print(f"thresholds: {th}")
        if args.write_thresholds:
            info = machine_info()
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            write_thresholds(th, f"kernels/bench_gaunt_routes.py --clock {args.clock}, {stamp}, {info['cpu']}, "
                                 f"torch {info['torch']}, "
                                 f"{args.threads} thread(s), float32, batch {args.batch}, load {info['load_avg_1min']}")
            print(f"wrote {THRESHOLDS}")
    return res


if __name__ == "__main__":
    main()
