"""The training and evaluation loop behind ``equinets train`` and ``equinets eval``.

One function, :func:`train`, ties a dataset, a model and a task together from a resolved config
(:func:`equinets.train.config.resolve_config`). It is seeded and deterministic on CPU: the shuffle
order, the augmentation draws and dropout of epoch ``e`` depend only on ``(seed, e, rank)``, so a
run resumed from ``last.pt`` (saved at the end of every epoch) ends with the same metrics as an
uninterrupted run. Under ``torchrun`` it trains with DDP (gloo on CPU, nccl on GPU), shards the
data with a distributed sampler, all-reduces metric statistics and writes files on rank 0 only.

A run directory holds ``config.yaml`` (the resolved config), ``metrics.csv`` (one row per epoch),
``curves.png``, ``last.pt`` and ``best.pt``, and ``tb/`` when TensorBoard is installed.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from .._atomic import write_csv
from .._checks import check_labels
from .checkpoint import load_checkpoint, rng_state, save_checkpoint
from .distributed import DistInfo, cleanup_distributed, init_distributed
from .metrics import ClassificationMeter, RegressionMeter, SegmentationMeter
from .plots import plot_curves

__all__ = ["train", "evaluate", "build_datasets", "build_model", "RunExistsError", "TrainingDiverged",
           "BEST_METRIC"]

#: the metric that decides ``best.pt`` per task, and whether higher is better
BEST_METRIC = {"cls": ("acc", True), "seg": ("instance_miou", True), "reg": ("mse", False)}


class RunExistsError(FileExistsError):
    """The output directory already holds a run that this one would overwrite."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; no checkpoint of the diverged state is written."""


def _device(cfg: dict, dist_info: DistInfo) -> torch.device:
    kind = cfg["device"]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("config device='cuda' but torch.cuda.is_available() is False")
        return torch.device("cuda", dist_info.local_rank)
    return torch.device("cpu")


def _epoch_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank * 101 + stream) % (2**63 - 1)


def build_datasets(cfg: dict, splits=("train", "eval")):
    """Create the train and evaluation datasets of a config (generated data is cached under ``data_root``)."""
    from ..data import create_dataset, takes_num_points

    kw = dict(cfg["dataset_kwargs"])
    if takes_num_points(cfg["dataset"]):
        kw.setdefault("num_points", cfg["num_points"])
    out = []
    for s in splits:
        split = "train" if s == "train" else cfg["eval_split"]
        out.append(create_dataset(cfg["dataset"], root=cfg["data_root"], split=split, **kw))
    ds = out[0]
    ds_task = getattr(ds, "task", "cls")
    if cfg["task"] == "seg" and ds_task != "seg":
        raise ValueError(f"task 'seg' needs a segmentation dataset, but {cfg['dataset']!r} is a {ds_task!r} dataset")
    if cfg["task"] == "cls" and ds_task != "cls":
        raise ValueError(f"task 'cls' needs a classification dataset, but {cfg['dataset']!r} is a {ds_task!r} dataset")
    if cfg["task"] == "reg" and getattr(ds[0], cfg["target"], None) is None:
        raise ValueError(f"task 'reg' regresses data.{cfg['target']}, which {cfg['dataset']!r} items do not have")
    return out


def _num_outputs(cfg: dict, ds) -> int:
    if cfg["task"] == "reg":
        t = getattr(ds[0], cfg["target"])
        return int(t.shape[-1]) if _point_level(cfg) else int(t.reshape(1, -1).shape[-1])
    return int(ds.num_classes)


def _point_level(cfg: dict) -> bool:
    if cfg["output_level"] == "auto":
        return cfg["task"] == "seg"
    return cfg["output_level"] == "point"


