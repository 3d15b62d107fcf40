"""CollapseTracker.all_reduce: two gloo processes (torch.multiprocessing, forked, CPU) equal one process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from equinets.collapse import CollapseTracker, nc_metrics

ROOT = Path(__file__).resolve().parents[2]

DATA = textwrap.dedent("""
    import torch

    def data():
        g = torch.Generator().manual_seed(21)
        K, d, n = 6, 10, 700
        y = torch.randint(0, K, (n,), generator=g)
        mu = 50 * torch.randn(K, d, dtype=torch.float64, generator=g)
        h = mu[y] + 0.1 * torch.randn(n, d, dtype=torch.float64, generator=g)
        W = mu + torch.randn(K, d, dtype=torch.float64, generator=g)
        b = torch.randn(K, dtype=torch.float64, generator=g)
        return h, y, W, b
""")

WORKER = DATA + textwrap.dedent("""
    import json, os, sys

    def worker(rank, out, port):
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port))
        torch.set_num_threads(1)
        from equinets.collapse import CollapseTracker
        from equinets.train.distributed import cleanup_distributed, init_distributed
        init_distributed("cpu")
        h, y, W, b = data()
        lo, hi = (0, 400) if rank == 0 else (400, 700)  # uneven shards; rank 1 lacks nothing, rank 0 batches of 64
        tr = CollapseTracker(6, 10)
        for a in range(lo, hi, 64):
            tr.update(h[a:min(a + 64, hi)], y[a:min(a + 64, hi)])
        tr.all_reduce()
        for a in range(lo, hi, 50):
            tr.update_nc4(h[a:min(a + 50, hi)], y[a:min(a + 50, hi)], W, b)
        tr.all_reduce()
        res = tr.compute(W, b)
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(res, f)
        cleanup_distributed()

    if __name__ == "__main__":
        import torch.multiprocessing as mp

        import equinets.collapse  # noqa: F401  (imported once, inherited by the forked ranks)
        mp.start_processes(worker, args=(sys.argv[1], int(sys.argv[2])), nprocs=2, join=True, start_method="fork")
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_equal_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), str(_free_port())], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank ends with the same numbers
    ns: dict = {}
    exec(DATA, ns)
    h, y, W, b = ns["data"]()
    single = CollapseTracker(6, 10)
    single.update(h, y)
    single.update_nc4(h, y, W, b)
    one = single.compute(W, b)
    ref = nc_metrics(h, y, W, b)
    assert set(ranks[0]) == set(one) == set(ref)
    for k in ref:
        assert ranks[0][k] == pytest.approx(one[k], rel=1e-9, abs=1e-15), k
        assert ranks[0][k] == pytest.approx(ref[k], rel=1e-8, abs=1e-15), k


def test_all_reduce_without_process_group_is_a_no_op():
    tr = CollapseTracker(3, 2)
    tr.update(torch.randn(9, 2), torch.arange(9) % 3)
    before = tr.compute()
    tr.all_reduce()
    assert tr.compute() == before
    assert torch.distributed.is_available()


@pytest.mark.slow
def test_torchrun_training_logs_the_single_process_collapse_metrics(tmp_path, request):
    """``collapse_every`` under torchrun (2 gloo ranks, shards of 15 clouds): the logged metrics equal a
    single-process ``equinets collapse`` of the same checkpoint (measured 2e-16 relative when written).
    About a minute on 2 cores: opt-in with ``-m slow``."""
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("opt-in: run with -m slow")
    import csv
    import os
    import shutil

    from equinets.collapse import METRIC_KEYS, WEIGHT_KEYS

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    tiny = [f"data_root={tmp_path / 'data'}", "num_points=32", "dataset_kwargs.num_train=30",
            "dataset_kwargs.num_test=15", "batch_size=10", "eval_batch_size=8", "epochs=2", "model_kwargs.emb_dims=32",
            "collapse_every=1"]
    r = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "equinets", "train", "--out",
                        str(tmp_path / "run"), *tiny], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-m", "equinets", "collapse", "--checkpoint", str(tmp_path / "run" / "last.pt")],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    single = json.loads(r.stdout.strip().splitlines()[-1])
    logged = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv", newline="")))[-1]
    for k in METRIC_KEYS + WEIGHT_KEYS:
        assert float(logged[f"train_{k}"]) == pytest.approx(single[k], rel=1e-10, abs=1e-15), k
