"""Atomic file writes: the one place equinets writes files that must never be left half-written.

:func:`atomic_open` writes to a temporary file in the target's folder, flushes and fsyncs it, and
renames it over the target only when the ``with`` block succeeds; on any error the temporary file
is removed and the previous file (a cache, a checkpoint, ``metrics.csv``) stays as it was.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> with atomic_open(p, "w") as f:
...     _ = f.write("hello")
>>> p.read_text()
'hello'
>>> oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
True
"""

from __future__ import annotations

import contextlib
import csv
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["atomic_open", "write_csv"]


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it; restored at once
    os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    """The mode of the existing ``path``, else what ``open(path, "w")`` would create: 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", **kwargs):
    """Open a temporary file for writing; on success rename it over ``path`` (``mode`` "w" or "wb").

    The file gets the permissions ``open(path, "w")`` would give (``0o666`` less the umask), or those of
    the file it replaces, not ``tempfile.mkstemp``'s private ``0o600``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _target_mode(path))  # mkstemp creates 0600; the result gets what open() would give
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv(rows: list[dict], path: str | Path) -> None:
    """Write ``rows`` (dicts) to ``path`` as CSV, atomically; the header is the union of their keys in
    first-seen order (missing cells are empty).

    >>> import csv, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sub" / "m.csv"
    >>> write_csv([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25, "acc": 0.9}], p)
    >>> p.read_text().splitlines()
    ['epoch,loss,acc', '1,0.5,', '2,0.25,0.9']
    """
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
