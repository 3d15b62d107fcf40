r"""Index arithmetic on batches of graphs: segment offsets, folding copies of graphs into one batch, full graphs.

A PyG batch stores graph ``b`` as a contiguous *segment* of nodes (``batch`` sorted), and its edges
anywhere in ``edge_index`` (row 0 the source ``j``, row 1 the target ``i``). Frame averaging runs a
backbone on many copies of each graph at once (one copy per frame, Puny et al., ICLR 2022, Eq. (4));
the copies are *folded* into one bigger batch, graph ``index[k]`` once for copy ``k``:

* :func:`segment_ptr`: first item of each segment;
* :func:`repeat_segments`: the items of segment ``index[k]`` for every copy ``k``, concatenated;
* :func:`fold_graph`: nodes *and* edges of graph ``index[k]`` for every copy ``k``, edges renumbered;
* :func:`full_graph`: the fully connected graph of each cloud (particle systems).

Every frame-averaging wrapper (:class:`~equinets.frames.FrameAveraging`,
:class:`~equinets.frames.FAGNN`, :class:`~equinets.frames.GraphFrameAveraging`) and the n-body
dataset use these, so the fold is written once.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["segment_ptr", "repeat_segments", "FoldedGraph", "fold_graph", "full_graph"]


def segment_ptr(counts: Tensor) -> Tensor:
    r"""Index of the first item of each segment, :math:`p_b = \sum_{b' < b} n_{b'}` (PyG's ``ptr[:-1]``).

    Shapes:
        ``counts`` ``(B,)`` -> ``(B,)``.

    Example:
        >>> segment_ptr(torch.tensor([2, 0, 3])).tolist()
        [0, 2, 2]
    """
    return torch.cumsum(counts, 0) - counts


def repeat_segments(counts: Tensor, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""The items of segment ``index[k]``, once for every copy ``k``, concatenated in copy order.

    For segments of sizes ``counts`` stored one after the other, copy ``k`` holds the
    ``counts[index[k]]`` items of segment ``index[k]`` in storage order. A segment may be copied
    any number of times (zero included), in any order.

    Args:
        counts: ``(B,)`` long segment sizes.
        index: ``(K,)`` long segment of each copy.

    Returns:
        ``(item, copy, start)``: ``item`` ``(M,)`` the original item of each folded row
        (``M = sum_k counts[index[k]]``), ``copy`` ``(M,)`` its copy (sorted), ``start`` ``(K,)`` the
        first folded row of each copy.

    Example:
        >>> item, copy, start = repeat_segments(torch.tensor([2, 3]), torch.tensor([1, 0, 1]))
        >>> item.tolist(), copy.tolist(), start.tolist()
        ([2, 3, 4, 0, 1, 2, 3, 4], [0, 0, 0, 1, 1, 2, 2, 2], [0, 3, 5])
    """
    dev = counts.device
    cnt = counts[index]
    copy = torch.arange(index.shape[0], device=dev).repeat_interleave(cnt)
    start = segment_ptr(cnt)
    item = segment_ptr(counts)[index][copy] + torch.arange(copy.shape[0], device=dev) - start[copy]
    return item, copy, start


class FoldedGraph(NamedTuple):
    """Copies of graphs folded into one batch (see :func:`fold_graph`).

    Attributes:
        node: ``(M,)`` original node of each folded node (copy-major, storage order inside a copy).
        copy: ``(M,)`` copy of each folded node (sorted): the ``batch`` vector of the folded graph.
        start: ``(K,)`` first folded node of each copy.
        edge: ``(E',)`` original edge (column of ``edge_index``) of each folded edge.
        edge_index: ``(2, E')`` folded edges between folded nodes (row 0 source, row 1 target).
    """

    node: Tensor
    copy: Tensor
    start: Tensor
    edge: Tensor
    edge_index: Tensor


def fold_graph(edge_index: Tensor, batch: Tensor, index: Tensor, num_graphs: int | None = None) -> FoldedGraph:
    r"""Graph ``index[k]`` of a PyG batch once for every copy ``k``, folded into one batch of graphs.

    The nodes of copy ``k`` are those of graph ``index[k]`` in storage order
    (:func:`repeat_segments`); its edges are the edges of that graph (in their order in
    ``edge_index``), renumbered into the copy's rows, so message passing on the folded graph runs
    every copy at once. Needs a sorted ``batch`` and edges inside graphs (PyG's collation makes both).

    Args:
        edge_index: ``(2, E)`` long, row 0 source ``j``, row 1 target ``i``.
        batch: ``(N,)`` sorted graph id of each node.
        index: ``(K,)`` graph of each copy.
        num_graphs: ``B`` (default ``batch[-1] + 1``).

    Returns:
        :class:`FoldedGraph`.

    Example:
        >>> ei = torch.tensor([[0, 2, 3], [1, 3, 2]])  # graph 0: 0 -> 1; graph 1: 2 <-> 3
        >>> f = fold_graph(ei, torch.tensor([0, 0, 1, 1]), torch.tensor([1, 1, 0]))
        >>> f.node.tolist(), f.copy.tolist(), f.edge.tolist()
        ([2, 3, 2, 3, 0, 1], [0, 0, 1, 1, 2, 2], [1, 2, 1, 2, 0])
        >>> f.edge_index.tolist()
        [[0, 1, 2, 3, 4], [1, 0, 3, 2, 5]]
    """
    B = (int(batch[-1]) + 1 if batch.numel() else 0) if num_graphs is None else num_graphs
    counts = torch.bincount(batch, minlength=B)
    node, copy, start = repeat_segments(counts, index)
    edge_graph = batch[edge_index[0]]
    edge_order = torch.argsort(edge_graph, stable=True)
    e, ecopy, _ = repeat_segments(torch.bincount(edge_graph, minlength=B), index)
    edge = edge_order[e]
    shift = start - segment_ptr(counts)[index]  # (K,): original node id -> folded row
    return FoldedGraph(node, copy, start, edge, edge_index[:, edge] + shift[ecopy])


def full_graph(batch: Tensor, num_graphs: int | None = None) -> Tensor:
    r"""Fully connected directed graph (no self-loops) of each cloud of a sorted ``batch``.

    Edge :math:`j \to i` for every pair :math:`i \ne j` of the same cloud; edges are grouped by cloud
    and, inside a cloud, by target ``i``, sources ascending.

    Shapes:
        ``batch`` ``(N,)`` -> ``edge_index`` ``(2, sum_b n_b (n_b - 1))``, row 0 source ``j``, row 1 target ``i``.

    Example:
        >>> full_graph(torch.tensor([0, 0, 1, 1, 1])).tolist()
        [[1, 0, 3, 4, 2, 4, 2, 3], [0, 1, 2, 2, 3, 3, 4, 4]]
    """
    B = (int(batch[-1]) + 1 if batch.numel() else 0) if num_graphs is None else num_graphs
    counts = torch.bincount(batch, minlength=B)
    # every node i receives from the n_b nodes of its cloud: one segment (the cloud) per target node
    src, dst, _ = repeat_segments(counts, batch)
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])
