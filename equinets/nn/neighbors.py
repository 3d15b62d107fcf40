r"""Neighbour operations on point clouds: k-nearest neighbours, radius search, farthest-point sampling.

The functions follow PyTorch Geometric's signatures and semantics (``torch_geometric.nn.pool``):
flat ``(N, D)`` features with sorted ``batch`` vectors, and ``edge_index`` outputs of shape ``(2, E)``
(for the graphs: ``edge_index[0]`` the source ``j``, ``edge_index[1]`` the target ``i``).

Backends. When `pyg-lib <https://github.com/pyg-team/pyg-lib>`_ imports
(``equinets.typing.WITH_PYG_LIB``) its compiled ``torch.ops.pyg`` kernels answer every call; else
`torch-cluster <https://github.com/rusty1s/pytorch_cluster>`_ when it imports
(``WITH_TORCH_CLUSTER``); otherwise the pure-torch path below runs. The backbones of
:mod:`equinets.nn` call these public functions, so an installed backend speeds them up.

The pure-torch kNN never forms a full ``(N, N)`` distance matrix at once. Per chunk of query rows it
computes the ranking score

.. math::
    s_{ij} = \lVert x_j \rVert^2 - 2\, y_i \cdot x_j = \lVert y_i - x_j \rVert^2 - \lVert y_i \rVert^2

with one ``torch.bmm`` of ``[y, 1]`` and ``[-2 x, |x|^2]`` into a buffer reused by every chunk (no
square root, and ``|y_i|^2`` is dropped since it does not change the order within a row), on
coordinates centred per cloud to limit cancellation. The ``k`` smallest scores of a row are then found
in two exact stages: the columns are split into strided groups of 8, the ``k + 1`` groups with the
smallest minima are kept (every score below the ``(k + 1)``-th smallest group minimum lies in one of
them), and ``topk`` runs on those ``8 (k + 1)`` candidates only. Ties are broken by index: a row whose
``k``-th smallest score equals its ``(k + 1)``-th (coincident points) is selected again with a stable
sort, so the result is the set of the ``k`` smallest ``(score, index)`` pairs, as a brute-force search
by ``(distance, index)`` gives. At B = 32 clouds of N = 1024 points and k = 20 this takes about 1.5x the
time of one ``torch.cdist`` of the same batch with 1 and 2 threads (``kernels/bench_knn.py``, glibc's
default allocator, under which cdist's fresh 128 MB output pays its page faults); against a cdist
writing into an already-touched heap (``--allocator steady``) it is about 3x. The two ``topk`` calls
per row are most of the cost.

Ragged batches are padded to ``(B, N_max, D)`` with padded columns given an infinite score; batches of
equal-size clouds (the common case) are reshaped without copying.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from .. import typing as _typing
from .._checks import check_batch, check_finite, check_int

__all__ = ["knn", "knn_graph", "knn_dense", "radius", "radius_graph", "fps"]

_GROUP = 8  # strided group size of the two-stage selection
_CHUNK_ELEMS = 1 << 21  # score entries per chunk on a CPU (8 MiB in float32; fewer, larger ops measured faster)
_CHUNK_ELEMS_GPU = 1 << 26


# ----------------------------------------------------------------------------- validation helpers
def _check_features(t, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dim() == 1:
        t = t.unsqueeze(-1)
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(t.shape)}")
    check_finite(t, name)
    return t.detach()  # neighbour indices carry no gradient


def _check_radius(r) -> float:
    if isinstance(r, Tensor) and r.dim() == 0 and r.is_floating_point():
        r = float(r)
    if isinstance(r, bool) or not isinstance(r, numbers.Real):
        raise TypeError(f"r must be a real number > 0, got {type(r).__name__} {r!r}")
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"r must be > 0 and finite, got {r}")
    return float(r)


def _check_flow(flow) -> None:
    if flow not in ("source_to_target", "target_to_source"):
        raise ValueError(f"flow must be 'source_to_target' or 'target_to_source', got {flow!r}")


def _batches(x: Tensor, y: Tensor, batch_x, batch_y, batch_size, names=("batch_x", "batch_y")):
    """Checked ``(batch_x, batch_y, num_clouds)``; one batched side makes the other cloud 0."""
    batch_x = None if batch_x is None else check_batch(batch_x, x.shape[0], names[0], of="x")
    batch_y = None if batch_y is None else check_batch(batch_y, y.shape[0], names[1], of="y")
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", 1)
    if batch_x is None and batch_y is None:
        return None, None, 1
    if batch_x is None:
        batch_x = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    if batch_y is None:
        batch_y = torch.zeros(y.shape[0], dtype=torch.long, device=y.device)
    last = max([int(b[-1]) for b in (batch_x, batch_y) if b.numel()], default=0)
    if batch_size is None:
        batch_size = last + 1
    elif batch_size <= last:
        raise ValueError(f"batch_size must be > every graph id, got batch_size={batch_size} with graph id {last}")
    return batch_x, batch_y, batch_size


def _check_search(x, y, batch_x, batch_y, batch_size, num_workers):
    """The checks shared by :func:`knn` and :func:`radius`: ``(x, y, batch_x, batch_y, num_clouds, num_workers)``."""
    x, y = _check_features(x, "x"), _check_features(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of columns, got {x.shape[1]} and {y.shape[1]}")
    return (x, y, *_batches(x, y, batch_x, batch_y, batch_size), check_int(num_workers, "num_workers", 1))


def _check_graph(x, batch, batch_size, num_workers, flow):
    """The checks shared by :func:`knn_graph` and :func:`radius_graph`: ``(x, batch, num_clouds, num_workers)``."""
    x = _check_features(x, "x")
    _check_flow(flow)
    batch, _, size = _batches(x, x, batch, batch, batch_size, ("batch", "batch"))
    return x, batch, size, check_int(num_workers, "num_workers", 1)


def _ptr(batch: Tensor | None, n: int, size: int, device) -> Tensor:
    if batch is None:
        return torch.tensor([0, n], device=device)
    counts = torch.bincount(batch, minlength=size)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


# ----------------------------------------------------------------------------- dense core
def _group_size(n: int, k: int) -> int:
    """Group size of the two-stage selection for rows of ``n`` scores (1: plain ``topk``)."""
    return _GROUP if n // _GROUP >= 2 * (k + 1) else 1


def _select_smallest(s: Tensor, k: int, g: int) -> tuple[Tensor, Tensor]:
    """``k`` smallest entries of each row of ``s`` ``(R, n)``: values and column ids (in no order).

    Exact. With ``g > 1`` (``n`` a multiple of ``g``) the columns form ``n / g`` strided groups of
    ``g``; the ``k + 1`` groups with the smallest minima hold the ``k + 1`` smallest entries of the
    row, and ``topk`` runs on their ``g (k + 1)`` entries only. Taking ``k + 1`` entries also shows
    ties: when the ``(k + 1)``-th smallest value equals the ``k``-th, the row is selected again with a
    stable sort, so that ties are broken by the lower column id. (Every entry outside the kept groups
    is at least the ``(k + 1)``-th group minimum, itself a candidate.)
    """
    R, n = s.shape
    k1 = min(k + 1, n)
    if g == 1:
        val, col = s.topk(k1, dim=1, largest=False, sorted=False)
    else:
        G = n // g
        sv = s.view(R, g, G)  # column j = m * G + c belongs to group c
        groups = sv.amin(1).topk(k1, dim=1, largest=False, sorted=False)[1]  # (R, k + 1)
        cand = sv.gather(2, groups.unsqueeze(1).expand(R, g, k1)).view(R, g * k1)
        val, j = cand.topk(k1, dim=1, largest=False, sorted=False)
        # candidate j = m * (k + 1) + slot is column m * G + groups[slot]
        col = groups.gather(1, j % k1).add_(torch.div(j, k1, rounding_mode="floor"), alpha=G)
    if k1 == k:
        return val, col
    # drop the (k + 1)-th smallest (the row maximum of val) by moving the last pick into its slot
    vmax, at = val.max(1, keepdim=True)
    tie = torch.count_nonzero(val == vmax, dim=1) > 1  # the k-th value equals the (k + 1)-th
    val.scatter_(1, at, val[:, k:].clone())
    col.scatter_(1, at, col[:, k:].clone())
    val, col = val[:, :k], col[:, :k]
    tie &= torch.isfinite(vmax.squeeze(1))
    if bool(tie.any()):  # coincident points: take the lowest column ids among the tied
        rows = tie.nonzero().squeeze(1)
        srt = s.index_select(0, rows).sort(dim=1, stable=True)
        val[rows], col[rows] = srt.values[:, :k], srt.indices[:, :k]
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
    """The ``k <= Nx`` nearest rows of ``x`` ``(B, Nx, D)`` for every row of ``y`` ``(B, Ny, D)``.

    Returns ``idx`` ``(B, Ny, k)`` and the ranking ``score`` of each pick; an infinite score marks
    "no neighbour" (padding, or the excluded self). ``exclude_self`` needs ``x is y`` row for row.

    The scores of a chunk come from one ``bmm`` of ``[y, 1]`` with ``[-2 x, |x|^2]`` written into one
    buffer reused by every chunk (fresh large allocations cost page faults that dominate a small-``D``
    matrix product).
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
    bias = (x * x).sum(-1, keepdim=True)
    if x_valid is not None:
        bias = bias.masked_fill(~x_valid.unsqueeze(-1), math.inf)
    g = _group_size(Nx + (-Nx) % _GROUP, k)
    nxp = Nx + (-Nx) % g  # pad columns so that the grouped selection applies
    xa = torch.cat([x * -2.0, bias], -1)  # (B, Nx, D + 1)
    if nxp > Nx:
        pad = xa.new_zeros(B, nxp - Nx, D + 1)
        pad[..., D] = math.inf
        xa = torch.cat([xa, pad], 1)
    ya = torch.cat([y, y.new_ones(B, Ny, 1)], -1)
    xat = xa.transpose(1, 2)  # (B, D + 1, nxp)
    idx = torch.empty(B, Ny, k, dtype=torch.long, device=x.device)
    score = torch.empty(B, Ny, k, dtype=x.dtype, device=x.device)
    elems = _CHUNK_ELEMS if x.device.type == "cpu" else _CHUNK_ELEMS_GPU
    bc = max(1, min(B, elems // (Ny * nxp)))  # clouds per chunk
    rc = max(1, min(Ny, elems // (bc * nxp)))  # query rows per chunk
    buf = torch.empty(bc * rc * nxp, dtype=x.dtype, device=x.device)
    for b0 in range(0, B, bc):
        b1 = min(B, b0 + bc)
        for r0 in range(0, Ny, rc):
            r1 = min(Ny, r0 + rc)
            s = buf[: (b1 - b0) * (r1 - r0) * nxp].view(b1 - b0, r1 - r0, nxp)
            torch.bmm(ya[b0:b1, r0:r1], xat[b0:b1], out=s)
            if exclude_self:
                s.diagonal(offset=r0, dim1=1, dim2=2).fill_(math.inf)
            v, j = _select_smallest(s.view(-1, nxp), k, g)
            idx[b0:b1, r0:r1] = j.view(b1 - b0, r1 - r0, k)
            score[b0:b1, r0:r1] = v.view(b1 - b0, r1 - r0, k)
    return idx, score


def _padded(t: Tensor, batch: Tensor, ptr: Tensor, size: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(N, D)`` -> ``(B, M, D)``: the padded tensor, its validity mask and each row's slot.

    Equal-size clouds are a view (mask and slots ``None``).
    """
    counts = ptr[1:] - ptr[:-1]
    n = t.shape[0]
    if n > 0 and n % size == 0 and bool((counts == n // size).all()):
        return t.view(size, n // size, t.shape[1]), None, None
    m = max(int(counts.max()), 1)
    local = torch.arange(n, device=t.device) - ptr[batch]
    out = t.new_zeros(size, m, t.shape[1])
    out[batch, local] = t
    valid = torch.zeros(size, m, dtype=torch.bool, device=t.device)
    valid[batch, local] = True
    return out, valid, local


def _knn_pure(x, y, k, batch_x, batch_y, size, *, exclude_self=False, cosine=False, query_row=0) -> Tensor:
    """Unchecked pure-torch kNN as an ``edge_index`` whose row ``query_row`` indexes ``y`` (sorted) and
    the other row ``x``; ``exclude_self`` needs ``x is y``."""
    dev = x.device
    bx = batch_x if batch_x is not None else torch.zeros(x.shape[0], dtype=torch.long, device=dev)
    by = batch_y if batch_y is not None else torch.zeros(y.shape[0], dtype=torch.long, device=dev)
    ptr_x = _ptr(batch_x, x.shape[0], size, dev)
    xp, xv, local_x = _padded(x, bx, ptr_x, size)
    if exclude_self:
        yp, local_y = xp, local_x
    else:
        yp, _, local_y = _padded(y, by, _ptr(batch_y, y.shape[0], size, dev), size)
    ke = min(k, xp.shape[1] - (1 if exclude_self and xv is None else 0))
    if ke <= 0:
        return torch.empty(2, 0, dtype=torch.long, device=dev)
    idx, score = _knn_core(xp, yp, ke, x_valid=xv, exclude_self=exclude_self, cosine=cosine)
    if local_y is None:  # equal-size y clouds: y point i is row i of the (B, My) block
        idx, score = idx.view(-1, ke), score.view(-1, ke)
    else:
        idx, score = idx[by, local_y], score[by, local_y]
    if xv is None:  # equal-size x clouds: every pick is a neighbour, no mask
        e = torch.empty(2, idx.numel(), dtype=torch.long, device=dev)
        if local_y is None:
            off = torch.arange(0, size * xp.shape[1], xp.shape[1], device=dev).view(size, 1, 1)
            torch.add(idx.view(size, -1, ke), off, out=e[1 - query_row].view(size, -1, ke))
        else:
            torch.add(idx, ptr_x.index_select(0, by).unsqueeze(1), out=e[1 - query_row].view(-1, ke))
        e[query_row].view(-1, ke).copy_(torch.arange(y.shape[0], device=dev).unsqueeze(1).expand(-1, ke))
        return e
    offset = ptr_x.index_select(0, by)
    keep = torch.isfinite(score)
    row = torch.arange(y.shape[0], device=dev).unsqueeze(1).expand(-1, ke)[keep]
    col = (idx + offset.unsqueeze(1))[keep]
    return torch.stack([row, col] if query_row == 0 else [col, row])


# ----------------------------------------------------------------------------- compiled backends
def _pyg_lib():
    """pyg-lib's compiled operators (``torch.ops.pyg``); the seam through which tests inject a fake."""
    return torch.ops.pyg


def _torch_cluster():
    """The ``torch_cluster`` module; the seam through which tests inject a fake."""
    import torch_cluster

    return torch_cluster


def _backend() -> str | None:
    if _typing.WITH_PYG_LIB:
        return "pyg_lib"
    if _typing.WITH_TORCH_CLUSTER:
        return "torch_cluster"
    return None


def _backend_knn(x, y, k, batch_x, batch_y, size, cosine, num_workers) -> Tensor:
    """``[y index; x index]`` from the compiled backend (``_backend()`` must not be ``None``)."""
    if _backend() == "pyg_lib":
        px = None if batch_x is None else _ptr(batch_x, x.shape[0], size, x.device)
        py = None if batch_y is None else _ptr(batch_y, y.shape[0], size, y.device)
        e = _pyg_lib().knn(x, y, px, py, k, cosine, num_workers)
    else:
        e = _torch_cluster().knn(x, y, k, batch_x, batch_y, cosine=cosine, num_workers=num_workers)
    return _by_row(e)


def _backend_radius(x, y, r, batch_x, batch_y, size, max_num_neighbors, num_workers, ignore_self) -> Tensor:
    if _backend() == "pyg_lib":
        px = None if batch_x is None else _ptr(batch_x, x.shape[0], size, x.device)
        py = None if batch_y is None else _ptr(batch_y, y.shape[0], size, y.device)
        e = _pyg_lib().radius(x, y, px, py, r, max_num_neighbors, num_workers, ignore_self)
    else:
        e = _torch_cluster().radius(x, y, r, batch_x, batch_y, max_num_neighbors + int(ignore_self),
                                    num_workers=num_workers)
        if ignore_self:
            e = _cap_per_row(e[:, e[0] != e[1]], max_num_neighbors, x, y, False, y.shape[0])
    return _by_row(e)


def _by_row(e: Tensor) -> Tensor:
    """``e`` stably sorted by ``e[0]`` (a no-op for the backends, which group edges by query)."""
    if e.shape[1] > 1 and bool((e[0, 1:] < e[0, :-1]).any()):
        e = e[:, torch.argsort(e[0], stable=True)]
    return e


def _cap_per_row(e: Tensor, k: int, x: Tensor, y: Tensor, cosine: bool, n_rows: int) -> Tensor:
    """Keep, per query ``e[0]``, the ``k`` nearest of its edges (ties by index); sorted by query."""
    cnt = torch.bincount(e[0], minlength=n_rows)
    if not bool((cnt > k).any()):
        return e
    if cosine:
        d = -torch.nn.functional.cosine_similarity(y[e[0]], x[e[1]], dim=1)
    else:
        d = (y[e[0]] - x[e[1]]).pow(2).sum(1)
    o = torch.argsort(e[1], stable=True)
    o = o[torch.argsort(d[o], stable=True)]
    o = o[torch.argsort(e[0][o], stable=True)]
    e = e[:, o]
    rank = torch.arange(e.shape[1], device=e.device) - (torch.cumsum(cnt, 0) - cnt)[e[0]]
    return e[:, rank < k]


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
    ``x`` point (e.g. ``knn(x, x, k)``) finds that point (distance 0); use :func:`knn_graph` with
    ``loop=False`` to leave it out. A cloud of ``x`` with fewer than ``k`` points gives all its points.
    Ties are broken by the lower index (pure-torch path; the compiled backends break them their way).

    Args:
        x: ``(N, D)`` reference points (a 1-D tensor is read as ``(N, 1)``).
        y: ``(M, D)`` query points.
        k: number of neighbours, ``>= 1``.
        batch_x, batch_y: sorted graph ids of ``x`` and ``y`` (``None``: one cloud).
        cosine: rank by cosine distance instead of Euclidean distance.
        num_workers: passed to the compiled backend; the pure-torch path uses torch's threads.
        batch_size: number of clouds, if known.

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
    k = check_int(k, "k", 1)
    x, y, batch_x, batch_y, size, num_workers = _check_search(x, y, batch_x, batch_y, batch_size, num_workers)
    if x.shape[0] == 0 or y.shape[0] == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    if _backend() is not None:
        return _backend_knn(x, y, k, batch_x, batch_y, size, bool(cosine), num_workers)
    return _knn_pure(x, y, k, batch_x, batch_y, size, cosine=bool(cosine))


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

    ``loop=False`` leaves each point out of its own neighbourhood by index, so that a point with
    coincident copies still gets exactly ``k`` others (copies included, lower indices first on ties);
    ``loop=True`` counts the point itself among its ``k``.

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
    k = check_int(k, "k", 1)
    x, batch, size, num_workers = _check_graph(x, batch, batch_size, num_workers, flow)
    if x.shape[0] == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    target = 1 if flow == "source_to_target" else 0
    if _backend() is None:
        return _knn_pure(x, x, k, batch, batch, size, exclude_self=not loop, cosine=bool(cosine), query_row=target)
    e = _backend_knn(x, x, k if loop else k + 1, batch, batch, size, bool(cosine), num_workers)
    if not loop:  # drop self by index; with > k coincident copies self may be missing: keep the k nearest
        e = _cap_per_row(e[:, e[0] != e[1]], k, x, x, bool(cosine), x.shape[0])
    return e if target == 0 else e.flip(0)


def knn_dense(pos: Tensor, k: int, *, loop: bool = True, cosine: bool = False) -> Tensor:
    r"""Indices of the ``k`` nearest points of every point, for a dense batch of equal-size clouds.

    The fast path behind :class:`~equinets.nn.DGCNN`: one batched score matrix
    ``|x_j|^2 - 2 x_i . x_j`` per chunk (``torch.bmm``) and an exact two-stage ``topk``, ties broken by
    the lower index (a compiled backend, when installed, answers instead).

    Args:
        pos: ``(B, N, D)`` points (or features).
        k: neighbours per point; ``k <= N`` (``k <= N - 1`` when ``loop=False``).
        loop: whether a point is its own neighbour (as in DGCNN, default) -- it then comes first up
            to ties with coincident points (broken by index) and rounding.
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
    k = check_int(k, "k", 1)
    B, N, D = pos.shape
    n_max = N - (0 if loop else 1)
    if k > n_max:
        raise ValueError(f"k must be <= {n_max} (N = {N}, loop={loop}) for a dense (B, N, k) result, got {k}")
    check_finite(pos, "pos")
    pos = pos.detach()
    if _backend() is None:
        return _knn_core(pos, pos, k, exclude_self=not loop, cosine=bool(cosine))[0]
    flat = pos.reshape(B * N, D)
    batch = torch.arange(B, device=pos.device).repeat_interleave(N)
    e = _backend_knn(flat, flat, k if loop else k + 1, batch, batch, B, bool(cosine), 1)
    if not loop:
        e = _cap_per_row(e[:, e[0] != e[1]], k, flat, flat, bool(cosine), B * N)
    if e.shape[1] != B * N * k:
        raise RuntimeError(f"the compiled kNN backend returned {e.shape[1]} edges, expected B N k = {B * N * k}")
    return (e[1] - torch.div(e[0], N, rounding_mode="floor") * N).view(B, N, k)


# ----------------------------------------------------------------------------- radius
def _radius_pure(x, y, r, batch_x, batch_y, size, max_num_neighbors, exclude_self, query_row=0) -> Tensor:
    e = _knn_pure(x, y, max_num_neighbors, batch_x, batch_y, size, exclude_self=exclude_self)
    d2 = (x[e[1]] - y[e[0]]).pow(2).sum(-1)  # exact distances of the candidates
    e = e[:, d2 < r * r]
    e = e[:, (e[0] * x.shape[0] + e[1]).argsort()]  # deterministic order: by query, then neighbour
    return e if query_row == 0 else e.flip(0)


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
    r = _check_radius(r)
    max_num_neighbors = check_int(max_num_neighbors, "max_num_neighbors", 1)
    x, y, batch_x, batch_y, size, num_workers = _check_search(x, y, batch_x, batch_y, batch_size, num_workers)
    if x.shape[0] == 0 or y.shape[0] == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    if _backend() is not None:
        return _backend_radius(x, y, r, batch_x, batch_y, size, max_num_neighbors, num_workers, False)
    return _radius_pure(x, y, r, batch_x, batch_y, size, max_num_neighbors, False)


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
    keeps its ``max_num_neighbors`` nearest qualifying sources; ``loop=False`` leaves the point itself
    out by index (coincident copies stay), ``loop=True`` counts it.

    Shapes:
        ``x`` ``(N, D)`` -> ``(2, E)`` sorted by target.

    Example:
        >>> radius_graph(torch.tensor([[0.0], [1.0], [3.0]]), r=1.5).tolist()
        [[1, 0], [0, 1]]
    """
    r = _check_radius(r)
    max_num_neighbors = check_int(max_num_neighbors, "max_num_neighbors", 1)
    x, batch, size, num_workers = _check_graph(x, batch, batch_size, num_workers, flow)
    if x.shape[0] == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    if _backend() is not None:
        e = _backend_radius(x, x, r, batch, batch, size, max_num_neighbors, num_workers, not loop)
    else:
        e = _radius_pure(x, x, r, batch, batch, size, max_num_neighbors, not loop)
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
    clouds (padded to the largest one). A compiled backend, when installed, answers instead unless a
    ``generator`` is given.

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
    if isinstance(ratio, bool) or not (isinstance(ratio, numbers.Real) and 0.0 < float(ratio) <= 1.0):
        raise ValueError(f"ratio must be a number in (0, 1], got {ratio!r}")
    batch, _, size = _batches(x, x, batch, batch, batch_size, ("batch", "batch"))
    dev = x.device
    if x.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=dev)
    if _backend() is not None and generator is None:
        if _backend() == "pyg_lib":
            return _pyg_lib().fps(x, _ptr(batch, x.shape[0], size, dev), float(ratio), bool(random_start))
        return _torch_cluster().fps(x, batch, float(ratio), bool(random_start))
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
