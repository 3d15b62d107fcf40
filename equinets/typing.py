"""Optional compiled backends, detected once (PyG's ``WITH_*`` habit)."""

from __future__ import annotations

try:  # pyg-lib provides torch.ops.pyg.knn / fps / radius
    import pyg_lib  # noqa: F401
    import torch

    WITH_PYG_LIB = hasattr(torch.ops, "pyg") and hasattr(torch.ops.pyg, "knn")
except Exception:  # ImportError, or a broken binary wheel
    WITH_PYG_LIB = False

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

__all__ = ["WITH_PYG_LIB", "WITH_TRITON", "WITH_TENSORBOARD"]
