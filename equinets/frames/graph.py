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

**Sampling** (stochastic FA, paper §3.1 / App.): if :math:`|\mathcal{F}(G)| >` ``max_frames``, draw
``max_frames`` orderings i.i.d. *uniformly* from :math:`\mathcal{F}(G)` (a branch with probability
proportional to its number of orderings, then a uniform permutation inside every tie block). The average
is then invariant in distribution (an unbiased estimate of the exact average), not exactly invariant.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["GraphFrames", "graph_frames", "GraphFrameAveraging", "GIN", "rank_encoding"]


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
        order = torch.tensor([i for blk in choice for i in blk], dtype=torch.long)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel())
        out.append(rank)
    return out


def _sample(leaves: list[Tensor], sizes: list[int], k: int, generator) -> list[Tensor]:
    """``k`` i.i.d. uniform orderings (rank vectors) from the union of the leaves' frames."""
    logw = torch.tensor([sum(math.lgamma(int(s) + 1) for s in torch.bincount(c).tolist()) for c in leaves],
                        dtype=torch.float64)
    which = torch.multinomial(torch.softmax(logw, 0), k, replacement=True, generator=generator).tolist()
    out = []
    for li in which:
        c = leaves[li]
        u = torch.rand(c.numel(), dtype=torch.float64, generator=generator)
        order = torch.argsort(c.double() + 0.5 * u)  # blocks in color order, uniform inside each block
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel())
        out.append(rank)
    return out


# -- public API --------------------------------------------------------------------------------------------


@torch.no_grad()
def graph_frames(
    edge_index: Tensor,
    num_nodes: int,
    batch: Tensor | None = None,
    *,
    num_eigvecs: int | None = None,
    max_frames: int = 512,
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
        edge_index: ``(2, E)`` long, global node indices (undirected; symmetrised).
        num_nodes: ``N``, total number of nodes.
        batch: ``(N,)`` graph id of each node (``None``: one graph).
        num_eigvecs: use only the eigenspaces that contain the ``num_eigvecs`` smallest eigenvalues
            (``None``: all).
        max_frames: enumerate the frame when :math:`|\mathcal{F}| \le` ``max_frames``, otherwise draw
            ``max_frames`` i.i.d. uniform samples from it.
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
    dev = edge_index.device
    edge_index = edge_index.detach().cpu()
    if batch is None:
        batch = torch.zeros(num_nodes, dtype=torch.long)
    batch = batch.detach().cpu().long()
    if batch.shape[0] != num_nodes:
        raise ValueError(f"batch must have num_nodes = {num_nodes} entries, got {tuple(batch.shape)}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    B = int(batch.max()) + 1 if num_nodes else 0
    counts = torch.bincount(batch, minlength=B)
    # local index of every node inside its graph (storage order)
    order = torch.argsort(batch, stable=True)
    ptr = torch.cumsum(counts, 0) - counts
    local = torch.empty(num_nodes, dtype=torch.long)
    local[order] = torch.arange(num_nodes) - ptr[batch[order]]
    members = [order[int(ptr[b]):int(ptr[b] + counts[b])] for b in range(B)]
    src, dst = edge_index
    if edge_index.numel() and bool((batch[src] != batch[dst]).any()):
        raise ValueError("edge_index connects nodes of different graphs")
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
        color[members[b]] = _colors(_quantise(base, tol))
        leaf_sizes = [_leaf_size(c) for c in leaves]
        total = sum(leaf_sizes)
        sizes.append(total)
        if total <= max_frames:
            rk = [r for c in leaves for r in _enumerate(c)]
            complete.append(True)
        else:
            rk = _sample(leaves, leaf_sizes, max_frames, generator)
            complete.append(False)
        ranks.extend(rk)
        graph_of.extend([b] * len(rk))
        weights.extend([1.0 / len(rk)] * len(rk))
    K = len(ranks)
    graph = torch.tensor(graph_of, dtype=torch.long)
    cnt = counts[graph]
    frame = torch.arange(K).repeat_interleave(cnt)
    node = torch.cat([members[b] for b in graph_of]) if K else torch.zeros(0, dtype=torch.long)
    rank = torch.cat(ranks) if K else torch.zeros(0, dtype=torch.long)
    return GraphFrames(
        node=node.to(dev), rank=rank.to(dev), frame=frame.to(dev), graph=graph.to(dev),
        weight=torch.tensor(weights, dtype=torch.float64, device=dev), size=sizes,
        complete=torch.tensor(complete, dtype=torch.bool, device=dev), color=color.to(dev),
    )


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
        if rank.numel() and int(rank.max()) >= dim:
            raise ValueError(f"one-hot identifiers need id_dim >= graph size ({int(rank.max()) + 1}), got {dim}; "
                             f"use id_encoding='sinusoidal' for larger graphs")
        return torch.nn.functional.one_hot(rank, dim).to(dtype)
    if kind == "sinusoidal":
        half = (dim + 1) // 2
        freq = torch.exp(-math.log(1e4) * torch.arange(half, dtype=torch.float64, device=rank.device) / half)
        ang = rank.double()[:, None] * freq
        return torch.cat([ang.sin(), ang.cos()], 1)[:, :dim].to(dtype)
    raise ValueError(f"id encoding must be 'onehot' or 'sinusoidal', got {kind!r}")


class GIN(nn.Module):
    r"""Graph Isomorphism Network (Xu et al., ICLR 2019), sum aggregation and sum readout.

    Layer (Eq. 4.1): :math:`h_i' = \mathrm{MLP}\big((1 + \epsilon) h_i + \sum_{j \in N(i)} h_j\big)`, with a
    two-layer ReLU MLP; graph readout (Eq. 4.2): sum-pool of the concatenation of all layers, then a linear
    head. Exactly as powerful as 1-WL, so it cannot tell 1-WL-equivalent graphs apart.

    Args:
        in_dim, hidden, out_dim, num_layers: sizes.
        task: ``"graph"`` (one row per graph) or ``"node"`` (one row per node).

    Shapes:
        - **input:** ``x`` ``(N, in_dim)``, ``edge_index`` ``(2, E)`` (messages flow ``[0] -> [1]``; pass both
          directions), ``batch`` ``(N,)``.
        - **output:** ``(B, out_dim)`` or ``(N, out_dim)``.

    Example:
        >>> gin = GIN(1, 8, 2)
        >>> gin(torch.ones(3, 1), torch.tensor([[0, 1], [1, 0]]), torch.tensor([0, 0, 1])).shape
        torch.Size([2, 2])
    """

    def __init__(self, in_dim: int, hidden: int = 32, out_dim: int = 16, num_layers: int = 3, *,
                 task: str = "graph", eps: float = 0.0) -> None:
        super().__init__()
        if task not in ("graph", "node"):
            raise ValueError(f"task must be 'graph' or 'node', got {task!r}")
        self.task, self.eps = task, eps
        dims = [in_dim] + [hidden] * num_layers
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(a, hidden), nn.ReLU(), nn.Linear(hidden, hidden)) for a in dims[:-1]
        )
        self.head = nn.Linear(sum(dims), out_dim)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None) -> Tensor:
        hs = [x]
        h = x
        for mlp in self.mlps:
            agg = torch.zeros_like(h).index_add_(0, edge_index[1], h[edge_index[0]])
            h = torch.relu(mlp((1 + self.eps) * h + agg))
            hs.append(h)
        z = torch.cat(hs, 1)
        if self.task == "graph":
            if batch is None:
                batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            B = int(batch.max()) + 1 if batch.numel() else 0
            z = z.new_zeros(B, z.shape[1]).index_add_(0, batch, z)
        return self.head(z)


