"""Task metrics as all-reducible sufficient statistics.

Each meter accumulates sums (a confusion matrix, per-category IoU sums, squared errors) in float64
so that distributed evaluation adds the statistics of every rank before the ratios are taken, and
the result equals a single-process evaluation of the same samples.

* classification: overall accuracy and class-balanced accuracy (mean per-class recall);
* segmentation: ShapeNetPart's conventions (Qi et al. 2017; Wang et al. 2019): logits restricted to
  the parts of the shape's category; per-part IoU with a part absent from both prediction and
  ground truth counted as 1; shape IoU = mean over the category's parts; **instance mIoU** = mean
  over shapes; **class mIoU** = mean over categories of their mean shape IoU; point accuracy from the
  unrestricted argmax over all parts;
* regression: mean squared error over all target entries.

**Devices.** Statistics live on the device of the first tensor given to ``update`` or ``add_loss``
(the model's), so a CUDA evaluation accumulates on the GPU (the input checks cost a few scalar syncs
per batch, the accumulation none). :meth:`all_reduce` moves them, in one
flat float64 buffer, to the device of the process group's backend (``cuda`` for NCCL, which
refuses CPU tensors; ``cpu`` for gloo; :func:`equinets.train.distributed.group_device`), sums them
over the ranks and copies the sums back. :meth:`compute` returns plain Python floats.

**Empty meters.** A meter that saw no sample (an empty split, or every rank's shard empty) has no
metrics: :meth:`compute` raises :class:`EmptyMeterError` (a ``ValueError`` and an
:class:`equinets.errors.UserError`, so the CLI reports one line ``error: ...`` with exit 2) rather
than returning NaN, so no NaN reaches ``metrics.csv`` or the JSON the CLI prints. A class with no sample is left
out of the balanced accuracy, a category with no shape out of the class mIoU (as in ShapeNetPart's
protocol); the ``loss`` key is present only when :meth:`add_loss` was called.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_batch, check_int, check_labels
from ..errors import UserError
from .distributed import group_device

__all__ = ["ClassificationMeter", "SegmentationMeter", "RegressionMeter", "EmptyMeterError", "shape_ious",
           "all_reduce_"]


class EmptyMeterError(UserError, ValueError):
    """A meter was asked for metrics before it saw any sample (an empty split: a user error, exit 2 in the CLI)."""


def all_reduce_(*tensors: Tensor, group=None) -> None:
    """Sum tensors in place over the process group ``group``, when one is initialised (else do nothing).

    The tensors are packed into one buffer per dtype on :func:`group_device` (so NCCL gets CUDA
    tensors and gloo CPU tensors, wherever the inputs live), reduced with one ``all_reduce`` each,
    and copied back into the inputs on their own devices.

    >>> t = torch.ones(2, dtype=torch.float64)
    >>> all_reduce_(t)  # no process group: unchanged
    >>> t
    tensor([1., 1.], dtype=torch.float64)
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or not tensors:
        return
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"all_reduce_ takes tensors, got {type(t).__name__}")
    device = group_device(group, prefer=tensors[0].device)
    for dtype in dict.fromkeys(t.dtype for t in tensors):
        same = [t for t in tensors if t.dtype == dtype]
        buf = torch.cat([t.detach().reshape(-1).to(device) for t in same])
        dist.all_reduce(buf, group=group)
        offset = 0
        for t in same:
            n = t.numel()
            t.copy_(buf[offset:offset + n].view_as(t))
            offset += n


