"""Training throughput (clouds/s) and peak memory of backbones, measured in fresh processes.

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

from .._atomic import write_csv
from .._checks import check_int

__all__ = ["bench_training", "write_csv"]


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


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
