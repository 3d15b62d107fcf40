"""Neural-collapse analysis of a model over a data set, and of a trained run (``equinets collapse``).

:func:`measure_collapse` runs any equinets classification model over batches in ``eval()`` mode, captures
the classifier's input (:class:`~equinets.collapse.FeatureCapture`, frame means for frame-averaged models),
streams it into a :class:`~equinets.collapse.CollapseTracker` and returns the metrics of
:func:`~equinets.collapse.nc_metrics` with the model's own classifier ``W, b``. NC4 needs the final class
means, so there are two passes: the captured features are kept (on the CPU) for the second pass when they
fit in ``cache_bytes``, else the batches are run through the model again (they must then be the same:
fixed transforms, no shuffling, which the loaders of the trainer guarantee). Under ``torch.distributed``
each rank feeds its shard and the tracker all-reduces: every rank gets the numbers of one process over all
the data.

:func:`analyse_checkpoint` is the command ``equinets collapse --checkpoint RUN/best.pt [--split train|val|test]
[--out DIR] [--force]``: it rebuilds the run's model and data set from the checkpoint (the trainer's own
``build_model``/``build_datasets``; the train split under the run's ``train_rotation``, fixed per item, the
others under its ``test_rotation``, as ``equinets eval`` does), and writes into the run folder (or ``--out``)

* ``collapse_<checkpoint>_<split>.csv`` (e.g. ``collapse_best_train.csv``): ``metric,value`` rows (every key
  of ``nc_metrics``, then ``num_samples``, ``num_classes``, ``dim``, ``epoch``, ``global_mean``, ``split``,
  ``rotation``);
* ``collapse_<checkpoint>_<split>.png``: the normalised Gram matrix of the centred class means beside the
  simplex-ETF Gram :math:`(I - 11^T/K)/\\sqrt{K-1}` (and that of the classifier rows), the singular values of
  :math:`M_c` (equal for an ETF) and the per-class within-class variance :math:`V_k` relative to the mean
  squared centred-mean norm.

Files are written atomically; an existing analysis of the same checkpoint and split is never overwritten
unless ``overwrite=True`` (``--force``): :class:`AnalysisExistsError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from .._checks import check_choice, check_int
from ..errors import UserError
from .capture import FeatureCapture, default_forward, find_classifier
from .metrics import GLOBAL_MEANS
from .tracker import CollapseTracker

__all__ = ["measure_collapse", "analyse_checkpoint", "AnalysisExistsError", "SPLITS"]

#: the splits ``equinets collapse`` analyses
SPLITS = ("train", "val", "test")


class AnalysisExistsError(UserError, FileExistsError):
    """An analysis of this split already exists in the output folder (pass ``overwrite=True`` / ``--force``)."""


def _classifier_params(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    layer = getattr(*find_classifier(model))
    w = layer.weight.detach()
    b = getattr(layer, "bias", None)
    return w, (b.detach() if isinstance(b, torch.Tensor) else None)


@torch.no_grad()
def measure_collapse(model: nn.Module, batches: Iterable, num_classes: int, *, forward: Callable | None = None,
                     device=None, global_mean: str = "class", cache_bytes: int = 2**28,
                     labels: str = "y", absent: str = "error") -> tuple[dict[str, float], CollapseTracker]:
    """Neural-collapse metrics of ``model``'s penultimate features over ``batches`` (two passes, see above).

    Args:
        model: an equinets classification model (anything :func:`~equinets.collapse.find_classifier` accepts).
        batches: a re-iterable of PyG batches with ``pos``, ``batch`` and the labels (a ``DataLoader``).
        num_classes: ``K``.
        forward: ``forward(model, batch) -> logits`` (default :func:`~equinets.collapse.capture.default_forward`).
        device: where batches and the tracker go (default: the model's device).
        global_mean: ``"class"`` or ``"sample"``.
        cache_bytes: keep the captured features for the NC4 pass up to this size, else run the model again.
        labels: the batch attribute holding the labels.
        absent: classes without a sample: ``"error"`` or ``"drop"`` (see :func:`~equinets.collapse.nc_metrics`).

    Returns:
        ``(metrics, tracker)``: the dict of :func:`~equinets.collapse.nc_metrics` with the classifier's
        ``weight`` and ``bias`` (``nc4`` included), and the tracker (its statistics feed the plots).

    Example:
        >>> from torch_geometric.data import Batch, Data
        >>> from equinets.collapse import capture_features, nc_metrics
        >>> from equinets.nn import PointNet
        >>> _ = torch.manual_seed(0)
        >>> net = PointNet(0, 3, hidden_channels=(8,), emb_dims=16, head_channels=(8,))
        >>> clouds = [Data(pos=torch.randn(10, 3), y=torch.tensor([k % 3])) for k in range(12)]
        >>> loader = [Batch.from_data_list(clouds[:5]), Batch.from_data_list(clouds[5:])]
        >>> m, tracker = measure_collapse(net, loader, 3)
        >>> h, y, _ = capture_features(net, loader)  # the concatenated features: the same NC1
        >>> tracker.num_samples, abs(m["nc1"] - nc_metrics(h, y)["nc1"]) <= 1e-6 * m["nc1"]  # float32 features
        (12, True)
    """
    num_classes = check_int(num_classes, "num_classes", 2)
    check_choice(global_mean, "global_mean", GLOBAL_MEANS)
    cache_bytes = check_int(cache_bytes, "cache_bytes", 0)
    check_choice(absent, "absent", ("error", "drop"))
    forward = forward or default_forward
    W, b = _classifier_params(model)
    if W.shape[0] != num_classes:
        raise ValueError(f"num_classes = {num_classes} but the model's classifier has {W.shape[0]} outputs")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    tracker = CollapseTracker(num_classes, W.shape[1], device=device, global_mean=global_mean)
    was_training = model.training
    model.eval()
    cache: list[tuple[torch.Tensor, torch.Tensor]] | None = []
    size = 0
    try:
        with FeatureCapture(model) as cap:
            def run():
                for batch in batches:
                    batch = batch.to(device)
                    forward(model, batch)
                    y = getattr(batch, labels, None)
                    if y is None:
                        raise ValueError(f"labels: the batches carry no attribute {labels!r} with the class labels")
                    yield cap.pop(), y.reshape(-1)

            for h, y in run():
                tracker.update(h, y)
                if cache is not None:
                    size += h.numel() * h.element_size()
                    if size <= cache_bytes:
                        cache.append((h.cpu(), y.cpu()))
                    else:
                        cache = None  # over the budget: the NC4 pass runs the model again
            if tracker.num_samples == 0:
                raise ValueError("batches: no sample to measure (empty data)")
            tracker.all_reduce()
            for h, y in (cache if cache is not None else run()):
                tracker.update_nc4(h, y, W, b)
            tracker.all_reduce()
    finally:
        model.train(was_training)
    return tracker.compute(W, b, absent=absent), tracker


def _outputs(out_dir: Path, checkpoint: Path, split: str) -> tuple[Path, Path]:
    """One pair of files per (checkpoint, split): analyses of ``best.pt`` and ``last.pt`` never collide."""
    stem = f"collapse_{checkpoint.stem}_{split}"
    return out_dir / f"{stem}.csv", out_dir / f"{stem}.png"


def analyse_checkpoint(checkpoint: str | Path, *, split: str = "train", out: str | Path | None = None,
                       overwrite: bool = False, device: str | None = None, batch_size: int | None = None,
                       data_root: str | None = None, global_mean: str = "class") -> dict:
    """Analyse the collapse of a trained run's checkpoint (the ``equinets collapse`` command, see above).

    Args:
        checkpoint: ``RUN/best.pt`` or ``RUN/last.pt``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        out: output folder (default: the checkpoint's folder, the run directory).
        overwrite: replace an earlier analysis of the same checkpoint and split.
        device: ``"cpu"``/``"cuda"`` (default: the run's config).
        batch_size: evaluation batch size (default: the run's ``eval_batch_size``).
        data_root: where the data set lives (default: the run's ``data_root``).
        global_mean: ``"class"`` or ``"sample"``.

    Returns:
        ``{"csv": path, "png": path or None, "metrics": {...}}``.
    """
    from ..train.checkpoint import CheckpointError, load_checkpoint, load_model_state
    from ..train.config import ConfigError, validate_config
    from ..train.distributed import DistInfo
    from ..train.loop import build_datasets, build_model, collapse_loader, model_args

    split = check_choice(split, "split", SPLITS)
    check_choice(global_mean, "global_mean", GLOBAL_MEANS)
    batch_size = check_int(batch_size, "batch_size", 1, allow_none=True)
    checkpoint = Path(checkpoint)
    out_dir = Path(out) if out is not None else checkpoint.parent
    csv_path, png_path = _outputs(out_dir, checkpoint, split)
    if not overwrite:
        for p in (csv_path, png_path):
            if p.exists():
                raise AnalysisExistsError(f"{str(p)!r} exists (an earlier analysis of {checkpoint.name} on the {split} "
                                          f"split); pass --force to replace it, or --out DIR to write elsewhere")
    state = load_checkpoint(checkpoint)
    try:
        cfg = validate_config(state["config"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} holds a config equinets does not accept: {e}") from None
    if cfg["task"] != "cls":
        raise ConfigError(f"equinets collapse analyses classification runs (task: cls); {str(checkpoint)!r} is a "
                          f"{cfg['task']!r} run")
    for key, value in (("device", device), ("eval_batch_size", batch_size), ("data_root", data_root)):
        if value is not None:
            cfg[key] = value
    cfg = validate_config(cfg)
    model = None
    if "model_args" in state:  # the weights are checked before any data set is read
        model = build_model(cfg, args=dict(state["model_args"]))
        load_model_state(model, state["model"], f"checkpoint {str(checkpoint)!r}")
    (ds,) = build_datasets(cfg, splits=(split,))
    if model is None:
        model = build_model(cfg, ds)
        load_model_state(model, state["model"], f"checkpoint {str(checkpoint)!r}")
    else:
        now = model_args(cfg, ds)
        if now["out_channels"] != state["model_args"].get("out_channels"):
            raise CheckpointError(f"checkpoint {str(checkpoint)!r} has {state['model_args'].get('out_channels')} "
                                  f"classes but the {split} data give {now['out_channels']}")
    dev = torch.device("cuda" if cfg["device"] != "cpu" and torch.cuda.is_available() else "cpu")
    model = model.to(dev)
    rotation = cfg["train_rotation"] if split == "train" else cfg["test_rotation"]
    loader = collapse_loader(cfg, ds, rotation, DistInfo())
    from ..train.loop import _forward

    metrics, tracker = measure_collapse(model, loader, int(ds.num_classes), forward=lambda m, b: _forward(m, b, cfg),
                                        device=dev, global_mean=global_mean)
    rows = [{"metric": k, "value": v} for k, v in metrics.items()]
    extra = {"num_samples": tracker.num_samples, "num_classes": tracker.num_classes, "dim": tracker.dim,
             "epoch": state.get("epoch"), "global_mean": global_mean, "split": split, "rotation": rotation}
    rows += [{"metric": k, "value": v} for k, v in extra.items()]
    from .._atomic import write_csv

    write_csv(rows, csv_path)
    png = None
    try:
        from ..train.plots import plot_collapse_geometry

        W, _ = _classifier_params(model)
        png = plot_collapse_geometry(tracker.stats, png_path, weight=W, global_mean=global_mean,
                                     title=f"{checkpoint.parent.name}/{checkpoint.name}, {split} split, epoch "
                                           f"{state.get('epoch')}")
    except ImportError:  # matplotlib missing: the CSV is the analysis
        png = None
    return {"csv": str(csv_path), "png": None if png is None else str(png), "metrics": metrics}
