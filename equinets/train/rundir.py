"""Run directories that cannot be corrupted: one writer at a time, nothing left behind by a failed start.

:class:`RunDir` guards ``--out`` for the whole life of a run:

* **a lock**: ``out/.lock`` is held with ``fcntl.flock`` (exclusive, non-blocking) and holds the pid of
  its holder; a second process refuses with :class:`RunLockedError` naming the directory and that pid.
  The lock dies with its process (a ``kill -9`` frees it), so there is never a stale lock to delete.
* **no debris**: until :meth:`RunDir.commit` (called once the first checkpoint of this process is on
  disk), a failure removes what this run created: the whole directory when the run made it (with
  any parent folders it made), otherwise only the entries that were not there before. Entries that
  existed before the run are never touched.
* **no silent overwrite**: a directory that already holds ``last.pt``/``best.pt`` is refused
  (:class:`RunExistsError`) unless the run resumes it.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "runs" / "exp"
>>> try:
...     with RunDir(out) as run:
...         _ = (out / "config.yaml").write_text("epochs: 1")
...         RunDir(out).open()  # a second writer
... except RunLockedError as e:
...     print("refused:", "is in use by process" in str(e))
refused: True
>>> out.exists(), out.parent.exists()  # failed before commit: nothing left behind
(False, False)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, runs are unguarded
    fcntl = None

__all__ = ["RunDir", "RunExistsError", "RunLockedError", "RunDirError"]

LOCK_NAME = ".lock"


class RunExistsError(UserError, FileExistsError):
    """The output directory already holds a run that this one would overwrite."""


class RunLockedError(UserError, RuntimeError):
    """Another live process is writing the output directory."""


class RunDirError(UserError, OSError):
    """The output directory cannot be created or used (a file of that name, no permission, ...)."""


class RunDir:
    """Lock ``out_dir`` and track what this run creates in it (see the module docstring).

    Args:
        out_dir: the run directory.
        resume: the run continues one already in ``out_dir`` (its checkpoints are expected).
        primary: only the primary process (rank 0) creates, locks and cleans; other ranks do nothing.

    Use as a context manager, or call :meth:`open`, :meth:`commit` and :meth:`close` (with
    ``failed=True`` to clean up).
    """

    def __init__(self, out_dir: str | Path, *, resume: bool = False, primary: bool = True) -> None:
        self.path = Path(out_dir)
        self.resume, self.primary = resume, primary
        self.committed = False
        self._fd: int | None = None
        self._made: Path | None = None  # topmost folder this run created
        self._before: set[str] | None = None  # entries present before the run (when the folder existed)

    # -- lifecycle --------------------------------------------------------------------------------
    def open(self) -> RunDir:
        """Create (if needed) and lock the directory; refuse a directory holding another run."""
        where = f"--out {str(self.path)!r}"
        if not self.primary:  # other ranks only refuse what rank 0 refuses, so that no rank trains alone
            self._refuse_existing_run()
            return self
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{where} exists and is not a directory")
        if self.path.is_dir():
            self._before = {p.name for p in self.path.iterdir()}
        else:
            top = self.path
            while not top.parent.exists() and top.parent != top:
                top = top.parent
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RunDirError(f"{where}: cannot create the run directory ({e.strerror or e})") from None
            self._made = top
        try:
            self._lock()
            self._refuse_existing_run()
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def _refuse_existing_run(self) -> None:
        if not self.resume and ((self.path / "last.pt").exists() or (self.path / "best.pt").exists()):
            raise RunExistsError(
                f"--out {str(self.path)!r} already holds a run (last.pt/best.pt); pass --resume to continue it, "
                f"or choose another --out so that nothing saved is overwritten")

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        lock = self.path / LOCK_NAME
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:
                raise RunDirError(f"--out {str(self.path)!r}: cannot create its lock file ({e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunLockedError(
                    f"--out {str(self.path)!r} is in use by process {holder} (it holds {str(lock)!r}); wait for it "
                    f"to finish or choose another --out") from None
            # the holder before us may have unlinked the file between our open and our flock: retry on the new one
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def commit(self) -> None:
        """The run has saved its first checkpoint: from now on a failure keeps everything."""
        self.committed = True

    def close(self, failed: bool = False) -> None:
        """Release the lock; after a failure before :meth:`commit`, remove what this run created."""
        if not self.primary:
            return
        lock = self.path / LOCK_NAME
        if self._fd is not None:
            try:  # unlink while still holding the lock (waiters re-check the inode, see _lock)
                if os.path.exists(lock):
                    os.unlink(lock)
            finally:
                os.close(self._fd)
                self._fd = None
        if failed and not self.committed:
            self._clean()

    def _clean(self) -> None:
        if self._made is not None:
            if self.path.exists():
                shutil.rmtree(self.path, ignore_errors=True)
            p = self.path.parent
            while self._made != self.path and p != self._made.parent and p.exists():
                try:
                    p.rmdir()  # only empty folders this run made
                except OSError:
                    break
                p = p.parent
        elif self._before is not None and self.path.is_dir():
            for entry in self.path.iterdir():
                if entry.name not in self._before:
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)

    def __enter__(self) -> RunDir:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)
