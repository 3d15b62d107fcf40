"""Global pooling: one row per cloud from per-point features, vectorised with ``scatter_reduce``."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["global_max_pool", "global_mean_pool", "global_add_pool"]


def _prep(x: Tensor, batch: Tensor | None, size: int | None) -> tuple[Tensor, int]:
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, C), got {tuple(x.shape)}")
    if batch is None:
        return torch.zeros(x.shape[0], dtype=torch.long, device=x.device), 1
    if batch.dim() != 1 or batch.shape[0] != x.shape[0]:
        raise ValueError(f"batch must have shape (N,) = ({x.shape[0]},) to match x, got {tuple(batch.shape)}")
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
    counts = torch.bincount(batch, minlength=size)
    n_max = int(counts.max())
    if N == size * n_max and bool((batch[1:] >= batch[:-1]).all()):
        # equal-size sorted clouds (the common case): a reshape, whose amax backward is cheap
        return x.reshape(size, n_max, C).amax(1)
    # ragged or unsorted: scatter into a -inf padded (B, n_max, C) block, then amax
    order = torch.argsort(batch, stable=True)
    ptr = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(batch)
    slot[order] = torch.arange(N, device=x.device) - ptr[batch[order]]
    dense = x.new_full((size, n_max, C), float("-inf"))
    dense = dense.index_put((batch, slot), x)
    out = dense.amax(1)
    return torch.where(counts.unsqueeze(1) > 0, out, torch.zeros_like(out))


def global_add_pool(x: Tensor, batch: Tensor | None = None, size: int | None = None) -> Tensor:
    r"""Sum over the points of each cloud, :math:`r_b = \sum_{i: b_i = b} x_i`.

    Shapes:
        ``x`` ``(N, C)``, ``batch`` ``(N,)`` -> ``(B, C)``.

    Example:
        >>> global_add_pool(torch.tensor([[1.0], [3.0], [2.0]]), torch.tensor([0, 0, 1])).tolist()
        [[4.0], [2.0]]
    """
    batch, size = _prep(x, batch, size)
    return x.new_zeros(size, x.shape[1]).index_add(0, batch, x)


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
    total = x.new_zeros(size, x.shape[1]).index_add(0, batch, x)
    count = torch.bincount(batch, minlength=size).clamp_min(1).to(x.dtype)
    return total / count.unsqueeze(1)
