"""The training and evaluation loop behind ``equinets train`` and ``equinets eval``.

One function, :func:`train`, ties a dataset, a model and a task together from a resolved config
(:func:`equinets.train.config.resolve_config`). It is seeded and deterministic on CPU: the shuffle
order, the augmentation draws and dropout of epoch ``e`` depend only on ``(seed, e, rank)``, and the
learning rate of epoch ``e`` is a closed form of ``e`` (:func:`lr_factor`), so a run resumed from
``last.pt`` (saved at the end of every epoch) ends with the same metrics as an uninterrupted run and
no RNG or scheduler state needs saving. Under ``torchrun`` it trains with DDP (gloo on CPU, nccl on
GPU), shards the data with a distributed sampler, all-reduces metric statistics and writes files on
rank 0 only.

A run directory (:class:`equinets.train.rundir.RunDir`: locked while a run writes it, removed again
when a run fails before its first epoch ends) holds ``config.yaml`` (the resolved config),
``metrics.csv`` (one row per epoch), ``curves.png``, ``last.pt`` and ``best.pt``, and ``tb/`` when
TensorBoard is installed.

Set-up order: the config and (when resuming) the checkpoint and its weights are checked before any
dataset is read or generated; errors of the user's making are :class:`equinets.errors.UserError`.

Neural collapse (issue #10). ``head`` replaces the model's final classifier by a fixed or sparse head of
:mod:`equinets.collapse.heads` (``attach_head``), also inside ``FrameAveraging``. ``mixup_alpha > 0`` trains
with input mixup (Zhang et al., ICLR 2018): per batch ``lambda ~ Beta(alpha, alpha)``, each
cloud is paired with a random cloud of the batch with the same number of points, positions (and features)
are mixed point by point, ``p = lambda p_a + (1 - lambda) p_b``, and the loss is
``lambda CE(y_a) + (1 - lambda) CE(y_b)`` (training accuracy counts the dominant label).
``collapse_every = N`` (also spelt ``collapse: {every: N}``, override ``collapse.every=N``) measures the
collapse of the training set after every N-th epoch (and the last):
the model in ``eval()`` mode over the training set under ``train_rotation`` (fixed per item, no other
augmentation), :func:`equinets.collapse.analysis.measure_collapse` with the model's own classifier, all
ranks merged; the metrics go to ``metrics.csv`` as ``train_nc1``, ``train_nc4``, ... and ``collapse.png``
plots NC1 to NC4 against epochs.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from .._atomic import atomic_open, write_csv
from .._bench import set_allocator
from .._checks import check_labels
from ..errors import SetupError, UserError
from ..nn._base import unwrap_model
from .checkpoint import CheckpointError, CheckpointNotFoundError, load_checkpoint, load_model_state, save_checkpoint
from .config import ConfigError, validate_config
from .distributed import DistInfo, cleanup_distributed, group_device, init_distributed
from .metrics import ClassificationMeter, RegressionMeter, SegmentationMeter
from .plots import plot_collapse, plot_curves
from .rundir import RunDir, RunExistsError, RunLockedError

__all__ = ["train", "evaluate", "build_datasets", "build_model", "model_args", "lr_factor", "RunExistsError",
           "RunLockedError", "ResumeError", "TrainingDiverged", "BEST_METRIC", "collapse_loader", "collapse_metrics",
           "mixup_batch"]

#: the metric that decides ``best.pt`` per task, and whether higher is better
BEST_METRIC = {"cls": ("acc", True), "seg": ("instance_miou", True), "reg": ("mse", False)}

#: what a dataset or model constructor raises for arguments it rejects (see :mod:`equinets.errors`)
_ARGUMENT_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                    PermissionError)


#: curves.png is redrawn after the first epoch, at most this often, and after the last epoch
_PLOT_EVERY_S = 30.0


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite; no checkpoint of the diverged state is written."""


class ResumeError(UserError, ValueError):
    """``--resume`` cannot continue the run as asked (fewer epochs than done, a schedule that would jump)."""


def _device(cfg: dict, dist_info: DistInfo) -> torch.device:
    kind = cfg["device"]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("config key 'device' is 'cuda' but torch.cuda.is_available() is False; "
                              "use device=cpu or device=auto")
        return torch.device("cuda", dist_info.local_rank)
    return torch.device("cpu")


