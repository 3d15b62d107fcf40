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

    **Geometric contract** (shared with :class:`~equinets.data.NBody`), read by
    :meth:`RandomRotate.for_dataset <equinets.data.transforms.RandomRotate.for_dataset>` and by
    the trainer's ``train_rotation`` / ``test_rotation``:

    * ``up_axis`` (class attribute, ``"x"``, ``"y"`` or ``"z"``): the axis that points up in the
      data; protocol ``"z"`` rotates about it (the config key ``up_axis`` overrides it).
    * ``vector_keys``: the item keys that hold geometric vectors, i.e. rotate with the object, as
      entries of :func:`~equinets.data.transforms.parse_vector_keys` (a key, or ``(key,
      slice(a, a + 3))`` for three columns of a wider tensor). For point clouds it is ``pos``, plus
      ``x`` (unit normals) when the dataset has normals, plus the class attribute
      ``extra_vector_keys`` (none of the built-in sets has any). Everything else is invariant
      under rotation and is left alone: labels, categories, masks, and the ``extent`` of
      ``shapes``, the *sorted principal* half extents of the solid, a property of the solid and
      not of its pose (an axis-aligned extent would be neither invariant nor a vector).

    ``transform`` is applied to every item when it is accessed.

    Example:
        >>> import tempfile
        >>> from equinets.data import ShapesDataset
        >>> from equinets.data.transforms import RandomRotate
        >>> ds = ShapesDataset(tempfile.mkdtemp(), num_points=32, num_train=15, num_test=15)
        >>> ds.up_axis, ds.vector_keys
        ('z', ('pos', 'x'))
        >>> t = RandomRotate.for_dataset("SO3", ds)
        >>> R = t.sample(1, torch.Generator().manual_seed(0))[0]
        >>> d, out = ds[3], t(ds[3], torch.Generator().manual_seed(0))
        >>> torch.allclose(out.pos, d.pos @ R.T), torch.allclose(out.x, d.x @ R.T), torch.equal(out.extent, d.extent)
        (True, True, True)
    """

    task: str = "cls"
    up_axis: str = "z"
    #: geometric vector keys beyond ``pos`` and the normals ``x`` (see ``vector_keys``)
    extra_vector_keys: tuple = ()
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
    def vector_keys(self) -> tuple:
        """The item keys that are geometric vectors: ``pos``, ``x`` (normals) if present, ``extra_vector_keys``."""
        return ("pos",) + (("x",) if self.normal is not None else ()) + tuple(self.extra_vector_keys)

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
