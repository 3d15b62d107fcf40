"""ModelNet40 reader for the PointNet HDF5 layout and the PointNet++ ``normal_resampled`` text layout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._checks import check_choice, check_int
from ._base import PointCloudDataset
from ._io import (
    as_root,
    cache_key,
    check_lengths,
    empty_split,
    h5_labels,
    h5_points,
    load_cached,
    missing,
    read_h5,
    read_lines,
    read_txt_array,
    source_fingerprint,
)

HDF5_DIR = "modelnet40_ply_hdf5_2048"
TEXT_DIR = "modelnet40_normal_resampled"
_TEXT_CACHE_VERSION = 1  # bump when the processed tensors of the text layout change


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


class ModelNet40(PointCloudDataset):
    r"""ModelNet40 (Wu et al., CVPR 2015) read from user-supplied files; nothing is downloaded.

    Two layouts (``layout="auto"`` picks the one present, HDF5 first):

    * ``"hdf5"``: PointNet's ``modelnet40_ply_hdf5_2048/`` with ``ply_data_train{0..4}.h5``,
      ``ply_data_test{0,1}.h5`` (keys ``data`` ``(n, 2048, 3)``, ``label`` ``(n, 1)``, optional
      ``normal`` ``(n, 2048, 3)``) and ``shape_names.txt``;
    * ``"text"``: PointNet++'s ``modelnet40_normal_resampled/`` with ``<class>/<class>_NNNN.txt``
      (rows ``x,y,z,nx,ny,nz``), ``modelnet40_{train,test}.txt`` (one shape name per line) and
      ``modelnet40_shape_names.txt``.

    ``root`` may be the data folder itself or its parent. The first ``num_points`` points of each
    shape are kept, as PointNet and DGCNN do. Up axis: **y** (PointNet's convention for these
    files; its augmentation rotates about y).

    Items: ``pos`` ``(N, 3)``, ``x`` ``(N, 3)`` normals when the files have them, ``y`` ``(1,)``.

    Every HDF5 file's ``data``, ``label`` and ``normal`` must agree in length (an error names the
    file, both keys and their lengths); an empty split is an error. The text layout (about 12 k
    files) is parsed once into PyG's ``processed/`` convention,
    ``modelnet40_normal_resampled/processed/n{num_points}_v1/{train,test}.pt`` with a
    ``manifest.json`` (parameters, a fingerprint of the source files' names, sizes and modification
    times, and a SHA-256 of the tensors, checked on every load); a stale or corrupt cache is
    rebuilt (:func:`equinets.data._io.load_cached`).

    **STATS**:

    =====  ==========================  ========================  =======
    split  clouds (hdf5 / text)        points on disk            classes
    =====  ==========================  ========================  =======
    train  9840 / 9843                 2048 / 10000              40
    test   2468 / 2468                 2048 / 10000              40
    =====  ==========================  ========================  =======

    Args:
        root: the data folder or its parent (default ``datasets``).
        split: ``"train"`` or ``"test"``.
        num_points: points kept per cloud (at most the number on disk).
        layout: ``"auto"``, ``"hdf5"`` or ``"text"``.
        transform: applied to every item on access.
        force_reload: re-parse the text files even if a valid processed cache exists.

    Example:
        >>> ModelNet40("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: ModelNet40: expected files not found. Looked for:
        ...
    """

    task = "cls"
    up_axis = "y"

    def __init__(
        self,
        root: str | Path = "datasets",
        split: str = "train",
        *,
        num_points: int = 1024,
        layout: str = "auto",
        transform: Callable | None = None,
        force_reload: bool = False,
    ) -> None:
        super().__init__(transform)
        root = as_root(root)
        check_choice(split, "split", ("train", "test"))
        check_choice(layout, "layout", ("auto", "hdf5", "text"))
        num_points = check_int(num_points, "num_points", 1)
        self.split = split
        h5_dir = next((d for d in (root, root / HDF5_DIR) if (d / "shape_names.txt").is_file()), None)
        txt_dir = next(
            (d for d in (root, root / TEXT_DIR) if (d / "modelnet40_shape_names.txt").is_file()), None
        )
        if layout in ("auto", "hdf5") and h5_dir is not None:
            self.layout, self.folder = "hdf5", h5_dir
            self._read_hdf5(h5_dir, split, num_points)
        elif layout in ("auto", "text") and txt_dir is not None:
            self.layout, self.folder = "text", txt_dir
            self._read_text(txt_dir, split, num_points, force_reload)
        else:
            expected = []
            if layout in ("auto", "hdf5"):
                names = ("shape_names.txt", f"ply_data_{split}*.h5")
                expected += [d / n for d in (root, root / HDF5_DIR) for n in names]
            if layout in ("auto", "text"):
                names = ("modelnet40_shape_names.txt", f"modelnet40_{split}.txt", "<class>/<class>_NNNN.txt")
                expected += [d / n for d in (root, root / TEXT_DIR) for n in names]
            raise missing("ModelNet40", expected)

    def _read_hdf5(self, folder: Path, split: str, num_points: int) -> None:
        self.classes = read_lines(folder / "shape_names.txt")
        files = sorted(folder.glob(f"ply_data_{split}*.h5"), key=_natural_key)
        if not files:
            raise missing("ModelNet40 (hdf5)", [folder / f"ply_data_{split}*.h5"])
        pos, nrm, lab = [], [], []
        for f in files:
            d = read_h5(f, ("data", "label"), optional=("normal",))  # checks data / label / normal lengths
            pos.append(h5_points(f, d["data"], num_points))
            if "normal" in d:
                if d["normal"].shape != d["data"].shape:
                    raise ValueError(f"{f}: 'normal' has shape {d['normal'].shape}, 'data' {d['data'].shape}; "
                                     "they must be equal")
                nrm.append(d["normal"][:, :num_points])
            else:
                nrm.append(None)
            lab.append(h5_labels(f, d["label"], len(self.classes)))
        pos = np.concatenate(pos)
        if len(pos) == 0:
            raise empty_split("ModelNet40", split, folder, f"0 clouds in {', '.join(f.name for f in files)}")
        have_normals = all(n is not None for n in nrm)
        self._finish(pos, np.concatenate(nrm) if have_normals else None, np.concatenate(lab), folder)

    def _read_text(self, folder: Path, split: str, num_points: int, force_reload: bool) -> None:
        shape_names = folder / "modelnet40_shape_names.txt"
        self.classes = read_lines(shape_names)
        index = {c: i for i, c in enumerate(self.classes)}
        listing = folder / f"modelnet40_{split}.txt"
        if not listing.is_file():
            raise missing("ModelNet40 (text)", [listing])
        names = read_lines(listing)
        if not names:
            raise empty_split("ModelNet40", split, folder, f"{listing.name} lists no shapes")
        paths = []
        for name in names:
            cls = name.rsplit("_", 1)[0]
            if cls not in index:
                raise ValueError(f"{listing}: shape {name!r} has class {cls!r}, not in {shape_names.name}")
            path = folder / cls / f"{name}.txt"
            if not path.is_file():
                raise missing("ModelNet40 (text)", [path], extra=f"(listed in {listing})\n")
            paths.append(path)
        labels = np.array([index[n.rsplit("_", 1)[0]] for n in names], np.int64)

        def build():
            pos = np.empty((len(names), num_points, 3), np.float32)
            nrm = np.empty((len(names), num_points, 3), np.float32)
            for i, path in enumerate(paths):
                arr = read_txt_array(path, 6)
                if len(arr) < num_points:
                    raise ValueError(f"{path}: has {len(arr)} points, fewer than num_points={num_points}")
                pos[i], nrm[i] = arr[:num_points, :3], arr[:num_points, 3:]
            return {split: {"pos": torch.from_numpy(pos), "normal": torch.from_numpy(nrm),
                            "y": torch.from_numpy(labels)}}

        params = dict(num_points=num_points, version=_TEXT_CACHE_VERSION)
        out = load_cached(
            folder / "processed" / cache_key(params), split, build,
            params={"dataset": "modelnet40", "layout": "text", **params},
            sources=source_fingerprint([shape_names, listing, *paths], folder),
            force_reload=force_reload, what="ModelNet40",
        )  # fmt: skip
        check_lengths(f"{folder} (processed {split})", {"pos": out["pos"], "normal": out["normal"], "y": out["y"]})
        self._finish(out["pos"].numpy(), out["normal"].numpy(), out["y"].numpy(), folder)

    def _finish(self, pos, nrm, lab, folder) -> None:
        lab = lab.astype(np.int64)
        arrays = {"data": pos, "label": lab} | ({} if nrm is None else {"normal": nrm})
        check_lengths(folder, arrays)
        if lab.size and (lab.min() < 0 or lab.max() >= len(self.classes)):
            n = len(self.classes)
            raise ValueError(f"{folder}: labels in [{lab.min()}, {lab.max()}] but {n} class names")
        self._set(
            torch.from_numpy(np.ascontiguousarray(pos)),
            None if nrm is None else torch.from_numpy(np.ascontiguousarray(nrm)),
            torch.from_numpy(lab),
        )
