"""ScanObjectNN reader for the official HDF5 files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._checks import check_choice, check_int
from ._base import PointCloudDataset
from ._io import as_root, check_lengths, empty_split, h5_labels, h5_points, missing, read_h5

#: Class names, index = label.
SCANOBJECTNN_CLASSES = [
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door",
    "shelf", "table", "bed", "pillow", "sink", "sofa", "toilet",
]  # fmt: skip

#: variant -> (folder, file suffix after ``{training,test}_objectdataset``)
SCANOBJECTNN_VARIANTS: dict[str, tuple[str, str]] = {
    "OBJ_BG": ("main_split", ""),
    "OBJ_ONLY": ("main_split_nobg", ""),
    "PB_T25": ("main_split", "_augmented25_norot"),
    "PB_T25_R": ("main_split", "_augmented25rot"),
    "PB_T50_R": ("main_split", "_augmentedrot"),
    "PB_T50_RS": ("main_split", "_augmentedrot_scale75"),
}


class ScanObjectNN(PointCloudDataset):
    r"""ScanObjectNN (Uy et al., ICCV 2019): 15 classes of real object scans, from user-supplied HDF5 files.

    Layout (``root`` may be ``h5_files/``, its parent, or the split folder itself)::

        h5_files/
            main_split/                      # objects with background
                training_objectdataset.h5                       test_objectdataset.h5       (OBJ_BG)
                training_objectdataset_augmented25_norot.h5    ...                         (PB_T25)
                training_objectdataset_augmented25rot.h5       ...                         (PB_T25_R)
                training_objectdataset_augmentedrot.h5         ...                         (PB_T50_R)
                training_objectdataset_augmentedrot_scale75.h5 ...                         (PB_T50_RS)
            main_split_nobg/                 # objects only
                training_objectdataset.h5    test_objectdataset.h5                          (OBJ_ONLY)

    Keys: ``data`` ``(n, 2048, 3)`` float, ``label`` ``(n,)``, ``mask`` ``(n, 2048)`` (background
    mask; kept per point as ``mask``, long), all with the same number of clouds (and ``mask``
    with the points of ``data``; an error names the file, both keys and their lengths). No
    normals (``x`` is absent). The first ``num_points`` points are kept; an empty file is an
    error. Up axis: **y** (the convention of the reference training code, whose augmentation
    rotates about y; check it for your files).

    **STATS**:

    ===========  ===============  ======
    variant      train / test     points
    ===========  ===============  ======
    OBJ_BG       2309 / 581       2048
    OBJ_ONLY     2309 / 581       2048
    PB_T50_RS    11416 / 2882     2048
    ===========  ===============  ======

    Args:
        root: ``h5_files/``, its parent or the split folder (default ``datasets``).
        split: ``"train"`` or ``"test"``.
        variant: one of :data:`SCANOBJECTNN_VARIANTS`.
        num_points: points kept per cloud.
        transform: applied to every item on access.

    Example:
        >>> ScanObjectNN("/nonexistent", variant="OBJ_ONLY")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: ScanObjectNN: expected files not found. Looked for:
        ...
    """

    task = "cls"
    up_axis = "y"
    classes = SCANOBJECTNN_CLASSES

    def __init__(
        self,
        root: str | Path = "datasets",
        split: str = "train",
        *,
        variant: str = "PB_T50_RS",
        num_points: int = 1024,
        transform: Callable | None = None,
    ) -> None:
        super().__init__(transform)
        root = as_root(root)
        check_choice(split, "split", ("train", "test"))
        check_choice(variant, "variant", SCANOBJECTNN_VARIANTS)
        num_points = check_int(num_points, "num_points", 1)
        sub, suffix = SCANOBJECTNN_VARIANTS[variant]
        name = f"{'training' if split == 'train' else 'test'}_objectdataset{suffix}.h5"
        candidates = [root / "h5_files" / sub / name, root / sub / name, root / name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise missing("ScanObjectNN", candidates, extra=f"(variant {variant}, split {split})\n")
        self.split, self.variant, self.path = split, variant, path
        d = read_h5(path, ("data", "label"), optional=("mask",))  # checks data / label / mask lengths
        pts = h5_points(path, d["data"], num_points)
        if len(pts) == 0:
            raise empty_split("ScanObjectNN", split, path.parent, f"{path.name} holds 0 clouds")
        lab = h5_labels(path, d["label"], len(self.classes))
        extra = {}
        if "mask" in d:
            check_lengths(path, {"data": d["data"], "mask": d["mask"]}, axes=2)
            extra["mask"] = torch.from_numpy(np.ascontiguousarray(d["mask"][:, :num_points]).astype(np.int64))
            self.per_point_extra = ("mask",)
        self._set(
            torch.from_numpy(np.ascontiguousarray(pts)), None, torch.from_numpy(lab), **extra
        )
