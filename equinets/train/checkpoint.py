"""Checkpoints: atomic writes, ``weights_only`` loading, clear errors for foreign, truncated or ill-fitting files.

A checkpoint is a plain dict: the model state of the *unwrapped* model, the optimizer state, the
epoch, the best metric, the config, the per-epoch history and the model's constructor arguments
(``model_args``, so a model can be built and its weights checked before any dataset is read). It is
written to a temporary file in the same directory, flushed and fsynced, then renamed over the target
(:func:`equinets._atomic.atomic_open`), so a crash or a failed run never leaves a half-written file in
place of a good one. No RNG state is stored: every random draw of epoch ``e`` is seeded from
``(seed, e, rank)`` (:mod:`equinets.train.loop`), so a resumed run needs none.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "last.pt"
>>> save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 1, "config": {}}, p)
>>> load_checkpoint(p)["epoch"]
1
>>> _ = p.write_text("hello")
>>> load_checkpoint(p)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
equinets.train.checkpoint.CheckpointError: checkpoint '...' is not an equinets checkpoint: it is not a torch file ...
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from .._atomic import atomic_open
from ..errors import UserError

__all__ = ["CheckpointError", "CheckpointNotFoundError", "save_checkpoint", "load_checkpoint", "load_model_state"]


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that is missing, truncated, corrupt, of the wrong kind, or does not fit the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file at the checkpoint path."""


_REQUIRED = ("model", "epoch", "config")
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_MAGIC = b"\x80"  # torch.save's legacy format starts with a pickle protocol opcode


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + rename), with the user's umask."""
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return f"{type(e).__name__}: {s.splitlines()[0][:200]}" if s else type(e).__name__


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Tells apart a file that is not an equinets checkpoint (text, a foreign zip, a torch file holding
    a tensor or arbitrary objects, a dict without the required keys) from a truncated or corrupt one.

    Raises:
        CheckpointNotFoundError: no file at ``path`` (also a ``FileNotFoundError``).
        CheckpointError: the file is truncated or corrupt, or not an equinets checkpoint.
    """
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    if not path.exists():
        raise CheckpointNotFoundError(f"{where} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{where} is not a file")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise CheckpointError(f"{where} is truncated: the file is empty")
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):  # a zip without its central directory: cut short
            raise CheckpointError(f"{where} is truncated or corrupt: its zip directory is missing "
                                  f"({path.stat().st_size} bytes)")
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if not any(n.endswith("/data.pkl") for n in names):
            raise CheckpointError(f"{where} is not an equinets checkpoint: a zip archive that is not a torch file "
                                  f"(it holds {names[:3]})")
    elif not head.startswith(_PICKLE_MAGIC):
        raise CheckpointError(f"{where} is not an equinets checkpoint: it is not a torch file (it starts with "
                              f"{head[:5]!r})")
    try:
        with warnings.catch_warnings():  # torch warns about legacy pickles before failing: the error says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise CheckpointError(f"{where} is not an equinets checkpoint: it holds Python objects other than "
                                  f"tensors and plain containers, which weights-only loading refuses") from None
        raise CheckpointError(f"{where} is truncated or corrupt and cannot be loaded ({_first_line(e)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{where} is truncated or corrupt and cannot be loaded ({_first_line(e)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{where} is not an equinets checkpoint: it holds a {type(state).__name__}, expected a "
                              f"dict with keys {list(_REQUIRED)}")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{where} is not an equinets checkpoint: its dict lacks the keys {missing} (has "
                              f"{sorted(map(str, state))[:8]})")
    if not isinstance(state["model"], dict) or not isinstance(state["config"], dict) or \
            isinstance(state["epoch"], bool) or not isinstance(state["epoch"], int) or state["epoch"] < 0:
        raise CheckpointError(f"{where} is not an equinets checkpoint: 'model' and 'config' must be dicts and "
                              f"'epoch' a non-negative int")
    return state


def _listed(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def load_model_state(model: torch.nn.Module, state_dict: dict, where: str = "checkpoint") -> None:
    """``model.load_state_dict(state_dict)`` with a :class:`CheckpointError` that names the missing and
    unexpected keys and the shape mismatches when the weights do not fit the model.

    >>> m = torch.nn.Linear(2, 3)
    >>> load_model_state(m, {"weight": torch.zeros(3, 2), "bias": torch.zeros(3)})
    >>> load_model_state(m, {"weight": torch.zeros(4, 2), "scale": torch.zeros(1)}, "run/best.pt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    equinets.train.checkpoint.CheckpointError: run/best.pt: the weights do not fit the model Linear: missing keys: bias; ...
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(own[k].shape)})" for k in own
              if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    parts = [f"{name}: {_listed(v)}" for name, v in (("missing keys", missing), ("unexpected keys", unexpected),
                                                      ("shape mismatches", shapes)) if v]
    if parts:
        raise CheckpointError(f"{where}: the weights do not fit the model {type(model).__name__}: {'; '.join(parts)}")
    model.load_state_dict(state_dict)