def build_model(cfg: dict, ds) -> nn.Module:
    """The backbone named by ``cfg['model']`` sized for the dataset and task."""
    from ..nn import create_model

    seg = cfg["task"] == "seg"
    kwargs = dict(cfg["model_kwargs"])
    if seg and getattr(ds, "num_categories", 0) and "num_categories" not in kwargs:
        kwargs["num_categories"] = int(ds.num_categories)
    x0 = getattr(ds[0], "x", None)
    if cfg["use_features"] and x0 is None:
        raise ValueError(f"use_features=true but {cfg['dataset']!r} items have no features (data.x)")
    in_channels = int(x0.reshape(x0.shape[0], -1).shape[1]) if cfg["use_features"] else 0
    task = "seg" if _point_level(cfg) else "cls"
    try:
        model = create_model(cfg["model"], in_channels=in_channels, out_channels=_num_outputs(cfg, ds), task=task,
                             **kwargs)
    except TypeError as e:
        raise ValueError(f"model {cfg['model']!r} rejected model_kwargs {cfg['model_kwargs']}: {e}") from None
    if cfg["frame_averaging"] is not None:
        from ..frames import FrameAveraging

        if cfg["use_features"] and cfg["fa_irreps_in"] is None:
            raise ValueError("frame_averaging with use_features=true needs fa_irreps_in, the e3nn irreps of data.x "
                             "(e.g. '1o' for normals), so that features are rotated into each frame")
        model = FrameAveraging(model, cfg["frame_averaging"], irreps_in=cfg["fa_irreps_in"] if cfg["use_features"]
                               else None, irreps_out=cfg["fa_irreps_out"], position_output=cfg["fa_position_output"],
                               task=task, num_samples=cfg["fa_num_samples"] or None)
    return model


def _transforms(cfg: dict, ds, train: bool):
    from ..data.transforms import Compose, Jitter, RandomRotate, RandomScale, RandomShift

    up = cfg["up_axis"] or getattr(ds, "up_axis", "z")
    tfs = [RandomRotate(cfg["train_rotation" if train else "test_rotation"], up_axis=up)]
    if train:
        if cfg["scale_low"] != 1.0 or cfg["scale_high"] != 1.0:
            tfs.append(RandomScale(cfg["scale_low"], cfg["scale_high"], anisotropic=True))
        if cfg["shift"] > 0:
            tfs.append(RandomShift(cfg["shift"]))
        if cfg["jitter"] > 0:
            tfs.append(Jitter(cfg["jitter"], clip=5 * cfg["jitter"]))
    return Compose(tfs)


class _EvalShard(torch.utils.data.Dataset):
    """Items ``rank, rank + world, ...`` of ``ds``, each under its own fixed test transform.

    Item ``i``'s test rotation is drawn from a generator seeded by ``(seed, i)``, so the evaluation
    set is the same in every epoch, run and world size; shards have no padding or duplicates.
    """

    def __init__(self, ds, tf, seed: int, rank: int, world: int):
        self.ds, self.tf, self.seed, self.idx = ds, tf, seed, list(range(rank, len(ds), world))

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, i):
        j = self.idx[i]
        gen = torch.Generator().manual_seed(_epoch_seed(self.seed, 0, 0, 7919) + j)
        return self.tf(self.ds[j], generator=gen)


def _forward(model, batch, cfg):
    x = batch.x if cfg["use_features"] else None
    kw = {}
    if cfg["task"] == "seg" and getattr(batch, "category", None) is not None:
        kw["category"] = batch.category.reshape(-1)
    return model(batch.pos, x, batch.batch, **kw)


def _loss_and_update(out, batch, cfg, meter, num_out: int):
    if cfg["task"] == "reg":
        target = getattr(batch, cfg["target"])
        if target.numel() != out.numel():
            raise ValueError(f"regression target data.{cfg['target']} has {target.numel()} entries per batch but the "
                             f"model gives {tuple(out.shape)}; check output_level (cloud or point)")
        target = target.reshape(out.shape).to(out.dtype)
        loss = F.mse_loss(out, target)
        meter.update(out, target)
        n = out.shape[0]
    else:
        y = batch.y.reshape(-1)
        check_labels(y, num_out, name="labels (data.y)")
        loss = F.cross_entropy(out, y, label_smoothing=cfg["label_smoothing"])
        if cfg["task"] == "seg":
            meter.update(out, y, batch.category.reshape(-1), batch.batch)
            n = int(batch.num_graphs)
        else:
            meter.update(out, y)
            n = y.shape[0]
    return loss, n


def _meter(cfg, ds):
    if cfg["task"] == "cls":
        return ClassificationMeter(int(ds.num_classes))
    if cfg["task"] == "seg":
        return SegmentationMeter(ds.category_parts)
    return RegressionMeter()


