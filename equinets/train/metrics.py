"""Task metrics as all-reducible sufficient statistics.

Each meter accumulates sums (a confusion matrix, per-category IoU sums, squared errors) so that
distributed evaluation adds the statistics of every rank before the ratios are taken, and the
result equals a single-process evaluation of the same samples.

* classification: overall accuracy and class-balanced accuracy (mean per-class recall);
* segmentation: ShapeNetPart's conventions (Qi et al. 2017; Wang et al. 2019): logits restricted to
  the parts of the shape's category; per-part IoU with a part absent from both prediction and
  ground truth counted as 1; shape IoU = mean over the category's parts; **instance mIoU** = mean
  over shapes; **class mIoU** = mean over categories of their mean shape IoU;
* regression: mean squared error over all target entries.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ClassificationMeter", "SegmentationMeter", "RegressionMeter", "shape_ious", "all_reduce_"]


def all_reduce_(*tensors: Tensor) -> None:
    """Sum tensors in place over the process group, when one is initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for t in tensors:
            dist.all_reduce(t)


class _Meter:
    def __init__(self):
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.loss_count = torch.zeros((), dtype=torch.float64)

    def add_loss(self, loss: Tensor, n: int) -> None:
        self.loss_sum += float(loss) * n
        self.loss_count += n

    def _stats(self) -> list[Tensor]:
        return [self.loss_sum, self.loss_count]

    def all_reduce(self) -> None:
        all_reduce_(*self._stats())

    def _loss(self) -> dict[str, float]:
        return {"loss": float(self.loss_sum / self.loss_count)} if self.loss_count > 0 else {}


class ClassificationMeter(_Meter):
    """Accuracy and class-balanced accuracy from a confusion matrix.

    >>> m = ClassificationMeter(3)
    >>> m.update(torch.tensor([[2., 0, 0], [0, 2, 0], [0, 2, 0], [0, 0, 2]]), torch.tensor([0, 1, 2, 2]))
    >>> {k: round(v, 4) for k, v in m.compute().items()}
    {'acc': 0.75, 'balanced_acc': 0.8333}
    """

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64)

    def update(self, logits: Tensor, y: Tensor) -> None:
        pred = logits.argmax(-1).cpu()
        y = y.reshape(-1).cpu()
        C = self.num_classes
        self.confusion += torch.bincount(y * C + pred, minlength=C * C).reshape(C, C).double()

    def _stats(self):
        return super()._stats() + [self.confusion]

    def compute(self) -> dict[str, float]:
        cm = self.confusion
        total = cm.sum()
        support = cm.sum(1)
        present = support > 0
        recall = cm.diagonal()[present] / support[present]
        out = {
            "acc": float(cm.diagonal().sum() / total) if total > 0 else float("nan"),
            "balanced_acc": float(recall.mean()) if present.any() else float("nan"),
        }
        return {**self._loss(), **out}


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
        category_parts: list over categories of their global part ids.
    """

    def __init__(self, category_parts: list[list[int]]):
        super().__init__()
        P = 1 + max(p for parts in category_parts for p in parts)
        K = len(category_parts)
        self.part_mask = torch.zeros(K, P, dtype=torch.bool)
        for k, parts in enumerate(category_parts):
            self.part_mask[k, parts] = True
        self.iou_sum = torch.zeros(K, dtype=torch.float64)
        self.shape_count = torch.zeros(K, dtype=torch.float64)
        self.points = torch.zeros(2, dtype=torch.float64)  # correct, total

    def update(self, logits: Tensor, y: Tensor, category: Tensor, batch: Tensor) -> None:
        logits, y, category, batch = logits.detach().cpu(), y.cpu(), category.reshape(-1).cpu(), batch.cpu()
        ious = shape_ious(logits, y, category, batch, self.part_mask)
        K = self.part_mask.shape[0]
        self.iou_sum += torch.bincount(category, weights=ious, minlength=K)
        self.shape_count += torch.bincount(category, minlength=K).double()
        self.points[0] += float((logits.argmax(-1) == y).sum())
        self.points[1] += y.numel()

    def _stats(self):
        return super()._stats() + [self.iou_sum, self.shape_count, self.points]

    def compute(self) -> dict[str, float]:
        present = self.shape_count > 0
        out = {
            "instance_miou": float(self.iou_sum.sum() / self.shape_count.sum()),
            "class_miou": float((self.iou_sum[present] / self.shape_count[present]).mean()),
            "point_acc": float(self.points[0] / self.points[1]),
        }
        return {**self._loss(), **out}


class RegressionMeter(_Meter):
    """Mean squared error over every target entry.

    >>> m = RegressionMeter()
    >>> m.update(torch.tensor([[1., 2.]]), torch.tensor([[1., 4.]]))
    >>> m.compute()
    {'mse': 2.0}
    """

    def __init__(self):
        super().__init__()
        self.sse = torch.zeros(2, dtype=torch.float64)  # sum of squares, count

    def update(self, pred: Tensor, target: Tensor) -> None:
        d = (pred.detach().double() - target.double()).cpu()
        self.sse[0] += float((d * d).sum())
        self.sse[1] += d.numel()

    def _stats(self):
        return super()._stats() + [self.sse]

    def compute(self) -> dict[str, float]:
        return {**self._loss(), "mse": float(self.sse[0] / self.sse[1])}
