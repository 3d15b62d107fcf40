"""Metric all-reduces: two gloo ranks equal one process; collectives take tensors on the backend's device."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from equinets.train import distributed as D
from equinets.train.metrics import ClassificationMeter, RegressionMeter, SegmentationMeter, all_reduce_

ROOT = Path(__file__).resolve().parents[2]
CATEGORY_PARTS = [[0, 1, 2], [3, 4], [5, 6, 7, 8]]

# The data of the test, the same in the ranks and here: each rank takes its own slice.
DATA = textwrap.dedent("""
    import torch

    def data():
        g = torch.Generator().manual_seed(11)
        n, C = 90, 5
        logits = torch.randn(n, C, generator=g)
        y = torch.randint(0, C, (n,), generator=g)
        # dyadic values: every float64 sum is exact whatever its order
        pred = torch.randint(-8, 8, (n, 3), generator=g).double() / 4
        target = torch.randint(-8, 8, (n, 3), generator=g).double() / 4
        losses = torch.randint(1, 16, (6,), generator=g).double() / 8
        parts = [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
        shapes = []
        for s in range(14):
            cat = s % 3
            m = 20 + s
            seg_y = torch.tensor(parts[cat])[torch.randint(0, len(parts[cat]), (m,), generator=g)]
            seg_logits = torch.randn(m, 9, generator=g)
            shapes.append((cat, seg_y, seg_logits))
        return logits, y, pred, target, losses, shapes

    def feed(cls, reg, seg, lo, hi, slo, shi, batches):
        logits, y, pred, target, losses, shapes = data()
        for i, (a, b) in enumerate(batches(lo, hi)):
            cls.update(logits[a:b], y[a:b])
            reg.update(pred[a:b], target[a:b])
            cls.add_loss(losses[i % 6], b - a)
        chunk = shapes[slo:shi]
        if chunk:
            batch = torch.cat([torch.full((len(s[1]),), j) for j, s in enumerate(chunk)])
            seg.update(torch.cat([s[2] for s in chunk]), torch.cat([s[1] for s in chunk]),
                       torch.tensor([s[0] for s in chunk]), batch)

    def batches(lo, hi, size=16):
        return [(a, min(a + size, hi)) for a in range(lo, hi, size)]
""")

WORKER = DATA + textwrap.dedent("""
    import json, os, sys

    def worker(rank, out, port):
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port))
        torch.set_num_threads(1)
        from equinets.train.distributed import cleanup_distributed, group_device, init_distributed
        from equinets.train.metrics import ClassificationMeter, RegressionMeter, SegmentationMeter, all_reduce_
        info = init_distributed("cpu")
        assert info.world_size == 2 and info.rank == rank
        cls, reg = ClassificationMeter(5), RegressionMeter()
        seg = SegmentationMeter([[0, 1, 2], [3, 4], [5, 6, 7, 8]])
        # uneven shards: rank 0 has 50 samples and 9 shapes, rank 1 40 and 5
        lo, hi, slo, shi = (0, 50, 0, 9) if rank == 0 else (50, 90, 9, 14)
        feed(cls, reg, seg, lo, hi, slo, shi, batches)
        ints = torch.tensor([rank + 1, 10], dtype=torch.int64)  # a second dtype in the same call
        for m in (cls, reg, seg):
            m.all_reduce()
        all_reduce_(ints)
        res = {"cls": cls.compute(), "reg": reg.compute(), "seg": seg.compute(), "ints": ints.tolist(),
               "device": str(group_device()), "stats_device": str(cls.confusion.device),
               "confusion": cls.confusion.tolist()}
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(res, f)
        cleanup_distributed()

    if __name__ == "__main__":
        worker(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process():
    ns = {}
    exec(DATA, ns)
    cls, reg, seg = ClassificationMeter(5), RegressionMeter(), SegmentationMeter(CATEGORY_PARTS)
    # the same batches as the ranks (a batch never straddles the shard boundary at 50)
    ns["feed"](cls, reg, seg, 0, 50, 0, 9, ns["batches"])
    ns["feed"](cls, reg, seg, 50, 90, 9, 14, ns["batches"])
    return cls, reg, seg


def test_gloo_two_ranks_reduce_to_the_single_process_metrics(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               EQUINETS_DIST_TIMEOUT="60")
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), str(tmp_path), port], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    try:
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-3000:]
    finally:
        for p in procs:  # a rank left waiting for a failed peer
            if p.poll() is None:
                p.kill()
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert ranks[0] == ranks[1]  # every rank holds the global metrics
    got = ranks[0]
    assert got["device"] == "cpu" and got["stats_device"] == "cpu"  # gloo reduces CPU tensors
    assert got["ints"] == [3, 20]
    cls, reg, seg = _single_process()
    assert got["confusion"] == cls.confusion.tolist()
    # counts and dyadic sums are exact in float64, whatever the order of the additions
    assert got["cls"] == cls.compute()
    assert got["reg"] == reg.compute()
    want = seg.compute()
    assert got["seg"]["point_acc"] == want["point_acc"]
    for k in ("instance_miou", "class_miou"):  # sums of IoU ratios: equal up to float64 reassociation
        assert got["seg"][k] == pytest.approx(want[k], abs=1e-14)
    assert all(isinstance(v, float) for m in (got["cls"], got["reg"], got["seg"]) for v in m.values())


