"""Training throughput (clouds/s) and peak memory of backbones, measured in fresh processes.

Each model runs in its own subprocess so that its peak memory is its own: on CPU the figure is the
growth of the process's peak resident set (``ru_maxrss``) over the model-free baseline measured
after imports; on CUDA it is ``torch.cuda.max_memory_allocated``. Steps are full training steps
(forward, cross-entropy, backward, Adam) on random clouds; the step time is the median of
``steps`` repeats after ``warmup`` untimed ones, with the thread count pinned.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from .._atomic import write_csv

__all__ = ["bench_training", "write_csv"]


def _child(spec: dict) -> dict:
    import resource

    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    from equinets.nn import create_model

    dev = spec["device"]
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(dev)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)
    B, N, C = spec["batch_size"], spec["num_points"], 40
    model = create_model(spec["model"], out_channels=C, task="cls").to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    pos = torch.randn(B * N, 3, device=device)
    batch = torch.arange(B, device=device).repeat_interleave(N)
    y = torch.randint(0, C, (B,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(spec["warmup"] + spec["steps"]):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(pos, None, batch), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= spec["warmup"]:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        mem_kind = "cuda_max_allocated"
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
        mem_kind = "cpu_peak_rss_growth"
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    return {"model": spec["model"], "device": name, "threads": torch.get_num_threads(), "batch_size": B,
            "num_points": N, "params": sum(p.numel() for p in model.parameters()),
            "step_ms_median": round(med * 1e3, 2), "clouds_per_s": round(B / med, 2),
            "peak_mem_mb": round(peak_mb, 1), "mem_kind": mem_kind}


def bench_training(models, *, batch_size: int = 32, num_points: int = 1024, steps: int = 5, warmup: int = 2,
                   threads: int | None = None, device: str = "auto") -> list[dict]:
    """Benchmark one training step of each model in a fresh subprocess; one dict per model."""
    rows = []
    for m in models:
        spec = {"model": m, "batch_size": batch_size, "num_points": num_points, "steps": steps,
                "warmup": warmup, "threads": threads, "device": device}
        r = subprocess.run([sys.executable, "-m", "equinets.train.bench", json.dumps(spec)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"benchmark of {m!r} failed:\n{r.stderr[-2000:]}")
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return rows


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