class _Meter:
    #: names of the float64 statistic tensors, summed over ranks by :meth:`all_reduce`
    _STATS: tuple[str, ...] = ("loss_sum", "loss_count")

    def __init__(self):
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.loss_count = torch.zeros((), dtype=torch.float64)
        self._placed = False

    @property
    def device(self) -> torch.device:
        """Where the statistics are: the device of the first tensor given to ``update``/``add_loss``."""
        return self.loss_sum.device

    def _follow(self, t: Tensor) -> torch.device:
        """Put the statistics (and constant tables) on ``t``'s device at the first tensor seen; return
        their device, to which later inputs from elsewhere are moved (no back-and-forth)."""
        if not self._placed:
            self._placed = True
            if t.device != self.device:
                self._to(t.device)
        return self.device

    def _to(self, device: torch.device) -> None:
        for name in self._STATS:
            setattr(self, name, getattr(self, name).to(device))

    def add_loss(self, loss: Tensor | float, n: int) -> None:
        """Add a batch's mean loss with weight ``n`` (its number of samples); the metric is the weighted mean.

        A tensor ``loss`` is accumulated on its own device, without a host sync.
        """
        n = check_int(n, "n", 0)
        if isinstance(loss, Tensor):
            if loss.numel() != 1:
                raise ValueError(f"loss must be a scalar (one element), got shape {tuple(loss.shape)}")
            dev = self._follow(loss)
            self.loss_sum += loss.detach().reshape(()).to(dev).double() * n
        else:
            self.loss_sum += float(loss) * n
        self.loss_count += n

    def _stats(self) -> list[Tensor]:
        return [getattr(self, name) for name in self._STATS]

    def all_reduce(self, group=None) -> None:
        """Sum every statistic over the ranks of ``group`` (no-op without a process group)."""
        all_reduce_(*self._stats(), group=group)

    def _empty(self, what: str) -> EmptyMeterError:
        return EmptyMeterError(
            f"{type(self).__name__}.compute(): no {what} were added, so there are no metrics (an empty "
            f"split or shard?); call update() with at least one sample first")

    def _loss(self) -> dict[str, float]:
        return {"loss": float(self.loss_sum / self.loss_count)} if float(self.loss_count) > 0 else {}


def _check_tensor(t, name: str, dim: int) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != dim:
        shape = {1: "(n,)", 2: "(n, C)"}.get(dim, f"{dim} dimensions")
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    return t


class ClassificationMeter(_Meter):
    """Accuracy and class-balanced accuracy (mean recall over the classes present) from a confusion matrix.

    Args:
        num_classes: number of classes ``C``.

    Shapes:
        ``update(logits, y)``: ``logits`` ``(n, C)``, ``y`` ``(n,)`` (or ``(n, 1)``) integer class ids.

    >>> m = ClassificationMeter(3)
    >>> m.update(torch.tensor([[2., 0, 0], [0, 2, 0], [0, 2, 0], [0, 0, 2]]), torch.tensor([0, 1, 2, 2]))
    >>> {k: round(v, 4) for k, v in m.compute().items()}
    {'acc': 0.75, 'balanced_acc': 0.8333}
    """

    _STATS = _Meter._STATS + ("confusion",)

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = check_int(num_classes, "num_classes", 1)
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.float64)

    def update(self, logits: Tensor, y: Tensor) -> None:
        C = self.num_classes
        _check_tensor(logits, "logits", 2)
        if logits.shape[1] != C:
            raise ValueError(f"logits must have shape (n, num_classes) = (n, {C}), got {tuple(logits.shape)}")
        if not isinstance(y, Tensor):
            raise TypeError(f"y must be a torch.Tensor of class ids, got {type(y).__name__}")
        y = y.reshape(-1)
        if y.shape[0] != logits.shape[0]:
            raise ValueError(f"y has {y.shape[0]} labels but logits has {logits.shape[0]} rows; they must match")
        check_labels(y, C, "y")
        dev = self._follow(logits)
        pred = logits.detach().argmax(-1).to(dev)
        key = y.to(dev).long() * C + pred
        self.confusion += torch.bincount(key, minlength=C * C).reshape(C, C).double()

    def compute(self) -> dict[str, float]:
        cm = self.confusion.cpu()
        total = float(cm.sum())
        if total == 0:
            raise self._empty("samples")
        recall = self.per_class_recall()
        out = {"acc": float(cm.diagonal().sum()) / total, "balanced_acc": float(recall.nanmean())}
        return {**self._loss(), **out}

    def per_class_recall(self) -> Tensor:
        """Recall of each class, ``(C,)`` float64: ``confusion[c, c] / confusion[c].sum()``, NaN for a class with
        no samples (so a missing class is never reported as 0 % or 100 %).

        >>> m = ClassificationMeter(3)
        >>> m.update(torch.tensor([[2., 0, 0], [0, 2, 0], [0, 2, 0]]), torch.tensor([0, 1, 2]))
        >>> m.per_class_recall().tolist()
        [1.0, 1.0, 0.0]
        """
        cm = self.confusion.cpu()
        support = cm.sum(1)
        out = torch.full((self.num_classes,), float("nan"), dtype=torch.float64)
        present = support > 0
        out[present] = cm.diagonal()[present] / support[present]
        return out


