"""torchrun/DDP helpers: rank from the environment, gloo on CPU and NCCL on GPU, rank-0 I/O, and the
device on which a process group's collectives take their tensors (:func:`group_device`)."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "backend_device", "group_device"]

#: the device type each single-device collective backend reduces on
_BACKEND_DEVICE = {"nccl": "cuda", "gloo": "cpu", "mpi": "cpu", "xccl": "xpu"}


@dataclass(frozen=True)
class DistInfo:
    """Rank, local rank and world size of this process (``rank 0 of 1`` without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_primary(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: str | None = None) -> int:
    raw = os.environ.get(name, default)
    if raw is None:
        raise ValueError(f"environment variable {name} must be set under torchrun (WORLD_SIZE is)")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def init_distributed(device_kind: str = "cpu", *, always: bool = False) -> DistInfo:
    """Initialise the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Uses ``nccl`` when training on CUDA (after ``torch.cuda.set_device(LOCAL_RANK)``, and bound to
    that device) and ``gloo`` otherwise. ``always=True`` initialises a group for a world of one as
    well (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` from the environment), as
    the GPU smoke check does to exercise NCCL in one process. The timeout is
    ``EQUINETS_DIST_TIMEOUT`` seconds (default 900).
    """
    if device_kind not in ("cpu", "cuda"):
        raise ValueError(f"device_kind must be 'cpu' or 'cuda', got {device_kind!r}")
    world = _env_int("WORLD_SIZE", "1")
    if world <= 1 and not always:
        return DistInfo()
    rank = _env_int("RANK")
    local_rank = _env_int("LOCAL_RANK", str(rank))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        kw = {}
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
            kw["device_id"] = torch.device("cuda", local_rank)
        timeout = datetime.timedelta(seconds=float(os.environ.get("EQUINETS_DIST_TIMEOUT", "900")))
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout, **kw)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world)


def cleanup_distributed() -> None:
    """Destroy the process group if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def backend_device(backend: str, prefer: torch.device | None = None) -> torch.device:
    """The device whose tensors a collective backend reduces: ``cuda`` (current device) for NCCL, ``cpu``
    for gloo and MPI. For a per-device backend string such as ``"cpu:gloo,cuda:nccl"`` it is
    ``prefer``'s device type when the string names it, else the first named; unknown backends reduce on CPU.

    >>> backend_device("gloo")
    device(type='cpu')
    >>> backend_device("cpu:gloo,cuda:nccl", prefer=torch.device("cpu"))
    device(type='cpu')
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string such as 'nccl' or 'gloo', got {type(backend).__name__}")
    backend = backend.lower()
    if ":" in backend:
        kinds = [part.split(":", 1)[0].strip() for part in backend.split(",") if part.strip()]
        kind = prefer.type if prefer is not None and prefer.type in kinds else kinds[0]
    else:
        kind = _BACKEND_DEVICE.get(backend, "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    return torch.device(kind, getattr(torch, kind).current_device())


def group_device(group=None, prefer: torch.device | None = None) -> torch.device:
    """The device for collectives of ``group`` (default: the world): :func:`backend_device` of its backend."""
    return backend_device(str(dist.get_backend(group)), prefer)
