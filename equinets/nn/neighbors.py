"""Neighbour operations on point clouds: k-nearest neighbours, radius search, farthest-point sampling.

The functions follow PyTorch Geometric's signatures and semantics (``torch_geometric.nn.pool``):
flat ``(N, D)`` features with sorted ``batch`` vectors, and ``edge_index`` outputs of shape ``(2, E)``.
When `pyg-lib <https://github.com/pyg-team/pyg-lib>`_ imports (``equinets.typing.WITH_PYG_LIB``) the
compiled ``torch.ops.pyg`` kernels are used; otherwise a pure-torch path runs.

The pure-torch kNN never forms a full ``(N, N)`` distance matrix at once. Per chunk of query rows it
computes the ranking score

.. math::
    s_{ij} = \\lVert x_j \\rVert^2 - 2\\, y_i \\cdot x_j = \\lVert y_i - x_j \\rVert^2 - \\lVert y_i \\rVert^2

with one ``torch.baddbmm`` (no square root, and ``|y_i|^2`` is dropped since it does not change the
order within a row), on coordinates centred per cloud to limit cancellation. The ``k`` smallest scores
of a row are then found in two exact stages: the columns are split into strided groups of 8, the ``k``
groups with the smallest minima are kept (every score below the ``k``-th smallest group minimum lies in
one of them), and ``topk`` runs on those ``8 k`` candidates only.

Ragged batches are padded to ``(B, N_max, D)`` with padded columns given an infinite score; batches of
equal-size clouds (the common case) are reshaped without copying.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import typing as _typing
from .._checks import check_finite

__all__ = ["knn", "knn_graph", "knn_dense", "radius", "radius_graph", "fps"]

_GROUP = 8  # strided group size of the two-stage selection
_CHUNK_ELEMS = 1 << 20  # score entries per chunk (4 MiB in float32): stays in cache


# ----------------------------------------------------------------------------- validation helpers
def _check_k(k, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {k!r}")
    return k


def _check_features(t: Tensor, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dim() == 1:
        t = t.unsqueeze(-1)
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(t.shape)}")
    check_finite(t, name)
    return t


def _check_batch(batch: Tensor | None, n: int, name: str, of: str) -> Tensor | None:
    if batch is None:
        return None
    if not isinstance(batch, Tensor) or batch.dtype not in (torch.int64, torch.int32):
        got = getattr(batch, "dtype", type(batch).__name__)
        raise TypeError(f"{name} must be an integer tensor of graph ids, got {got}")
    if batch.dim() != 1 or batch.shape[0] != n:
        raise ValueError(f"{name} must have shape (N,) = ({n},) to match {of}, got {tuple(batch.shape)}")
    batch = batch.long()
    if n > 0 and bool((batch < 0).any()):
        raise ValueError(f"{name} must hold graph ids >= 0, got a negative id")
    if n > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError(f"{name} must be sorted (non-decreasing graph ids), as PyG's collation makes it")
    return batch


def _check_flow(flow: str) -> None:
    if flow not in ("source_to_target", "target_to_source"):
        raise ValueError(f"flow must be 'source_to_target' or 'target_to_source', got {flow!r}")


def _ptr(batch: Tensor | None, n: int, size: int, device) -> Tensor:
    if batch is None:
        return torch.tensor([0, n], device=device)
    counts = torch.bincount(batch, minlength=size)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


# ----------------------------------------------------------------------------- dense core
def _select_smallest(s: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``k`` smallest entries of each row of ``s`` ``(R, n)`` (unsorted): values and column ids.

    Exact two-stage selection when ``n`` is a multiple of ``_GROUP`` and large compared with ``k``.
    """
    R, n = s.shape
    G = n // _GROUP
    if n % _GROUP or G < 2 * k:
        return s.topk(k, dim=1, largest=False, sorted=False)
    sv = s.view(R, _GROUP, G)  # column j = m * G + g belongs to group g
    groups = sv.amin(1).topk(k, dim=1, largest=False, sorted=False)[1]  # (R, k)
    cand = sv.gather(2, groups.unsqueeze(1).expand(R, _GROUP, k)).reshape(R, _GROUP * k)
    val, j = cand.topk(k, dim=1, largest=False, sorted=False)
    col = torch.div(j, k, rounding_mode="floor") * G + groups.gather(1, j % k)
    return val, col


