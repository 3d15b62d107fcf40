"""Issue #8's GPU bars in one prepared run: Triton exactness on the device, then Triton against every torch route.

For the session that is lent a GPU (15 minutes of device time in all): one command that validates and times
everything GPU-side of the Gaunt products in a few minutes and writes the figures with the device named.

1. **Exactness on the device.** For a list of sizes ``(L1, L2) -> Lo`` (equal and unequal degrees, truncated
   outputs): ``route="triton"`` against the separable grid route in float64 (bar 1e-10, max abs error over
   the output's max abs), in float32 against the float64 result (bar 1e-5 relative), and the gradients of
   both inputs against the grid route's (float64); ``torch.autograd.gradcheck`` and ``gradgradcheck`` of
   the Triton product at a small size.
2. **The speed bar** (issue 8: the Triton route at least 2x faster than the best torch route at L = 6,
   128 channels, batch 4096): ``(L, L) -> 2L`` on ``batch x channels`` rows, float32, forward and
   forward+backward; every route of :data:`equinets.train.bench.GAUNT_ROUTES` and ``triton`` timed
   interleaved in one run (warm-up, medians, CUDA synchronised around each timed call,
   :func:`equinets.train.bench._timer`), the achieved bandwidth of the least traffic (both inputs read and the
   output written, :func:`equinets.train.bench._bytes_min`) and its fraction of the device's measured copy
   bandwidth, and the ratio of the best torch route to Triton.
3. **cuEquivariance / OpenEquivariance** channel-wise products on the same paths (second input one channel,
   shared over the channels, as in :func:`equinets.train.bench.cue_channelwise_tp`), timed against the Triton
   product of the same inputs when installed (else the reason is printed and written). Timed only: their
   per-path weights (unit weights on normalised Clebsch-Gordan paths, one output block per path) are not the
   Gaunt coefficients, so the numbers are not compared.
4. Optionally (``--suite``) the whole suite of ``equinets bench gaunt`` on the device, smaller (L <= 12,
   e3nn <= 6), into ``OUT/suite``.

Writes ``OUT/gaunt_gpu_exactness.csv`` (before any timing) and ``OUT/gaunt_gpu_bars.csv`` (every row with the CPU,
the GPU, torch, the copy bandwidth) and prints one JSON summary line before the optional suite; a size whose check
raises is written as a failing row with the error and the run goes on; exits 1 if an exactness check failed (the
timings are still written), 0 otherwise. Arguments are checked before any work. Prints ``skipped: no CUDA`` and
exits 0 when ``--device cuda`` has no GPU. ``--device cpu`` runs every step on CPU tensors with the Triton kernels
in the interpreter (set ``TRITON_INTERPRET=1``; a test of this script at tiny sizes, not a measurement).

Usage::

    PYTHONPATH=. python kernels/gpu_gaunt_bars.py --out kernels/results/gpu           # on the GPU machine
    PYTHONPATH=. python kernels/gpu_gaunt_bars.py --out kernels/results/gpu --suite --exact-sizes 1,1,2  # the suite
    TRITON_INTERPRET=1 python kernels/gpu_gaunt_bars.py --device cpu --L 2 --batch 4 --channels 2 \\
        --repeats 2 --exact-sizes 1,1,2 2,1,2 --out /tmp/gpu_bars                   # the CPU check
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

import torch

from equinets._bench import machine_info, timing_row, write_results
from equinets.gaunt import functional as F
from equinets.gaunt._triton import _KERNEL_MAX_PAD
from equinets.train.bench import (
    GAUNT_ROUTES,
    Skipped,
    _bytes_min,
    _fwd_bwd,
    _route_fns,
    _timer,
    bench_gaunt,
    check_routes_agree,
    copy_bandwidth,
    cue_channelwise_tp,
    oeq_channelwise_tp,
    to_mul_ir,
)

ROOT = Path(__file__).resolve().parent
TRITON_MAX_DEGREE = math.isqrt(_KERNEL_MAX_PAD) - 1  # 15
DEFAULT_SIZES = ("1,1,2", "2,3,5", "3,5,4", "6,6,12", "6,6,8", "8,8,16", "12,12,24")


def _size(s: str) -> tuple[int, int, int]:
    try:
        L1, L2, Lo = (int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--exact-sizes entries must be 'L1,L2,Lo' (three integers), got {s!r}") from None
    if min(L1, L2, Lo) < 0 or Lo > L1 + L2:
        raise argparse.ArgumentTypeError(f"--exact-sizes entry {s!r}: need L1, L2, Lo >= 0 and Lo <= L1 + L2")
    return L1, L2, Lo


def exactness(sizes, dev, rows_per_size: int = 64, log=print) -> list[dict]:
    """Triton against the float64 separable grid route on ``dev``: values (float64, float32) and gradients."""
    from equinets.gaunt._triton import grid_product

    out = []
    for L1, L2, Lo in sizes:
        try:
            out.append(_exact_one(L1, L2, Lo, dev, rows_per_size, grid_product, log))
        except Exception as e:  # one failing size (a kernel that does not build here) must not end the run
            log(f"exact ({L1},{L2})->{Lo}: FAIL {type(e).__name__}: {str(e)[:300]}")
            out.append({"table": "exactness", "L1": L1, "L2": L2, "Lo": Lo, "rows": rows_per_size, "pass": False,
                        "error": f"{type(e).__name__}: {str(e)[:300]}"})
    try:
        out.append(_gradchecks(dev, grid_product, log))
    except Exception as e:
        log(f"gradcheck: FAIL {type(e).__name__}: {str(e)[:300]}")
        out.append({"table": "gradcheck", "L1": 2, "L2": 1, "Lo": 3, "rows": 3, "pass": False,
                    "error": f"{type(e).__name__}: {str(e)[:300]}"})
    return out


def _exact_one(L1: int, L2: int, Lo: int, dev, rows_per_size: int, grid_product, log) -> dict:
    """One size of :func:`exactness`: its row."""
    g = torch.Generator().manual_seed(1000 * L1 + 10 * L2 + Lo)
    a, b = torch.randn(rows_per_size, (L1 + 1) ** 2, generator=g), torch.randn(rows_per_size, (L2 + 1) ** 2,
                                                                              generator=g)
    go = torch.randn(rows_per_size, (Lo + 1) ** 2, generator=g)
    a, b, go = (t.to(dev, torch.float64) for t in (a, b, go))
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    ref = F._grid_sep(a1, b1, L1, L2, Lo, "component")
    ga_ref, gb_ref = torch.autograd.grad(ref, (a1, b1), go)
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    tri = grid_product(a2, b2, L1, L2, Lo, "component")
    ga, gb = torch.autograd.grad(tri, (a2, b2), go)
    tri = tri.detach()
    ref, ga_ref, gb_ref = ref.detach(), ga_ref.detach(), gb_ref.detach()
    scale = float(ref.abs().max())
    f64 = float((tri - ref).abs().max()) / scale
    grad = max(float((ga - ga_ref).abs().max() / ga_ref.abs().max()),
               float((gb - gb_ref).abs().max() / gb_ref.abs().max()))
    with torch.no_grad():
        t32 = grid_product(a.float(), b.float(), L1, L2, Lo, "component").double()
    f32 = float((t32 - ref).norm() / ref.norm())
    ok = f64 <= 1e-10 and grad <= 1e-10 and f32 <= 1e-5
    log(f"exact ({L1},{L2})->{Lo}: float64 {f64:.1e}, grads {grad:.1e}, float32 {f32:.1e} {'ok' if ok else 'FAIL'}")
    return {"table": "exactness", "L1": L1, "L2": L2, "Lo": Lo, "rows": rows_per_size,
            "float64_max_err_over_max": f"{f64:.2e}", "float64_grad_max_err_over_max": f"{grad:.2e}",
            "float32_rel_err": f"{f32:.2e}", "bar_float64": 1e-10, "bar_float32": 1e-5, "pass": ok}


def _gradchecks(dev, grid_product, log) -> dict:
    a = torch.randn(3, 9, dtype=torch.float64, device=dev, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, device=dev, requires_grad=True)
    fn = partial(grid_product, L1=2, L2=1, Lo=3, normalization="component")
    gc = bool(torch.autograd.gradcheck(lambda x, y: fn(x, y), (a, b)))
    ggc = bool(torch.autograd.gradgradcheck(lambda x, y: fn(x, y), (a, b)))
    log(f"gradcheck {gc}, gradgradcheck {ggc}")
    return {"table": "gradcheck", "L1": 2, "L2": 1, "Lo": 3, "rows": 3, "gradcheck": gc, "gradgradcheck": ggc,
            "pass": gc and ggc}


def route_bar(L: int, batch: int, channels: int, dev, repeats: int, warmup: int, copy_gbps: float,
              log=print) -> list[dict]:
    """Every torch route and ``triton`` at ``(L, L) -> 2L`` on ``batch * channels`` float32 rows, interleaved."""
    from equinets.gaunt._triton import grid_product

    fns = {**_route_fns(), "triton": grid_product}
    assert set(fns) == {*GAUNT_ROUTES, "triton"}
    n, rows_n = (L + 1) ** 2, batch * channels
    g = torch.Generator().manual_seed(6000 + L)
    x1, x2 = (torch.randn(rows_n, n, generator=g).to(dev) for _ in range(2))
    check_routes_agree(fns, x1, x2, L)  # the same numbers before any timing
    timer, out = _timer(dev, "wall"), []
    with torch.no_grad():
        tf = timer({k: partial(f, x1, x2, L, L, 2 * L, "component") for k, f in fns.items()}, repeats, warmup)
    leaves = {k: (x1.clone().requires_grad_(), x2.clone().requires_grad_()) for k in fns}
    tb = timer({k: _fwd_bwd(partial(f, L1=L, L2=L, Lo=2 * L, normalization="component"), *leaves[k])
                for k, f in fns.items()}, repeats, warmup)
    for pas, t in (("forward", tf), ("forward+backward", tb)):
        best = min(GAUNT_ROUTES, key=lambda k: t[k].median_ms)
        for name in fns:
            gbps = _bytes_min(L, batch, channels, 4, pas) / (t[name].median_ms / 1e3) / 1e9
            out.append({"table": "routes", "L": L, "batch": batch, "channels": channels, "rows": rows_n,
                        "dtype": "float32", "pass": pas, "impl": name, "best_torch_route": best,
                        **timing_row(t[name], t[best]), "speedup_vs_best_torch": round(t[best].median_ms /
                                                                                       t[name].median_ms, 3),
                        "achieved_gbps": float(f"{gbps:.4g}"), "copy_gbps": round(copy_gbps, 2),
                        "bandwidth_fraction": float(f"{gbps / copy_gbps:.4g}")})
        log(f"L={L} B={batch} C={channels} {pas:17s} " + " ".join(f"{k}={t[k].median_ms:.3f}" for k in fns)
            + f" ms; triton {t[best].median_ms / t['triton'].median_ms:.2f}x the best torch route ({best})")
    return out


def channelwise_baselines(L: int, batch: int, channels: int, dev, repeats: int, warmup: int,
                          log=print) -> list[dict]:
    """cuEquivariance's / OpenEquivariance's channel-wise products on the Gaunt paths, timed against Triton on the
    same inputs (timed only: their path weights differ from the Gaunt coefficients)."""
    from equinets.gaunt import gaunt_product

    n = (L + 1) ** 2
    g = torch.Generator().manual_seed(7000 + L)
    x1 = torch.randn(batch, channels, n, generator=g).to(dev)
    x2 = torch.randn(batch, 1, n, generator=g).to(dev)  # one channel shared over the channels (an edge's harmonics)
    y1 = to_mul_ir(x1, L)
    y2 = x2[:, 0]
    out, timer = [], _timer(dev, "wall")
    for name, make in (("cue_channelwise", cue_channelwise_tp), ("oeq_channelwise", oeq_channelwise_tp)):
        try:
            fn = make(L, channels, dev, torch.float32)
        except Skipped as e:
            log(f"{name} skipped: {e}")
            out.append({"table": "channelwise", "L": L, "baseline": name, "skipped": str(e)})
            continue
        if hasattr(fn, "to"):
            fn = fn.to(device=dev, dtype=torch.float32)
        ours = partial(gaunt_product, route="triton")
        with torch.no_grad():
            tf = timer({name: partial(fn, y1, y2), "triton": partial(ours, x1, x2)}, repeats, warmup)
        tb = timer({name: _fwd_bwd(fn, y1.clone().requires_grad_(), y2.clone().requires_grad_()),
                    "triton": _fwd_bwd(ours, x1.clone().requires_grad_(), x2.clone().requires_grad_())},
                   repeats, warmup)
        for pas, t in (("forward", tf), ("forward+backward", tb)):
            for side in (name, "triton"):
                out.append({"table": "channelwise", "L": L, "batch": batch, "channels": channels, "pass": pas,
                            "baseline": name, "impl": side, **timing_row(t[side], t[name]),
                            "speedup": round(t[name].median_ms / t[side].median_ms, 3)})
            log(f"{name} {pas}: {t[name].median_ms:.3f} ms, triton {t['triton'].median_ms:.3f} ms "
                f"({t[name].median_ms / t['triton'].median_ms:.2f}x)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--L", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--exact-sizes", type=_size, nargs="+", default=[_size(s) for s in DEFAULT_SIZES])
    ap.add_argument("--suite", action="store_true", help="also the bench suite (L <= 12, e3nn <= 6) into OUT/suite")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "gpu")
    args = ap.parse_args(argv)
    for name in ("L", "batch", "channels", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.L > TRITON_MAX_DEGREE:
        ap.error(f"--L must be <= {TRITON_MAX_DEGREE} (the Triton route's largest input degree), got {args.L}")
    for L1, L2, Lo in args.exact_sizes:
        if max(L1, L2) > TRITON_MAX_DEGREE:
            ap.error(f"--exact-sizes {L1},{L2},{Lo}: input degrees must be <= {TRITON_MAX_DEGREE} (the Triton "
                     f"route's largest), got {max(L1, L2)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("skipped: no CUDA")
        return 0
    from equinets.gaunt._triton import check_supported

    dev = torch.device(args.device)
    try:
        check_supported(torch.zeros(1, device=dev))
    except (ImportError, RuntimeError) as e:
        ap.error(str(e))
    t0 = time.perf_counter()
    info = machine_info(dev)
    copy = copy_bandwidth(dev, mbytes=1024 if dev.type == "cuda" else 16)
    info["copy_gbps"] = round(copy, 2)
    print(f"{info['cpu']} | {info['device']} | torch {info['torch']} | copy {copy:.1f} GB/s", flush=True)
    log = partial(print, flush=True)
    exact = exactness(args.exact_sizes, dev, log=log)
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(exact, args.out / "gaunt_gpu_exactness.csv", info)
    rows = route_bar(args.L, args.batch, args.channels, dev, args.repeats, args.warmup, copy, log=log)
    rows += channelwise_baselines(args.L, args.batch, args.channels, dev, args.repeats, args.warmup, log=log)
    write_results(rows, args.out / "gaunt_gpu_bars.csv", info)
    speed = {r["pass"]: r["speedup_vs_best_torch"] for r in rows if r["table"] == "routes" and r["impl"] == "triton"}
    summary = {"device": info["device"], "exact": all(r["pass"] for r in exact), "triton_vs_best_torch": speed,
               "bar": 2.0, "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(summary), flush=True)  # before the optional suite, so that a cut-off suite keeps it
    if args.suite:
        bench_gaunt(lmax=12, e3nn_lmax=6, full_lmax=4, device=args.device, sweep_L=6, repeats=9, threads=None,
                    out=args.out / "suite", copy_mbytes=1024 if dev.type == "cuda" else 16, log=log)
    return 0 if summary["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
