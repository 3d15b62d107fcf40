"""GPU smoke check: equinets trains and evaluates on CUDA, NCCL included, and agrees with the CPU.

In one process, on tiny generated data (seconds on any GPU):

1. ``equinets.train.train`` runs two epochs of a small PointNet classifier on ``device=cuda`` (the
   library loop: CUDA batches, meters accumulating on the GPU, checkpoints);
2. a NCCL process group of world size 1 is initialised (:func:`equinets.train.distributed.init_distributed`
   with ``always=True``), the trained weights are wrapped in ``DistributedDataParallel`` and take
   three more Adam steps (NCCL gradient all-reduce); the loss stays finite and the weights move;
3. the classification and the segmentation evaluations (``equinets.train.evaluate``, whose meters
   all-reduce their statistics through NCCL on CUDA tensors) of the same weights on CUDA and on the
   CPU must agree. **Tolerance:** the logits may differ by float32 rounding, at most
   ``1e-4 * (1 + max |logit|)``; every sample (point) whose predicted class differs between the two
   devices must be a near tie, with a top-2 margin below twice the largest logit difference. When no
   prediction differs, accuracy, balanced accuracy, instance and class mIoU and point accuracy must
   be equal to ``1e-9`` (float64 sums of identical counts) and the losses to a relative ``1e-4``.

Exits 0 and prints ``skipped: no CUDA`` when CUDA is unavailable; prints one JSON line of results and
exits 0 when every check passes; raises (exit 1) on the first failed check. ``--device cpu`` runs
the same steps on the CPU with a gloo group (a test of this script without a GPU).

Usage::

    python kernels/gpu_smoke.py [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import socket
import sys
import tempfile
from pathlib import Path

import torch

TINY = ["num_points=64", "dataset_kwargs.num_train=64", "dataset_kwargs.num_test=48", "batch_size=16",
        "eval_batch_size=16", "epochs=2", "train_rotation=I", "test_rotation=I", "jitter=0.0", "num_workers=0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@torch.no_grad()
def _outputs(model, ds, cfg, device) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Logits of ``model`` on every item of ``ds`` in order (no transform: test_rotation is I) and the labels.

    For segmentation also the logits restricted to the parts of each shape's category (what the IoU
    uses), so that a prediction that differs under either argmax is found.
    """
    from torch_geometric.loader import DataLoader

    model.eval()
    outs, restricted, ys = [], [], []
    mask = None
    if cfg["task"] == "seg":
        P = 1 + max(p for parts in ds.category_parts for p in parts)
        mask = torch.zeros(len(ds.category_parts), P, dtype=torch.bool)
        for k, parts in enumerate(ds.category_parts):
            mask[k, list(parts)] = True
    for batch in DataLoader(ds, batch_size=cfg["eval_batch_size"], shuffle=False):
        batch = batch.to(device)
        kw = {"category": batch.category.reshape(-1)} if mask is not None else {}
        out = model(batch.pos, None, batch.batch, **kw).double().cpu()
        outs.append(out)
        if mask is not None:
            allowed = mask[batch.category.reshape(-1).cpu()[batch.batch.cpu()]]
            restricted.append(out.masked_fill(~allowed, -1e30))
        ys.append(batch.y.reshape(-1).cpu())
    views = [torch.cat(outs)] + ([torch.cat(restricted)] if restricted else [])
    return views, torch.cat(ys)


