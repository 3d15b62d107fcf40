r"""Permutation (:math:`S_n`) frames for graphs and frame-averaged GNNs with node identifiers.

From Puny et al., "Frame Averaging for Invariant and Equivariant Network Design" (ICLR 2022), §3.3 / §5.2
(graph separation, "GIN+ID"): a frame :math:`\mathcal{F}(G) \subset S_n` with
:math:`\mathcal{F}(\sigma G) = \sigma \mathcal{F}(G)` turns a backbone that sees node *identifiers*
(positions in an ordering, which break permutation symmetry and make GIN universal) back into an exactly
permutation invariant/equivariant model, Eq. (4)-(5):

.. math::
    \langle \phi \rangle_{\mathcal{F}}(G) = \frac{1}{|\mathcal{F}(G)|} \sum_{\pi \in \mathcal{F}(G)}
    \phi\big(G, \mathrm{id} = \mathrm{rank}_\pi\big).

**Frame construction** (:func:`graph_frames`), per graph, all in float64:

1. Laplacian :math:`L = D - A` (``edge_index`` symmetrised, self-loops and multi-edges dropped), eigen-
   decomposition with :func:`torch.linalg.eigh`; eigenvalues closer than ``tol`` (relative, chained) form
   one eigenspace :math:`\lambda` with spectral projector :math:`P_\lambda = U_\lambda U_\lambda^\top`.
   :math:`P_\lambda` is invariant to eigenvector signs *and* to the basis of a degenerate eigenspace, and
   equivariant: :math:`P_\lambda(\sigma G) = \Pi P_\lambda(G) \Pi^\top`.
2. Node key = (degree, :math:`\mathrm{diag}\,P_\lambda` for each eigenspace in ascending :math:`\lambda`).
   For a simple eigenvalue :math:`\mathrm{diag}\,P_\lambda = u^2`, the paper's :math:`|u|`; for a
   degenerate one it is the squared norm of the projection, the paper's basis-independent choice. Each
   column is quantised by chaining sorted values closer than ``tol`` (no rounding boundaries), then the
   nodes are sorted lexicographically. Nodes with equal keys form tie blocks; the paper's frame is every
   ordering consistent with the sort (all permutations inside each block): ``individualize=0``.
3. **Individualisation** (``individualize = d > 0``, our addition). Vertex-transitive graphs (cycles, CSL
   graphs, ...) tie *every* node in step 2, so the paper's frame is all of :math:`S_n` (:math:`n!`
   orderings). We refine equivariantly: pick the smallest tie block (first in key order on equal sizes);
   for each of its nodes :math:`a` (one branch each) append to every node :math:`j` the key
   :math:`([j = a], P_\lambda[a, j]\ \forall \lambda)` (the anchor goes first in its block; the projector
   entries relative to the anchor are basis- and sign-invariant) and re-sort. This repeats up to ``d``
   levels while the number of branches stays :math:`\le` ``max_leaves`` (the decision is taken per level
   for all branches at once, so it is invariant). The frame is the union over branches of the orderings
   consistent with each branch's sort. Each ordering determines its anchors (the first node of the
   split block), so branches are disjoint and the frame is a set. Every choice is a function of the
   relabelling-invariant data, hence :math:`\mathcal{F}(\sigma G) = \sigma \mathcal{F}(G)` exactly (up to
   ties within ``tol``). A frame always contains whole :math:`\mathrm{Aut}(G)` cosets, so
   :math:`|\mathcal{F}(G)| \ge |\mathrm{Aut}(G)|`. The default (3 levels) reaches this minimum on the
   hexagon (12), two triangles (72) and CSL(41, r) for r in {2, 3, 4, 5, 6, 11, 12, 13, 16} (dihedral,
   82 = 2n instead of 41!); CSL(41, 9) (:math:`9^2 \equiv -1`, :math:`|\mathrm{Aut}| = 164`) gets 328.

**Sampling** (stochastic FA, paper §3.1 / App.): orderings drawn i.i.d. *uniformly* from
:math:`\mathcal{F}(G)` (a branch with probability proportional to its number of orderings, then a
uniform permutation inside every tie block); the average is then invariant in distribution (an unbiased
estimate of the exact average), not exactly invariant. Two knobs, as in the other wrappers:
``num_samples`` is a sample *count* (draw exactly that many per graph, whatever the frame size; the
wrapper does so in training only), ``max_frames`` a *cap* (enumerate a frame of at most ``max_frames``
orderings exactly, sample ``max_frames`` orderings from a larger one).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import GraphInput, as_graph, check_batchnorm_batch, check_choice, check_dtype, check_int
from ..nn._base import TASKS
from ..nn.graph_ops import fold_graph, repeat_segments, segment_ptr
from ..nn.message_passing import aggregate
from .pca import check_tol

__all__ = ["GraphFrames", "graph_frames", "GraphFrameAveraging", "rank_encoding", "ID_ENCODINGS"]

ID_ENCODINGS = ("onehot", "sinusoidal")


@dataclass
class GraphFrames:
    """Frames (orderings) of a batch of graphs, folded frame-major.

    Frame ``k`` belongs to graph ``graph[k]``; its rows in the flat arrays are the nodes of that graph in
    storage order, and ``rank`` holds each node's position in the ordering.

    Attributes:
        node: ``(M,)`` long, global index of the node on each row (``M = sum_k n_graph[k]``).
        rank: ``(M,)`` long, position ``0 .. n_b - 1`` of that node in the ordering of its frame.
        frame: ``(M,)`` long, frame id ``0 .. K - 1`` of each row (sorted).
        graph: ``(K,)`` long, graph of each frame (sorted).
        weight: ``(K,)`` float64, averaging weight of each frame (sums to 1 per graph).
        size: exact frame size :math:`|\\mathcal{F}(G_b)|` per graph (Python ints, may be huge).
        complete: ``(B,)`` bool, the whole frame is enumerated (exact averaging) rather than sampled.
        color: ``(N,)`` long, tie block of each node under the base key (step 2, no individualisation).
    """

    node: Tensor
    rank: Tensor
    frame: Tensor
    graph: Tensor
    weight: Tensor
    size: list[int]
    complete: Tensor
    color: Tensor

    @property
    def num_frames(self) -> int:
        """``K``, the number of frames (orderings) of all graphs together."""
        return int(self.graph.shape[0])

    def orderings(self, b: int) -> Tensor:
        """``(f_b, n_b)`` local node indices in order, one row per frame of graph ``b``."""
        ks = (self.graph == b).nonzero().flatten()
        rows = torch.isin(self.frame, ks)
        rank = self.rank[rows].view(ks.numel(), -1)
        return rank.argsort(1)


# -- helpers -----------------------------------------------------------------------------------------------


def _quantise(v: Tensor, tol: float) -> Tensor:
    """Per column: cluster ids of values chained by gaps ``<= tol`` (invariant to row order)."""
    if v.numel() == 0:
        return v.long()
    s, idx = v.sort(0)
    new = torch.cat([torch.zeros_like(s[:1], dtype=torch.bool), s.diff(dim=0) > tol], 0)
    out = torch.empty_like(idx)
    out.scatter_(0, idx, new.long().cumsum(0))
    return out


def _colors(key: Tensor) -> Tensor:
    """Dense rank of each row of an integer key matrix in lexicographic order."""
    return torch.unique(key, dim=0, return_inverse=True)[1]


def _spectral(L: Tensor, tol: float, num_eigvecs: int | None) -> Tensor:
    """Batched ``(G, n, n)`` float64 Laplacians -> list of projector stacks ``(S, n, n)``."""
    evals, U = torch.linalg.eigh(L)
    out = []
    for ev, u in zip(evals, U):
        scale = max(1.0, float(ev.abs().max())) if ev.numel() else 1.0
        gid = torch.cat([ev.new_zeros(1, dtype=torch.long), (ev.diff() > tol * scale).long().cumsum(0)])
        if num_eigvecs is not None and num_eigvecs < ev.numel():
            keep = gid <= gid[max(num_eigvecs, 1) - 1]  # whole eigenspaces only (basis invariance)
            gid, u = gid[keep], u[:, keep]
        onehot = torch.nn.functional.one_hot(gid).to(u.dtype)
        out.append(torch.einsum("ik,jk,ks->sij", u, u, onehot))
    return out


def _block_orderings(color: Tensor) -> list[list[int]]:
    """Nodes of each tie block, blocks in color order."""
    order = torch.argsort(color, stable=True).tolist()
    counts = torch.bincount(color).tolist()
    blocks, i = [], 0
    for c in counts:
        blocks.append(order[i:i + c])
        i += c
    return blocks


def _frame_tree(base: Tensor, P: Tensor, tol: float, individualize: int, max_leaves: int) -> list[Tensor]:
    """Leaves of the individualisation tree: list of color vectors ``(n,)`` (tie blocks per leaf)."""
    n = base.shape[0]
    keys = [_quantise(base, tol)]
    leaves = [_colors(keys[0])]
    for _ in range(individualize):
        splits = []  # per leaf: anchor block (node list) or None if discrete
        for c in leaves:
            sizes = torch.bincount(c)
            if int(sizes.max()) == 1:
                splits.append(None)
                continue
            nz = torch.where(sizes > 1, sizes, sizes.new_tensor(n + 1))
            splits.append((c == int(nz.argmin())).nonzero().flatten().tolist())
        if all(s is None for s in splits):
            break
        if sum(1 if s is None else len(s) for s in splits) > max_leaves:
            break
        new_keys, new_leaves = [], []
        for key, c, block in zip(keys, leaves, splits):
            if block is None:
                new_keys.append(key)
                new_leaves.append(c)
                continue
            for a in block:
                ind = torch.ones(n, 1, dtype=torch.long)
                ind[a] = 0
                rel = _quantise(P[:, a, :].T.contiguous(), tol) if P.shape[0] else ind[:, :0]
                k2 = torch.cat([c[:, None], ind, rel], 1)
                new_keys.append(k2)
                new_leaves.append(_colors(k2))
        keys, leaves = new_keys, new_leaves
    return leaves


def _leaf_size(c: Tensor) -> int:
    return math.prod(math.factorial(int(s)) for s in torch.bincount(c).tolist())


def _enumerate(c: Tensor) -> list[Tensor]:
    """All orderings (as rank vectors) consistent with the tie blocks of ``c``."""
    blocks = _block_orderings(c)
    out = []
    for choice in itertools.product(*(itertools.permutations(b) for b in blocks)):
        out.append(torch.tensor([i for blk in choice for i in blk], dtype=torch.long).argsort())  # order -> rank
    return out


def _sample(leaves: list[Tensor], k: int, generator) -> list[Tensor]:
    """``k`` i.i.d. uniform orderings (rank vectors) from the union of the leaves' frames."""
    logw = torch.tensor([sum(math.lgamma(int(s) + 1) for s in torch.bincount(c).tolist()) for c in leaves],
                        dtype=torch.float64)
    which = torch.multinomial(torch.softmax(logw, 0), k, replacement=True, generator=generator).tolist()
    out = []
    for li in which:
        c = leaves[li]
        u = torch.rand(c.numel(), dtype=torch.float64, generator=generator)
        order = torch.argsort(c.double() + 0.5 * u)  # blocks in color order, uniform inside each block
        out.append(order.argsort())  # order -> rank
    return out


