"""The one message-passing aggregation of equinets: scatter per-edge messages to their targets.

Every layer that passes messages along ``edge_index`` (PyG's convention: ``edge_index[0]`` the
source ``j``, ``edge_index[1]`` the target ``i``, messages flow source -> target) computes its
messages ``m_e`` per edge and reduces them per target with :func:`aggregate`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["aggregate", "AGGRS"]

#: the reductions :func:`aggregate` knows
AGGRS = ("sum", "mean", "max")


def aggregate(src: Tensor, index: Tensor, num_nodes: int, aggr: str = "sum") -> Tensor:
    r"""Reduce per-edge messages onto their target nodes (PyG's ``MessagePassing.aggregate``).

    With :math:`\mathcal{E}(i) = \{e : \mathrm{index}_e = i\}` the edges into node ``i``,

    .. math::
        \mathrm{sum}:\ a_i = \sum_{e \in \mathcal{E}(i)} m_e, \qquad
        \mathrm{mean}:\ a_i = \frac{1}{|\mathcal{E}(i)|} \sum_{e \in \mathcal{E}(i)} m_e, \qquad
        \mathrm{max}:\ a_{ic} = \max_{e \in \mathcal{E}(i)} m_{ec},

    and :math:`a_i = 0` for a node without incoming edges (all three reductions). The ``max``
    gradient is shared evenly among tied maxima (``torch.scatter_reduce``'s ``amax``).

    Args:
        src: ``(E, C)`` (or ``(E,)``) messages, one row per edge.
        index: ``(E,)`` long target node of each edge (``edge_index[1]``); any order.
        num_nodes: number of target nodes ``N`` (rows of the result).
        aggr: ``"sum"``, ``"mean"`` or ``"max"``.

    Returns:
        ``(N, C)`` (or ``(N,)``) aggregated messages, dtype and device of ``src``.

    Shapes:
        ``src`` ``(E, *)``, ``index`` ``(E,)`` -> ``(num_nodes, *)``.

    Example:
        >>> m = torch.tensor([[1.0], [3.0], [5.0]])
        >>> target = torch.tensor([0, 0, 2])
        >>> aggregate(m, target, 4, "sum").flatten().tolist()
        [4.0, 0.0, 5.0, 0.0]
        >>> aggregate(m, target, 4, "mean").flatten().tolist()
        [2.0, 0.0, 5.0, 0.0]
        >>> aggregate(m, target, 4, "max").flatten().tolist()
        [3.0, 0.0, 5.0, 0.0]
    """
    if aggr not in AGGRS:
        raise ValueError(f"aggr must be one of {AGGRS}, got {aggr!r}")
    if index.dim() != 1 or index.shape[0] != src.shape[0]:
        raise ValueError(
            f"index must have shape (E,) = ({src.shape[0]},) to match src, got {tuple(index.shape)}"
        )
    out = src.new_zeros(num_nodes, *src.shape[1:])
    if aggr == "max":
        at = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
        return out.scatter_reduce(0, at, src, reduce="amax", include_self=False)
    out = out.index_add(0, index, src)
    if aggr == "mean":
        deg = torch.bincount(index, minlength=num_nodes).clamp_min(1).to(src.dtype)
        out = out / deg.view(-1, *([1] * (src.dim() - 1)))
    return out