class GraphFrameAveraging(nn.Module):
    r"""Frame averaging of a GNN with node identifiers over permutation frames (Puny et al., §3.3, §5.2).

    For each frame (ordering) :math:`\pi \in \mathcal{F}(G)` from :func:`graph_frames`, every node gets
    identifier :math:`\mathrm{enc}(\mathrm{rank}_\pi(i))` (``id_dim`` channels) concatenated to ``x``; all
    frames of all graphs are folded into one batch and the GNN runs once. Graph-level outputs are averaged
    (invariant, Eq. 4); node-level outputs are averaged per node (equivariant, Eq. 5: rows keep the nodes'
    storage order, so "un-permuting" is the identity).

    **Exactness.** When every graph's frame is enumerated (``|F(G)| <= num_frames``) the output is
    exactly invariant/equivariant to node relabelling (float64 round-off; tested to 1e-12), for any GNN
    and any weights; in train mode too unless the GNN uses dropout (BatchNorm is fine: the multiset of framed
    inputs, hence the batch statistics, is the same for :math:`G` and :math:`\sigma G`).
    With sampled frames it is invariant in distribution only (``num_frames=1`` is the paper's stochastic
    FA with one sampled ordering).

    Args:
        gnn: module ``gnn(x, edge_index, batch)`` returning ``(K, C)`` (per framed graph) or ``(M, C)``
            (per framed node); its input width is ``x.shape[1] + id_dim``.
        num_frames: ``max_frames`` of :func:`graph_frames`.
        id_dim: identifier channels.
        id_encoding: ``"onehot"`` (needs ``id_dim >= n``) or ``"sinusoidal"``.
        task: ``"graph"`` / ``"node"``; ``None``: read ``gnn.task`` or tell by the number of rows.
        num_eigvecs, individualize, max_leaves, tol: see :func:`graph_frames`.

    Shapes:
        - **input:** ``x`` ``(N, C_in)`` or ``None``, ``edge_index`` ``(2, E)``, ``batch`` ``(N,)``.
        - **output:** ``(B, C)`` (graph level) or ``(N, C)`` (node level).

    Example:
        >>> ei = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
        >>> ei = torch.cat([ei, ei.flip(0)], 1)  # hexagon
        >>> fa = GraphFrameAveraging(GIN(1 + 8, 16, 4).double(), id_dim=8)
        >>> x = torch.ones(6, 1, dtype=torch.float64)
        >>> perm = torch.randperm(6)
        >>> y0 = fa(x, ei)
        >>> y1 = fa(x, perm.argsort()[ei])  # node i relabelled perm^-1[i]
        >>> fa.frames(ei, 6).size, bool((y0 - y1).abs().max() < 1e-12)
        ([12], True)
    """

    def __init__(self, gnn: nn.Module, *, num_frames: int = 512, id_dim: int = 16, id_encoding: str = "onehot",
                 task: str | None = None, num_eigvecs: int | None = None, individualize: int = 3,
                 max_leaves: int = 1024, tol: float = 1e-6) -> None:
        super().__init__()
        if id_encoding not in ("onehot", "sinusoidal"):
            raise ValueError(f"id_encoding must be 'onehot' or 'sinusoidal', got {id_encoding!r}")
        if task not in (None, "graph", "node"):
            raise ValueError(f"task must be None, 'graph' or 'node', got {task!r}")
        self.gnn = gnn
        self.num_frames, self.id_dim, self.id_encoding = num_frames, id_dim, id_encoding
        self.task = task if task is not None else getattr(gnn, "task", None)
        if self.task not in ("graph", "node"):
            self.task = None
        self.num_eigvecs, self.individualize, self.max_leaves, self.tol = num_eigvecs, individualize, max_leaves, tol

    def frames(self, edge_index: Tensor, num_nodes: int, batch: Tensor | None = None,
               generator: torch.Generator | None = None) -> GraphFrames:
        """The frames this module averages over (see :func:`graph_frames`)."""
        return graph_frames(edge_index, num_nodes, batch, num_eigvecs=self.num_eigvecs, max_frames=self.num_frames,
                            individualize=self.individualize, max_leaves=self.max_leaves, tol=self.tol,
                            generator=generator)

    def forward(self, x: Tensor | None, edge_index: Tensor, batch: Tensor | None = None, *,
                num_nodes: int | None = None, frames: GraphFrames | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        if x is None and num_nodes is None and batch is None:
            raise ValueError("pass x, batch or num_nodes so that the number of nodes is known")
        N = x.shape[0] if x is not None else (batch.shape[0] if batch is not None else num_nodes)
        dev = edge_index.device
        if batch is None:
            batch = torch.zeros(N, dtype=torch.long, device=dev)
        fr = frames if frames is not None else self.frames(edge_index, N, batch, generator)
        B = int(batch.max()) + 1 if N else 0
        K, M = fr.num_frames, fr.node.shape[0]
        dtype = x.dtype if x is not None else torch.get_default_dtype()
        ids = rank_encoding(fr.rank, self.id_dim, self.id_encoding, dtype)
        x_f = ids if x is None else torch.cat([x[fr.node], ids], 1)
        # -- fold edges: the edges of graph g(k), once per frame k, renumbered into frame k's rows ------
        counts = torch.bincount(batch, minlength=B)
        cnt = counts[fr.graph]
        row0 = torch.cumsum(cnt, 0) - cnt  # first row of each frame
        local = torch.empty(N, dtype=torch.long, device=dev)
        order = torch.argsort(batch, stable=True)
        ptr = torch.cumsum(counts, 0) - counts
        local[order] = torch.arange(N, device=dev) - ptr[batch[order]]
        eg = batch[edge_index[0]]
        eorder = torch.argsort(eg, stable=True)
        ecount = torch.bincount(eg, minlength=B)
        eptr = torch.cumsum(ecount, 0) - ecount
        ec = ecount[fr.graph]
        epair = torch.arange(K, device=dev).repeat_interleave(ec)
        estart = torch.cumsum(ec, 0) - ec
        eidx = eorder[eptr[fr.graph][epair] + torch.arange(epair.shape[0], device=dev) - estart[epair]]
        ei_f = local[edge_index[:, eidx]] + row0[epair]
        out = self.gnn(x_f, ei_f, fr.frame)
        if out.dim() == 1:
            out = out.unsqueeze(1)
        task = self.task or ("graph" if out.shape[0] == K else "node")
        if task == "graph" and out.shape[0] == K:
            w, target, size = fr.weight, fr.graph, B
        elif task == "node" and out.shape[0] == M:
            w, target, size = fr.weight[fr.frame], fr.node, N
        else:
            raise ValueError(f"the GNN returned {out.shape[0]} rows for {K} framed graphs of {M} nodes in all; "
                             f"expected {K} (graph level) or {M} (node level), task={self.task!r}")
        y = out * w.to(out.dtype)[:, None]
        return y.new_zeros(size, y.shape[1]).index_add(0, target, y)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_frames={self.num_frames}, id_dim={self.id_dim}, "
                f"id_encoding={self.id_encoding!r}, individualize={self.individualize}, "
                f"gnn={type(self.gnn).__name__})")
