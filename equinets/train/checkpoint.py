"""Checkpoints: atomic writes, ``weights_only`` loading, clear errors for corrupt files.

A checkpoint is a plain dict (model state of the *unwrapped* model, optimizer, scheduler, RNG
states, epoch, best metric, config). It is written to a temporary file in the same directory,
flushed and fsynced, then renamed over the target, so a crash or a failed run never leaves a
half-written file in place of a good one.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from .._atomic import atomic_open

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]


class CheckpointError(RuntimeError):
    """A checkpoint file that is missing, truncated, corrupt or of the wrong kind."""


_REQUIRED = ("model", "epoch", "config")


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + rename)."""
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is truncated, corrupt, or not an equinets checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, OSError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt and cannot be loaded ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    if not isinstance(state, dict) or any(k not in state for k in _REQUIRED):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not an equinets checkpoint: expected a dict with keys {list(_REQUIRED)}"
        )
    return state


def rng_state() -> dict:
    """The RNG states of torch, numpy and Python, in a ``weights_only``-loadable form."""
    st = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.frombuffer(pickle.dumps(np.random.get_state()), dtype=np.uint8).copy()),
        "python": torch.from_numpy(np.frombuffer(pickle.dumps(random.getstate()), dtype=np.uint8).copy()),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    """Restore states saved by :func:`rng_state`."""
    torch.set_rng_state(st["torch"])
    np.random.set_state(pickle.loads(st["numpy"].numpy().tobytes()))
    random.setstate(pickle.loads(st["python"].numpy().tobytes()))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
