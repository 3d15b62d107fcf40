"""Benchmarks behind ``equinets bench``: training throughput of backbones, and the Gaunt tensor-product suite.

**Gaunt suite** (:func:`bench_gaunt`, ``equinets bench gaunt``): the routes of
:func:`equinets.gaunt.gaunt_product` against e3nn (the Gaunt-path ``TensorProduct`` and
``FullTensorProduct``) and, on CUDA, cuEquivariance / OpenEquivariance, over ``L``, batch and channels,
forward and forward+backward, with the fitted exponent in ``L`` and the achieved memory bandwidth.

**Training throughput** (clouds/s) and peak memory of backbones, measured in fresh processes.

Each model runs in its own subprocess so that its peak memory is its own: on CPU the figure is the
growth of the process's peak resident set (``ru_maxrss``) over the model-free baseline measured
after imports; on CUDA it is ``torch.cuda.max_memory_allocated``. Steps are full training steps
(forward, cross-entropy, backward, Adam) on random clouds, timed by :func:`equinets._bench.compare`
(``warmup`` untimed steps, then ``steps`` timed ones, CUDA synchronised around each), with the
thread count pinned; each row gives the min, median and max step time and the CPU model, torch
version and thread count it was measured with. Models are measured one after the other (a peak
memory per process needs that), so compare their throughputs on a quiet machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .._atomic import write_csv
from .._checks import check_int

__all__ = ["bench_training", "write_csv", "bench_gaunt", "gaunt_route_sweep", "gaunt_vs_baselines", "gaunt_paths",
           "e3nn_gaunt_tp", "e3nn_full_tp", "copy_bandwidth", "fitted_exponent", "Skipped", "GAUNT_ROUTES", "GAUNT_FILES",
           "CLOCKS", "check_routes_agree", "to_mul_ir"]


def _child(spec: dict) -> dict:
    import resource

    import torch

    from .._bench import compare, machine_info, pin_threads, set_allocator

    allocator = set_allocator(spec.get("allocator", "default"))
    if spec["threads"]:
        pin_threads(spec["threads"])
    from equinets.nn import create_model

    dev = spec["device"]
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(dev)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)
    B, N, C = spec["batch_size"], spec["num_points"], 40
    model = create_model(spec["model"], out_channels=C, task="cls", **spec.get("model_kwargs", {})).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    pos = torch.randn(B * N, 3, device=device)
    batch = torch.arange(B, device=device).repeat_interleave(N)
    y = torch.randint(0, C, (B,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        loss = torch.nn.functional.cross_entropy(model(pos, None, batch), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else None
    t = compare({"step": step}, repeats=spec["steps"], warmup=spec["warmup"], sync=sync)["step"]
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        mem_kind = "cuda_max_allocated"
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
        mem_kind = "cpu_peak_rss_growth"
    info = machine_info(device)
    return {"model": spec["model"], "device": info["device"], "threads": info["threads"], "batch_size": B,
            "num_points": N, "params": sum(p.numel() for p in model.parameters()),
            "step_ms_min": round(t.min_ms, 2), "step_ms_median": round(t.median_ms, 2),
            "step_ms_max": round(t.max_ms, 2), "steps": len(t.times), "clouds_per_s": round(B / (t.median_ms / 1e3), 2),
            "peak_mem_mb": round(peak_mb, 1), "mem_kind": mem_kind, "allocator": allocator, "cpu": info["cpu"],
            "torch": info["torch"], "load_avg_1min": info["load_avg_1min"]}


def bench_training(models, *, batch_size: int = 32, num_points: int = 1024, steps: int = 5, warmup: int = 2,
                   threads: int | None = None, device: str = "auto", allocator: str = "default",
                   model_kwargs: dict | None = None) -> list[dict]:
    """Benchmark one training step of each model in a fresh subprocess; one dict per model.

    Args:
        models: registry names (:func:`equinets.nn.create_model`).
        batch_size, num_points: ``B`` random clouds of ``N`` points per step.
        steps: timed steps (``>= 1``); the row reports their min, median and max.
        warmup: untimed steps first (``>= 0``).
        threads: torch threads (``None``: torch's default).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        allocator: ``"default"`` (glibc as users run it) or ``"steady"`` (see :func:`equinets._bench.set_allocator`).
        model_kwargs: extra constructor arguments of every model (e.g. a small ``emb_dims`` for tests).
    """
    from .._bench import ALLOCATORS

    batch_size = check_int(batch_size, "batch_size", 1)
    num_points = check_int(num_points, "num_points", 1)
    steps = check_int(steps, "steps", 1)
    warmup = check_int(warmup, "warmup", 0)
    threads = check_int(threads, "threads", 1, allow_none=True)
    if allocator not in ALLOCATORS:
        raise ValueError(f"allocator must be one of {ALLOCATORS}, got {allocator!r}")
    rows = []
    for m in models:
        spec = {"model": m, "batch_size": batch_size, "num_points": num_points, "steps": steps, "warmup": warmup,
                "threads": threads, "device": device, "allocator": allocator, "model_kwargs": dict(model_kwargs or {})}
        r = subprocess.run([sys.executable, "-m", "equinets.train.bench", json.dumps(spec)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"benchmark of {m!r} failed:\n{r.stderr[-2000:]}")
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return rows


# ------------------------------------------------------------------------------- Gaunt tensor products

#: The torch implementations of :func:`equinets.gaunt.gaunt_product` timed by :func:`bench_gaunt` (``"triton"``
#: is added on CUDA when triton is installed).
GAUNT_ROUTES = ("grid_dense", "grid_sep", "grid_sep_fft", "fourier")
#: Files :func:`bench_gaunt` writes into its ``out`` directory.
GAUNT_FILES = ("gaunt_routes.csv", "gaunt_vs_e3nn.csv", "gaunt_sweeps.csv", "gaunt_routes.png", "gaunt_sweeps.png")


class Skipped(Exception):
    """A baseline that cannot run here (not installed, no GPU, ...): its message is the printed reason."""


def _sh_irreps(L: int, channels: int = 1):
    from e3nn import o3

    return o3.Irreps([(channels, (l, (-1) ** l)) for l in range(L + 1)])


def gaunt_paths(L1: int, L2: int, Lo: int) -> list[tuple[int, int, int]]:
    """The Gaunt paths ``(l1, l2, l3)`` of ``(L1, L2) -> Lo``: the triangle holds and ``l1 + l2 + l3`` is even.

    >>> gaunt_paths(1, 1, 2)
    [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0), (1, 1, 2)]
    """
    return [(l1, l2, l3) for l1 in range(L1 + 1) for l2 in range(L2 + 1) for l3 in range(Lo + 1)
            if abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0]


def e3nn_gaunt_tp(L: int, channels: int = 1):
    """e3nn's ``TensorProduct`` on exactly the Gaunt paths of ``(L, L) -> 2L``, channel-wise (``"uuu"``).

    Path weights ``c(l1, l2, l3)**2`` (e3nn takes their square root) with ``irrep_normalization="none"`` and
    ``path_normalization="none"``: the same numbers as ``gaunt_product(..., normalization="integral")``
    (the research note's construction, checked by :func:`bench_gaunt` before timing). Returns the module
    and its number of paths.
    """
    from e3nn import o3

    from ..gaunt.tables import gaunt_c

    irreps, iro = _sh_irreps(L, channels), _sh_irreps(2 * L, channels)
    instr = [(l1, l2, l3, "uuu", False, gaunt_c(l1, l2, l3) ** 2) for l1, l2, l3 in gaunt_paths(L, L, 2 * L)]
    tp = o3.TensorProduct(irreps, irreps, iro, instr, irrep_normalization="none", path_normalization="none")
    return tp, len(instr)


def e3nn_full_tp(L: int):
    """e3nn's ``FullTensorProduct`` of two SH-parity signals of degree ``L`` (every Clebsch-Gordan path, odd ones too).

    It computes more than the Gaunt product (a separate output per path, ``(L + 1)**4`` numbers): the
    product a user of e3nn reaches for first. Returns the module and its number of paths.
    """
    from e3nn import o3

    tp = o3.FullTensorProduct(_sh_irreps(L), _sh_irreps(L))
    return tp, len(tp.instructions)


def cue_channelwise_tp(L: int, channels: int, device, dtype):
    """cuEquivariance's ``ChannelWiseTensorProduct`` on the Gaunt paths of ``(L, L) -> 2L`` (a ``Skipped`` if absent).

    The output filter ``0e + 1o + ... + (2L)`` keeps exactly the even-sum paths (for SH-parity inputs a
    path's parity is ``(-1)**(l1 + l2)``); one output irrep per path (not summed per degree), unit
    shared weights. CUDA only.
    """
    try:
        import cuequivariance as cue
        import cuequivariance_torch as cuet
    except ImportError as e:
        raise Skipped(f"cuequivariance_torch is not installed ({e})") from None
    if torch_device(device).type != "cuda":
        raise Skipped("cuEquivariance's kernels need a CUDA device")
    irr = cue.Irreps("O3", str(_sh_irreps(L, channels)))
    sh = cue.Irreps("O3", str(_sh_irreps(L)))
    out = cue.Irreps("O3", str(_sh_irreps(2 * L)))
    return cuet.ChannelWiseTensorProduct(irr, sh, filter_irreps_out=out, layout=cue.mul_ir, shared_weights=True,
                                         internal_weights=True, device=device, dtype=dtype)


def oeq_channelwise_tp(L: int, channels: int, device, dtype):
    """OpenEquivariance's ``TensorProduct`` (``"uvu"``, the Gaunt paths, unit shared weights) or a ``Skipped``."""
    try:
        import openequivariance as oeq
    except ImportError as e:
        raise Skipped(f"openequivariance is not installed ({e})") from None
    if torch_device(device).type != "cuda":
        raise Skipped("OpenEquivariance's kernels need a CUDA device")
    import torch

    irr, sh, iro = _sh_irreps(L, channels), _sh_irreps(L), _sh_irreps(2 * L, channels)
    instr = [(l1, l2, l3, "uvu", True) for l1, l2, l3 in gaunt_paths(L, L, 2 * L)]
    problem = oeq.TPProblem(irr, sh, iro, instr, shared_weights=True, internal_weights=False)
    tp = oeq.TensorProduct(problem, torch_op=True)
    w = torch.ones(problem.weight_numel, device=device, dtype=dtype)
    return lambda a, b: tp(a, b, w)


def torch_device(device):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def copy_bandwidth(device, *, mbytes: int = 256, repeats: int = 9) -> float:
    """The device's measured copy bandwidth in GB/s (read + write) of a ``mbytes`` MB float32 ``copy_``, median.

    >>> copy_bandwidth("cpu", mbytes=1, repeats=3) > 0
    True
    """
    import torch

    from .._bench import compare

    device = torch_device(device)
    n = mbytes * 2**20 // 4
    a, b = torch.empty(n, device=device), torch.empty(n, device=device)
    a.normal_()
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    t = compare({"copy": lambda: b.copy_(a)}, repeats=repeats, warmup=2, sync=sync)["copy"]
    return 2 * n * 4 / (t.median_ms / 1e3) / 1e9


def fitted_exponent(Ls, times) -> float:
    """The slope of ``log(time)`` against ``log(L)`` by least squares (``nan`` with fewer than two points).

    >>> round(fitted_exponent([2, 4, 8], [1.0, 8.0, 64.0]), 6)
    3.0
    """
    import numpy as np

    Ls, times = list(Ls), list(times)
    if len(Ls) < 2:
        return float("nan")
    return float(np.polyfit(np.log(Ls), np.log(times), 1)[0])


def check_routes_agree(fns: dict, x1, x2, L: int) -> None:
    """Every route ``fn(x1, x2, L, L, 2L, "component")`` in ``fns`` within 1e-5 (relative) of the float64 separable
    grid route on these inputs, or a ``RuntimeError`` naming the route: the same numbers before any timing.

    >>> import torch
    >>> x1, x2 = torch.randn(4, 9), torch.randn(4, 9)
    >>> check_routes_agree(_route_fns(), x1, x2, 2)  # every torch route: silent
    >>> check_routes_agree({"zero": lambda a, b, *args: torch.zeros(4, 25)}, x1, x2, 2)
    Traceback (most recent call last):
    ...
    RuntimeError: route zero at L=2 disagrees with the float64 grid route: relative error 1.00e+00
    """
    import torch

    from ..gaunt import functional as F

    ref = F._grid_sep(x1.double(), x2.double(), L, L, 2 * L, "component")
    with torch.no_grad():
        for name, fn in fns.items():
            err = float((fn(x1, x2, L, L, 2 * L, "component").double() - ref).norm() / ref.norm())
            if not err < 1e-5:
                raise RuntimeError(f"route {name} at L={L} disagrees with the float64 grid route: relative error "
                                   f"{err:.2e}")


def to_mul_ir(x, L: int):
    """``(batch, channels, (L+1)**2)`` (equinets: channels outside the coefficients) -> ``(batch, dim)`` in e3nn's
    ``mul_ir`` layout of ``channels x (0e + 1o + ... + L)`` (the channels inside each degree).

    >>> import torch
    >>> x = torch.arange(8.0).view(1, 2, 4)  # 2 channels of degrees 0..1
    >>> to_mul_ir(x, 1).tolist()  # both 0e, then both 1o
    [[0.0, 4.0, 1.0, 2.0, 3.0, 5.0, 6.0, 7.0]]
    """
    import torch

    return torch.cat([x[..., l * l:(l + 1) ** 2].reshape(x.shape[0], -1) for l in range(L + 1)], -1)


def _route_fns():
    from functools import partial

    from ..gaunt import functional as F

    return {"grid_dense": F._grid_dense, "grid_sep": F._grid_sep, "grid_sep_fft": partial(F._grid_sep, azimuth="fft"),
            "fourier": F._fourier}


CLOCKS = ("wall", "cpu")


def _timer(device, clock: str = "wall", number: int = 1):
    """``compare`` with CUDA synchronised around every run, on the wall clock or the thread's CPU clock;
    ``number`` calls per timed run (:func:`~equinets._bench.compare`).

    ``clock="cpu"`` (``time.thread_time``, CPU only) counts only the time the timing thread ran: on a
    machine shared with other jobs it leaves out the time the scheduler gave to them (a preempted
    1 ms product otherwise reads as a whole time slice), not their effect on the caches.
    """
    import time

    import torch

    from .._bench import compare

    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    cuda = torch_device(device).type == "cuda"
    if cuda and clock == "cpu":
        raise ValueError("clock='cpu' times the host thread only: use clock='wall' on CUDA")
    sync = torch.cuda.synchronize if cuda else None
    tick = time.thread_time if clock == "cpu" else time.perf_counter
    return lambda fns, repeats, warmup: compare(fns, repeats=repeats, warmup=warmup, sync=sync, clock=tick,
                                                number=number)


def _fwd_bwd(fn, a, b):
    import torch

    def run():
        out = fn(a, b)
        out.backward(torch.ones_like(out))
    return run


def _bytes_min(L: int, batch: int, channels: int, itemsize: int, passes: str) -> int:
    """The least memory traffic of one product: both inputs read and the output written (twice for fwd+bwd)."""
    n = 2 * (L + 1) ** 2 + (2 * L + 1) ** 2
    return n * batch * channels * itemsize * (1 if passes == "forward" else 3)


def gaunt_route_sweep(Ls, *, batch: int = 256, device="cpu", repeats: int = 15, warmup: int = 2, clock: str = "wall",
                      log=print) -> list[dict]:
    """Forward times of every route at ``(L, L) -> 2L`` for each ``L`` (float32, one channel), interleaved per ``L``."""
    from functools import partial

    import torch

    from .._bench import timing_row

    dev = torch_device(device)
    fns_all = _route_fns()
    if dev.type == "cuda":
        try:
            from ..gaunt import _triton

            _triton._import_triton()
            fns_all["triton"] = _triton.grid_product
        except ImportError as e:
            log(f"triton route skipped: {e}")
    timer, rows = _timer(dev, clock), []
    for L in Ls:
        g = torch.Generator().manual_seed(L)
        x1, x2 = (torch.randn(batch, (L + 1) ** 2, generator=g).to(dev) for _ in range(2))
        check_routes_agree(fns_all, x1, x2, L)
        fns = {name: partial(fn, x1, x2, L, L, 2 * L, "component") for name, fn in fns_all.items()}
        with torch.no_grad():
            t = timer(fns, repeats if L <= 10 else max(5, repeats // 2), warmup)
        for name in fns:
            rows.append({"table": "routes", "L": L, "D": 4 * L, "impl": name, "batch": batch, "channels": 1,
                         "dtype": "float32", "pass": "forward", "clock": clock, **timing_row(t[name], t["grid_sep"])})
        log(f"routes L={L:2d} " + " ".join(f"{n}={t[n].median_ms:8.3f}" for n in fns))
    best = {}
    for r in rows:
        best[r["L"]] = min(best.get(r["L"], float("inf")), r["median_ms"])
    fit = [L for L in sorted(best) if 4 <= L <= 16]
    slope = fitted_exponent(fit, [best[L] for L in fit])
    for r in rows:
        r["fit_exponent_L4_16"] = round(slope, 3)
    return rows


def _baselines(L: int, channels: int, dev, dtype, e3nn_ok: dict, log):
    """``{name: (callable, paths, build_s)}`` of the baselines that run at this size (printing why others do not)."""
    import time

    out = {}
    makers = {"e3nn_gaunt_tp": lambda: e3nn_gaunt_tp(L, channels)}
    if channels == 1:
        makers["e3nn_full_tp"] = lambda: e3nn_full_tp(L)
    if dev.type == "cuda":
        makers["cue_channelwise"] = lambda: (cue_channelwise_tp(L, channels, dev, dtype), len(gaunt_paths(L, L, 2 * L)))
        makers["oeq_channelwise"] = lambda: (oeq_channelwise_tp(L, channels, dev, dtype), len(gaunt_paths(L, L, 2 * L)))
    for name, make in makers.items():
        if name in e3nn_ok and not e3nn_ok[name]:
            continue
        t0 = time.perf_counter()
        try:
            fn, paths = make()
        except Skipped as e:
            log(f"{name} skipped: {e}")
            e3nn_ok[name] = False
            continue
        if hasattr(fn, "to"):
            fn = fn.to(device=dev, dtype=dtype)
        out[name] = (fn, paths, round(time.perf_counter() - t0, 2))
    return out


def gaunt_vs_baselines(Ls, *, batch: int = 256, channels: int = 1, device="cpu", repeats: int = 15, warmup: int = 2,
                       e3nn_lmax: int = 12, full_lmax: int = 8, budget_ms: float = 400.0, copy_gbps: float | None = None,
                       table: str = "vs_e3nn", clock: str = "wall", number: int = 1, log=print) -> list[dict]:
    """``gaunt_product`` (``route="auto"``) against each baseline, forward and forward+backward, one pair at a time.

    Each baseline is timed interleaved with equinets on the same inputs (its own :func:`~equinets._bench.compare`
    run, so the ratio is measured in one run). e3nn's Gaunt-path ``TensorProduct`` runs up to ``e3nn_lmax``, its
    ``FullTensorProduct`` up to ``full_lmax``; a baseline whose forward took more than ``budget_ms`` is not run
    at larger ``L``. ``number``: calls per timed run (1: each call right after the other side's, cold caches;
    more: the steady state of back-to-back calls, :func:`~equinets._bench.compare`). With ``copy_gbps`` every row
    also gives the achieved bandwidth of the least traffic (:func:`_bytes_min`) and its fraction of the copy bandwidth.
    """
    from functools import partial

    import torch

    from .._bench import timing_row
    from ..gaunt import gaunt_product

    dev = torch_device(device)
    dtype = torch.float32
    timer, rows, alive = _timer(dev, clock, number), [], {}
    ours = partial(gaunt_product, normalization="integral")
    for L in Ls:
        g = torch.Generator().manual_seed(100 + L)
        n = (L + 1) ** 2
        x1, x2 = (torch.randn(batch, channels, n, generator=g).to(dev) for _ in range(2))
        limits = {"e3nn_gaunt_tp": e3nn_lmax, "e3nn_full_tp": full_lmax}
        for name, lim in limits.items():
            if L > lim:
                alive[name] = False
        for name, (fn, paths, build_s) in _baselines(L, channels, dev, dtype, alive, log).items():
            # e3nn's layout: channels inside each degree (mul_ir); ours: (batch, channels, coefficients)
            irreps = _sh_irreps(L, channels)
            y1, y2 = to_mul_ir(x1, L), to_mul_ir(x2, L)
            if name in ("cue_channelwise", "oeq_channelwise"):
                y2 = x2[:, 0]
            assert y1.shape[-1] == irreps.dim
            err = ""
            if name == "e3nn_gaunt_tp":
                a = ours(x1, x2)
                b = fn(y1, y2)
                b = torch.cat([b[:, l3 * l3 * channels:(l3 + 1) ** 2 * channels].reshape(batch, channels, 2 * l3 + 1)
                               for l3 in range(2 * L + 1)], -1)  # mul_ir -> (batch, channels, coefficients)
                rel = float((a - b).norm() / b.norm())
                if not rel < 1e-4:
                    raise RuntimeError(f"e3nn's Gaunt-path TensorProduct and gaunt_product differ at L={L}: {rel:.2e}")
                err = f"{rel:.1e}"
            sides = {name: partial(fn, y1, y2), "equinets": partial(ours, x1, x2)}
            with torch.no_grad():
                tf = timer(sides, repeats if L <= 8 else max(5, repeats // 2), warmup)
            a1, a2 = y1.clone().requires_grad_(), y2.clone().requires_grad_()
            b1, b2 = x1.clone().requires_grad_(), x2.clone().requires_grad_()
            tb = timer({name: _fwd_bwd(fn, a1, a2), "equinets": _fwd_bwd(ours, b1, b2)},
                       repeats if L <= 8 else max(5, repeats // 2), warmup)
            for pas, t in (("forward", tf), ("forward+backward", tb)):
                for side in (name, "equinets"):
                    row = {"table": table, "L": L, "baseline": name, "impl": side, "paths": paths, "batch": batch,
                           "channels": channels, "dtype": "float32", "pass": pas, "clock": clock,
                           "number": number, **timing_row(t[side], t[name]),
                           "same_math_rel_err": err if side == "equinets" else ""}
                    row["build_s"] = build_s if side == name else ""
                    row["speedup"] = round(t[name].median_ms / t[side].median_ms, 2)
                    if copy_gbps:
                        gbps = _bytes_min(L, batch, channels, 4, pas) / (t[side].median_ms / 1e3) / 1e9
                        row.update(achieved_gbps=round(gbps, 3), copy_gbps=round(copy_gbps, 2),
                                   bandwidth_fraction=round(gbps / copy_gbps, 4))
                    rows.append(row)
                log(f"{table} L={L:2d} C={channels:3d} B={batch:5d} n={number} {pas:17s} "
                    f"{name}={t[name].median_ms:9.3f} ms  "
                    f"equinets={t['equinets'].median_ms:8.3f} ms ({t[name].median_ms / t['equinets'].median_ms:6.1f}x)")
            if tf[name].median_ms > budget_ms:
                log(f"{name}: {tf[name].median_ms:.0f} ms > {budget_ms:.0f} ms at L={L}; larger L not run")
                alive[name] = False
    return rows


def plot_gaunt(route_rows: list[dict], base_rows: list[dict], sweep_rows: list[dict], out, title: str) -> list:
    """Log-log plots: time against L (routes and baselines, forward) and the batch/channel sweeps. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._atomic import atomic_open

    written = []
    if route_rows or base_rows:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, pas in zip(axes, ("forward", "forward+backward")):
            for impl in dict.fromkeys(r["impl"] for r in route_rows):
                sel = [r for r in route_rows if r["impl"] == impl and r["pass"] == pas]
                if sel:
                    ax.loglog([r["L"] for r in sel], [r["median_ms"] for r in sel], "o-", ms=3, label=f"route {impl}")
            for base in dict.fromkeys(r["baseline"] for r in base_rows):
                for side in (base, "equinets"):
                    sel = [r for r in base_rows if r["baseline"] == base and r["impl"] == side and r["pass"] == pas]
                    if sel:
                        ax.loglog([r["L"] for r in sel], [r["median_ms"] for r in sel], "s--" if side == base else "^-",
                                  ms=3, label=side if side == base else f"equinets (vs {base})")
            ax.set_xlabel("L (inputs of degree L, output 2L)")
            ax.set_ylabel("median time (ms)")
            ax.set_title(pas)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(title, fontsize=8)
        fig.tight_layout()
        path = Path(out) / "gaunt_routes.png"
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        plt.close(fig)
        written.append(path)
    if sweep_rows:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, key in zip(axes, ("batch", "channels")):
            sel_tab = [r for r in sweep_rows if r["table"] == f"sweep_{key}"]
            for base in dict.fromkeys(r["baseline"] for r in sel_tab):
                for side in (base, "equinets"):
                    for pas in ("forward", "forward+backward"):
                        sel = [r for r in sel_tab if r["baseline"] == base and r["impl"] == side and r["pass"] == pas]
                        if sel:
                            ax.loglog([r[key] for r in sel], [r["median_ms"] for r in sel], "o-" if side == "equinets"
                                      else "s--", ms=3, label=f"{side} {pas}" + ("" if side == base else f" (vs {base})"))
            ax.set_xlabel(key)
            ax.set_ylabel("median time (ms)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(title, fontsize=8)
        fig.tight_layout()
        path = Path(out) / "gaunt_sweeps.png"
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def bench_gaunt(*, lmax: int = 16, e3nn_lmax: int = 12, full_lmax: int = 8, device: str = "cpu", batch: int = 256,
                sweep_L: int = 6, batches=(16, 64, 256, 1024), channels=(1, 4, 16, 64), repeats: int = 15,
                warmup: int = 2, threads: int | None = 1, out=None, budget_ms: float = 400.0, plots: bool = True,
                allocator: str = "steady", copy_mbytes: int = 256, clock: str = "wall",
                log=print) -> dict[str, list[dict]]:
    """The Gaunt benchmark suite (``equinets bench gaunt``): routes, baselines, sweeps, exponent, bandwidth.

    Products ``(L, L) -> 2L`` of SH-parity signals (``0e + 1o + 2e + ...``), float32:

    * ``routes``: every route of :func:`equinets.gaunt.gaunt_product` (and the Triton kernel on CUDA), forward,
      ``L = 1..lmax``, one channel, batch ``batch``, checked against the float64 grid route first; the fitted
      exponent of the fastest route's median time in ``L`` over ``L = 4..16`` (:func:`fitted_exponent`);
    * ``vs_e3nn``: ``route="auto"`` against e3nn's ``TensorProduct`` on the same Gaunt paths
      (:func:`e3nn_gaunt_tp`, ``L <= e3nn_lmax``, same numbers checked), e3nn's ``FullTensorProduct``
      (:func:`e3nn_full_tp`, ``L <= full_lmax``) and, on CUDA, cuEquivariance's and OpenEquivariance's
      channel-wise products when importable (else skipped with the reason printed); forward and
      forward+backward, each baseline interleaved with equinets in its own run;
    * ``sweep_batch`` / ``sweep_channels``: the same at ``L = sweep_L`` over ``batches`` (one channel) and
      ``channels`` (batch ``batch``).

    Every side: warm-up, interleaved repeats, medians (:func:`equinets._bench.compare`), threads pinned to
    ``threads`` (``None``: torch's default), CUDA synchronised around every timed run, on the wall clock or
    (``clock="cpu"``, CPU only) the timing thread's CPU clock (:func:`_timer`); the copy bandwidth
    of the device is measured (:func:`copy_bandwidth` of ``copy_mbytes`` MB) and each baseline row gives its
    achieved bandwidth and the fraction. Writes :data:`GAUNT_FILES` into ``out`` (atomically; ``None``: nothing
    written).

    Returns:
        ``{"routes": rows, "vs_e3nn": rows, "sweeps": rows}``; every row carries the machine (CPU, GPU,
        torch, threads, load).
    """
    from .._bench import machine_info, pin_threads, set_allocator

    lmax = check_int(lmax, "lmax", 0)
    e3nn_lmax = check_int(e3nn_lmax, "e3nn_lmax", 0)
    full_lmax = check_int(full_lmax, "full_lmax", 0)
    batch = check_int(batch, "batch", 1)
    sweep_L = check_int(sweep_L, "sweep_L", 0, allow_none=True)
    repeats = check_int(repeats, "repeats", 1)
    warmup = check_int(warmup, "warmup", 0)
    threads = check_int(threads, "threads", 1, allow_none=True)
    copy_mbytes = check_int(copy_mbytes, "copy_mbytes", 1)
    batches = [check_int(b, "batches", 1) for b in batches]
    channels = [check_int(c, "channels", 1) for c in channels]
    from ..errors import SetupError
    from ..gaunt.tables import MAX_DEGREE

    for name, v in (("lmax", lmax), ("e3nn_lmax", e3nn_lmax), ("full_lmax", full_lmax), ("sweep_L", sweep_L or 0)):
        if v > MAX_DEGREE:
            raise SetupError(f"{name} must be <= {MAX_DEGREE} (the largest supported degree), got {v}")
    if device not in ("auto", "cpu", "cuda"):
        raise SetupError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if clock not in CLOCKS:
        raise SetupError(f"clock must be one of {CLOCKS}, got {clock!r}")
    import torch

    dev = torch_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SetupError("device 'cuda' was asked for but torch.cuda.is_available() is False (no GPU or a CPU build)")
    if dev.type == "cuda" and clock == "cpu":
        raise SetupError("clock 'cpu' times the host thread only; use clock 'wall' on CUDA")
    alloc = set_allocator(allocator) if dev.type == "cpu" else "cuda"
    if threads is not None:
        pin_threads(threads)
    info = {**machine_info(dev), "allocator": alloc}
    log(f"{info['cpu']} | {info['device']} | torch {info['torch']} | threads {info['threads']} | "
        f"load {info['load_avg_1min']}")
    copy = copy_bandwidth(dev, mbytes=copy_mbytes)
    info["copy_gbps"] = round(copy, 2)
    log(f"copy bandwidth {copy:.1f} GB/s")
    res = {"routes": [], "vs_e3nn": [], "sweeps": []}
    if lmax >= 1:
        res["routes"] = gaunt_route_sweep(range(1, lmax + 1), batch=batch, device=dev, repeats=repeats,
                                          warmup=warmup, clock=clock, log=log)
        log(f"fastest route's time ~ L^{res['routes'][0]['fit_exponent_L4_16']} over L = 4..16")
    top = max(e3nn_lmax, full_lmax)
    if top >= 1:
        res["vs_e3nn"] = gaunt_vs_baselines(range(1, top + 1), batch=batch, device=dev, repeats=repeats,
                                            warmup=warmup, e3nn_lmax=e3nn_lmax, full_lmax=full_lmax,
                                            budget_ms=budget_ms, copy_gbps=copy, clock=clock, log=log)
    if sweep_L:
        kw = dict(device=dev, repeats=repeats, warmup=warmup, e3nn_lmax=sweep_L, full_lmax=sweep_L,
                  budget_ms=float("inf"), copy_gbps=copy, clock=clock, log=log)
        for b in batches:
            res["sweeps"] += gaunt_vs_baselines([sweep_L], batch=b, channels=1, table="sweep_batch", **kw)
        for c in channels:
            res["sweeps"] += gaunt_vs_baselines([sweep_L], batch=batch, channels=c, table="sweep_channels", **kw)
    if out is not None:
        from .._bench import write_results

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for key, name in (("routes", "gaunt_routes.csv"), ("vs_e3nn", "gaunt_vs_e3nn.csv"), ("sweeps", "gaunt_sweeps.csv")):
            if res[key]:
                write_results(res[key], out / name, info)
        if plots:
            title = (f"Gaunt products (L, L) -> 2L, float32 -- {info['device'] if dev.type == 'cuda' else info['cpu']}, "
                     f"torch {info['torch']}, {info['threads']} thread(s)")
            plot_gaunt(res["routes"], res["vs_e3nn"], res["sweeps"], out, title)
    return res


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