def _epoch_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank * 101 + stream) % (2**63 - 1)


def _setup_error(what: str, e: BaseException) -> SetupError:
    return SetupError(f"{what}: {' '.join(str(e).split()) or type(e).__name__}")


def build_datasets(cfg: dict, splits=("train", "eval")):
    """Create the datasets of a config, one per entry of ``splits``: ``"train"``, ``"eval"`` (the
    config's ``eval_split``) or ``"test"``; generated data is cached under ``data_root``.

    A dataset that rejects its arguments or files (``ValueError``, ``FileNotFoundError``, ...) raises
    :class:`equinets.errors.SetupError` naming the dataset and split.
    """
    from ..data import create_dataset, takes_num_points

    kw = dict(cfg["dataset_kwargs"])
    if takes_num_points(cfg["dataset"]):
        kw["num_points"] = cfg["num_points"]
    out = []
    for s in splits:
        split = cfg["eval_split"] if s == "eval" else s
        try:
            out.append(create_dataset(cfg["dataset"], root=cfg["data_root"], split=split, **kw))
        except _ARGUMENT_ERRORS as e:
            if isinstance(e, UserError):
                raise
            raise _setup_error(f"dataset {cfg['dataset']!r} ({split} split)", e) from e
        if len(out[-1]) == 0:
            raise SetupError(f"dataset {cfg['dataset']!r}: the {split} split is empty (data_root {cfg['data_root']!r})")
    ds = out[0]
    ds_task = getattr(ds, "task", "cls")
    if cfg["task"] == "seg" and ds_task != "seg":
        raise ConfigError(f"config key 'task' is 'seg', which needs a segmentation dataset, but {cfg['dataset']!r} "
                          f"is a {ds_task!r} dataset")
    if cfg["task"] == "cls" and ds_task != "cls":
        raise ConfigError(f"config key 'task' is 'cls', which needs a classification dataset, but {cfg['dataset']!r} "
                          f"is a {ds_task!r} dataset")
    if cfg["task"] == "reg" and getattr(ds[0], cfg["target"], None) is None:
        raise ConfigError(f"config key 'target': task 'reg' regresses data.{cfg['target']}, which {cfg['dataset']!r} "
                          f"items do not have")
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


def model_args(cfg: dict, ds) -> dict:
    """The keyword arguments ``create_model(cfg['model'], **args)`` gets for dataset ``ds``: the widths the
    dataset dictates (``in_channels``, ``out_channels``, ``num_categories``), ``task`` and ``model_kwargs``.
    Stored in checkpoints, so a model can be rebuilt (and its weights checked) without the dataset."""
    kwargs = dict(cfg["model_kwargs"])
    if cfg["task"] == "seg" and getattr(ds, "num_categories", 0) and "num_categories" not in kwargs:
        kwargs["num_categories"] = int(ds.num_categories)
    x0 = getattr(ds[0], "x", None)
    if cfg["use_features"] and x0 is None:
        raise ConfigError(f"config key 'use_features' is true but {cfg['dataset']!r} items have no features (data.x)")
    in_channels = int(x0.reshape(x0.shape[0], -1).shape[1]) if cfg["use_features"] else 0
    task = "seg" if _point_level(cfg) else "cls"
    return {"in_channels": in_channels, "out_channels": _num_outputs(cfg, ds), "task": task, **kwargs}


