"""The n-body reproduction script end to end on a tiny regenerated set (a subprocess, one thread)."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_nbody_script_reports_test_mse_at_the_best_validation_epoch(tmp_path):
    out = tmp_path / "results"
    cmd = [sys.executable, str(ROOT / "kernels/nbody_fa_gnn.py"), "--root", str(tmp_path / "data"), "--out", str(out),
           "--num-train", "40", "--num-val", "20", "--num-test", "20", "--epochs", "4", "--eval-every", "2",
           "--batch-size", "20", "--hidden", "12", "--layers", "2", "--schedule", "cosine", "--num-samples", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out / "nbody_fa_gnn.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 4]  # epoch 1, every 2nd, and the last
    best = min(rows, key=lambda r: float(r["val_mse"]))
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