# -- public API --------------------------------------------------------------------------------------------


def _check_frame_options(num_eigvecs, max_frames, num_samples, individualize, max_leaves, tol) -> float:
    """Validate the options of :func:`graph_frames` (shared with :class:`GraphFrameAveraging`); return ``tol``."""
    check_int(num_eigvecs, "num_eigvecs", 1, allow_none=True)
    check_int(max_frames, "max_frames", 1)
    check_int(num_samples, "num_samples", 1, allow_none=True)
    check_int(individualize, "individualize", 0)
    check_int(max_leaves, "max_leaves", 1)
    return check_tol(tol)


def _check_nonempty(g: GraphInput) -> Tensor:
    """Nodes per graph ``(B,)``; every graph id in ``[0, B)`` must have a node (a frame orders nodes)."""
    counts = torch.bincount(g.batch, minlength=g.num_graphs)
    if g.num_nodes == 0 or bool((counts == 0).any()):
        empty = int((counts == 0).nonzero()[0]) if g.num_nodes else 0
        raise ValueError(f"graph {empty} of the batch is empty (no node has batch == {empty}); "
                         f"every graph needs at least one node")
    return counts


@torch.no_grad()
def graph_frames(
    edge_index: Tensor,
    num_nodes: int,
    batch: Tensor | None = None,
    *,
    num_eigvecs: int | None = None,
    max_frames: int = 512,
    num_samples: int | None = None,
    individualize: int = 3,
    max_leaves: int = 1024,
    tol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> GraphFrames:
    r"""Permutation frames of a batch of graphs from Laplacian spectral projectors (Puny et al., §3.3).

    See the module docstring for the construction (sorted spectral keys, tie blocks, equivariant
    individualisation, uniform sampling). Laplacians of equal-size graphs are eigen-decomposed in one
    batched float64 :func:`torch.linalg.eigh`; the tie/individualisation search runs per graph.

    Args:
        edge_index: ``(2, E)`` integer, global node indices (undirected; symmetrised), inside graphs.
        num_nodes: ``N``, total number of nodes.
        batch: ``(N,)`` sorted graph id of each node (``None``: one graph).
        num_eigvecs: use only the eigenspaces that contain the ``num_eigvecs`` smallest eigenvalues
            (``None``: all).
        max_frames: a cap: enumerate the frame when :math:`|\mathcal{F}| \le` ``max_frames``, otherwise
            draw ``max_frames`` i.i.d. uniform samples from it.
        num_samples: a count: draw exactly ``num_samples`` i.i.d. uniform orderings per graph, even
            from a small frame (``None``: use ``max_frames``).
        individualize: maximal individualisation depth (``0``: the paper's sort-only frame).
        max_leaves: do not individualise a level if the number of branches would exceed this.
        tol: tolerance for equal eigenvalues (relative to ``max(1, |lambda|_max)``) and equal features.
        generator: random generator for sampling.

    Shapes:
        - **input:** ``edge_index`` ``(2, E)``, ``batch`` ``(N,)``.
        - **output:** :class:`GraphFrames` with ``M = sum_k n_{graph[k]}`` rows and ``K`` frames.

    Example:
        >>> ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # path 0 - 1 - 2
        >>> fr = graph_frames(ei, 3)
        >>> fr.size, fr.complete.tolist()
        ([2], [True])
        >>> fr.orderings(0).tolist()  # the two ends tie and may swap; the middle node sorts last
        [[0, 2, 1], [2, 0, 1]]
    """
    g = as_graph(None, edge_index, batch, num_nodes=num_nodes)
    tol = _check_frame_options(num_eigvecs, max_frames, num_samples, individualize, max_leaves, tol)
    counts = _check_nonempty(g).cpu()
    dev = g.edge_index.device
    edge_index, batch, B = g.edge_index.cpu(), g.batch.cpu(), g.num_graphs
    ptr = segment_ptr(counts)
    local = torch.arange(g.num_nodes) - ptr[batch]  # index of every node inside its graph (storage order)
    src, dst = edge_index
    keep = src != dst
    src, dst = src[keep], dst[keep]
    # -- batched eigen-decomposition per graph size ---------------------------------------------------
    projectors: list[Tensor | None] = [None] * B
    degrees: list[Tensor | None] = [None] * B
    for n in counts.unique().tolist():
        bs = (counts == n).nonzero().flatten()
        slot = torch.full((B,), -1, dtype=torch.long)
        slot[bs] = torch.arange(bs.numel())
        A = torch.zeros(bs.numel(), n, n, dtype=torch.float64)
        e = slot[batch[src]] >= 0
        A[slot[batch[src[e]]], local[src[e]], local[dst[e]]] = 1.0
        A = torch.maximum(A, A.mT)
        deg = A.sum(-1)
        L = torch.diag_embed(deg) - A
        for b, P, d in zip(bs.tolist(), _spectral(L, tol, num_eigvecs), deg):
            projectors[b], degrees[b] = P, d
    # -- per-graph frames ------------------------------------------------------------------------------
    ranks, graph_of, weights, sizes, complete = [], [], [], [], []
    color = torch.empty(num_nodes, dtype=torch.long)
    for b in range(B):
        P, d = projectors[b], degrees[b]
        base = torch.cat([d[:, None], P.diagonal(dim1=1, dim2=2).T], 1)
        leaves = _frame_tree(base, P, tol, individualize, max_leaves)
        color[int(ptr[b]):int(ptr[b] + counts[b])] = _colors(_quantise(base, tol))
        total = sum(_leaf_size(c) for c in leaves)
        sizes.append(total)
        if num_samples is None and total <= max_frames:
            rk = [r for c in leaves for r in _enumerate(c)]
            complete.append(True)
        else:
            rk = _sample(leaves, max_frames if num_samples is None else num_samples, generator)
            complete.append(False)
        ranks.extend(rk)
        graph_of.extend([b] * len(rk))
        weights.extend([1.0 / len(rk)] * len(rk))
    graph = torch.tensor(graph_of, dtype=torch.long)
    node, frame, _ = repeat_segments(counts, graph)
    rank = torch.cat(ranks)
    return GraphFrames(
        node=node.to(dev), rank=rank.to(dev), frame=frame.to(dev), graph=graph.to(dev),
        weight=torch.tensor(weights, dtype=torch.float64, device=dev), size=sizes,
        complete=torch.tensor(complete, dtype=torch.bool, device=dev), color=color.to(dev),
    )


def _check_onehot_dim(n: int, id_dim: int) -> None:
    if n > id_dim:
        raise ValueError(f"one-hot identifiers need id_dim >= the largest graph ({n} nodes), got id_dim={id_dim}; "
                         f"build with a larger id_dim or id_encoding='sinusoidal'")


def rank_encoding(rank: Tensor, dim: int, kind: str = "onehot", dtype: torch.dtype = torch.float32) -> Tensor:
    """Node identifiers from positions: one-hot (padded to ``dim``, the paper's GIN+ID) or sinusoidal.

    Shapes:
        - **input:** ``rank`` ``(M,)`` long.
        - **output:** ``(M, dim)``.

    Example:
        >>> rank_encoding(torch.tensor([0, 2]), 3).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if kind == "onehot":
        if rank.numel():
            _check_onehot_dim(int(rank.max()) + 1, dim)
        return torch.nn.functional.one_hot(rank, dim).to(dtype)
    if kind == "sinusoidal":
        half = (dim + 1) // 2
        freq = torch.exp(-math.log(1e4) * torch.arange(half, dtype=torch.float64, device=rank.device) / half)
        ang = rank.double()[:, None] * freq
        return torch.cat([ang.sin(), ang.cos()], 1)[:, :dim].to(dtype)
    raise ValueError(f"kind must be one of {ID_ENCODINGS}, got {kind!r}")


class GraphFrameAveraging(nn.Module):
    r"""Frame averaging of a GNN with node identifiers over permutation frames (Puny et al., §3.3, §5.2).

    For each frame (ordering) :math:`\pi \in \mathcal{F}(G)` from :func:`graph_frames`, every node gets
    identifier :math:`\mathrm{enc}(\mathrm{rank}_\pi(i))` (``id_dim`` channels) concatenated to ``x``; all
    frames of all graphs are folded into one batch (:func:`~equinets.nn.graph_ops.fold_graph`) and the
    GNN runs once. Graph-level outputs are averaged (invariant, Eq. 4); node-level outputs are averaged
    per node (equivariant, Eq. 5: rows keep the nodes' storage order, so "un-permuting" is the identity).

    **Exactness.** When every graph's frame is enumerated (``|F(G)| <= max_frames``, no ``num_samples``
    in training) the output is exactly invariant/equivariant to node relabelling (float64 round-off;
    tested to 1e-12), for any GNN and any weights; in train mode too unless the GNN uses dropout
    (BatchNorm is fine: the multiset of framed inputs, hence the batch statistics, is the same for
    :math:`G` and :math:`\sigma G`). With sampled frames it is invariant in distribution only.

    Args:
        gnn: module ``gnn(x, edge_index, batch)`` returning ``(K, C)`` (per framed graph) or ``(M, C)``
            (per framed node); its input width is ``x.shape[1] + id_dim`` (checked against
            ``gnn.in_channels`` when it has one, e.g. :class:`~equinets.nn.GIN`).
        max_frames: a cap, ``max_frames`` of :func:`graph_frames`: frames of at most this many orderings
            are enumerated (exact), larger ones sampled (``max_frames=1``: the paper's stochastic FA
            with one ordering, in eval mode too).
        num_samples: a count, the name and meaning of :class:`FrameAveraging`'s: in training mode,
            ``num_samples`` orderings per graph drawn uniformly from the frame (stochastic FA, an
            unbiased estimate of the average); ``None``, and ``eval()`` always, use ``max_frames``.
        id_dim: identifier channels.
        id_encoding: ``"onehot"`` (needs ``id_dim >= n``, the largest graph) or ``"sinusoidal"``.
        task: ``"cls"`` (one row per graph) / ``"seg"`` (one row per node); ``None``: read ``gnn.task``
            or tell by the number of rows.
        num_eigvecs, individualize, max_leaves, tol: see :func:`graph_frames`.

    Shapes:
        - **input:** ``x`` ``(N, C_in)`` or ``None``, ``edge_index`` ``(2, E)`` (row 0 source, row 1
          target), ``batch`` ``(N,)`` sorted graph ids.
        - **output:** ``(B, C)`` (graph level) or ``(N, C)`` (node level).

    Example:
        >>> from equinets.nn import GIN
        >>> ei = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
        >>> ei = torch.cat([ei, ei.flip(0)], 1)  # hexagon
        >>> fa = GraphFrameAveraging(GIN(1 + 8, 4, hidden_channels=16).double(), id_dim=8)
        >>> x = torch.ones(6, 1, dtype=torch.float64)
        >>> perm = torch.randperm(6)
        >>> y0 = fa(x, ei)
        >>> y1 = fa(x, perm.argsort()[ei])  # node i relabelled perm^-1[i]
        >>> fa.frames(ei, 6).size, bool((y0 - y1).abs().max() < 1e-12)
        ([12], True)
    """

    def __init__(self, gnn: nn.Module, *, max_frames: int = 512, num_samples: int | None = None, id_dim: int = 16,
                 id_encoding: str = "onehot", task: str | None = None, num_eigvecs: int | None = None,
                 individualize: int = 3, max_leaves: int = 1024, tol: float = 1e-6) -> None:
        super().__init__()
        self.tol = _check_frame_options(num_eigvecs, max_frames, num_samples, individualize, max_leaves, tol)
        self.id_dim = check_int(id_dim, "id_dim", 1)
        self.id_encoding = check_choice(id_encoding, "id_encoding", ID_ENCODINGS)
        if task not in (None, *TASKS):
            raise ValueError(f"task must be None or one of {TASKS}, got {task!r}")
        self.gnn = gnn
        self.max_frames, self.num_samples = max_frames, num_samples
        self.task = task if task is not None else getattr(gnn, "task", None)
        if self.task not in TASKS:
            self.task = None
        self.num_eigvecs, self.individualize, self.max_leaves = num_eigvecs, individualize, max_leaves

    def frames(self, edge_index: Tensor, num_nodes: int, batch: Tensor | None = None,
               generator: torch.Generator | None = None) -> GraphFrames:
        """The frames this module averages over in its current mode (see :func:`graph_frames`)."""
        return graph_frames(edge_index, num_nodes, batch, num_eigvecs=self.num_eigvecs, max_frames=self.max_frames,
                            num_samples=self.num_samples if self.training else None,
                            individualize=self.individualize, max_leaves=self.max_leaves, tol=self.tol,
                            generator=generator)

    def forward(self, x: Tensor | None, edge_index: Tensor, batch: Tensor | None = None, *,
                num_nodes: int | None = None, frames: GraphFrames | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        g = as_graph(x, edge_index, batch, num_nodes=num_nodes)
        counts = _check_nonempty(g)
        N, B = g.num_nodes, g.num_graphs
        c_in = self.id_dim + (0 if g.x is None else g.x.shape[1])
        gnn_in = getattr(self.gnn, "in_channels", None)
        if isinstance(gnn_in, int) and gnn_in != c_in:
            raise ValueError(f"x must have gnn.in_channels - id_dim = {gnn_in} - {self.id_dim} = {gnn_in - self.id_dim} "
                             f"columns, got {c_in - self.id_dim}")
        if self.id_encoding == "onehot":
            _check_onehot_dim(int(counts.max()), self.id_dim)
        if isinstance(self.gnn, nn.Module):
            check_dtype(g.x, self.gnn, "x")
            k = self.num_samples if self.training else None
            if k is not None and self.task == "cls":  # the GNN sees B k framed graphs
                check_batchnorm_batch(self.gnn, B * k, "framed graphs (graphs x num_samples)")
        fr = frames if frames is not None else self.frames(g.edge_index, N, g.batch, generator)
        if fr.color.shape[0] != N:
            raise ValueError(f"frames are of a batch of {fr.color.shape[0]} nodes, the input has {N}")
        K, M = fr.num_frames, fr.node.shape[0]
        if g.x is not None:
            dtype = g.x.dtype
        else:  # identifiers only: in the GNN's dtype
            params = self.gnn.parameters() if isinstance(self.gnn, nn.Module) else ()
            param = next((p for p in params if p.is_floating_point()), None)
            dtype = torch.get_default_dtype() if param is None else param.dtype
        ids = rank_encoding(fr.rank, self.id_dim, self.id_encoding, dtype)
        fold = fold_graph(g.edge_index, g.batch, fr.graph, B)  # the edges of graph g(k), once per frame k
        out = self.gnn(ids if g.x is None else torch.cat([g.x[fold.node], ids], 1), fold.edge_index, fold.copy)
        if out.dim() == 1:
            out = out.unsqueeze(1)
        task = self.task or ("cls" if out.shape[0] == K else "seg")
        if task == "cls" and out.shape[0] == K:
            w, target, size = fr.weight, fr.graph, B
        elif task == "seg" and out.shape[0] == M:
            w, target, size = fr.weight[fr.frame], fr.node, N
        else:
            raise ValueError(f"the GNN returned {out.shape[0]} rows for {K} framed graphs of {M} nodes in all; "
                             f"expected {K} (graph level) or {M} (node level), task={self.task!r}")
        return aggregate(out * w.to(out.dtype)[:, None], target, size, "sum")

    def __repr__(self) -> str:
        s = f"max_frames={self.max_frames}"
        if self.num_samples is not None:
            s += f", num_samples={self.num_samples}"
        return (f"{type(self).__name__}({s}, id_dim={self.id_dim}, id_encoding={self.id_encoding!r}, "
                f"individualize={self.individualize}, gnn={type(self.gnn).__name__})")