def test_backend_device_nccl_is_the_current_cuda_device_gloo_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    assert D.backend_device("nccl") == torch.device("cuda", 2)
    assert D.backend_device("NCCL") == torch.device("cuda", 2)
    assert D.backend_device("gloo") == torch.device("cpu")
    assert D.backend_device("mpi") == torch.device("cpu")
    assert D.backend_device("some_custom_backend") == torch.device("cpu")
    mixed = "cpu:gloo,cuda:nccl"
    assert D.backend_device(mixed, prefer=torch.device("cpu")) == torch.device("cpu")
    assert D.backend_device(mixed, prefer=torch.device("cuda", 0)) == torch.device("cuda", 2)
    assert D.backend_device(mixed) == torch.device("cpu")  # the first named without a preference
    assert D.backend_device("cuda:nccl") == torch.device("cuda", 2)


class _FakeGroup:
    """Stands in for ``torch.distributed`` with a given backend: records every all_reduce and doubles it,
    as a world of two ranks holding the same statistics would."""

    def __init__(self, monkeypatch, backend):
        self.calls = []
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_backend", lambda group=None: backend)
        monkeypatch.setattr(dist, "all_reduce", self.all_reduce)

    def all_reduce(self, t, group=None):
        self.calls.append((t.device, t.dtype, t.numel()))
        t.mul_(2)


def test_group_device_follows_the_fake_group_backend(monkeypatch):
    _FakeGroup(monkeypatch, "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert D.group_device() == torch.device("cuda", 1)
    _FakeGroup(monkeypatch, "gloo")
    assert D.group_device() == torch.device("cpu")


def test_meter_all_reduce_is_one_collective_per_dtype_and_copies_sums_back(monkeypatch):
    fake = _FakeGroup(monkeypatch, "gloo")
    m = ClassificationMeter(3)
    m.update(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 0]]), torch.tensor([0, 1, 2]))
    m.add_loss(torch.tensor(0.25), 3)
    before = m.compute()
    m.all_reduce()
    assert fake.calls == [(torch.device("cpu"), torch.float64, 1 + 1 + 9)]  # loss sum, count, confusion
    assert m.confusion.sum().item() == 6 and m.loss_count.item() == 6
    assert m.compute() == before  # ratios of doubled sums
    ints, floats = torch.tensor([1, 2]), torch.tensor([0.5])
    all_reduce_(ints, floats)
    assert ints.tolist() == [2, 4] and floats.tolist() == [1.0]
    assert [c[1] for c in fake.calls[1:]] == [torch.int64, torch.float32]


def test_reduced_metrics_are_python_floats_and_meters_start_on_cpu():
    m = RegressionMeter()
    assert m.device == torch.device("cpu")
    m.update(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.0]))
    m.add_loss(0.5, 2)
    out = m.compute()
    assert out == {"loss": 0.5, "mse": 0.125} and all(type(v) is float for v in out.values())


def test_init_distributed_is_a_no_op_for_a_world_of_one(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert D.init_distributed("cpu") == D.DistInfo()
    assert not dist.is_initialized()


def test_meter_statistics_stay_on_the_device_of_the_first_tensor():
    # the meta device stands in for a GPU: statistics move there once, later inputs follow them
    m = RegressionMeter()
    m.update(torch.zeros(4, 3, device="meta"), torch.zeros(4, 3))
    assert m.device.type == "meta" and m.sse.device.type == "meta" and m.loss_sum.device.type == "meta"
    m.update(torch.zeros(2, 3), torch.zeros(2, 3))  # CPU inputs go to the statistics, not the reverse
    m.add_loss(torch.tensor(0.5), 2)
    assert m.sse.device.type == "meta" and m.loss_sum.device.type == "meta"
    s = SegmentationMeter(CATEGORY_PARTS)
    s._follow(torch.zeros(1, device="meta"))
    assert s.part_mask.device.type == "meta" and s.iou_sum.device.type == "meta"
