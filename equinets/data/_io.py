"""File helpers shared by the datasets: atomic cache writes, guarded HDF5/text reads, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .._atomic import atomic_open

README_HINT = "see datasets/README.md for where to get the files and how to place them"


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`equinets._atomic.atomic_open`)."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def atomic_write_json(obj, path: Path) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def missing(what: str, expected: list[Path] | list[str], extra: str = "") -> FileNotFoundError:
    """A ``FileNotFoundError`` naming every path that was looked for."""
    paths = "\n".join(f"  {p}" for p in expected)
    msg = f"{what}: expected files not found. Looked for:\n{paths}\n{extra}{README_HINT}"
    return FileNotFoundError(msg)


def read_h5(path: Path, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Read whole datasets ``keys`` (required) and ``optional`` from an HDF5 file.

    A truncated or corrupt file raises ``OSError`` naming it; a missing key raises ``KeyError``
    naming the file and the keys it does have.
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            have = list(f.keys())
            lacking = [k for k in keys if k not in f]
            if lacking:
                raise KeyError(f"HDF5 file {path} has no key(s) {lacking}; it has {have}")
            out = {k: np.asarray(f[k][()]) for k in keys}
            out.update({k: np.asarray(f[k][()]) for k in optional if k in f})
            return out
    except OSError as e:
        raise OSError(
            f"cannot read HDF5 file {path} (truncated or corrupt? re-download or re-create it): {e}"
        ) from e


def h5_points(path: Path, pts: np.ndarray, num_points: int) -> np.ndarray:
    """Check an HDF5 ``data`` array of shape ``(n, points, 3)`` and keep its first ``num_points`` points."""
    if pts.ndim != 3 or pts.shape[2] != 3:
        raise ValueError(f"{path}: 'data' should have shape (n, points, 3), got {pts.shape}")
    if pts.shape[1] < num_points:
        raise ValueError(f"{path}: has {pts.shape[1]} points per cloud, fewer than num_points={num_points}")
    return pts[:, :num_points]


def read_txt_array(path: Path, cols: int) -> np.ndarray:
    """Read a text table of floats separated by spaces and/or commas into ``(rows, cols)`` float32."""
    path = Path(path)
    try:
        text = path.read_text()
        arr = np.array(text.replace(",", " ").split(), dtype=np.float32)
    except ValueError as e:
        raise ValueError(f"cannot parse {path} as a table of numbers: {e}") from e
    if arr.size == 0 or arr.size % cols:
        raise ValueError(f"{path} should hold rows of {cols} numbers, but has {arr.size} numbers in all")
    return arr.reshape(-1, cols)


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a text file."""
    return [s.strip() for s in Path(path).read_text().splitlines() if s.strip()]