def build_model(cfg: dict, ds=None, *, args: dict | None = None) -> nn.Module:
    """The model named by ``cfg['model']`` (wrapped in ``FrameAveraging`` when the config asks), sized for
    dataset ``ds``, or built from stored :func:`model_args` ``args`` without a dataset."""
    from ..nn import create_model

    if args is None:
        args = model_args(cfg, ds)
    try:
        model = create_model(cfg["model"], **args)
    except _ARGUMENT_ERRORS as e:
        if isinstance(e, UserError):
            raise
        raise _setup_error(f"model {cfg['model']!r} rejected model_kwargs {cfg['model_kwargs']}", e) from e
    if cfg["frame_averaging"] is not None:
        from ..frames import FrameAveraging

        if cfg["use_features"] and cfg["fa_irreps_in"] is None:
            raise ConfigError("frame_averaging with use_features=true needs fa_irreps_in, the e3nn irreps of data.x "
                              "(e.g. '1o' for normals), so that features are rotated into each frame")
        try:
            model = FrameAveraging(model, cfg["frame_averaging"], irreps_in=cfg["fa_irreps_in"] if cfg["use_features"]
                                   else None, irreps_out=cfg["fa_irreps_out"], position_output=cfg["fa_position_output"],
                                   task=args["task"], num_samples=cfg["fa_num_samples"] or None,
                                   signs=cfg["fa_signs"], degenerate=cfg["fa_degenerate"])
        except _ARGUMENT_ERRORS as e:
            if isinstance(e, UserError):
                raise
            raise _setup_error("frame_averaging (fa_* keys)", e) from e
    if cfg.get("head", "linear") != "linear":
        model = _attach_head(model, cfg, args)
    return model


def _attach_head(model: nn.Module, cfg: dict, args: dict) -> nn.Module:
    """``equinets.collapse.heads.attach_head(model, cfg['head'], num_classes=..., **cfg['head_kwargs'])``."""
    try:
        from ..collapse.heads import attach_head
    except ImportError as e:
        raise ConfigError(f"config key 'head' is {cfg['head']!r}, but equinets.collapse.heads is not available "
                          f"({e}); use head: linear") from None
    try:
        name = {"simplex_etf": "etf"}.get(cfg["head"], cfg["head"])  # the config's name -> attach_head's
        return attach_head(model, name, num_classes=args["out_channels"], **cfg["head_kwargs"])
    except _ARGUMENT_ERRORS as e:
        if isinstance(e, UserError):
            raise
        raise _setup_error(f"head {cfg['head']!r} rejected head_kwargs {cfg['head_kwargs']}", e) from e


def _transforms(cfg: dict, ds, train: bool):
    from ..data.transforms import Compose, Jitter, RandomRotate, RandomScale, RandomShift

    # the dataset's declaration: "z" is about its up axis (cfg up_axis overrides it), and every geometric
    # vector of an item (positions, normals, velocities, vector columns of x, vector targets) rotates
    tfs = [RandomRotate.for_dataset(cfg["train_rotation" if train else "test_rotation"], ds, up_axis=cfg["up_axis"])]
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


def collapse_loader(cfg: dict, ds, rotation: str, dist_info: DistInfo | None = None):
    """A loader over this rank's shard of ``ds`` for collapse measurements: items in order, each under its own
    fixed rotation of protocol ``rotation`` (seeded by ``(seed, item)``, as :func:`evaluate` does), no other
    augmentation, batches of ``eval_batch_size``; two passes over it see the same clouds."""
    from torch_geometric.loader import DataLoader

    from ..data.transforms import Compose, RandomRotate

    dist_info = dist_info or DistInfo()
    tf = Compose([RandomRotate.for_dataset(rotation, ds, up_axis=cfg["up_axis"])])
    shard = _EvalShard(ds, tf, cfg["seed"], dist_info.rank, dist_info.world_size)
    return DataLoader(shard, batch_size=cfg["eval_batch_size"], shuffle=False, num_workers=cfg["num_workers"])


def collapse_metrics(model: nn.Module, ds, cfg: dict, *, device=None, dist_info: DistInfo | None = None,
                     rotation: str | None = None) -> dict[str, float]:
    """Neural-collapse metrics of ``model`` on ``ds`` (default rotation: ``train_rotation``), ranks merged; classes
    without a sample in ``ds`` are left out (``absent="drop"`` of :func:`equinets.collapse.nc_metrics`)."""
    from ..collapse.analysis import measure_collapse

    device = device or next(model.parameters()).device
    loader = collapse_loader(cfg, ds, rotation or cfg["train_rotation"], dist_info)
    metrics, _ = measure_collapse(model, loader, int(ds.num_classes), forward=lambda m, b: _forward(m, b, cfg),
                                  device=device, absent="drop")
    return metrics


