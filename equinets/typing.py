"""Optional compiled backends, detected once (PyG's ``WITH_*`` habit)."""

from __future__ import annotations

try:  # pyg-lib provides torch.ops.pyg.knn / fps / radius
    import pyg_lib  # noqa: F401
    import torch

    WITH_PYG_LIB = all(hasattr(torch.ops.pyg, op) for op in ("knn", "radius", "fps"))
except Exception:  # ImportError, or a broken binary wheel
    WITH_PYG_LIB = False

try:  # torch-cluster provides knn / radius / fps (used when pyg-lib is absent)
    import torch_cluster  # noqa: F401

    WITH_TORCH_CLUSTER = True
except Exception:
    WITH_TORCH_CLUSTER = False

try:
    import triton  # noqa: F401

    WITH_TRITON = True
except Exception:
    WITH_TRITON = False

try:
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    WITH_TENSORBOARD = True
except Exception:
    WITH_TENSORBOARD = False

__all__ = ["WITH_PYG_LIB", "WITH_TORCH_CLUSTER", "WITH_TRITON", "WITH_TENSORBOARD"]
