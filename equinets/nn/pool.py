"""Global pooling: one row per cloud from per-point features (:func:`~equinets.nn.message_passing.aggregate`
with the cloud id as the target)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_batch, check_int
from .message_passing import aggregate

__all__ = ["global_max_pool", "global_mean_pool", "global_add_pool"]


def _prep(x: Tensor, batch: Tensor | None, size: int | None) -> tuple[Tensor, int]:
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"x must have shape (N, C), got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    size = check_int(size, "size", 0, allow_none=True)
    if batch is None:
        return torch.zeros(x.shape[0], dtype=torch.long, device=x.device), 1 if size is None else size
    batch = check_batch(batch, x.shape[0], of="x", values=False)  # any order is fine here
    if size is None:
        size = int(batch.max()) + 1 if batch.numel() else 0
    return batch, size


def global_max_pool(x: Tensor, batch: Tensor | None = None, size: int | None = None) -> Tensor:
    r"""Channel-wise maximum over the points of each cloud, :math:`r_b = \max_{i: b_i = b} x_i`.

    Empty clouds give zeros. Gradients are shared equally among tied maxima.

    Shapes:
        ``x`` ``(N, C)``, ``batch`` ``(N,)`` -> ``(B, C)``.

    Example:
        >>> global_max_pool(torch.tensor([[1.0], [3.0], [2.0]]), torch.tensor([0, 0, 1])).tolist()
        [[3.0], [2.0]]
    """
    batch, size = _prep(x, batch, size)
    N, C = x.shape
    if size == 0 or N == 0:
        return x.new_zeros(size, C)
    if N % size == 0 and bool((batch.view(size, N // size) == torch.arange(size, device=x.device).unsqueeze(1)).all()):
        # equal-size sorted clouds (the common case): a reshape, whose amax backward is cheap
        return x.reshape(size, N // size, C).amax(1)
    return aggregate(x, batch, size, "max")


def global_add_pool(x: Tensor, batch: Tensor | None = None, size: int | None = None) -> Tensor:
    r"""Sum over the points of each cloud, :math:`r_b = \sum_{i: b_i = b} x_i`.

    Shapes:
        ``x`` ``(N, C)``, ``batch`` ``(N,)`` -> ``(B, C)``.

    Example:
        >>> global_add_pool(torch.tensor([[1.0], [3.0], [2.0]]), torch.tensor([0, 0, 1])).tolist()
        [[4.0], [2.0]]
    """
    batch, size = _prep(x, batch, size)
    return aggregate(x, batch, size, "sum")


def global_mean_pool(x: Tensor, batch: Tensor | None = None, size: int | None = None) -> Tensor:
    r"""Mean over the points of each cloud, :math:`r_b = \frac{1}{n_b} \sum_{i: b_i = b} x_i`.

    Empty clouds give zeros.

    Shapes:
        ``x`` ``(N, C)``, ``batch`` ``(N,)`` -> ``(B, C)``.

    Example:
        >>> global_mean_pool(torch.tensor([[1.0], [3.0], [2.0]]), torch.tensor([0, 0, 1])).tolist()
        [[2.0], [2.0]]
    """
    batch, size = _prep(x, batch, size)
    return aggregate(x, batch, size, "mean")
