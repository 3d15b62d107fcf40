"""The shared timing helper (equinets._bench) on a fake clock, and the benchmark scripts' --quick runs."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from equinets import _bench

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """A clock that only moves when an operation runs: operation ``name`` takes ``durations[name][i]``
    seconds on its ``i``-th call. Every call is logged."""

    def __init__(self, durations):
        self.now, self.durations, self.log = 0.0, durations, []
        self.calls = {name: 0 for name in durations}

    def __call__(self):
        return self.now

    def op(self, name):
        def run():
            i = self.calls[name]
            self.calls[name] += 1
            self.log.append(name)
            self.now += self.durations[name][i]
        return run


def test_compare_interleaves_after_warmup_and_times_each_call():
    # warm-up calls take 100 s: they must not enter any statistic
    clock = FakeClock({"a": [100, 100, 3, 1, 2, 5], "b": [100, 100, 10, 30, 20, 40]})
    t = _bench.compare({"a": clock.op("a"), "b": clock.op("b")}, repeats=4, warmup=2, clock=clock)
    assert clock.log == ["a", "b", "a", "b"] + ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert t["a"].times == [3, 1, 2, 5] and t["b"].times == [10, 30, 20, 40]
    assert (t["a"].min_ms, t["a"].median_ms, t["a"].max_ms) == (1000.0, 2500.0, 5000.0)
    row = _bench.timing_row(t["b"], t["a"])
    assert row["median_ms"] == 25000.0 and row["ratio"] == 10.0
    assert (row["paired_ratio_min"], row["paired_ratio_median"], row["paired_ratio_max"]) == (3.333, 9.0, 30.0)
    assert row["repeats"] == 4


def test_compare_number_times_back_to_back_calls_and_records_their_mean():
    # number=2: each timed run calls a, a then b, b (rotated per repeat); the mean of the two is recorded
    clock = FakeClock({"a": [100, 1, 3, 2, 4], "b": [100, 10, 30, 20, 20]})
    t = _bench.compare({"a": clock.op("a"), "b": clock.op("b")}, repeats=2, warmup=1, number=2, clock=clock)
    assert clock.log == ["a", "b"] + ["a", "a", "b", "b", "b", "b", "a", "a"]
    assert t["a"].times == [2.0, 3.0] and t["b"].times == [20.0, 20.0]


def test_interleaved_order_puts_every_operation_in_every_position_equally():
    names = ["a", "b", "c"]
    order = _bench.interleaved_order(names, 6)
    assert all(sorted(o) == names for o in order)
    for pos in range(3):
        assert sorted(o[pos] for o in order) == ["a", "a", "b", "b", "c", "c"]


def test_sync_brackets_every_timed_call_but_not_the_warmup():
    events = []
    clock = FakeClock({"a": [1, 1, 1], "b": [1, 1, 1]})
    def logged(name):
        run = clock.op(name)
        return lambda: (events.append(name), run())

    fns = {n: logged(n) for n in ("a", "b")}
    _bench.compare(fns, repeats=2, warmup=1, clock=clock, sync=lambda: events.append("sync"))
    assert events == ["a", "b"] + ["sync", "a", "sync"] * 1 + ["sync", "b", "sync"] + ["sync", "b", "sync",
                                                                                        "sync", "a", "sync"]


def test_machine_info_and_write_results_put_the_cpu_model_beside_every_row(tmp_path):
    info = _bench.machine_info()
    assert info["cpu"] == _bench.cpu_model() and info["torch"] == torch.__version__
    assert info["threads"] == torch.get_num_threads()
    _bench.write_results([{"op": "x", "median_ms": 1.5}, {"op": "y", "median_ms": 2.5, "threads": 1}],
                         tmp_path / "r.csv", info)
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [r["cpu"] for r in rows] == [info["cpu"]] * 2
    assert rows[1]["threads"] == "1"  # a row's own value wins over the machine's


def test_pin_threads_sets_torch_threads():
    n = torch.get_num_threads()
    try:
        assert _bench.pin_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(n)


def _run(script, tmp_path, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(ROOT / "kernels" / script), "--quick", "--out", str(tmp_path), *extra],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_bench_knn_quick_writes_interleaved_statistics_and_the_machine(tmp_path):
    _run("bench_knn.py", tmp_path, "--threads", "1")
    rows = list(csv.DictReader(open(tmp_path / "knn.csv")))
    assert [r["op"] for r in rows] == ["cdist", "knn_dense", "knn_graph"]
    for r in rows:
        assert float(r["min_ms"]) <= float(r["median_ms"]) <= float(r["max_ms"])
        assert r["cpu"] == _bench.cpu_model() and r["torch"] == torch.__version__ and r["threads"] == "1"
        assert r["allocator"] in _bench.ALLOCATORS
    assert float(rows[0]["ratio"]) == 1.0
    assert (tmp_path / "knn.png").stat().st_size > 0


def test_bench_fa_overhead_quick_times_the_captured_backbone_call(tmp_path):
    _run("bench_fa_overhead.py", tmp_path, "--threads", "1")
    (row,) = csv.DictReader(open(tmp_path / "fa_overhead.csv"))
    assert row["frames"] == "8" and row["cpu"] == _bench.cpu_model()
    for side in ("backbone", "frame_averaging", "pca_frames"):
        assert float(row[f"{side}_min_ms"]) <= float(row[f"{side}_median_ms"]) <= float(row[f"{side}_max_ms"])
    assert float(row["overhead"]) == pytest.approx(
        float(row["frame_averaging_median_ms"]) / float(row["backbone_median_ms"]) - 1, abs=2e-3)


def test_fa_benchmark_baseline_is_the_exact_input_frame_averaging_feeds_the_backbone(kernel_script):
    from equinets.frames import FrameAveraging
    from equinets.nn import PointNet

    mod = kernel_script("bench_fa_overhead")
    net = PointNet(0, 4, emb_dims=16).double().eval()
    fa = FrameAveraging(net, "E3", degenerate="none").eval()
    pos = torch.randn(3, 10, 3, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    outs = []
    hook = net.register_forward_hook(lambda m, a, out: outs.append(out))
    (args, kwargs) = mod.captured_backbone_call(fa, pos.reshape(30, 3), None, torch.arange(3).repeat_interleave(10))
    hook.remove()
    framed, x, batch = args
    assert framed.shape == (3 * 8 * 10, 3) and x is None
    assert torch.equal(batch, torch.arange(24).repeat_interleave(10))
    # the baseline's call is the very call inside frame averaging: same output, bit for bit
    assert torch.equal(net(*args, **kwargs), outs[0])


def test_bench_train_quick_reports_min_median_max_and_the_machine(tmp_path):
    _run("bench_train.py", tmp_path, "--threads", "1")
    (row,) = csv.DictReader(open(tmp_path / "train.csv"))
    assert row["model"] == "pointnet" and row["threads"] == "1" and row["steps"] == "2"
    assert float(row["step_ms_min"]) <= float(row["step_ms_median"]) <= float(row["step_ms_max"])
    assert row["cpu"] == _bench.cpu_model() and row["torch"] == torch.__version__
    assert float(row["clouds_per_s"]) == pytest.approx(4 / (float(row["step_ms_median"]) / 1e3), rel=1e-2)