@torch.no_grad()
def evaluate(model: nn.Module, ds, cfg: dict, *, device=None, dist_info: DistInfo | None = None) -> dict:
    """Evaluate ``model`` on ``ds`` under ``cfg['test_rotation']`` (fixed, seeded rotations)."""
    from torch_geometric.loader import DataLoader

    device = device or next(model.parameters()).device
    dist_info = dist_info or DistInfo()
    model.eval()
    shard = _EvalShard(ds, _transforms(cfg, ds, train=False), cfg["seed"], dist_info.rank, dist_info.world_size)
    loader = DataLoader(shard, batch_size=cfg["eval_batch_size"], shuffle=False, num_workers=cfg["num_workers"])
    meter = _meter(cfg, ds)
    num_out = _num_outputs(cfg, ds)
    for batch in loader:
        batch = batch.to(device)
        out = _forward(model, batch, cfg)
        loss, n = _loss_and_update(out, batch, cfg, meter, num_out)
        meter.add_loss(loss, n)
    meter.all_reduce()
    return meter.compute()


def _optimizer(cfg, model):
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    cls = torch.optim.AdamW if cfg["optimizer"] == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])


def _scheduler(cfg, opt):
    if cfg["scheduler"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"], eta_min=cfg["min_lr"])
    if cfg["scheduler"] == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg["step_size"], gamma=cfg["gamma"])
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)


def _is_better(value: float, best: float | None, higher: bool) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best if higher else value < best


def _prepare_out_dir(out_dir: Path, resume: bool, dist_info: DistInfo) -> None:
    if not resume and ((out_dir / "last.pt").exists() or (out_dir / "best.pt").exists()):
        raise RunExistsError(
            f"{str(out_dir)!r} already holds a run (last.pt/best.pt); pass --resume to continue it, "
            f"or choose another --out so that nothing saved is overwritten"
        )
    if dist_info.is_primary:
        out_dir.mkdir(parents=True, exist_ok=True)


