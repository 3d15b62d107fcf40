"""The in-memory base class every equinets dataset shares."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch_geometric.data import Data

from .._checks import check_finite


class PointCloudDataset(Dataset):
    """Clouds of a fixed size held as dense tensors; items are built as :class:`~torch_geometric.data.Data`.

    Subclasses fill ``pos`` ``(M, N, 3)`` float32, ``normal`` ``(M, N, 3)`` float32 or ``None``
    (exposed per item as ``x``), ``labels`` (``(M,)`` class ids for ``task == "cls"``, ``(M, N)``
    global part ids for ``task == "seg"``) and ``extra``: other per-cloud tensors with first axis
    ``M`` (``category`` for segmentation, ``extent``, ``mask``, ...), returned under their key with
    a leading axis of length 1 for per-cloud values (``extent`` ``(1, 3)``, ``category`` ``(1,)``)
    or ``(N, ...)`` for per-point ones (``per_point_extra``).

    ``transform`` is applied to every item when it is accessed.
    """

    task: str = "cls"
    up_axis: str = "z"
    classes: list[str] = []

    def __init__(self, transform: Callable | None = None) -> None:
        super().__init__()
        self.transform = transform
        self.pos: Tensor = torch.empty(0, 0, 3)
        self.normal: Tensor | None = None
        self.labels: Tensor = torch.empty(0, dtype=torch.long)
        self.extra: dict[str, Tensor] = {}
        self.per_point_extra: tuple[str, ...] = ()

    def _set(self, pos: Tensor, normal: Tensor | None, labels: Tensor, **extra: Tensor) -> None:
        pos = pos.to(torch.float32).contiguous()
        check_finite(pos, "pos")
        if normal is not None:
            normal = normal.to(torch.float32).contiguous()
            check_finite(normal, "normal")
        self.pos, self.normal, self.labels = pos, normal, labels.long().contiguous()
        self.extra = {k: v.contiguous() for k, v in extra.items()}

    @property
    def num_classes(self) -> int:
        """Classification: the number of classes. Segmentation: the total number of parts."""
        return len(self.classes)

    @property
    def num_points(self) -> int:
        return int(self.pos.shape[1])

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    def get(self, idx: int) -> Data:
        """Item ``idx`` without the transform."""
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for a dataset of {n} clouds")
        idx = idx % n
        data = Data(pos=self.pos[idx])
        if self.normal is not None:
            data.x = self.normal[idx]
        data.y = self.labels[idx] if self.task == "seg" else self.labels[idx : idx + 1]
        for k, v in self.extra.items():
            data[k] = v[idx] if k in self.per_point_extra else v[idx : idx + 1]
        return data

    def __getitem__(self, idx) -> Data:
        if isinstance(idx, torch.Tensor):
            idx = int(idx)
        data = self.get(int(idx))
        return data if self.transform is None else self.transform(data)

    def label_counts(self) -> Tensor:
        """Clouds per class (cls) or points per part (seg), a long tensor of length ``num_classes``."""
        return torch.bincount(self.labels.reshape(-1), minlength=self.num_classes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)}, num_points={self.num_points}, task={self.task!r})"


class SegmentationMixin:
    """ShapeNetPart-style bookkeeping: ``categories``, ``category_parts`` (global part ids per category)."""

    categories: list[str] = []
    category_parts: list[list[int]] = []

    @property
    def num_categories(self) -> int:
        return len(self.categories)

    def part_to_category(self) -> Tensor:
        """Long tensor mapping each global part id to its category id."""
        out = torch.empty(sum(len(p) for p in self.category_parts), dtype=torch.long)
        for c, parts in enumerate(self.category_parts):
            out[parts] = c
        return out