def mixup_batch(batch, alpha: float, rng, generator: torch.Generator | None = None):
    """Input mixup of a PyG batch: ``(mixed_batch, y_a, y_b, lam)`` (see the module docstring).

    ``lam ~ Beta(alpha, alpha)`` from the NumPy generator ``rng``; each cloud is paired with a random cloud of
    the batch with the same number of points (drawn with ``generator``; a cloud whose size no other cloud
    shares is paired with itself), and ``pos`` (and ``x``) are mixed point by point. ``y_b`` holds the
    partners' labels.
    """
    lam = float(rng.beta(alpha, alpha))
    counts = torch.bincount(batch.batch, minlength=int(batch.num_graphs))
    B = counts.shape[0]
    partner = torch.arange(B)
    cpu_counts = counts.cpu()
    for n in torch.unique(cpu_counts).tolist():
        members = (cpu_counts == n).nonzero().reshape(-1)
        partner[members] = members[torch.randperm(members.numel(), generator=generator)]
    partner = partner.to(batch.batch.device)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
    idx = torch.arange(batch.batch.shape[0], device=batch.batch.device)
    other = ptr[partner][batch.batch] + (idx - ptr[batch.batch])
    mixed = batch.clone()
    mixed.pos = lam * batch.pos + (1 - lam) * batch.pos[other]
    x = getattr(batch, "x", None)
    if isinstance(x, Tensor) and x.is_floating_point():
        mixed.x = lam * x + (1 - lam) * x[other]
    y = batch.y.reshape(-1)
    return mixed, y, y[partner], lam


def _model_hook(model: nn.Module, name: str, batch):
    """``model.<name>(batch)`` of the unwrapped model (:func:`~equinets.nn._base.unwrap_model`: DDP,
    DataParallel and ``torch.compile`` stripped), or ``None`` when the model has no such hook."""
    fn = getattr(unwrap_model(model), name, None)
    return None if fn is None else fn(batch)


def _train_inputs(model: nn.Module, batch) -> dict:
    """Extra keyword arguments of a training forward: ``model.train_inputs(data)`` when the model defines it
    (APEN: the ground-truth partition for partition teacher forcing), else ``{}``. Only forwards in training
    mode get them (:func:`_forward`); evaluation never passes them."""
    kw = _model_hook(model, "train_inputs", batch)
    if kw is None:
        return {}
    if not isinstance(kw, dict):
        raise TypeError(f"{type(model).__name__}.train_inputs(data) must return a dict, got {type(kw).__name__}")
    return kw


def _forward(model, batch, cfg):
    x = batch.x if cfg["use_features"] else None
    # training steps only (evaluation runs the model in eval mode): the model's extra training inputs
    kw = _train_inputs(model, batch) if model.training else {}
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


def _mixup_loss(out, y_a, y_b, lam: float, cfg, meter, num_out: int):
    """``lam CE(out, y_a) + (1 - lam) CE(out, y_b)`` (label smoothing on both); the meter counts the dominant label."""
    check_labels(y_a, num_out, name="labels (data.y)")
    ls = cfg["label_smoothing"]
    loss = lam * F.cross_entropy(out, y_a, label_smoothing=ls) + (1 - lam) * F.cross_entropy(out, y_b, label_smoothing=ls)
    meter.update(out, y_a if lam >= 0.5 else y_b)
    return loss, y_a.shape[0]


def _auxiliary_loss(model: nn.Module, batch, loss: Tensor) -> Tensor | float:
    """The model's own training terms, added to the task loss: ``model.auxiliary_loss(data)`` when the model
    (the unwrapped module, not the DDP wrapper) defines it, else 0.

    A model that needs extra supervision (APEN's part-centre votes, for example) stores what it needs in its
    ``forward`` and returns a scalar tensor here; ``None`` means no extra term for this batch.
    """
    aux = _model_hook(model, "auxiliary_loss", batch)
    if aux is None:
        return 0.0
    if not isinstance(aux, Tensor) or aux.numel() != 1:
        raise TypeError(f"{type(model).__name__}.auxiliary_loss(data) must return a scalar tensor or None, "
                        f"got {type(aux).__name__}{tuple(aux.shape) if isinstance(aux, Tensor) else ''}")
    return aux.reshape(()).to(loss.dtype)


