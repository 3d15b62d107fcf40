"""The n-body reproduction script (a thin caller of the library trainer) end to end on a tiny regenerated set."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from equinets.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_nbody_script_reports_test_mse_at_the_best_validation_epoch(tmp_path):
    out = tmp_path / "results"
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "kernels/nbody_fa_gnn.py"), "--root", str(tmp_path / "data"), "--out", str(out),
           "--run-dir", str(run),
           "--num-train", "40", "--num-val", "20", "--num-test", "20", "--epochs", "4", "--eval-every", "2",
           "--batch-size", "20", "--hidden", "12", "--layers", "2", "--schedule", "cosine", "--num-samples", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out / "nbody_fa_gnn.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [2, 4]  # every 2nd epoch and the last
    best = min(rows, key=lambda r: float(r["val_mse"]))
    # the library trainer did the work: its run directory, and the test split evaluated where val improved
    assert (run / "best.pt").is_file() and (run / "metrics.csv").is_file()
    assert rows[0]["test_mse"] != ""  # the first evaluation is always an improvement
    improved = [r for i, r in enumerate(rows) if float(r["val_mse"]) < min([math.inf] + [float(q["val_mse"])
                                                                                         for q in rows[:i]])]
    assert [r["test_mse"] != "" for r in rows] == [r in improved for r in rows]
    ck = load_checkpoint(run / "best.pt")
    assert ck["best_epoch"] == int(best["epoch"]) and ck["config"]["test_at_best"] is True
    assert ck["best_test"]["mse"] == pytest.approx(float(best["test_mse"]), rel=1e-5)
    with open(out / "nbody_fa_gnn_summary.csv", newline="") as f:
        summary = {r["method"]: r for r in csv.DictReader(f)}
    ours = summary["FA-GNN (ours, test MSE at best val epoch)"]
    assert float(ours["test_mse"]) == pytest.approx(float(best["test_mse"]))
    assert f"epoch {best['epoch']} of 4" in ours["note"]
    # the closed-form baselines are listed and ordered as physics says: zero motion is worst
    zero = float(summary["zero_motion (closed form)"]["test_mse"])
    const = float(summary["constant_velocity (closed form)"]["test_mse"])
    assert math.isfinite(const) and 0 < const < zero
    assert (out / "nbody_fa_gnn.png").stat().st_size > 1000
    # --report-only re-reads the finished run (as made by `equinets train --config nbody-fa-gnn ...`): same rows
    again = tmp_path / "again"
    proc = subprocess.run([*cmd[:cmd.index("--out")], "--out", str(again), *cmd[cmd.index("--out") + 2:], "--report-only"],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (again / "nbody_fa_gnn.csv").read_text() == (out / "nbody_fa_gnn.csv").read_text()
