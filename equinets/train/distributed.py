"""torchrun/DDP helpers: rank from the environment, gloo on CPU and nccl on GPU, rank-0 I/O."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_primary(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_kind: str = "cpu") -> DistInfo:
    """Initialise the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Uses ``nccl`` when training on CUDA and ``gloo`` otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        timeout = datetime.timedelta(seconds=float(os.environ.get("EQUINETS_DIST_TIMEOUT", "900")))
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
