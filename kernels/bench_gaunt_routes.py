"""Benchmark: the routes of :func:`equinets.gaunt.gaunt_product`, their ``route="auto"`` thresholds, and e3nn.

On one CPU thread, float32, batch 256, one channel, products ``(L, L) -> 2 L`` (SH-parity irreps
``0e + 1o + ... + L``), forward:

* **routes** (L = 1..16): ``grid_dense`` (dense GEMMs with precomputed harmonics matrices),
  ``grid_sep`` (per-(sign, |m|) Legendre matmuls + azimuthal GEMMs over half the circle),
  ``grid_sep_fft`` (the same with ``torch.fft`` over the azimuth) and ``fourier`` (the paper's
  2D-Fourier route: sparse sh2f, ``torch.fft`` convolution, closed-form f2sh), interleaved over the
  repeats. From them the thresholds of ``route="auto"`` (``grid_dense_max_D``, ``fourier_D``) and the
  fitted exponent of the fastest route's median time in L over L = 4..16;
* **e3nn** (L in 2, 4, 6, 8, 12): e3nn's ``TensorProduct`` restricted to the Gaunt paths (``uuu``, path
  weights ``c(l1, l2, l3)**2``, ``irrep_normalization="none"``, ``path_normalization="none"``; the
  research note's construction, the same numbers as the integral-normalised Gaunt product, checked
  before timing) against ``gaunt_product(..., normalization="integral")`` (``route="auto"``), eager
  and with ``--compile`` also under ``torch.compile(fullgraph=True, dynamic=False)``, forward and forward+backward,
  interleaved over the repeats.

Every side is timed by :func:`equinets._bench.compare` (warm-up, interleaving, min/median/max) on the
steady heap (:func:`equinets._bench.set_allocator`; ``--allocator default`` for glibc's default).
Writes ``kernels/results/gaunt_routes.csv`` and ``kernels/results/gaunt_vs_e3nn.csv`` (CPU model,
torch version, threads and load in every row) and, with ``--write-thresholds``, rewrites
``equinets/gaunt/_thresholds.py`` from the route sweep.

Usage::

    python kernels/bench_gaunt_routes.py [--repeats 15] [--lmax 16] [--e3nn-L 2 4 6 8 12] [--write-thresholds] [--compile]

``--lmax 0`` skips the route sweep (and leaves ``gaunt_routes.csv``); ``--e3nn-L`` with no value skips e3nn.
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
import torch

from equinets._bench import ALLOCATORS, compare, machine_info, pin_threads, set_allocator, timing_row, write_results
from equinets.gaunt import functional as F
from equinets.gaunt import gaunt_product
from equinets.gaunt.tables import gaunt_c

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
THRESHOLDS = ROOT.parent / "equinets" / "gaunt" / "_thresholds.py"
IMPLS = {
    "grid_dense": F._grid_dense,
    "grid_sep": F._grid_sep,
    "grid_sep_fft": partial(F._grid_sep, azimuth="fft"),
    "fourier": F._fourier,
}


def e3nn_gaunt_tp(L: int):
    """e3nn's TensorProduct on exactly the Gaunt paths of ``(L, L) -> 2 L``, weights ``c**2``, no normalisation."""
    from e3nn import o3

    irreps, iro = o3.Irreps.spherical_harmonics(L), o3.Irreps.spherical_harmonics(2 * L)
    instr = [(i1, i2, i3, "uuu", False, gaunt_c(l1, l2, l3) ** 2)
             for i1, (_, (l1, _)) in enumerate(irreps) for i2, (_, (l2, _)) in enumerate(irreps)
             for i3, (_, (l3, _)) in enumerate(iro) if abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0]
    tp = o3.TensorProduct(irreps, irreps, iro, instr, irrep_normalization="none", path_normalization="none")
    return tp, len(instr)


