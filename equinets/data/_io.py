"""File helpers shared by the datasets: the one processed-data cache, guarded HDF5/text reads, clear errors.

The cache (:func:`load_cached`) is used by every dataset that writes processed tensors: the
generated sets (``shapes``, ``parts``) and the text readers (ModelNet40 ``normal_resampled``,
ShapeNetPart). A cache folder holds one ``<name>.pt`` per split (a dict of tensors) and a
``manifest.json`` with the parameters, a fingerprint of the source files each split was built from
(relative names, sizes, modification times) and a SHA-256 of each split's tensors, checked on
every load. Files are written atomically (:func:`equinets._atomic.atomic_open`), the manifest last,
under an exclusive lock on ``<folder>/.lock`` so that concurrent runs build a cache once; a cache
that is stale (other parameters, changed sources) or corrupt is rebuilt, never mixed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from .._atomic import atomic_open
from ..errors import UserError

README_HINT = "see datasets/README.md for where to get the files and how to place them"

#: Bumped when the layout of ``manifest.json`` changes; a manifest of another format is stale.
CACHE_FORMAT = 1


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`equinets._atomic.atomic_open`)."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def atomic_write_json(obj, path: Path) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


class CorruptFileError(UserError, OSError):
    """A data file that cannot be read (truncated, corrupt): a user error, and an ``OSError`` as before."""


class MissingKeyError(UserError, KeyError):
    """A data file without a key the reader needs: a user error, and a ``KeyError`` as before."""

    def __str__(self) -> str:  # the message itself, not KeyError's repr of it
        return str(self.args[0]) if self.args else ""


def as_root(root) -> Path:
    """``root`` as a :class:`~pathlib.Path`; a ``TypeError`` naming ``root`` for anything but a path.

    >>> as_root("datasets").name
    'datasets'
    >>> as_root(None)
    Traceback (most recent call last):
    ...
    TypeError: root must be a path (str or os.PathLike), got NoneType None
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__} {root!r}")
    return Path(root)


def missing(what: str, expected: list[Path] | list[str], extra: str = "") -> FileNotFoundError:
    """A ``FileNotFoundError`` naming every path that was looked for."""
    paths = "\n".join(f"  {p}" for p in expected)
    msg = f"{what}: expected files not found. Looked for:\n{paths}\n{extra}{README_HINT}"
    return FileNotFoundError(msg)


def empty_split(what: str, split: str, folder: Path, detail: str) -> ValueError:
    """The error for a split with no clouds: naming the split, the folder and why it is empty.

    An empty split would give NaN metrics and a successful exit; it is refused where it is read.
    """
    return ValueError(f"{what}: split {split!r} in {folder} is empty ({detail}); {README_HINT}")


# --- length checks ----------------------------------------------------------------------------------


def check_lengths(source, arrays: dict[str, np.ndarray | Tensor], axes: int = 1) -> int:
    """Check that the arrays of one file agree on their first ``axes`` axes; return the first length.

    ``arrays`` maps a key (``"data"``, ``"label"``, ...) to its array; ``axes=2`` also compares
    the points-per-cloud axis of per-point arrays (``data`` vs ``normal`` or ``mask``). The
    error names ``source`` (the file), both keys and both shapes.

    >>> check_lengths("a.h5", {"data": np.zeros((3, 8, 3)), "label": np.zeros(3)})
    3
    >>> check_lengths("a.h5", {"data": np.zeros((3, 8, 3)), "label": np.zeros(2)})
    Traceback (most recent call last):
    ...
    ValueError: a.h5: 'data' holds 3 clouds but 'label' holds 2 (shapes (3, 8, 3) and (2,))
    """
    (k0, a0), *rest = arrays.items()
    for k, a in rest:
        if a.ndim < axes or tuple(a.shape[:axes]) != tuple(a0.shape[:axes]):
            what = "clouds" if axes == 1 else "(clouds, points)"
            n0 = a0.shape[0] if axes == 1 else tuple(a0.shape[:axes])
            n = (a.shape[0] if a.ndim else 0) if axes == 1 else tuple(a.shape[:axes])
            raise ValueError(
                f"{source}: {k0!r} holds {n0} {what} but {k!r} holds {n} (shapes {tuple(a0.shape)} and "
                f"{tuple(a.shape)})"
            )
    return int(a0.shape[0])


