"""ShapeNetPart reader for ``shapenetcore_partanno_segmentation_benchmark_v0_normal/``."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ._base import PointCloudDataset, SegmentationMixin
from ._io import missing, read_txt_array

DATA_DIR = "shapenetcore_partanno_segmentation_benchmark_v0_normal"

#: (category, synset id, number of parts) in the benchmark's order; part ids are global and contiguous.
SHAPENETPART_CATEGORIES: list[tuple[str, str, int]] = [
    ("Airplane", "02691156", 4),
    ("Bag", "02773838", 2),
    ("Cap", "02954340", 2),
    ("Car", "02958343", 4),
    ("Chair", "03001627", 4),
    ("Earphone", "03261776", 3),
    ("Guitar", "03467517", 3),
    ("Knife", "03624134", 2),
    ("Lamp", "03636649", 4),
    ("Laptop", "03642806", 2),
    ("Motorbike", "03790512", 6),
    ("Mug", "03797390", 2),
    ("Pistol", "03948459", 3),
    ("Rocket", "04099429", 3),
    ("Skateboard", "04225987", 3),
    ("Table", "04379243", 3),
]

_CATEGORY_PARTS: list[list[int]] = []
_PART_NAMES: list[str] = []
for _name, _, _k in SHAPENETPART_CATEGORIES:
    _CATEGORY_PARTS.append(list(range(len(_PART_NAMES), len(_PART_NAMES) + _k)))
    _PART_NAMES += [f"{_name}/{j}" for j in range(_k)]

_SPLIT_FILES = {
    "train": ["train"],
    "val": ["val"],
    "test": ["test"],
    "trainval": ["train", "val"],
}


class ShapeNetPart(SegmentationMixin, PointCloudDataset):
    r"""ShapeNetPart (Yi et al., SIGGRAPH Asia 2016) part segmentation from user-supplied files.

    Layout (``root`` is this folder or its parent)::

        shapenetcore_partanno_segmentation_benchmark_v0_normal/
            synsetoffset2category.txt            # "Airplane<TAB>02691156", ...
            02691156/<shape id>.txt              # rows "x y z nx ny nz part" (part = global id 0-49)
            ...
            train_test_split/shuffled_{train,val,test}_file_list.json
                                                 # ["shape_data/02691156/<shape id>", ...]

    16 categories, 50 parts (Airplane 0-3, Bag 4-5, Cap 6-7, Car 8-11, Chair 12-15, Earphone
    16-18, Guitar 19-21, Knife 22-23, Lamp 24-27, Laptop 28-29, Motorbike 30-35, Mug 36-37,
    Pistol 38-40, Rocket 41-43, Skateboard 44-46, Table 47-49). Each shape is resampled to
    ``num_points`` points (a subset without replacement, or with replacement when the file has
    fewer), deterministically from ``seed`` and the shape id. Up axis: **y** (ShapeNet's).

    Items: ``pos`` ``(N, 3)``, ``x`` ``(N, 3)`` normals, ``y`` ``(N,)`` global part ids,
    ``category`` ``(1,)`` (index into :attr:`categories`, which always lists all 16).

    **STATS**:

    ========  ======  =====================  ==========  =====
    split     shapes  points (file / item)   categories  parts
    ========  ======  =====================  ==========  =====
    train     12137   about 2600 / 2048      16          50
    val       1870    about 2600 / 2048      16          50
    test      2874    about 2600 / 2048      16          50
    ========  ======  =====================  ==========  =====

    Args:
        root: the data folder or its parent (default ``datasets``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        num_points: points per item.
        categories: keep only these categories (names, case-insensitive, or synset ids).
        seed: seed of the resampling.
        transform: applied to every item on access.

    Example:
        >>> ShapeNetPart("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: ShapeNetPart: expected files not found. Looked for:
        ...
    """

    task = "seg"
    up_axis = "y"
    classes = _PART_NAMES
    categories = [c for c, _, _ in SHAPENETPART_CATEGORIES]
    category_parts = _CATEGORY_PARTS

    def __init__(
        self,
        root: str | Path = "datasets",
        split: str = "train",
        *,
        num_points: int = 2048,
        categories: list[str] | None = None,
        seed: int = 0,
        transform: Callable | None = None,
    ) -> None:
        super().__init__(transform)
        if split not in _SPLIT_FILES:
            raise ValueError(f"split must be one of {list(_SPLIT_FILES)}, got {split!r}")
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        root = Path(root)
        self.split = split
        lists = [f"train_test_split/shuffled_{s}_file_list.json" for s in _SPLIT_FILES[split]]
        folder = next((d for d in (root, root / DATA_DIR) if all((d / f).is_file() for f in lists)), None)
        if folder is None:
            expected = [d / f for d in (root, root / DATA_DIR) for f in lists] + [
                root / DATA_DIR / "<synset>/<shape id>.txt"
            ]
            raise missing("ShapeNetPart", expected)
        self.folder = folder
        synset_to_cat = {s: i for i, (_, s, _) in enumerate(SHAPENETPART_CATEGORIES)}
        keep = set(range(len(SHAPENETPART_CATEGORIES)))
        if categories is not None:
            lookup = {c.lower(): i for i, (c, _, _) in enumerate(SHAPENETPART_CATEGORIES)} | synset_to_cat
            unknown = [c for c in categories if c.lower() not in lookup and c not in lookup]
            if unknown:
                raise ValueError(f"unknown ShapeNetPart categories {unknown}; known: {self.categories}")
            keep = {lookup.get(c.lower(), lookup.get(c)) for c in categories}

        entries: list[tuple[str, str]] = []
        for f in lists:
            try:
                items = json.loads((folder / f).read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"cannot parse split file {folder / f}: {e}") from e
            for item in items:
                synset, shape = item.split("/")[-2:]
                if synset not in synset_to_cat:
                    raise ValueError(f"{folder / f}: entry {item!r} has unknown synset {synset!r}")
                if synset_to_cat[synset] in keep:
                    entries.append((synset, shape))

        pos = np.empty((len(entries), num_points, 3), np.float32)
        nrm = np.empty((len(entries), num_points, 3), np.float32)
        part = np.empty((len(entries), num_points), np.int64)
        cat = np.empty(len(entries), np.int64)
        for i, (synset, shape) in enumerate(entries):
            path = folder / synset / f"{shape}.txt"
            if not path.is_file():
                raise missing("ShapeNetPart", [path], extra="(listed in the split files)\n")
            arr = read_txt_array(path, 7)
            c = synset_to_cat[synset]
            lab = arr[:, 6].astype(np.int64)
            lo, hi = _CATEGORY_PARTS[c][0], _CATEGORY_PARTS[c][-1]
            if lab.min() < lo or lab.max() > hi:
                raise ValueError(
                    f"{path}: part labels in [{lab.min()}, {lab.max()}], but {self.categories[c]} has global "
                    f"part ids {lo}-{hi}; expected the '_normal' benchmark's global labels"
                )
            idx = _resample(len(arr), num_points, seed, f"{synset}/{shape}")
            pos[i], nrm[i], part[i], cat[i] = arr[idx, :3], arr[idx, 3:6], lab[idx], c
        self.shape_ids = [f"{s}/{k}" for s, k in entries]
        self._set(
            torch.from_numpy(pos),
            torch.from_numpy(nrm),
            torch.from_numpy(part),
            category=torch.from_numpy(cat),
        )


def _resample(n: int, k: int, seed: int, key: str) -> np.ndarray:
    """Indices of ``k`` of ``n`` points: all in order when ``n == k``, else a seeded random choice."""
    if n == k:
        return np.arange(n)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return rng.choice(n, k, replace=n < k)
