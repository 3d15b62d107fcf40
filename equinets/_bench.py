"""Timing helpers shared by every benchmark (``equinets bench`` and the ``kernels/`` scripts).

A fair comparison of two or more operations needs the same conditions on every side. :func:`compare`
gives them:

* **pinned threads** -- :func:`pin_threads` sets ``torch.set_num_threads`` once, before timing;
* **warm-up** -- every operation runs ``warmup`` untimed times first (allocator, caches, lazy init);
* **interleaving** -- repeat ``r`` runs the operations in an order rotated by ``r``
  (``A B``, ``B A``, ``A B``, ... for two), so a drift in machine load falls on every side alike
  instead of on whichever ran last;
* **min, median and max** over the repeats, in milliseconds (:class:`Timing`), and the ratio of each
  side to a baseline both as a ratio of medians and as the median of the per-repeat (paired) ratios.

:func:`set_allocator` keeps glibc from mapping and zeroing fresh pages for every large tensor (which
otherwise dominated, and scattered, the timings of large forwards).

:func:`machine_info` records what the figures were measured on (CPU model, torch version, thread
count, load average), and :func:`write_results` writes it beside every row of the CSV through
:func:`equinets._atomic.write_csv`.

>>> ticks = iter(range(100))
>>> t = compare({"a": lambda: None, "b": lambda: None}, repeats=3, warmup=0, clock=lambda: next(ticks))
>>> [t["a"].times, t["b"].times]
[[1, 1, 1], [1, 1, 1]]
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._atomic import write_csv
from ._checks import check_int

__all__ = ["Timing", "compare", "interleaved_order", "pin_threads", "set_allocator", "ALLOCATORS", "cpu_model",
           "machine_info", "timing_row", "write_results"]


@dataclass
class Timing:
    """Wall times of one operation over the repeats of :func:`compare`, in seconds (``times``).

    >>> t = Timing("op", [0.003, 0.001, 0.002])
    >>> t.min_ms, t.median_ms, t.max_ms
    (1.0, 2.0, 3.0)
    """

    name: str
    times: list[float] = field(default_factory=list)
    #: minor page faults of the process during each timed run (fresh pages the kernel had to zero)
    faults: list[int] = field(default_factory=list)

    def _ms(self, f) -> float:
        if not self.times:
            raise ValueError(f"Timing {self.name!r} has no repeats")
        return 1e3 * f(self.times)

    @property
    def min_ms(self) -> float:
        return self._ms(min)

    @property
    def median_ms(self) -> float:
        return self._ms(statistics.median)

    @property
    def max_ms(self) -> float:
        return self._ms(max)


def interleaved_order(names: list[str], repeats: int) -> list[list[str]]:
    """The order of the operations in each repeat: ``names`` rotated left by the repeat index.

    >>> interleaved_order(["a", "b"], 4)
    [['a', 'b'], ['b', 'a'], ['a', 'b'], ['b', 'a']]
    >>> interleaved_order(["a", "b", "c"], 2)
    [['a', 'b', 'c'], ['b', 'c', 'a']]
    """
    repeats = check_int(repeats, "repeats", 1)
    n = len(names)
    return [[names[(r + i) % n] for i in range(n)] for r in range(repeats)]


def compare(fns: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int = 1,
            clock: Callable[[], float] = time.perf_counter, sync: Callable[[], object] | None = None,
            number: int = 1) -> dict[str, Timing]:
    """Time several zero-argument callables under the same conditions, interleaved over the repeats.

    Every callable first runs ``warmup`` untimed times (interleaved too); then repeat ``r`` times each
    ``number`` times back to back, in the order :func:`interleaved_order` gives, and records the mean
    of those calls. ``sync`` (e.g. ``torch.cuda.synchronize``) is called before the clock starts and
    before it stops, so that asynchronous devices are timed to completion. Pin the threads
    (:func:`pin_threads`) before calling.

    ``number=1`` times each call right after the other operations ran (cold caches: the data and tables
    of a small operation have been evicted by the one before it); ``number > 1`` times the steady state of
    repeated calls, as ``timeit`` and ``torch.utils.benchmark``'s blocked timing do. The two answer
    different questions; report which one a figure is.

    Args:
        fns: ``{name: callable}``, at least one; the first is the usual baseline.
        repeats: timed runs of each callable (``>= 1``).
        warmup: untimed runs of each callable before timing (``>= 0``).
        number: calls per timed run (``>= 1``); the recorded time is their mean.
        clock: time source in seconds (a fake clock in tests).
        sync: called around every timed run, or ``None``.

    Returns:
        ``{name: Timing}`` in the order of ``fns``.

    >>> ticks = iter(range(0, 100, 2))
    >>> t = compare({"a": lambda: None}, repeats=2, warmup=0, clock=lambda: next(ticks))
    >>> t["a"].times
    [2, 2]
    >>> ticks = iter(range(0, 100, 4))
    >>> compare({"a": lambda: None}, repeats=2, warmup=0, number=2, clock=lambda: next(ticks))["a"].times
    [2.0, 2.0]
    """
    if not isinstance(fns, Mapping) or not fns:
        raise ValueError(f"fns must be a non-empty mapping of name -> callable, got {fns!r}")
    for name, fn in fns.items():
        if not callable(fn):
            raise TypeError(f"fns[{name!r}] must be callable, got {type(fn).__name__}")
    repeats = check_int(repeats, "repeats", 1)
    warmup = check_int(warmup, "warmup", 0)
    number = check_int(number, "number", 1)
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    out = {name: Timing(name) for name in names}
    for order in interleaved_order(names, repeats):
        for name in order:
            if sync is not None:
                sync()
            f0 = _minor_faults()
            fn = fns[name]
            t0 = clock()
            for _ in range(number):
                fn()
            if sync is not None:
                sync()
            dt = clock() - t0
            out[name].times.append(dt if number == 1 else dt / number)
            out[name].faults.append(_minor_faults() - f0)
    return out


def _minor_faults() -> int:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except (ImportError, OSError):  # pragma: no cover - not POSIX
        return 0


def timing_row(t: Timing, base: Timing | None = None, digits: int = 3) -> dict[str, float]:
    """``min_ms``, ``median_ms``, ``max_ms`` of ``t`` and, against ``base`` (same number of repeats),
    ``ratio`` (of medians) and ``paired_ratio_min/median/max`` (of per-repeat ratios).

    >>> row = timing_row(Timing("b", [0.002, 0.004]), Timing("a", [0.001, 0.004]))
    >>> row["median_ms"], row["ratio"], row["paired_ratio_min"], row["paired_ratio_max"]
    (3.0, 1.2, 1.0, 2.0)
    """
    row = {"min_ms": round(t.min_ms, digits), "median_ms": round(t.median_ms, digits),
           "max_ms": round(t.max_ms, digits), "repeats": len(t.times)}
    if t.faults:
        row["page_faults_median"] = int(statistics.median(t.faults))
    if base is not None:
        if len(base.times) != len(t.times):
            raise ValueError(f"base must have as many repeats as {t.name!r} ({len(t.times)}), got {len(base.times)}")
        paired = [a / b for a, b in zip(t.times, base.times)]
        row.update(ratio=round(t.median_ms / base.median_ms, digits),
                   paired_ratio_min=round(min(paired), digits),
                   paired_ratio_median=round(statistics.median(paired), digits),
                   paired_ratio_max=round(max(paired), digits))
    return row


ALLOCATORS = ("steady", "default")


def set_allocator(mode: str = "steady") -> str:
    """Choose how glibc's ``malloc`` serves the large blocks of tensors, for the rest of the process.

    ``"default"`` leaves glibc as it is: blocks over its mmap threshold (at most 32 MB) are mapped
    fresh at every allocation and unmapped at every free, so each large tensor costs the kernel a
    page fault and a zeroed page per 4 KiB -- on the development machine a 32 x 8 x 1024-point
    PointNet forward took 1.45-1.58 s that way against 0.72-0.76 s on a steady heap (3.5-4.8 s when
    the machine was loaded), and the kernel's share varied up to 2x between identical calls.
    ``"steady"`` serves every block from the heap and never gives memory back
    (``mallopt(M_MMAP_MAX, 0)``; ``mallopt(M_TRIM_THRESHOLD, -1)``, which glibc reads as
    ``SIZE_MAX``): after warm-up no timed run page-faults, and the timings measure the computation.
    Call it once, before the first large tensor. Returns the mode in effect (``"default"`` where
    glibc is not available).

    >>> set_allocator("default")
    'default'
    """
    if mode not in ALLOCATORS:
        raise ValueError(f"allocator must be one of {ALLOCATORS}, got {mode!r}")
    if mode == "default":
        return "default"
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, -1) == 1
    except (OSError, AttributeError):
        ok = False
    return "steady" if ok else "default"


def pin_threads(threads: int) -> int:
    """Set torch's intra-op thread count to ``threads`` (``>= 1``) and return it.

    >>> n = torch.get_num_threads()
    >>> pin_threads(1)
    1
    >>> _ = pin_threads(n)
    """
    threads = check_int(threads, "threads", 1)
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`).

    >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(device: str | torch.device = "cpu") -> dict[str, object]:
    """What a benchmark ran on: CPU model, logical cores, torch version, threads, 1-min load average,
    and the GPU name for a CUDA ``device``.

    >>> sorted(machine_info())
    ['cores', 'cpu', 'device', 'load_avg_1min', 'threads', 'torch']
    """
    device = torch.device(device)
    try:
        load = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        load = float("nan")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_avg_1min": load, "device": name}


def write_results(rows: list[dict], path: str | Path, info: Mapping[str, object] | None = None) -> None:
    """Write ``rows`` to CSV at ``path`` with :func:`machine_info` (or ``info``) in columns beside each row.

    >>> import csv, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> write_results([{"op": "a", "median_ms": 1.0}], p, {"cpu": "X", "torch": "2"})
    >>> next(csv.DictReader(open(p)))
    {'op': 'a', 'median_ms': '1.0', 'cpu': 'X', 'torch': '2'}
    """
    info = machine_info() if info is None else info
    write_csv([{**row, **{k: v for k, v in info.items() if k not in row}} for row in rows], path)