# --- readers ----------------------------------------------------------------------------------------


def read_h5(path: Path, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Read whole datasets ``keys`` (required) and ``optional`` from an HDF5 file.

    A truncated or corrupt file raises :class:`CorruptFileError` (an ``OSError``) naming it; a
    missing key raises :class:`MissingKeyError` (a ``KeyError``) naming the file and the keys it
    does have (both are :class:`equinets.errors.UserError`, one line from the CLI); arrays of
    different lengths (``data`` vs ``label``, ``normal``, ``mask``) raise ``ValueError`` naming
    the file, both keys and their lengths.
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            have = list(f.keys())
            lacking = [k for k in keys if k not in f]
            if lacking:
                raise MissingKeyError(f"HDF5 file {path} has no key(s) {lacking}; it has {have}")
            out = {k: np.asarray(f[k][()]) for k in keys}
            out.update({k: np.asarray(f[k][()]) for k in optional if k in f})
    except OSError as e:
        raise CorruptFileError(
            f"cannot read HDF5 file {path} (truncated or corrupt? re-download or re-create it): {e}"
        ) from e
    check_lengths(path, out)
    return out


def h5_points(path: Path, pts: np.ndarray, num_points: int) -> np.ndarray:
    """Check an HDF5 ``data`` array of shape ``(n, points, 3)`` and keep its first ``num_points`` points."""
    if pts.ndim != 3 or pts.shape[2] != 3:
        raise ValueError(f"{path}: 'data' should have shape (n, points, 3), got {pts.shape}")
    if pts.shape[1] < num_points:
        raise ValueError(f"{path}: has {pts.shape[1]} points per cloud, fewer than num_points={num_points}")
    return pts[:, :num_points]


def h5_labels(path: Path, label: np.ndarray, num_classes: int) -> np.ndarray:
    """An HDF5 ``label`` array ``(n,)`` or ``(n, 1)`` as int64 class ids in ``[0, num_classes)``."""
    if label.ndim > 2 or (label.ndim == 2 and label.shape[1] != 1):
        raise ValueError(f"{path}: 'label' should have shape (n,) or (n, 1), got {label.shape}")
    lab = label.reshape(-1).astype(np.int64)
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(f"{path}: 'label' holds values in [{lab.min()}, {lab.max()}], expected [0, {num_classes})")
    return lab


def read_txt_array(path: Path, cols: int) -> np.ndarray:
    r"""Read a text table of floats separated by spaces and/or commas into ``(rows, cols)`` float32.

    A token that is not a number raises ``ValueError`` naming the file (never a silently short table).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.txt"; _ = p.write_text("1,2,3\n4,5,6\n")
    >>> read_txt_array(p, 3).tolist()
    [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    >>> _ = p.write_text("1,2,3\n4,x,6\n")
    >>> read_txt_array(p, 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot parse .../t.txt as a table of numbers: ...
    """
    path = Path(path)
    text = path.read_text().replace(",", " ")
    if not text.strip():
        raise ValueError(f"{path} is empty; it should hold rows of {cols} numbers")
    try:
        with warnings.catch_warnings():  # older NumPy warns and returns the numbers before a bad token
            warnings.simplefilter("error", DeprecationWarning)
            arr = np.fromstring(text, dtype=np.float32, sep=" ")  # text mode: 1.5x faster than split + array
    except (ValueError, DeprecationWarning) as e:
        raise ValueError(f"cannot parse {path} as a table of numbers: {e}") from e
    if arr.size == 0 or arr.size % cols:
        raise ValueError(f"{path} should hold rows of {cols} numbers, but has {arr.size} numbers in all")
    return arr.reshape(-1, cols)


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a text file."""
    return [s.strip() for s in Path(path).read_text().splitlines() if s.strip()]


# --- the processed-data cache -----------------------------------------------------------------------


def cache_key(params: dict) -> str:
    """Readable folder name for a parameter set, e.g. ``n1024_tr2400_te600_s0_z0.005_v1``.

    >>> cache_key(dict(num_points=1024, seed=0, version=1))
    'n1024_s0_v1'
    """
    short = dict(num_points="n", num_train="tr", num_test="te", seed="s", noise="z", version="v")
    return "_".join(f"{short.get(k, k)}{v}" for k, v in params.items())


def content_hash(tensors: dict[str, Tensor]) -> str:
    """SHA-256 (hex) of a dict of tensors: every key, dtype, shape and the bytes, in key order.

    >>> h = content_hash({"pos": torch.zeros(2, 3)})
    >>> h == content_hash({"pos": torch.zeros(2, 3)}), h == content_hash({"pos": torch.ones(2, 3)}), len(h)
    (True, False, 64)
    """
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, without a copy
    return h.hexdigest()


def source_fingerprint(paths: Iterable[Path], base: Path) -> dict:
    """Fingerprint of source files: their count and a SHA-256 of (name relative to ``base``, size, mtime).

    A file edited, replaced, added to or removed from the list changes it; reading the contents is
    not needed (one ``stat`` per file). A missing file raises ``FileNotFoundError`` naming it.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_text("1 2 3")
    >>> fp = source_fingerprint([d / "a.txt"], d)
    >>> fp["count"], len(fp["sha256"])
    (1, 64)
    """
    h = hashlib.sha256()
    count = 0
    base = Path(base)
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise missing("source file", [p]) from None
        rel = os.path.relpath(p, base)
        h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        count += 1
    return {"count": count, "sha256": h.hexdigest()}


@contextlib.contextmanager
def _exclusive(folder: Path):
    """Hold an exclusive lock on ``folder/.lock`` (POSIX ``flock``; no lock where ``fcntl`` is missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: atomic renames and the hash still guard the files
        yield
        return
    with open(folder / ".lock", "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _jsonable(params: dict) -> dict:
    return json.loads(json.dumps(params))


def _try_load(folder: Path, name: str, params: dict, sources: dict | None) -> tuple[dict | None, str | None]:
    """``(tensors, None)`` for a valid cached ``name``; ``(None, reason)`` otherwise (reason ``None``: absent)."""
    manifest = folder / "manifest.json"
    path = folder / f"{name}.pt"
    if not manifest.exists():
        return None, None
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        return None, f"its manifest.json cannot be read ({e})"
    if not isinstance(meta, dict):
        return None, "its manifest.json is not a JSON object"
    if meta.get("cache_format") != CACHE_FORMAT or {k: meta.get(k) for k in params} != _jsonable(params):
        return None, "it was built with other parameters or by another version of equinets"
    digest = (meta.get("sha256") or {}).get(name)
    if digest is None:
        return None, None
    if sources is not None and (meta.get("sources") or {}).get(name) != sources:
        return None, f"the source files of {name!r} changed since it was built"
    if not path.exists():
        return None, f"{path.name} is missing"
    try:
        data = torch.load(path, weights_only=True)
        ok = isinstance(data, dict) and all(isinstance(v, Tensor) for v in data.values())
    except Exception as e:  # any unreadable file (truncated zip, bad pickle, ...) is rebuilt, not trusted
        return None, f"{path.name} cannot be loaded ({type(e).__name__}: {e})"
    if not ok or content_hash(data) != digest:
        return None, f"{path.name} does not match the SHA-256 in its manifest (corrupt or replaced)"
    return data, None


def load_cached(
    folder: str | Path,
    name: str,
    build: Callable[[], dict[str, dict[str, Tensor]]],
    *,
    params: dict,
    sources: dict | None = None,
    force_reload: bool = False,
    what: str = "cache",
) -> dict[str, Tensor]:
    """Load the tensors ``folder/<name>.pt`` if its manifest vouches for them, else build, write and return them.

    The cached tensors are returned only if ``manifest.json`` has the same ``params`` (JSON
    values), the same ``sources`` fingerprint for ``name`` (:func:`source_fingerprint`; ``None``
    for generated data) and a SHA-256 (:func:`content_hash`) equal to that of the loaded tensors.
    Otherwise ``build()`` is called under an exclusive lock on the folder (a second process waits
    and then finds the cache built) and returns ``{name: tensors, ...}``: every entry is written
    atomically as ``<key>.pt``, then the manifest (last, so that its hash always describes
    complete files). A stale or corrupt cache is rebuilt with a warning saying why; a folder that
    cannot be written is read without a cache, with a warning.

    Args:
        folder: the cache folder, e.g. ``root/shapes/<cache_key>`` or ``<data folder>/processed/<key>``.
        name: the entry to return (a split: ``"train"``, ``"test"``, ...).
        build: returns a dict of entries, each a dict of tensors; must contain ``name`` (more
            entries may be built at once, as the n-body splits share one random stream).
        params: JSON-serialisable parameters the tensors depend on, stored in the manifest.
        sources: fingerprint of the files ``name`` is built from, or ``None``.
        force_reload: rebuild even if a valid cache exists.
        what: the dataset's name for the messages.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "toy"
        >>> calls = []
        >>> build = lambda: calls.append(1) or {"train": {"x": torch.arange(3)}}
        >>> load_cached(folder, "train", build, params={"n": 3})["x"].tolist()
        [0, 1, 2]
        >>> load_cached(folder, "train", build, params={"n": 3})["x"].tolist(), len(calls)  # cached
        ([0, 1, 2], 1)
        >>> sorted(p.name for p in folder.iterdir())
        ['.lock', 'manifest.json', 'train.pt']
    """
    folder = Path(folder)
    if not force_reload:
        data, _ = _try_load(folder, name, params, sources)
        if data is not None:
            return data
    lock = contextlib.ExitStack()
    try:
        lock.enter_context(_exclusive(folder))
    except OSError as e:
        warnings.warn(f"{what}: cannot write the cache in {folder} ({e}); reading without a cache", stacklevel=3)
        return _built(build(), name)[name]
    with lock:
        if not force_reload:
            data, why = _try_load(folder, name, params, sources)  # again: another process may have built it
            if data is not None:
                return data
            if why is not None:
                warnings.warn(f"{what} cache {folder}: {why}; regenerating it", stacklevel=3)
        built = _built(build(), name)
        try:
            _write(folder, built, params, {name: sources} if sources is not None else {})
        except OSError as e:
            warnings.warn(f"{what}: cannot write the cache in {folder} ({e}); using the data without caching it",
                          stacklevel=3)
        return built[name]


def _built(out, name: str):
    if not isinstance(out, dict) or name not in out:
        raise RuntimeError(f"the cache's build function must return a dict with the entry {name!r}")
    return out


def _write(folder: Path, built: dict, params: dict, sources: dict) -> None:
    manifest = folder / "manifest.json"
    try:
        meta = json.loads(manifest.read_text())
        same = isinstance(meta, dict) and meta.get("cache_format") == CACHE_FORMAT and all(
            meta.get(k) == v for k, v in _jsonable(params).items()
        )
    except (OSError, ValueError):
        same = False
    if not same:
        meta = {"cache_format": CACHE_FORMAT, **_jsonable(params), "sha256": {}, "sources": {}}
    for key, tensors in built.items():
        atomic_save(tensors, folder / f"{key}.pt")
        meta["sha256"][key] = content_hash(tensors)
        if key in sources:
            meta.setdefault("sources", {})[key] = sources[key]
        else:
            meta.setdefault("sources", {}).pop(key, None)
    atomic_write_json(meta, manifest)  # last: its hashes describe complete files