def shape_ious(logits: Tensor, y: Tensor, category: Tensor, batch: Tensor, part_mask: Tensor) -> Tensor:
    """Per-shape mean part IoU under ShapeNetPart's conventions.

    Args:
        logits: ``(N, P)`` part logits over all ``P`` parts.
        y: ``(N,)`` ground-truth global part ids.
        category: ``(B,)`` category id of each shape.
        batch: ``(N,)`` shape id of each point.
        part_mask: ``(K, P)`` bool, ``part_mask[k, p]`` = part ``p`` belongs to category ``k``.

    Returns:
        ``(B,)`` float64 shape IoUs.

    >>> mask = torch.tensor([[True, True, False], [False, False, True]])
    >>> logits = torch.tensor([[1., 0, 9], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
    >>> shape_ious(logits, torch.tensor([0, 1, 0, 2]), torch.tensor([0, 1]), torch.tensor([0, 0, 0, 1]), mask)
    tensor([0.5000, 1.0000], dtype=torch.float64)
    """
    B = int(category.shape[0])
    P = part_mask.shape[1]
    allowed = part_mask[category[batch]]  # (N, P)
    pred = logits.masked_fill(~allowed, float("-inf")).argmax(-1)
    key_pred = batch * P + pred
    key_gt = batch * P + y
    n_pred = torch.bincount(key_pred, minlength=B * P).reshape(B, P).double()
    n_gt = torch.bincount(key_gt, minlength=B * P).reshape(B, P).double()
    inter = torch.bincount(key_gt[pred == y], minlength=B * P).reshape(B, P).double()
    union = n_pred + n_gt - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    m = part_mask[category].double()  # (B, P)
    return (iou * m).sum(1) / m.sum(1)


