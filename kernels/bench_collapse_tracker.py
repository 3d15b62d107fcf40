"""Benchmark: :class:`equinets.collapse.CollapseTracker` against a bare ``X^T X`` over the same batches.

On ``N`` float32 features of dimension ``d`` with ``K`` classes (default 1,000,000 x 512, K = 100, generated
in chunks, class means of norm ~100, unit spread), streamed in batches of ``B`` rows:

* ``xtx``: the baseline, ``acc += X_b^T X_b`` (float32 GEMM per batch, accumulated in float64 like the
  tracker's scatter): the cost of one uncentred second moment, nothing else;
* ``tracker``: ``CollapseTracker.update(X_b, y_b)`` per batch (centring on running class means,
  ``index_add_`` class sums, the same float32 GEMM, a rank-K Chan merge in float64), then ``compute()``.

Both run interleaved over the repeats after a warm-up, at each thread count in turn (default 1 and 2),
with pinned threads; rows give min/median/max seconds per full pass and the speed ratio ``xtx / tracker``
(the bar: >= 0.5). The tracker's peak memory beyond the data is measured by sampling the process RSS
every 2 ms during one extra pass (glibc's default allocator, after one untimed ``xtx`` pass and a throwaway
float64 GEMM and SVD have made the BLAS/LAPACK library allocate its own buffers, before any timing; without
the float64 warm-up the first pass peaks ~5 MB higher), and reported beside the
``(K d + d^2) * 8`` bytes of its float64 state, its reused workspace of centred rows (one chunk of
:func:`~equinets.collapse.metrics.accumulate_`, at most 2^20 elements: ``workspace_mb``) and the temporaries
one warm ``update`` creates (``update_temporaries_mb``, counted tensor by tensor with a dispatch mode: ~10
``K x d`` float64 and the ``d x d`` float32 product); ``stated_bound_mb`` is their sum, the bound the
tracker's docstring states. Allocator slack (freed temporaries glibc keeps mapped) comes on top in
``peak_extra_mb``, which is compared with issue #10's bound ``K d + d^2`` float64 plus one batch
(``issue_bound_mb`` = state + ``batch_mb``, ``within_issue_bound``). Writes
``kernels/results/collapse_tracker.csv`` and ``kernels/results/collapse_tracker.png``.

**Threads on a busy machine.** With OpenMP's default (active) waiting, every parallel operation ends in a
barrier at which the threads spin; on an oversubscribed machine (other processes on the cores) a spinning
thread burns the time slice its partner needs, and the tracker, with about fifteen parallel element-wise
operations per batch against the bare product's one GEMM, pays it fifteen times. ``OMP_WAIT_POLICY=PASSIVE``
makes waiting threads sleep; the rows record the policy of each run (``collapse_tracker.csv``: the default
policy; ``collapse_tracker_passive.csv``: ``OMP_WAIT_POLICY=PASSIVE``, written with ``--out``).

Usage::

    OMP_NUM_THREADS=1 nice -n 10 python kernels/bench_collapse_tracker.py [--n 1000000] [--dim 512] \\
        [--classes 100] [--batch 8192] [--threads 1 2] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import torch

from equinets._bench import compare, pin_threads, timing_row, write_results
from equinets.collapse import CollapseTracker, nc_metrics

RESULTS = Path(__file__).resolve().parent / "results"


def make_data(n: int, d: int, K: int, seed: int = 0, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, d)`` float32 features and ``(n,)`` labels, generated chunk by chunk (no float64 copy)."""
    g = torch.Generator().manual_seed(seed)
    means = 100.0 * torch.randn(K, d, generator=g) / d**0.5  # class means of norm ~100, unit spread
    X = torch.empty(n, d)
    y = torch.randint(0, K, (n,), generator=g)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        X[a:b] = torch.randn(b - a, d, generator=g)
        X[a:b] += means[y[a:b]]
    return X, y


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class PeakRSS:
    """Sample the resident set size every ``interval`` seconds in a thread; ``peak`` is the maximum seen."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def __enter__(self):
        self.start = rss_bytes()
        self.peak = self.start
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_bytes())


def transient_bytes(tracker: CollapseTracker, xb: torch.Tensor, yb: torch.Tensor) -> int:
    """Bytes of the new tensors (not views, not in-place results) one warm ``update`` creates: its temporaries."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    total = [0]

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            inputs = {a.untyped_storage().data_ptr() for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)}
            for o in tree_leaves(out):
                if isinstance(o, torch.Tensor) and o.untyped_storage().data_ptr() not in inputs:
                    total[0] += o.numel() * o.element_size()
            return out

    with Count():
        tracker.update(xb, yb)
    return total[0]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--batch", type=int, default=8192)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="a smoke run: 20,000 x 64, K = 10, one thread")
    p.add_argument("--out", type=Path, default=RESULTS / "collapse_tracker.csv")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.dim, a.classes, a.batch, a.threads, a.repeats = 20_000, 64, 10, 2048, [1], 2
    n, d, K, B = a.n, a.dim, a.classes, a.batch
    X, y = make_data(n, d, K)
    spans = [(s, min(s + B, n)) for s in range(0, n, B)]

    def xtx():
        acc = torch.zeros(d, d, dtype=torch.float64)
        for s, e in spans:
            xb = X[s:e]
            acc += (xb.T @ xb).double()
        return acc

    def track():
        tr = CollapseTracker(K, d)
        for s, e in spans:
            tr.update(X[s:e], y[s:e])
        return tr.compute()

    pin_threads(a.threads[0])
    xtx()  # the BLAS library's own buffers, allocated by the first GEMM of the process, are not the tracker's
    # nor are those of the first float64 GEMM and SVD (LAPACK) of the process: ~5 MB here (a cold pass peaks at
    # 29.4-29.8 MB extra, a warm one at 22.7-25.4 MB on 100k rows); warm them with a throwaway K x d problem
    m64 = torch.randn(K, d, dtype=torch.float64)
    torch.zeros(d, d, dtype=torch.float64).addmm_(m64.T, m64)
    torch.linalg.svd(m64, full_matrices=False)
    del m64
    with PeakRSS() as mem:  # one pass, before any timing: the tracker's own peak beyond the data
        got = track()
    state_bytes = (K * d + d * d + 2 * K) * 8
    batch_bytes = B * d * 4
    warm = CollapseTracker(K, d)
    warm.update(X[:B], y[:B])
    temp_bytes = transient_bytes(warm, X[B:2 * B], y[B:2 * B])  # the temporaries of one warm update
    work_bytes = warm._workspace.numel() * warm._workspace.element_size()  # the reused centred-rows chunk
    # correctness on a slice in float64 (the full set would need a float64 copy of 4 GB)
    m = min(n, 100_000)
    tr = CollapseTracker(K, d)
    for s in range(0, m, B):
        tr.update(X[s:min(s + B, m)], y[s:min(s + B, m)])
    ref = nc_metrics(X[:m].double(), y[:m])
    rel_nc1 = abs(tr.compute()["nc1"] - ref["nc1"]) / ref["nc1"]
    rows = []
    for threads in a.threads:
        pin_threads(threads)
        t = compare({"xtx": xtx, "tracker": track}, repeats=a.repeats, warmup=1)
        base = t["xtx"]
        for name, tm in t.items():
            row = {"op": name, "n": n, "dim": d, "classes": K, "batch": B, "threads": threads,
                   "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"), **timing_row(tm, base)}
            row["speed_vs_xtx"] = round(base.median_ms / tm.median_ms, 3)
            if name == "tracker":
                row.update(peak_extra_mb=round((mem.peak - mem.start) / 2**20, 2),
                           state_bound_mb=round(state_bytes / 2**20, 2), batch_mb=round(batch_bytes / 2**20, 2),
                           update_temporaries_mb=round(temp_bytes / 2**20, 2),
                           workspace_mb=round(work_bytes / 2**20, 2),
                           stated_bound_mb=round((state_bytes + work_bytes + temp_bytes) / 2**20, 2),
                           issue_bound_mb=round((state_bytes + batch_bytes) / 2**20, 2),
                           within_issue_bound=bool(mem.peak - mem.start <= state_bytes + batch_bytes),
                           nc1=got["nc1"], nc1_rel_err_vs_float64_100k=f"{rel_nc1:.2e}")
            rows.append(row)
            print({k: v for k, v in row.items()}, flush=True)
    write_results(rows, a.out)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        for i, name in enumerate(("xtx", "tracker")):
            r = [row for row in rows if row["op"] == name]
            ax.bar([j + 0.38 * i for j in range(len(r))], [row["median_ms"] / 1e3 for row in r], width=0.36,
                   label={"xtx": "bare X^T X (float32 GEMM)", "tracker": "CollapseTracker.update"}[name])
        ax.set_xticks([j + 0.19 for j in range(len(a.threads))], [f"{t} thread{'s' * (t > 1)}" for t in a.threads])
        ax.set_ylabel("seconds per pass (median)")
        ax.set_title(f"{n:,} x {d} float32, K = {K}, batch {B}", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(a.out.with_suffix(".png"), dpi=120)
    except ImportError:  # pragma: no cover
        pass


if __name__ == "__main__":
    main()
