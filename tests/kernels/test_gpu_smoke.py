"""kernels/gpu_smoke.py: the CUDA + NCCL run when a GPU is present; its skip and its CPU (gloo) variant otherwise."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    r = subprocess.run([sys.executable, str(ROOT / "kernels/gpu_smoke.py"), *args], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_smoke_trains_on_cuda_with_nccl_and_evaluates_like_the_cpu():
    report = json.loads(_run())
    assert report["backend"] == "nccl"
    assert [c["task"] for c in report["eval"]] == ["cls", "seg"]
    for c in report["eval"]:
        assert c["max_logit_diff"] <= c["tolerance"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available: the real run is tested instead")
def test_gpu_smoke_skips_cleanly_without_cuda():
    assert _run() == "skipped: no CUDA"


def test_gpu_smoke_steps_pass_on_cpu_with_gloo():
    report = json.loads(_run("--device", "cpu"))
    assert report["backend"] == "gloo" and len(report["ddp_losses"]) == 3
    for c in report["eval"]:
        assert c["on_device"] == c["on_cpu"] and c["max_logit_diff"] == 0.0