def _check_agreement(task: str, model_dev, model_cpu, ds, cfg, device) -> dict:
    """Evaluate the same weights on ``device`` and on the CPU; check the stated tolerance; return both."""
    from equinets.train import evaluate

    m_dev = evaluate(model_dev, ds, cfg, device=device)
    m_cpu = evaluate(model_cpu, ds, cfg, device=torch.device("cpu"))
    for m in (m_dev, m_cpu):
        assert all(isinstance(v, float) and math.isfinite(v) for v in m.values()), m
    views_dev, y = _outputs(model_dev, ds, cfg, device)
    views_cpu, _ = _outputs(model_cpu, ds, cfg, torch.device("cpu"))
    diff = float((views_dev[0] - views_cpu[0]).abs().max())
    tol = 1e-4 * (1 + float(views_cpu[0].abs().max()))
    assert diff <= tol, f"{task}: logits differ by {diff:.3g} between {device} and cpu (tolerance {tol:.3g})"
    flipped = 0
    for out_dev, out_cpu in zip(views_dev, views_cpu):
        changed = (out_dev.argmax(1) != out_cpu.argmax(1)).nonzero().reshape(-1)
        top2 = out_cpu.topk(2, dim=1).values
        margin = top2[:, 0] - top2[:, 1]
        assert bool((margin[changed] < 2 * diff).all()), f"{task}: a prediction differs that is not a near tie"
        flipped += int(changed.numel())
    if flipped == 0:
        for k in m_cpu:
            if k == "loss":
                assert abs(m_dev[k] - m_cpu[k]) <= 1e-4 * max(1.0, abs(m_cpu[k])), (task, k, m_dev[k], m_cpu[k])
            else:
                assert abs(m_dev[k] - m_cpu[k]) <= 1e-9, (task, k, m_dev[k], m_cpu[k])
    return {"task": task, "on_device": m_dev, "on_cpu": m_cpu, "max_logit_diff": diff, "tolerance": tol,
            "flipped_near_ties": flipped, "samples": int(y.numel())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--root", type=Path, default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("skipped: no CUDA")
        return 0
    import torch.distributed as dist
    from torch import nn

    from equinets.train import load_checkpoint, resolve_config, train
    from equinets.train.distributed import cleanup_distributed, init_distributed
    from equinets.train.loop import build_datasets, build_model
    from equinets.train.metrics import ClassificationMeter

    torch.manual_seed(0)
    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    report = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "cuda": torch.version.cuda}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        data = f"data_root={root / 'data'}"
        # 1. the library loop on the device, no process group
        cfg = resolve_config("shapes-pointnet", TINY + [data, f"device={args.device}", "model_kwargs.emb_dims=64"])
        trained = train(cfg, root / "cls")
        assert trained and all(math.isfinite(v) for v in trained.values()), trained
        report["train"] = trained
        # 2. a process group of one (NCCL on CUDA), DDP steps
        for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                     "MASTER_PORT": str(_free_port())}.items():
            os.environ.setdefault(k, v)
        init_distributed(device.type, always=True)
        try:
            backend = str(dist.get_backend())
            assert backend == ("nccl" if device.type == "cuda" else "gloo"), backend
            report["backend"] = backend
            train_ds, eval_ds = build_datasets(cfg)
            model = build_model(cfg, train_ds).to(device)
            model.load_state_dict(load_checkpoint(root / "cls" / "last.pt")["model"])
            before = [q.detach().clone() for q in model.parameters()]
            ddp = nn.parallel.DistributedDataParallel(model, device_ids=[0] if device.type == "cuda" else None)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            from torch_geometric.loader import DataLoader

            ddp.train()
            losses = []
            for step, batch in enumerate(DataLoader(train_ds, batch_size=16, shuffle=False)):
                if step == 3:
                    break
                batch = batch.to(device)
                loss = nn.functional.cross_entropy(ddp(batch.pos, None, batch.batch), batch.y.reshape(-1))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            assert all(math.isfinite(v) for v in losses), losses
            moved = max(float((a - b.detach()).abs().max()) for a, b in zip(before, model.parameters()))
            assert moved > 0, "DDP steps left the weights unchanged"
            report["ddp_losses"] = losses
            # a meter on the device all-reduces through the group (NCCL needs CUDA tensors)
            meter = ClassificationMeter(3)
            meter.update(torch.eye(3, device=device), torch.tensor([0, 1, 1], device=device))
            meter.add_loss(torch.tensor(0.5, device=device), 3)
            assert meter.device.type == device.type, meter.device
            meter.all_reduce()
            assert meter.compute() == {"loss": 0.5, "acc": 2 / 3, "balanced_acc": 0.75}, meter.compute()
            # 3. evaluation on the device equals evaluation on the CPU
            checks = [_check_agreement("cls", model.eval(), copy.deepcopy(model).cpu(), eval_ds, cfg, device)]
            seg_cfg = resolve_config("parts-pointnet", TINY + [data, f"device={args.device}", "model_kwargs.emb_dims=64",
                                                               "dataset_kwargs.num_test=24"])
            seg_ds = build_datasets(seg_cfg, splits=("eval",))[0]
            seg_model = build_model(seg_cfg, seg_ds).to(device).eval()
            checks.append(_check_agreement("seg", seg_model, copy.deepcopy(seg_model).cpu(), seg_ds, seg_cfg, device))
            report["eval"] = checks
        finally:
            cleanup_distributed()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
