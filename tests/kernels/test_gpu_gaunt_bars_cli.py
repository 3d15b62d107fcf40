"""kernels/gpu_gaunt_bars.py: the prepared GPU run of issue 8, tested on CPU tensors with Triton's interpreter."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]


def _load():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_gaunt_bars", ROOT / "kernels/gpu_gaunt_bars.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(monkeypatch, capsys):
    """``main(argv)`` in this process (no interpreter start-up per case): exit code, stdout and stderr."""
    mod = _load()

    def _run(*args, interpret=True):
        monkeypatch.setenv("TRITON_INTERPRET", "1" if interpret else "0")
        capsys.readouterr()
        try:
            code = mod.main(list(args))
        except SystemExit as e:  # argparse's refusals
            code = e.code
        out, err = capsys.readouterr()
        return _Result(code, out, err)

    return _run


def _subprocess(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("TRITON_INTERPRET", None)
    return subprocess.run([sys.executable, str(ROOT / "kernels/gpu_gaunt_bars.py"), *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_cpu_run_checks_exactness_times_every_route_and_writes_both_tables(tmp_path, run):
    r = run("--device", "cpu", "--L", "2", "--batch", "3", "--channels", "2", "--repeats", "1", "--warmup", "0",
             "--exact-sizes", "2,1,2", "--out", str(tmp_path))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["exact"] is True and summary["device"] == "cpu"
    assert set(summary["triton_vs_best_torch"]) == {"forward", "forward+backward"}
    exact = list(csv.DictReader(open(tmp_path / "gaunt_gpu_exactness.csv")))
    assert [(e["table"], e["pass"]) for e in exact] == [("exactness", "True"), ("gradcheck", "True")]
    assert float(exact[0]["float64_max_err_over_max"]) <= 1e-10 and float(exact[0]["float32_rel_err"]) <= 1e-5
    bars = list(csv.DictReader(open(tmp_path / "gaunt_gpu_bars.csv")))
    routes = [b for b in bars if b["table"] == "routes"]
    assert {b["impl"] for b in routes} == {"grid_dense", "grid_sep", "grid_sep_fft", "fourier", "triton"}
    assert {b["rows"] for b in routes} == {"6"} and all(float(b["bandwidth_fraction"]) > 0 for b in routes)
    for b in routes:  # the speedup column is the best torch route's median over this one's
        best = next(c for c in routes if c["pass"] == b["pass"] and c["impl"] == b["best_torch_route"])
        assert float(b["speedup_vs_best_torch"]) == pytest.approx(float(best["median_ms"]) / float(b["median_ms"]),
                                                                   rel=0.02, abs=0.002)
    skipped = [b for b in bars if b["table"] == "channelwise"]
    assert {b["baseline"] for b in skipped} == {"cue_channelwise", "oeq_channelwise"} and all(b["skipped"] for b in skipped)
    assert all(b["cpu"] and b["copy_gbps"] for b in bars)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_without_cuda_the_default_run_skips_cleanly(tmp_path):
    r = _subprocess("--out", str(tmp_path / "o"))  # as a script: the __main__ path and its exit code
    assert r.returncode == 0 and r.stdout.strip() == "skipped: no CUDA"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, message", [
    (["--exact-sizes", "1,1,5"], "Lo <= L1 + L2"),
    (["--exact-sizes", "1,1"], "three integers"),
    (["--batch", "0"], "--batch must be >= 1, got 0"),
    (["--warmup", "-1"], "--warmup must be >= 0, got -1"),
    (["--L", "16"], "--L must be <= 15 (the Triton route's largest input degree), got 16"),
    (["--exact-sizes", "1,1,2", "16,1,3"], "input degrees must be <= 15"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, run, args, message):
    r = run("--device", "cpu", "--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2 and message in r.stderr
    assert r.stdout == "" and not (tmp_path / "o").exists()  # nothing measured, nothing written


def test_cpu_without_the_interpreter_is_refused_with_the_hint(tmp_path, run):
    r = run("--device", "cpu", "--out", str(tmp_path / "o"), interpret=False)
    assert r.returncode == 2 and "TRITON_INTERPRET=1" in r.stderr
    assert r.stdout == "" and not (tmp_path / "o").exists()


def test_a_size_that_raises_is_recorded_as_failing_and_the_others_still_run(monkeypatch):
    """On the GPU a kernel that does not build at one size must not end the run (and lose the device time)."""
    from equinets.gaunt import _triton

    mod = _load()
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    real = _triton.grid_product

    def flaky(x1, x2, L1, L2, Lo, normalization):
        if L1 == 2:
            raise RuntimeError("out of resource: shared memory")
        return real(x1, x2, L1, L2, Lo, normalization)

    monkeypatch.setattr(_triton, "grid_product", flaky)
    rows = mod.exactness([(1, 1, 2), (2, 1, 2)], torch.device("cpu"), rows_per_size=3, log=lambda s: None)
    assert [(r["table"], r.get("L1"), r["pass"]) for r in rows] == [
        ("exactness", 1, True), ("exactness", 2, False), ("gradcheck", 2, False)]
    assert "out of resource" in rows[1]["error"] and "out of resource" in rows[2]["error"]