def _meter(cfg, ds):
    if cfg["task"] == "cls":
        return ClassificationMeter(int(ds.num_classes))
    if cfg["task"] == "seg":
        return SegmentationMeter(ds.category_parts)
    return RegressionMeter()


@torch.no_grad()
def evaluate(model: nn.Module, ds, cfg: dict, *, device=None, dist_info: DistInfo | None = None,
             per_class: bool = False) -> dict:
    """Evaluate ``model`` on ``ds`` under ``cfg['test_rotation']`` (fixed, seeded rotations).

    With ``per_class=True`` a classification result also holds ``per_class_acc``: ``{class name: recall}`` over the
    classes present in ``ds`` (the names are ``ds.classes`` where the dataset has them, else the class ids)."""
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
    out = meter.compute()
    if per_class and isinstance(meter, ClassificationMeter):
        names = getattr(ds, "classes", None)
        if not names or len(names) != meter.num_classes:
            names = range(meter.num_classes)
        recall = meter.per_class_recall().tolist()
        out["per_class_acc"] = {str(n): r for n, r in zip(names, recall) if not math.isnan(r)}
    return out


def _optimizer(cfg, model):
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    cls = torch.optim.AdamW if cfg["optimizer"] == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])


def lr_factor(cfg: dict):
    """The learning rate of epoch ``e`` (0-based) as a multiple of ``cfg['lr']``, in closed form.

    ``cosine``: :math:`\\eta_e = \\eta_{min} + \\tfrac12(\\eta - \\eta_{min})(1 + \\cos(\\pi \\min(e, T)/T))` with
    :math:`T` = ``epochs`` (held at ``min_lr`` past :math:`T`, never rising again); ``step``:
    :math:`\\gamma^{\\lfloor e/s \\rfloor}`; ``none``: 1. A closed form (not a recursion over epochs) is what lets
    ``--resume --epochs N`` rebuild the schedule for a new total.

    >>> f = lr_factor({"scheduler": "cosine", "epochs": 4, "lr": 1.0, "min_lr": 0.0})
    >>> [round(f(e), 4) for e in range(6)]
    [1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    """
    kind, lr = cfg["scheduler"], cfg["lr"]
    if kind == "cosine" and lr > 0:
        T, m = cfg["epochs"], cfg["min_lr"]
        return lambda e: (m + 0.5 * (lr - m) * (1 + math.cos(math.pi * min(e, T) / T))) / lr
    if kind == "step":
        s, g = cfg["step_size"], cfg["gamma"]
        return lambda e: g ** (e // s)
    return lambda e: 1.0


def _scheduler(cfg, opt, done: int = 0):
    """A LambdaLR over :func:`lr_factor`, positioned at epoch ``done`` (the next epoch to train)."""
    for g in opt.param_groups:
        g["initial_lr"] = cfg["lr"]
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg), last_epoch=done - 1)


def _check_extension(cfg: dict, state: dict, epochs: int | None) -> None:
    """``--resume --epochs N``: never shrink a run; refuse a schedule that would raise the learning rate."""
    done = int(state["epoch"])
    planned = int(state["config"].get("epochs", done))
    if epochs is None:
        return
    if epochs < max(done, planned):
        raise ResumeError(f"--epochs {epochs} is below the {planned} epochs this run was planned for ({done} trained); "
                          f"a run is never shrunk: pass --epochs {max(done, planned)} or more, or omit --epochs to "
                          f"finish the planned run")
    history = state.get("history") or []
    if epochs == planned or done == 0 or not history or cfg["scheduler"] != "cosine":
        return
    last_lr = float(history[-1]["lr"])
    new_lr = cfg["lr"] * lr_factor(dict(cfg, epochs=epochs))(done)
    tol = last_lr * 1e-9 + 1e-15
    if new_lr > last_lr + tol:
        # the stretched cosine's lr in epoch `done` grows with the total n: cos(pi done / n) <= c holds for n <= n_max
        lr, m = cfg["lr"], cfg["min_lr"]
        c = min(1.0, max(-1.0, 2 * (last_lr + tol - m) / (lr - m) - 1)) if lr > m else 1.0
        n_max = math.floor(math.pi * done / math.acos(c)) if c < 1.0 else done
        hint = (f"pass --epochs {n_max} or fewer" if n_max > planned else
                "it cannot be extended without raising its learning rate: start a new run (or fine-tune from best.pt)")
        raise ResumeError(
            f"--epochs {epochs}: this run's cosine schedule (over {planned} epochs) was at lr {last_lr:.3g} in epoch "
            f"{done}; a cosine schedule over {epochs} epochs would give lr {new_lr:.3g} in epoch {done + 1}, raising "
            f"the learning rate, so the schedule would not be monotone; {hint}")