class SegmentationMeter(_Meter):
    """Instance mIoU, class mIoU and point accuracy (ShapeNetPart conventions).

    Args:
        category_parts: list over categories of their global part ids (each non-empty).

    Shapes:
        ``update(logits, y, category, batch)``: ``logits`` ``(N, P)`` with ``P`` = 1 + the largest
        part id, ``y`` ``(N,)`` part ids (each a part of its shape's category), ``category`` ``(B,)``,
        ``batch`` ``(N,)`` sorted shape ids in ``[0, B)``.

    >>> m = SegmentationMeter([[0, 1], [2]])
    >>> logits = torch.tensor([[1., 0, 9], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
    >>> m.update(logits, torch.tensor([0, 1, 0, 2]), torch.tensor([0, 1]), torch.tensor([0, 0, 0, 1]))
    >>> m.compute()
    {'instance_miou': 0.75, 'class_miou': 0.75, 'point_acc': 0.5}
    """

    _STATS = _Meter._STATS + ("iou_sum", "shape_count", "points")

    def __init__(self, category_parts: list[list[int]]):
        super().__init__()
        if isinstance(category_parts, (str, bytes)) or not hasattr(category_parts, "__len__") or not category_parts:
            raise ValueError(f"category_parts must be a non-empty list of lists of part ids, got {category_parts!r}")
        for k, parts in enumerate(category_parts):
            if isinstance(parts, (str, bytes)) or not hasattr(parts, "__iter__") or len(parts) == 0:
                raise ValueError(f"category_parts[{k}] must be a non-empty list of part ids, got {parts!r}")
            for p in parts:
                check_int(p, f"category_parts[{k}] entries", 0)
        P = 1 + max(int(p) for parts in category_parts for p in parts)
        K = len(category_parts)
        self.part_mask = torch.zeros(K, P, dtype=torch.bool)
        for k, parts in enumerate(category_parts):
            self.part_mask[k, [int(p) for p in parts]] = True
        self.iou_sum = torch.zeros(K, dtype=torch.float64)
        self.shape_count = torch.zeros(K, dtype=torch.float64)
        self.points = torch.zeros(2, dtype=torch.float64)  # correct, total

    def _to(self, device: torch.device) -> None:
        super()._to(device)
        self.part_mask = self.part_mask.to(device)

    def update(self, logits: Tensor, y: Tensor, category: Tensor, batch: Tensor) -> None:
        K, P = self.part_mask.shape
        _check_tensor(logits, "logits", 2)
        N = logits.shape[0]
        if logits.shape[1] != P:
            raise ValueError(f"logits must have shape (N, num_parts) = (N, {P}), got {tuple(logits.shape)}")
        y = _check_tensor(y, "y", 1)
        if y.shape[0] != N:
            raise ValueError(f"y has {y.shape[0]} labels but logits has {N} rows; they must match")
        check_labels(y, P, "y")
        if not isinstance(category, Tensor):
            raise TypeError(f"category must be a torch.Tensor of category ids, got {type(category).__name__}")
        category = category.reshape(-1)
        check_labels(category, K, "category")
        batch = check_batch(batch, N, "batch", of="logits")
        if N and int(batch[-1]) >= category.shape[0]:
            raise ValueError(f"batch holds shape id {int(batch[-1])} but category has only {category.shape[0]} "
                             f"entries (one per shape)")
        dev = self._follow(logits)
        logits, y, category, batch = logits.detach().to(dev), y.to(dev).long(), category.to(dev).long(), batch.to(dev)
        if N and not bool(self.part_mask[category[batch], y].all()):
            raise ValueError("y holds part ids that are not parts of their shape's category (see category_parts)")
        ious = shape_ious(logits, y, category, batch, self.part_mask)
        onehot = torch.nn.functional.one_hot(category, K).double()  # (B, K): a deterministic sum per category
        self.iou_sum += onehot.mT @ ious
        self.shape_count += onehot.sum(0)
        self.points[0] += (logits.argmax(-1) == y).sum()
        self.points[1] += N

    def compute(self) -> dict[str, float]:
        count = self.shape_count.cpu()
        iou_sum, points = self.iou_sum.cpu(), self.points.cpu()
        if float(count.sum()) == 0:
            raise self._empty("shapes")
        present = count > 0
        out = {
            "instance_miou": float(iou_sum.sum() / count.sum()),
            "class_miou": float((iou_sum[present] / count[present]).mean()),
            "point_acc": float(points[0] / points[1]),
        }
        return {**self._loss(), **out}


class RegressionMeter(_Meter):
    """Mean squared error over every target entry.

    Shapes:
        ``update(pred, target)``: two tensors of the same shape.

    >>> m = RegressionMeter()
    >>> m.update(torch.tensor([[1., 2.]]), torch.tensor([[1., 4.]]))
    >>> m.compute()
    {'mse': 2.0}
    """

    _STATS = _Meter._STATS + ("sse",)

    def __init__(self):
        super().__init__()
        self.sse = torch.zeros(2, dtype=torch.float64)  # sum of squares, count

    def update(self, pred: Tensor, target: Tensor) -> None:
        for name, t in (("pred", pred), ("target", target)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if pred.shape != target.shape:
            raise ValueError(f"target must have the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}")
        dev = self._follow(pred)
        d = pred.detach().to(dev).double() - target.detach().to(dev).double()
        self.sse[0] += (d * d).sum()
        self.sse[1] += d.numel()

    def compute(self) -> dict[str, float]:
        sse = self.sse.cpu()
        if float(sse[1]) == 0:
            raise self._empty("target entries")
        return {**self._loss(), "mse": float(sse[0] / sse[1])}
