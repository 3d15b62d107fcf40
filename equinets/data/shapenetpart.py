"""ShapeNetPart reader for ``shapenetcore_partanno_segmentation_benchmark_v0_normal/``."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._checks import check_choice, check_int
from ._base import PointCloudDataset, SegmentationMixin
from ._io import as_root, cache_key, check_lengths, empty_split, load_cached, missing, read_txt_array, source_fingerprint

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

_SYNSET_TO_CAT = {s: i for i, (_, s, _) in enumerate(SHAPENETPART_CATEGORIES)}
_CACHE_VERSION = 1  # bump when the processed tensors change

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

    The about 16 k text files are parsed once into PyG's ``processed/`` convention:
    ``<data folder>/processed/n{num_points}_s{seed}_v1/{train,val,test}.pt`` (``trainval`` reads
    ``train`` and ``val``; a category subset gets its own files, e.g. ``train_airplane-mug.pt``)
    with a ``manifest.json`` holding the parameters, a fingerprint of the source files (names,
    sizes, modification times) and a SHA-256 of the tensors, checked on every load; a stale or
    corrupt cache is rebuilt, never mixed (:func:`equinets.data._io.load_cached`). An empty split
    (for instance a category with no shape in it) is an error.

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
        categories: ``None`` (all) or a list or tuple of the categories to keep (names,
            case-insensitive, or synset ids); a bare string is refused.
        seed: seed of the resampling.
        transform: applied to every item on access.
        force_reload: re-parse the text files even if a valid processed cache exists.

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
        categories: list[str] | tuple[str, ...] | None = None,
        seed: int = 0,
        transform: Callable | None = None,
        force_reload: bool = False,
    ) -> None:
        super().__init__(transform)
        root = as_root(root)
        check_choice(split, "split", _SPLIT_FILES)
        num_points = check_int(num_points, "num_points", 1)
        seed = check_int(seed, "seed", 0)
        keep = _check_categories(categories)
        self.split = split
        lists = [f"train_test_split/shuffled_{s}_file_list.json" for s in _SPLIT_FILES[split]]
        folder = next((d for d in (root, root / DATA_DIR) if all((d / f).is_file() for f in lists)), None)
        if folder is None:
            expected = [d / f for d in (root, root / DATA_DIR) for f in lists] + [
                root / DATA_DIR / "<synset>/<shape id>.txt"
            ]
            raise missing("ShapeNetPart", expected)
        self.folder = folder

        # the entries of each split file, filtered by category, checked before anything is parsed
        parts: list[tuple[str, Path, list[tuple[str, str]]]] = []
        for s, f in zip(_SPLIT_FILES[split], lists):
            entries = [e for e in _read_split_file(folder / f) if _SYNSET_TO_CAT[e[0]] in keep]
            parts.append((s, folder / f, entries))
        if not any(entries for _, _, entries in parts):
            which = "" if categories is None else f" of categories {sorted(self.categories[c] for c in keep)}"
            files = " + ".join(p.name for _, p, _ in parts)
            raise empty_split("ShapeNetPart", split, folder, f"{files} list{'s' * (len(parts) == 1)} no shapes{which}")
        for _, _, entries in parts:
            for synset, shape in entries:
                if not (folder / synset / f"{shape}.txt").is_file():
                    raise missing("ShapeNetPart", [folder / synset / f"{shape}.txt"],
                                  extra="(listed in the split files)\n")

        params = dict(num_points=num_points, seed=seed, version=_CACHE_VERSION)
        cache = folder / "processed" / cache_key(params)
        suffix = "" if len(keep) == len(SHAPENETPART_CATEGORIES) else "_" + "-".join(
            self.categories[c].lower() for c in sorted(keep)
        )
        loaded = []
        for s, list_file, entries in parts:
            paths = [folder / syn / f"{shape}.txt" for syn, shape in entries]
            name = f"{s}{suffix}"
            out = load_cached(
                cache, name, lambda name=name, entries=entries: {name: _parse(folder, entries, num_points, seed)},
                params={"dataset": "shapenetpart", **params},
                sources=source_fingerprint([list_file, *paths], folder), force_reload=force_reload,
                what="ShapeNetPart",
            )  # fmt: skip
            check_lengths(f"{cache / name}.pt", {k: out[k] for k in ("pos", "normal", "y", "category")})
            if len(out["pos"]) != len(entries) or out["pos"].shape[1:] != (num_points, 3):
                raise ValueError(f"{cache / name}.pt: holds {tuple(out['pos'].shape)} points, expected "
                                 f"({len(entries)}, {num_points}, 3)")
            loaded.append(out)
        joined = loaded[0] if len(loaded) == 1 else {k: torch.cat([o[k] for o in loaded]) for k in loaded[0]}
        self.shape_ids = [f"{syn}/{shape}" for _, _, entries in parts for syn, shape in entries]
        self._set(joined["pos"], joined["normal"], joined["y"].long(), category=joined["category"])


def _check_categories(categories) -> set[int]:
    """Indices of the categories kept: all for ``None``, else a list or tuple of names or synset ids."""
    if categories is None:
        return set(range(len(SHAPENETPART_CATEGORIES)))
    if isinstance(categories, str) or not isinstance(categories, (list, tuple)):
        hint = f"; for one category write [{categories!r}]" if isinstance(categories, str) else ""
        raise TypeError(f"categories must be None or a list of ShapeNetPart category names, got "
                        f"{type(categories).__name__} {categories!r}{hint}")
    if not categories:
        raise ValueError("categories must name at least one ShapeNetPart category (or be None for all), got []")
    bad = [c for c in categories if not isinstance(c, str)]
    if bad:
        raise TypeError(f"categories must hold category names (strings), got {bad}")
    lookup = {c.lower(): i for i, (c, _, _) in enumerate(SHAPENETPART_CATEGORIES)} | _SYNSET_TO_CAT
    unknown = [c for c in categories if c.lower() not in lookup]
    if unknown:
        known = [c for c, _, _ in SHAPENETPART_CATEGORIES]
        raise ValueError(f"categories has unknown ShapeNetPart categories {unknown}; known: {known}")
    return {lookup[c.lower()] for c in categories}


def _read_split_file(path: Path) -> list[tuple[str, str]]:
    """``(synset, shape id)`` of every entry of a ``shuffled_*_file_list.json``, in order."""
    try:
        items = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"cannot parse split file {path}: {e}") from e
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"split file {path} should hold a JSON list of 'shape_data/<synset>/<id>' strings")
    out = []
    for item in items:
        synset, shape = (["", ""] + item.split("/"))[-2:]
        if synset not in _SYNSET_TO_CAT:
            raise ValueError(f"{path}: entry {item!r} has unknown synset {synset!r}")
        out.append((synset, shape))
    return out


def _parse(folder: Path, entries: list[tuple[str, str]], num_points: int, seed: int) -> dict[str, torch.Tensor]:
    """Parse and resample the text files of ``entries``: ``pos``, ``normal``, ``y`` (uint8 part ids), ``category``."""
    pos = np.empty((len(entries), num_points, 3), np.float32)
    nrm = np.empty((len(entries), num_points, 3), np.float32)
    part = np.empty((len(entries), num_points), np.uint8)  # 50 parts: uint8 keeps the cache small
    cat = np.empty(len(entries), np.int64)
    for i, (synset, shape) in enumerate(entries):
        path = folder / synset / f"{shape}.txt"
        arr = read_txt_array(path, 7)
        c = _SYNSET_TO_CAT[synset]
        lab = arr[:, 6]
        lo, hi = _CATEGORY_PARTS[c][0], _CATEGORY_PARTS[c][-1]
        if lab.min() < lo or lab.max() > hi or not np.array_equal(lab, np.round(lab)):
            name = SHAPENETPART_CATEGORIES[c][0]
            raise ValueError(
                f"{path}: part labels in [{lab.min()}, {lab.max()}], but {name} has global integer part ids "
                f"{lo}-{hi}; expected the '_normal' benchmark's global labels"
            )
        idx = _resample(len(arr), num_points, seed, f"{synset}/{shape}")
        pos[i], nrm[i], part[i], cat[i] = arr[idx, :3], arr[idx, 3:6], lab[idx], c
    return {"pos": torch.from_numpy(pos), "normal": torch.from_numpy(nrm), "y": torch.from_numpy(part),
            "category": torch.from_numpy(cat)}


def _resample(n: int, k: int, seed: int, key: str) -> np.ndarray:
    """Indices of ``k`` of ``n`` points: all in order when ``n == k``, else a seeded random choice."""
    if n == k:
        return np.arange(n)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return rng.choice(n, k, replace=n < k)