def _is_better(value: float, best: float | None, higher: bool) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best if higher else value < best


@contextlib.contextmanager
def _sigint_deferred():
    """Hold a Ctrl-C back until the block ends, so a checkpoint write is never split from its siblings."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hit = []
    old = signal.signal(signal.SIGINT, lambda *a: hit.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if hit:
        raise KeyboardInterrupt


def train(cfg: dict | None, out_dir: str | Path, *, resume: bool = False, epochs: int | None = None,
          progress: bool | None = None, _after_step=None) -> dict:
    """Train a model from a resolved config; return the final evaluation metrics.

    The returned dict holds the last evaluation's metrics, ``best_epoch`` and ``best_<metric>`` (the
    metric of :data:`BEST_METRIC`), and with ``test_at_best`` the test metrics at the best validation
    epoch as ``test_<metric>``.

    Args:
        cfg: resolved config (:func:`equinets.train.config.resolve_config`); ignored when resuming.
        out_dir: run directory.
        resume: continue from ``out_dir/last.pt`` with the checkpoint's config.
        epochs: total number of epochs (overrides the config's; lets a resumed run go further, never
            below the epochs done; a cosine schedule is rebuilt over the new total when that keeps it
            monotone, else :class:`ResumeError`).
        progress: show progress bars (default: only on a terminal, rank 0).

    Raises:
        RunExistsError: ``out_dir`` already has checkpoints and ``resume`` is false.
        RunLockedError: another process is writing ``out_dir``.
        ResumeError: ``epochs`` below the epochs done, or a schedule that cannot stay monotone.
        TrainingDiverged: the loss became non-finite (the checkpoints of earlier epochs stay intact).
        KeyboardInterrupt: passed on; ``last.pt`` holds the last finished epoch.
    """
    from torch.utils.data.distributed import DistributedSampler
    from torch_geometric.loader import DataLoader
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    state = None
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if resume:
        if not (out_dir / "last.pt").is_file():
            raise CheckpointNotFoundError(f"--resume: no checkpoint {str(out_dir / 'last.pt')!r} to resume from")
        state = load_checkpoint(out_dir / "last.pt")
        try:
            cfg = validate_config(state["config"])
        except ConfigError as e:
            raise CheckpointError(f"{str(out_dir / 'last.pt')!r} holds a config equinets does not accept: {e}") from None
        _check_extension(cfg, state, epochs)
    elif cfg is None:
        raise TypeError("train() needs a config unless resume=True")
    else:
        cfg = validate_config(cfg)
    if epochs is not None:
        cfg["epochs"] = int(epochs)
    dev_kind = "cuda" if cfg["device"] == "cuda" or (cfg["device"] == "auto" and torch.cuda.is_available()) else "cpu"
    dist_info = init_distributed(dev_kind)
    run = RunDir(out_dir, resume=resume, primary=dist_info.is_primary)
    failed = True
    writer = None
    try:
        run.open()
        device = _device(cfg, dist_info)
        if device.type == "cpu":
            set_allocator(cfg["cpu_allocator"])  # for the rest of the process (equinets._bench.set_allocator)
        torch.manual_seed(cfg["seed"])
        if cfg["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)
        model = None
        if state is not None and "model_args" in state:  # weights checked before any dataset is read
            model = build_model(cfg, args=dict(state["model_args"]))
            load_model_state(model, state["model"], str(out_dir / "last.pt"))
        splits = ("train", "eval", "test") if cfg["test_at_best"] else ("train", "eval")
        datasets = build_datasets(cfg, splits)
        train_ds, eval_ds = datasets[0], datasets[1]
        test_ds = datasets[2] if cfg["test_at_best"] else None
        margs = model_args(cfg, train_ds)
        if model is None:
            model = build_model(cfg, args=margs)
            if state is not None:
                load_model_state(model, state["model"], str(out_dir / "last.pt"))
        elif {k: margs[k] for k in ("in_channels", "out_channels")} != \
                {k: state["model_args"].get(k) for k in ("in_channels", "out_channels")}:
            raise CheckpointError(f"{str(out_dir / 'last.pt')!r} was trained with in/out channels "
                                  f"{state['model_args'].get('in_channels')}/{state['model_args'].get('out_channels')} "
                                  f"but the dataset now gives {margs['in_channels']}/{margs['out_channels']}")
        model = model.to(device)
        opt = _optimizer(cfg, model)
        start_epoch, best, history, best_epoch, best_test = 0, None, [], None, {}
        if state is not None:
            try:
                opt.load_state_dict(state["optimizer"])
            except (KeyError, ValueError) as e:
                raise CheckpointError(f"{str(out_dir / 'last.pt')!r}: its optimizer state does not fit the model "
                                      f"({e})") from None
            start_epoch, best, history = int(state["epoch"]), state.get("best"), list(state.get("history", []))
            best_epoch, best_test = state.get("best_epoch"), dict(state.get("best_test") or {})
        sched = _scheduler(cfg, opt, start_epoch)
        if dist_info.is_primary and state is None:
            with atomic_open(out_dir / "config.yaml", "w") as f:
                yaml.safe_dump(cfg, f, sort_keys=False)
        ddp = model
        if dist_info.enabled:
            ddp = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
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
        t_start = time.perf_counter()
        last_plot = -math.inf  # the first epoch is always drawn
        for epoch in range(start_epoch, cfg["epochs"]):
            t0 = time.perf_counter()
            sampler.set_epoch(epoch)
            torch.manual_seed(_epoch_seed(cfg["seed"], epoch, dist_info.rank, 1))
            gen = torch.Generator().manual_seed(_epoch_seed(cfg["seed"], epoch, dist_info.rank, 2))
            ddp.train()
            mix_rng = mix_gen = None
            if cfg["mixup_alpha"] > 0:
                import numpy as np

                mix_rng = np.random.default_rng(_epoch_seed(cfg["seed"], epoch, dist_info.rank, 3))
                mix_gen = torch.Generator().manual_seed(_epoch_seed(cfg["seed"], epoch, dist_info.rank, 4))
            meter = _meter(cfg, train_ds)
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg['epochs']}", disable=not progress, leave=False)
            for step, batch in enumerate(bar):
                batch = train_tf(batch, generator=gen).to(device)
                if mix_rng is not None:
                    batch, y_a, y_b, lam = mixup_batch(batch, cfg["mixup_alpha"], mix_rng, mix_gen)
                    out = _forward(ddp, batch, cfg)
                    loss, n = _mixup_loss(out, y_a, y_b, lam, cfg, meter, num_out)
                else:
                    out = _forward(ddp, batch, cfg)
                    loss, n = _loss_and_update(out, batch, cfg, meter, num_out)
                loss = loss + _auxiliary_loss(model, batch, loss)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"loss is {float(loss.detach())} at epoch {epoch + 1}, step {step}; stopping without saving, "
                        f"so {str(out_dir)!r} keeps the checkpoints of the last good epoch (try a lower lr)")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg["grad_clip"] > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
                opt.step()
                meter.add_loss(loss.detach(), n)
                if progress:
                    bar.set_postfix(loss=f"{float(loss):.4f}")
                if cfg["log_every"] and (step + 1) % cfg["log_every"] == 0 and dist_info.is_primary:
                    print(f"epoch {epoch + 1}/{cfg['epochs']} step {step + 1}/{len(loader)} "
                          f"loss={float(loss.detach()):.4f}", flush=True)
                    if writer is not None:
                        writer.add_scalar("train/step_loss", float(loss.detach()), epoch * len(loader) + step + 1)
                if _after_step is not None:
                    _after_step(epoch, step)
            meter.all_reduce()
            train_metrics = meter.compute()
            lr = opt.param_groups[0]["lr"]
            sched.step()
            if dist_info.enabled:  # every rank evaluates rank 0's BatchNorm statistics
                for buf in model.buffers():
                    torch.distributed.broadcast(buf, 0)
            over = cfg["time_budget"] > 0 and time.perf_counter() - t_start > cfg["time_budget"]
            if dist_info.enabled and cfg["time_budget"] > 0:  # rank 0's clock decides for all: no rank leaves alone
                flag = torch.tensor([1.0 if over else 0.0], device=group_device())
                torch.distributed.broadcast(flag, 0)
                over = bool(flag.item() > 0)
            do_eval = (epoch + 1) % cfg["eval_every"] == 0 or epoch + 1 == cfg["epochs"] or over
            row = {"epoch": epoch + 1, "lr": lr}
            row.update({f"train_{k}": v for k, v in train_metrics.items()})
            every = cfg["collapse_every"]
            if every and ((epoch + 1) % every == 0 or epoch + 1 == cfg["epochs"] or over):
                nc = collapse_metrics(model, train_ds, cfg, device=device, dist_info=dist_info)
                row.update({f"train_{k}": v for k, v in nc.items()})
            improved = False
            if do_eval:
                eval_metrics = evaluate(model, eval_ds, cfg, device=device, dist_info=dist_info)
                row.update({f"eval_{k}": v for k, v in eval_metrics.items()})
                improved = _is_better(eval_metrics[metric_name], best, higher)
                if improved:
                    best, best_epoch = eval_metrics[metric_name], epoch + 1
                    if test_ds is not None:  # the paper protocol: test metrics at the best validation epoch
                        best_test = evaluate(model, test_ds, cfg, device=device, dist_info=dist_info)
                        row.update({f"test_{k}": v for k, v in best_test.items()})
            row["time_s"] = round(time.perf_counter() - t0, 3)
            history.append(row)
            if dist_info.is_primary:
                ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                        "best": best, "best_metric": metric_name, "best_epoch": best_epoch, "best_test": best_test,
                        "config": cfg, "history": history, "model_args": margs}
                with _sigint_deferred():  # best.pt, last.pt, metrics.csv and config.yaml of one epoch, together
                    if improved:
                        save_checkpoint(ckpt, out_dir / "best.pt")
                    save_checkpoint(ckpt, out_dir / "last.pt")
                    write_csv(history, out_dir / "metrics.csv")
                    if state is not None and epoch == start_epoch:  # resumed (maybe extended): its config now
                        with atomic_open(out_dir / "config.yaml", "w") as f:
                            yaml.safe_dump(cfg, f, sort_keys=False)
                run.commit()
                if epoch + 1 == cfg["epochs"] or over or time.perf_counter() - last_plot > _PLOT_EVERY_S:
                    plot_curves(out_dir / "metrics.csv", out_dir / "curves.png")
                    if cfg["collapse_every"]:
                        plot_collapse(out_dir / "metrics.csv", out_dir / "collapse.png")
                    last_plot = time.perf_counter()
                if writer is not None:
                    for k, v in row.items():
                        if k != "epoch":
                            writer.add_scalar(k.replace("_", "/", 1), v, epoch + 1)
                    writer.flush()
                shown = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k.startswith(("eval_", "test_")))
                print(f"epoch {epoch + 1}/{cfg['epochs']} train_loss={train_metrics['loss']:.4f} {shown} "
                      f"({row['time_s']:.1f}s)", flush=True)
            if over:
                if dist_info.is_primary:
                    print(f"time_budget of {cfg['time_budget']:g}s spent after epoch {epoch + 1} of {cfg['epochs']}; "
                          f"continue with: equinets train --out {out_dir} --resume", flush=True)
                break
        if dist_info.enabled:  # rank 0 hosts the rendezvous store: no rank leaves before all are done
            torch.distributed.barrier()
        failed = False
        last = next((r for r in reversed(history) if any(k.startswith("eval_") for k in r)), {})
        result = {k[5:]: v for k, v in last.items() if k.startswith("eval_")}
        result.update({"best_epoch": best_epoch, f"best_{metric_name}": best})
        result.update({f"test_{k}": v for k, v in best_test.items()})
        return result
    finally:
        if writer is not None:
            writer.close()
        run.close(failed=failed)
        cleanup_distributed()