def _knn_core(
    x: Tensor,
    y: Tensor,
    k: int,
    *,
    x_valid: Tensor | None = None,
    exclude_self: bool = False,
    cosine: bool = False,
) -> tuple[Tensor, Tensor]:
    """k nearest rows of ``x`` ``(B, Nx, D)`` for every row of ``y`` ``(B, Ny, D)``.

    Returns ``idx`` ``(B, Ny, k')`` with ``k' = min(k, Nx)`` and the ranking ``score`` of each pick;
    an infinite score marks "no neighbour" (padding, or the excluded self). ``exclude_self`` needs
    ``x is y`` row for row.
    """
    B, Nx, D = x.shape
    Ny = y.shape[1]
    if cosine:
        x = torch.nn.functional.normalize(x, dim=-1)
        y = x if exclude_self else torch.nn.functional.normalize(y, dim=-1)
    if x_valid is None:
        mu = x.mean(1, keepdim=True)
    else:
        w = x_valid.unsqueeze(-1).to(x.dtype)
        mu = (x * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1)
    x = x - mu
    y = x if exclude_self else y - mu
    bias = (x * x).sum(-1)
    if x_valid is not None:
        bias = bias.masked_fill(~x_valid, math.inf)
    ke = min(k, Nx)
    nxp = Nx
    if Nx // _GROUP >= 2 * ke and Nx % _GROUP:
        nxp = Nx + _GROUP - Nx % _GROUP  # pad columns so the grouped selection applies
        x = torch.cat([x, x.new_zeros(B, nxp - Nx, D)], 1)
        bias = torch.cat([bias, bias.new_full((B, nxp - Nx), math.inf)], 1)
    xt = x.transpose(1, 2)
    bias = bias.unsqueeze(1)
    idx = torch.empty(B, Ny, ke, dtype=torch.long, device=x.device)
    score = torch.empty(B, Ny, ke, dtype=x.dtype, device=x.device)
    bc = max(1, min(B, _CHUNK_ELEMS // nxp))  # clouds per chunk
    rc = max(1, _CHUNK_ELEMS // (bc * nxp))  # query rows per chunk
    for b0 in range(0, B, bc):
        b1 = min(B, b0 + bc)
        for r0 in range(0, Ny, rc):
            r1 = min(Ny, r0 + rc)
            s = torch.baddbmm(bias[b0:b1], y[b0:b1, r0:r1], xt[b0:b1], alpha=-2.0)
            if exclude_self:
                ar = torch.arange(r1 - r0, device=x.device)
                s[:, ar, ar + r0] = math.inf
            v, j = _select_smallest(s.view(-1, nxp), ke)
            idx[b0:b1, r0:r1] = j.view(b1 - b0, r1 - r0, ke)
            score[b0:b1, r0:r1] = v.view(b1 - b0, r1 - r0, ke)
    return idx, score


def _padded(t: Tensor, batch: Tensor, ptr: Tensor, size: int) -> tuple[Tensor, Tensor | None, Tensor]:
    """``(N, D)`` -> ``(B, M, D)``; returns the padded tensor, the validity mask and local indices."""
    counts = ptr[1:] - ptr[:-1]
    n = t.shape[0]
    if n > 0 and n == size * int(counts[0]) and bool((counts == counts[0]).all()):
        m = int(counts[0])
        local = torch.arange(n, device=t.device) % m
        return t.view(size, m, t.shape[1]), None, local
    m = int(counts.max()) if size > 0 else 0
    local = torch.arange(n, device=t.device) - ptr[batch]
    out = t.new_zeros(size, max(m, 1), t.shape[1])
    out[batch, local] = t
    valid = torch.zeros(size, max(m, 1), dtype=torch.bool, device=t.device)
    valid[batch, local] = True
    return out, valid, local


def _knn_flat(
    x: Tensor,
    y: Tensor,
    k: int,
    batch_x: Tensor | None,
    batch_y: Tensor | None,
    *,
    exclude_self: bool = False,
    cosine: bool = False,
    batch_size: int | None = None,
    return_score: bool = False,
):
    """Unchecked flat kNN: ``(row, col)`` with ``row`` indexing ``y``; ``exclude_self`` needs ``x is y``."""
    dev = x.device
    if x.shape[0] == 0 or y.shape[0] == 0:
        e = torch.empty(2, 0, dtype=torch.long, device=dev)
        return (e, x.new_empty(0)) if return_score else e
    if batch_x is None and batch_y is None:
        size = 1
    elif batch_size is not None:
        size = batch_size
    else:
        size = max(int(b[-1]) if b is not None else 0 for b in (batch_x, batch_y)) + 1
    bx = batch_x if batch_x is not None else torch.zeros(x.shape[0], dtype=torch.long, device=dev)
    by = batch_y if batch_y is not None else torch.zeros(y.shape[0], dtype=torch.long, device=dev)
    ptr_x, ptr_y = _ptr(bx, x.shape[0], size, dev), _ptr(by, y.shape[0], size, dev)
    xp, xv, local_x = _padded(x, bx, ptr_x, size)
    yp, local_y = (xp, local_x) if exclude_self else _padded(y, by, ptr_y, size)[::2]
    idx, score = _knn_core(xp, yp, k, x_valid=xv, exclude_self=exclude_self, cosine=cosine)
    ke = idx.shape[-1]
    # one row of (B, My, k') per flat y point: y point i sits at (by[i], local_y[i])
    idx = idx[by, local_y]  # (Ny, k')
    score = score[by, local_y]
    keep = torch.isfinite(score)
    row = torch.arange(y.shape[0], device=dev).unsqueeze(1).expand(-1, ke)
    col = idx + ptr_x[by].unsqueeze(1)
    e = torch.stack([row[keep], col[keep]])
    return (e, score[keep]) if return_score else e


# ----------------------------------------------------------------------------- public kNN
def knn(
    x: Tensor,
    y: Tensor,
    k: int,
    batch_x: Tensor | None = None,
    batch_y: Tensor | None = None,
    *,
    cosine: bool = False,
    num_workers: int = 1,
    batch_size: int | None = None,
) -> Tensor:
    r"""For every point of ``y``, its ``k`` nearest points of ``x`` in the same cloud.

    .. math::
        \mathcal{N}(i) = \operatorname{arg\,min}^{(k)}_{j:\ b^x_j = b^y_i} \lVert x_j - y_i \rVert_2

    Same signature and output as :func:`torch_geometric.nn.pool.knn`. A ``y`` point that equals an
    ``x`` point (e.g. ``knn(x, x, k)``) finds that point as its own nearest neighbour (distance 0);
    use :func:`knn_graph` with ``loop=False`` to leave it out. A cloud of ``x`` with fewer than ``k``
    points gives all its points. Ties are broken arbitrarily.

    Args:
        x: ``(N, D)`` reference points (a 1-D tensor is read as ``(N, 1)``).
        y: ``(M, D)`` query points.
        k: number of neighbours, ``>= 1``.
        batch_x, batch_y: sorted graph ids of ``x`` and ``y`` (``None``: one cloud).
        cosine: rank by cosine distance instead of Euclidean distance.
        num_workers: passed to pyg-lib; the pure-torch path uses torch's threads.
        batch_size: number of clouds, if known (saves a device sync).

    Returns:
        ``edge_index`` ``(2, E)`` long: ``edge_index[0]`` indexes ``y``, ``edge_index[1]`` indexes ``x``;
        sorted by ``edge_index[0]``.

    Shapes:
        ``x`` ``(N, D)``, ``y`` ``(M, D)``, ``batch_x`` ``(N,)``, ``batch_y`` ``(M,)`` ->
        ``(2, E)`` with ``E = sum_i min(k, |cloud(i)|)``.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [6.0, 0.0]])
        >>> knn(x, torch.tensor([[0.9, 0.0]]), k=2).tolist()
        [[0, 0], [1, 0]]
    """
    x, y = _check_features(x, "x"), _check_features(y, "y")
    k = _check_k(k)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of columns, got {x.shape[1]} and {y.shape[1]}")
    batch_x = _check_batch(batch_x, x.shape[0], "batch_x", "x")
    batch_y = _check_batch(batch_y, y.shape[0], "batch_y", "y")
    if (batch_x is None) != (batch_y is None) and x.shape[0] and y.shape[0]:
        # one side unbatched: treat it as cloud 0
        if batch_x is None:
            batch_x = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        else:
            batch_y = torch.zeros(y.shape[0], dtype=torch.long, device=y.device)
    if _typing.WITH_PYG_LIB and x.shape[0] and y.shape[0]:  # pragma: no cover - pyg-lib absent here
        size = batch_size
        if batch_x is not None and size is None:
            size = max(int(batch_x[-1]), int(batch_y[-1])) + 1
        px = None if batch_x is None else _ptr(batch_x, x.shape[0], size, x.device)
        py = None if batch_y is None else _ptr(batch_y, y.shape[0], size, y.device)
        return torch.ops.pyg.knn(x, y, px, py, k, cosine, num_workers)
    return _knn_flat(x, y, k, batch_x, batch_y, cosine=cosine, batch_size=batch_size)


def knn_graph(
    x: Tensor,
    k: int,
    batch: Tensor | None = None,
    loop: bool = False,
    flow: str = "source_to_target",
    cosine: bool = False,
    num_workers: int = 1,
    batch_size: int | None = None,
) -> Tensor:
    r"""The k-nearest-neighbour graph of a (batched) point set.

    Same signature and output as :func:`torch_geometric.nn.pool.knn_graph`. With
    ``flow="source_to_target"`` (default), ``edge_index[0]`` is the neighbour (source ``j``) and
    ``edge_index[1]`` the centre (target ``i``), each target having ``min(k, n_b - 1)`` sources
    (``min(k, n_b)`` with ``loop=True``); ``"target_to_source"`` swaps the two rows.

    ``loop=False`` leaves each point out of its own neighbourhood even when other points coincide
    with it (it takes exactly ``k`` others); ``loop=True`` counts the point itself among its ``k``.

    Args:
        x: ``(N, D)`` points or features.
        k: neighbours per point.
        batch: sorted graph ids ``(N,)`` or ``None``.
        loop: include self-loops.
        flow: ``"source_to_target"`` or ``"target_to_source"``.
        cosine, num_workers, batch_size: as in :func:`knn`.

    Shapes:
        ``x`` ``(N, D)`` -> ``(2, E)``, sorted by target.

    Example:
        >>> pos = torch.tensor([[0.0], [1.0], [3.0]])
        >>> knn_graph(pos, k=1).tolist()
        [[1, 0, 1], [0, 1, 2]]
    """
    x = _check_features(x, "x")
    k = _check_k(k)
    _check_flow(flow)
    batch = _check_batch(batch, x.shape[0], "batch", "x")
    if _typing.WITH_PYG_LIB and x.shape[0]:  # pragma: no cover - pyg-lib absent here
        size = batch_size if batch_size is not None else (None if batch is None else int(batch[-1]) + 1)
        p = None if batch is None else _ptr(batch, x.shape[0], size, x.device)
        e = torch.ops.pyg.knn(x, x, p, p, k if loop else k + 1, cosine, num_workers)
        if not loop:
            e = e[:, e[0] != e[1]]
    else:
        e = _knn_flat(x, x, k, batch, batch, exclude_self=not loop, cosine=cosine, batch_size=batch_size)
    return e.flip(0) if flow == "source_to_target" else e


def knn_dense(pos: Tensor, k: int, *, loop: bool = True, cosine: bool = False) -> Tensor:
    r"""Indices of the ``k`` nearest points of every point, for a dense batch of equal-size clouds.

    The fast path behind :func:`knn_graph` and :class:`~equinets.nn.DGCNN`: one batched score matrix
    ``|x_j|^2 - 2 x_i . x_j`` per chunk (``torch.baddbmm``) and an exact two-stage ``topk``.

    Args:
        pos: ``(B, N, D)`` points (or features).
        k: neighbours per point; ``k <= N`` (``k <= N - 1`` when ``loop=False``).
        loop: whether a point is its own neighbour (as in DGCNN, default) -- it then comes first up
            to ties with coincident points.
        cosine: rank by cosine distance.

    Returns:
        ``(B, N, k)`` long indices into the cloud's ``N`` points, in no particular order.

    Shapes:
        ``(B, N, D)`` -> ``(B, N, k)``.

    Example:
        >>> pos = torch.tensor([[[0.0], [1.0], [3.0]]])
        >>> knn_dense(pos, k=2, loop=False).sort(-1).values.tolist()
        [[[1, 2], [0, 2], [0, 1]]]
    """
    if not isinstance(pos, Tensor) or not pos.is_floating_point():
        raise TypeError(f"pos must be a floating-point torch.Tensor, got {getattr(pos, 'dtype', type(pos))}")
    if pos.dim() != 3 or pos.shape[0] == 0 or pos.shape[1] == 0:
        raise ValueError(f"pos must have shape (B, N, D) with B, N >= 1, got {tuple(pos.shape)}")
    k = _check_k(k)
    n_max = pos.shape[1] - (0 if loop else 1)
    if k > n_max:
        raise ValueError(
            f"k must be <= {n_max} (N = {pos.shape[1]}, loop={loop}) for a dense (B, N, k) result, got {k}"
        )
    check_finite(pos, "pos")
    return _knn_core(pos, pos, k, exclude_self=not loop, cosine=cosine)[0]


# ----------------------------------------------------------------------------- radius
def _radius_flat(x, y, r, batch_x, batch_y, max_num_neighbors, exclude_self, batch_size):
    e, _ = _knn_flat(
        x, y, max_num_neighbors, batch_x, batch_y, exclude_self=exclude_self, batch_size=batch_size,
        return_score=True,
    )
    d2 = (x[e[1]] - y[e[0]]).pow(2).sum(-1)  # exact distances of the candidates
    e = e[:, d2 < r * r]
    return e[:, (e[0] * x.shape[0] + e[1]).argsort()]  # deterministic order: by row, then col


def radius(
    x: Tensor,
    y: Tensor,
    r: float,
    batch_x: Tensor | None = None,
    batch_y: Tensor | None = None,
    max_num_neighbors: int = 32,
    num_workers: int = 1,
    batch_size: int | None = None,
) -> Tensor:
    r"""For every point of ``y``, the points of ``x`` in the same cloud closer than ``r``.

    .. math::
        \mathcal{N}(i) = \{ j : b^x_j = b^y_i,\ \lVert x_j - y_i \rVert_2 < r \}

    Same signature and output layout as :func:`torch_geometric.nn.pool.radius` (``edge_index[0]``
    indexes ``y``). The distance test is strict. When more than ``max_num_neighbors`` points qualify,
    the nearest ``max_num_neighbors`` are kept (a deterministic choice; the compiled backends keep an
    arbitrary subset). Edges come sorted by ``y`` index, then ``x`` index. A ``y`` point equal to an
    ``x`` point finds it (distance 0 < r).

    Shapes:
        ``x`` ``(N, D)``, ``y`` ``(M, D)`` -> ``(2, E)`` sorted by ``edge_index[0]``.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [3.0]])
        >>> radius(x, torch.tensor([[0.5]]), r=1.0).tolist()
        [[0, 0], [0, 1]]
    """
    x, y = _check_features(x, "x"), _check_features(y, "y")
    max_num_neighbors = _check_k(max_num_neighbors, "max_num_neighbors")
    if not r > 0:
        raise ValueError(f"r must be > 0, got {r}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of columns, got {x.shape[1]} and {y.shape[1]}")
    batch_x = _check_batch(batch_x, x.shape[0], "batch_x", "x")
    batch_y = _check_batch(batch_y, y.shape[0], "batch_y", "y")
    if _typing.WITH_PYG_LIB and x.shape[0] and y.shape[0]:  # pragma: no cover
        size = batch_size
        if batch_x is not None and size is None:
            size = max(int(batch_x[-1]), int(batch_y[-1])) + 1
        px = None if batch_x is None else _ptr(batch_x, x.shape[0], size, x.device)
        py = None if batch_y is None else _ptr(batch_y, y.shape[0], size, y.device)
        return torch.ops.pyg.radius(x, y, px, py, float(r), max_num_neighbors, num_workers, False)
    if (batch_x is None) != (batch_y is None):
        if batch_x is None:
            batch_x = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        else:
            batch_y = torch.zeros(y.shape[0], dtype=torch.long, device=y.device)
    return _radius_flat(x, y, r, batch_x, batch_y, max_num_neighbors, False, batch_size)


def radius_graph(
    x: Tensor,
    r: float,
    batch: Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int = 32,
    flow: str = "source_to_target",
    num_workers: int = 1,
    batch_size: int | None = None,
) -> Tensor:
    r"""The radius graph: edges between points of the same cloud closer than ``r``.

    Same signature and output as :func:`torch_geometric.nn.pool.radius_graph`; with the default flow
    ``edge_index[0]`` is the neighbour (source) and ``edge_index[1]`` the centre (target). Each target
    keeps its ``max_num_neighbors`` nearest qualifying sources; ``loop=True`` counts the point itself.

    Shapes:
        ``x`` ``(N, D)`` -> ``(2, E)`` sorted by target.

    Example:
        >>> radius_graph(torch.tensor([[0.0], [1.0], [3.0]]), r=1.5).tolist()
        [[1, 0], [0, 1]]
    """
    x = _check_features(x, "x")
    max_num_neighbors = _check_k(max_num_neighbors, "max_num_neighbors")
    if not r > 0:
        raise ValueError(f"r must be > 0, got {r}")
    _check_flow(flow)
    batch = _check_batch(batch, x.shape[0], "batch", "x")
    if _typing.WITH_PYG_LIB and x.shape[0]:  # pragma: no cover
        size = batch_size if batch_size is not None else (None if batch is None else int(batch[-1]) + 1)
        p = None if batch is None else _ptr(batch, x.shape[0], size, x.device)
        e = torch.ops.pyg.radius(x, x, p, p, float(r), max_num_neighbors, num_workers, not loop)
    else:
        e = _radius_flat(x, x, r, batch, batch, max_num_neighbors, not loop, batch_size)
    return e.flip(0) if flow == "source_to_target" else e


# ----------------------------------------------------------------------------- farthest-point sampling
def fps(
    x: Tensor,
    batch: Tensor | None = None,
    ratio: float = 0.5,
    random_start: bool = True,
    batch_size: int | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Farthest-point sampling (Qi et al., PointNet++, 2017), run on all clouds at once.

    Cloud ``b`` of ``n_b`` points gives ``m_b = ceil(ratio * n_b)`` indices: a start point ``s_0``
    (random, or the cloud's first point when ``random_start=False``), then greedily

    .. math::
        s_t = \operatorname{arg\,max}_i \min_{u < t} \lVert x_i - x_{s_u} \rVert_2,

    lowest index on ties. The loop runs over the ``max_b m_b`` steps, each step vectorised over the
    clouds (padded to the largest one).

    Args:
        x: ``(N, D)`` points.
        batch: sorted graph ids or ``None``.
        ratio: sampling ratio in ``(0, 1]``.
        random_start: random first point per cloud (drawn from ``generator``); else the first point.
        batch_size: number of clouds, if known.
        generator: random generator for the start points (pure-torch path).

    Returns:
        ``(sum_b m_b,)`` long indices into ``x``, grouped by cloud, each group in sampling order.

    Shapes:
        ``x`` ``(N, D)`` -> ``(M,)``.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [10.0], [4.0]])
        >>> fps(x, ratio=0.75, random_start=False).tolist()
        [0, 2, 3]
    """
    x = _check_features(x, "x")
    if not (isinstance(ratio, (int, float)) and 0.0 < float(ratio) <= 1.0):
        raise ValueError(f"ratio must be a number in (0, 1], got {ratio!r}")
    batch = _check_batch(batch, x.shape[0], "batch", "x")
    dev = x.device
    if x.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=dev)
    size = 1 if batch is None else (batch_size if batch_size is not None else int(batch[-1]) + 1)
    if _typing.WITH_PYG_LIB and generator is None:  # pragma: no cover
        p = _ptr(batch, x.shape[0], size, dev)
        return torch.ops.pyg.fps(x, p, float(ratio), random_start)
    b = batch if batch is not None else torch.zeros(x.shape[0], dtype=torch.long, device=dev)
    ptr = _ptr(b, x.shape[0], size, dev)
    counts = ptr[1:] - ptr[:-1]
    m = torch.ceil(counts.float() * float(ratio)).long()  # as pyg-lib computes it
    xp, valid, _ = _padded(x, b, ptr, size)
    xp = xp - xp.mean(1, keepdim=True)
    B, M = xp.shape[:2]
    if random_start:
        u = torch.rand(B, generator=generator, device=dev if generator is None else generator.device).to(dev)
        cur = (u * counts.to(u.dtype)).long().clamp_max(counts.clamp_min(1) - 1)
    else:
        cur = torch.zeros(B, dtype=torch.long, device=dev)
    steps = int(m.max())
    out = torch.empty(B, steps, dtype=torch.long, device=dev)
    dist = xp.new_full((B, M), math.inf)
    if valid is not None:
        dist = dist.masked_fill(~valid, -math.inf)  # padding is never picked
    ar = torch.arange(B, device=dev)
    for t in range(steps):
        out[:, t] = cur
        if t + 1 == steps:
            break
        d = (xp - xp[ar, cur].unsqueeze(1)).pow(2).sum(-1)
        dist = torch.minimum(dist, d)
        cur = dist.argmax(1)
    keep = torch.arange(steps, device=dev).unsqueeze(0) < m.unsqueeze(1)
    return (out + ptr[:-1].unsqueeze(1))[keep]