def sweep_routes(Ls, batch: int, repeats: int, info: dict) -> list[dict]:
    rows = []
    for L in Ls:
        g = torch.Generator().manual_seed(L)
        x1, x2 = torch.randn(batch, (L + 1) ** 2, generator=g), torch.randn(batch, (L + 1) ** 2, generator=g)
        ref = IMPLS["grid_sep"](x1.double(), x2.double(), L, L, 2 * L, "component")
        fns = {}
        for name, fn in IMPLS.items():
            out = fn(x1, x2, L, L, 2 * L, "component")
            err = float((out.double() - ref).norm() / ref.norm())
            assert err < 1e-5, f"{name} at L={L} disagrees with the float64 grid route: relative error {err:.2e}"
            fns[name] = partial(fn, x1, x2, L, L, 2 * L, "component")
        reps = repeats if L <= 10 else max(5, repeats // 2)
        t = compare(fns, repeats=reps, warmup=2)
        for name in IMPLS:
            rows.append({"table": "routes", "L": L, "D": 4 * L, "impl": name, "batch": batch, "dtype": "float32",
                         "pass": "forward", **timing_row(t[name], t["grid_sep"])})
        print(f"L={L:2d} " + " ".join(f"{n}={t[n].median_ms:8.3f}" for n in IMPLS), flush=True)
    return rows


def thresholds_from(rows: list[dict]) -> dict:
    by = {}
    for r in rows:
        by.setdefault(r["D"], {})[r["impl"]] = r["median_ms"]
    Ds = sorted(by)
    dense_max = 0
    for D in Ds:  # the largest D up to which dense GEMMs win at every measured size
        if by[D]["grid_dense"] <= min(by[D]["grid_sep"], by[D]["grid_sep_fft"]):
            dense_max = D
        else:
            break
    fourier = []
    for D in Ds:
        grid = min(by[D]["grid_dense"] if D <= dense_max else by[D]["grid_sep"], by[D]["grid_sep"])
        if by[D]["fourier"] < grid:
            fourier.append((D, D))
    return {"grid_dense_max_D": dense_max, "fourier_D": fourier}


def fitted_exponent(rows: list[dict], lo: int = 4, hi: int = 16) -> tuple[float, dict]:
    best = {}
    for r in rows:
        if lo <= r["L"] <= hi:
            best[r["L"]] = min(best.get(r["L"], math.inf), r["median_ms"])
    Ls = sorted(best)
    if len(Ls) < 2:
        return float("nan"), best
    slope = np.polyfit(np.log(Ls), np.log([best[L] for L in Ls]), 1)[0]
    return float(slope), best


def vs_e3nn(Ls, batch: int, repeats: int, compiled: bool = False) -> list[dict]:
    rows = []
    for L in Ls:
        t0 = time.perf_counter()
        tp, npaths = e3nn_gaunt_tp(L)
        build_s = time.perf_counter() - t0
        g = torch.Generator().manual_seed(100 + L)
        x1, x2 = torch.randn(batch, (L + 1) ** 2, generator=g), torch.randn(batch, (L + 1) ** 2, generator=g)
        ours = partial(gaunt_product, normalization="integral")
        a, b = ours(x1, x2), tp(x1, x2)
        err = float((a - b).norm() / b.norm())
        assert err < 1e-5, f"e3nn Gaunt-path TP and gaunt_product differ at L={L}: relative error {err:.2e}"
        x1g, x2g = x1.clone().requires_grad_(), x2.clone().requires_grad_()

        def fwd_bwd(fn, a=x1g, b=x2g):
            def run():
                out = fn(a, b)
                out.backward(torch.ones_like(out))
            return run

        reps = repeats if L <= 8 else max(5, repeats // 2)
        sides = {"e3nn_gaunt_tp": tp, "equinets": ours}
        if compiled:  # the same product under torch.compile (tables built by the eager call above)
            torch._dynamo.reset()
            sides["equinets_compiled"] = torch.compile(ours, fullgraph=True, dynamic=False)
            sides["equinets_compiled"](x1, x2)
        with torch.no_grad():
            tf = compare({k: partial(f, x1, x2) for k, f in sides.items()}, repeats=reps, warmup=2)
        tb = compare({k: fwd_bwd(f) for k, f in sides.items()}, repeats=reps, warmup=2)
        for pas, t in (("forward", tf), ("forward+backward", tb)):
            for name in sides:
                row = {"table": "vs_e3nn", "L": L, "impl": name, "paths": npaths, "batch": batch, "dtype": "float32",
                       "pass": pas, **timing_row(t[name], t["e3nn_gaunt_tp"]), "same_math_rel_err": f"{err:.1e}"}
                if name == "e3nn_gaunt_tp":
                    row["build_s"] = round(build_s, 2)
                else:
                    row["speedup_vs_e3nn"] = round(t["e3nn_gaunt_tp"].median_ms / t[name].median_ms, 1)
                rows.append(row)
            e = t["e3nn_gaunt_tp"].median_ms
            print(f"L={L:2d} {pas:17s} e3nn={e:8.3f} ms  " + "  ".join(
                f"{k}={t[k].median_ms:7.3f} ms ({e / t[k].median_ms:5.1f}x)" for k in sides if k != "e3nn_gaunt_tp"),
                flush=True)
    return rows


def write_thresholds(th: dict, source: str) -> None:
    text = THRESHOLDS.read_text()
    head = text[: text.index("SOURCE = ")]
    parts = [source[i:i + 100] for i in range(0, len(source), 100)]
    src = "(\n" + "".join(f"    {p!r}\n" for p in parts) + ")"
    THRESHOLDS.write_text(head + f"SOURCE = {src}\n\nTHRESHOLDS = {{\n    \"cpu\": {th!r},\n}}\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lmax", type=int, default=16)
    ap.add_argument("--e3nn-L", type=int, nargs="*", default=[2, 4, 6, 8, 12])
    ap.add_argument("--allocator", choices=ALLOCATORS, default="steady")
    ap.add_argument("--write-thresholds", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time equinets under torch.compile (measured slower "
                    "than eager in this interleaved protocol on the development machine)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    alloc = set_allocator(args.allocator)
    pin_threads(1)
    info = {**machine_info(), "allocator": alloc}
    print(f"{info['cpu']} | torch {info['torch']} | threads {info['threads']} | allocator {alloc} | "
          f"load {info['load_avg_1min']}", flush=True)
    if args.lmax >= 1:
        routes(args, info)
    if args.e3nn_L:
        erows = vs_e3nn(args.e3nn_L, args.batch, args.repeats, compiled=args.compile)
        write_results(erows, args.out / "gaunt_vs_e3nn.csv", {**machine_info(), "allocator": alloc})


def routes(args, info):
    alloc = info["allocator"]
    rows = sweep_routes(range(1, args.lmax + 1), args.batch, args.repeats, info)
    th = thresholds_from(rows)
    slope, best = fitted_exponent(rows)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"thresholds: {th}")
    print(f"fastest route's median time ~ L^{slope:.2f} over L = 4..16: "
          + ", ".join(f"{L}:{v:.3f}" for L, v in sorted(best.items())))
    for r in rows:
        r["fit_exponent_L4_16"] = round(slope, 3)
    write_results(rows, args.out / "gaunt_routes.csv", info)
    if args.write_thresholds:
        write_thresholds(th, f"kernels/bench_gaunt_routes.py, {stamp}, {info['cpu']}, torch {info['torch']}, "
                             f"1 thread, float32, batch {args.batch}, allocator {alloc}")
        print(f"wrote {THRESHOLDS}")


if __name__ == "__main__":
    main()