def train(cfg: dict | None, out_dir: str | Path, *, resume: bool = False, epochs: int | None = None,
          progress: bool | None = None, _after_step=None) -> dict:
    """Train a model from a resolved config; return the final evaluation metrics.

    Args:
        cfg: resolved config (:func:`equinets.train.config.resolve_config`); ignored when resuming.
        out_dir: run directory.
        resume: continue from ``out_dir/last.pt`` with the checkpoint's config.
        epochs: total number of epochs (overrides the config's; lets a resumed run go further).
        progress: show progress bars (default: only on a terminal, rank 0).

    Raises:
        RunExistsError: ``out_dir`` already has checkpoints and ``resume`` is false.
        TrainingDiverged: the loss became non-finite (the checkpoints of earlier epochs stay intact).
    """
    from torch.utils.data.distributed import DistributedSampler
    from torch_geometric.loader import DataLoader
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    state = None
    if resume:
        if not (out_dir / "last.pt").is_file():
            raise FileNotFoundError(f"--resume: no checkpoint {str(out_dir / 'last.pt')!r} to resume from")
        state = load_checkpoint(out_dir / "last.pt")
        cfg = dict(state["config"])
    if cfg is None:
        raise ValueError("train() needs a config unless resume=True")
    cfg = dict(cfg)
    if epochs is not None:
        cfg["epochs"] = int(epochs)
    dev_kind = "cuda" if cfg["device"] == "cuda" or (cfg["device"] == "auto" and torch.cuda.is_available()) else "cpu"
    dist_info = init_distributed(dev_kind)
    try:
        _prepare_out_dir(out_dir, resume, dist_info)
        device = _device(cfg, dist_info)
        torch.manual_seed(cfg["seed"])
        if cfg["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)
        train_ds, eval_ds = build_datasets(cfg)
        model = build_model(cfg, train_ds).to(device)
        opt = _optimizer(cfg, model)
        sched = _scheduler(cfg, opt)
        start_epoch, best, history = 0, None, []
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start_epoch, best, history = int(state["epoch"]), state.get("best"), list(state.get("history", []))
        if dist_info.is_primary:
            with open(out_dir / "config.yaml", "w") as f:
                yaml.safe_dump(cfg, f, sort_keys=False)
        ddp = model
        if dist_info.enabled:
            ddp = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        writer = None
        if dist_info.is_primary:
            from ..typing import WITH_TENSORBOARD

            if WITH_TENSORBOARD:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(str(out_dir / "tb"))
        if progress is None:
            progress = sys.stderr.isatty()
        progress = progress and dist_info.is_primary
        per_rank_bs = max(1, cfg["batch_size"] // dist_info.world_size)
        sampler = DistributedSampler(train_ds, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                     shuffle=True, seed=cfg["seed"], drop_last=False)
        loader = DataLoader(train_ds, batch_size=per_rank_bs, sampler=sampler, num_workers=cfg["num_workers"],
                            drop_last=len(sampler) > per_rank_bs)
        train_tf = _transforms(cfg, train_ds, train=True)
        metric_name, higher = BEST_METRIC[cfg["task"]]
        num_out = _num_outputs(cfg, train_ds)
        eval_metrics: dict = history[-1] if history else {}
        for epoch in range(start_epoch, cfg["epochs"]):
            t0 = time.perf_counter()
            sampler.set_epoch(epoch)
            torch.manual_seed(_epoch_seed(cfg["seed"], epoch, dist_info.rank, 1))
            gen = torch.Generator().manual_seed(_epoch_seed(cfg["seed"], epoch, dist_info.rank, 2))
            ddp.train()
            meter = _meter(cfg, train_ds)
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg['epochs']}", disable=not progress, leave=False)
            for step, batch in enumerate(bar):
                batch = train_tf(batch, generator=gen).to(device)
                out = _forward(ddp, batch, cfg)
                loss, n = _loss_and_update(out, batch, cfg, meter, num_out)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"loss is {float(loss.detach())} at epoch {epoch + 1}, step {step}; stopping without saving, "
                        f"so {str(out_dir)!r} keeps the checkpoints of the last good epoch")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg["grad_clip"] > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
                opt.step()
                meter.add_loss(loss.detach(), n)
                if progress:
                    bar.set_postfix(loss=f"{float(loss):.4f}")
                if _after_step is not None:
                    _after_step(epoch, step)
            meter.all_reduce()
            train_metrics = meter.compute()
            lr = opt.param_groups[0]["lr"]
            sched.step()
            if dist_info.enabled:  # every rank evaluates rank 0's BatchNorm statistics
                for buf in model.buffers():
                    torch.distributed.broadcast(buf, 0)
            do_eval = (epoch + 1) % cfg["eval_every"] == 0 or epoch + 1 == cfg["epochs"]
            if do_eval:
                eval_metrics = evaluate(model, eval_ds, cfg, device=device, dist_info=dist_info)
            row = {"epoch": epoch + 1, "lr": lr}
            row.update({f"train_{k}": v for k, v in train_metrics.items()})
            if do_eval:
                row.update({f"eval_{k}": v for k, v in eval_metrics.items()})
            row["time_s"] = round(time.perf_counter() - t0, 3)
            history.append(row)
            improved = do_eval and _is_better(eval_metrics[metric_name], best, higher)
            if improved:
                best = eval_metrics[metric_name]
            if dist_info.is_primary:
                ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "epoch": epoch + 1, "best": best,
                        "best_metric": metric_name, "config": cfg, "history": history, "rng": rng_state()}
                if improved:
                    save_checkpoint(ckpt, out_dir / "best.pt")
                save_checkpoint(ckpt, out_dir / "last.pt")
                write_csv(history, out_dir / "metrics.csv")
                plot_curves(out_dir / "metrics.csv", out_dir / "curves.png")
                if writer is not None:
                    for k, v in row.items():
                        if k != "epoch":
                            writer.add_scalar(k.replace("_", "/", 1), v, epoch + 1)
                    writer.flush()
                shown = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k.startswith("eval_"))
                print(f"epoch {epoch + 1}/{cfg['epochs']} train_loss={train_metrics['loss']:.4f} {shown} "
                      f"({row['time_s']:.1f}s)", flush=True)
        if writer is not None:
            writer.close()
        if dist_info.enabled:  # rank 0 hosts the rendezvous store: no rank leaves before all are done
            torch.distributed.barrier()
        return {k[5:]: v for k, v in (history[-1] if history else {}).items() if k.startswith("eval_")}
    finally:
        cleanup_distributed()
