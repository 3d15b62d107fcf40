r"""Piecewise-equivariant blocks: a shared PointNet-style network run in every frame of every part.

Atzmon et al., ICLR 2024, Sec. 3 (layer given a partition :math:`Z`, combination :math:`\phi_{III}`):

.. math::
    \psi(X, Z)_i = \sum_j w_{ij} \sum_{g \in \mathcal{F}_j} \omega_g\, \rho_2(g)\,
    \Phi\big(\rho_1(g)^{-1} X_j\big)_i ,

with :math:`X_j` the points of part :math:`j`, :math:`\mathcal{F}_j` its weighted PCA frame
(:func:`~equinets.piecewise.part_frames`, frame weights :math:`\omega_g`), :math:`w_{ij}` the pair weights of
the partition (one pair of weight 1 per point for hard assignments) and :math:`\Phi` one shared backbone.

**Sparse folding.** The backbone runs on *rows*, one per (pair, frame): the pairs of part :math:`j` once for
every frame of :math:`j` with positive weight (:func:`equinets.nn.graph_ops.repeat_segments`), so a hard
partition of ``N`` points into parts with simple spectra costs ``8 N`` rows (O3/E3) or ``4 N`` (SO3/SE3)
whatever the number of parts; no ``parts x points`` tensor exists. Pooling over a part is a scatter over the
rows of each (part, frame); combining is a weighted scatter of the rows onto their points.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..frames._wigner import rotate_irreps
from ..frames.pca import Frames, frame_pairs
from ..nn._base import check_widths, mlp_layers
from ..nn.graph_ops import repeat_segments
from ..nn.message_passing import aggregate
from ..nn.neighbors import knn_graph
from .partition import Partition

__all__ = ["APENBlock", "part_neighbors"]


def part_neighbors(pos: Tensor, label: Tensor, k: int) -> Tensor:
    r"""Offsets :math:`x_j - x_i` to the ``k`` nearest points *of the same part*, nearest first.

    The search runs on the points sorted by part with the part id as the cloud id of
    :func:`equinets.nn.neighbors.knn_graph`, so no point of another part is ever a candidate (no large
    penalty added to cross-part distances, as the official code does, which fails for coordinates far
    from order 1). A part with fewer than ``k + 1`` points pads its rows with zero offsets (the point
    itself). The offsets are equivariant under any rigid motion of the part.

    Shapes:
        ``pos`` ``(N, 3)``, ``label`` ``(N,)`` long part ids -> ``(N, k, 3)``.

    Example:
        >>> pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [100.0, 0, 0], [100.5, 0, 0], [103.0, 0, 0]])
        >>> part_neighbors(pos, torch.tensor([0, 0, 1, 1, 1]), 2)[:, :, 0].tolist()
        [[1.0, 0.0], [-1.0, 0.0], [0.5, 3.0], [-0.5, 2.5], [-2.5, -3.0]]
    """
    N = pos.shape[0]
    order = torch.sort(label, stable=True).indices
    e = knn_graph(pos.detach()[order], k, batch=label[order], loop=False)
    src, dst = order[e[0]], order[e[1]]
    off = pos[src] - pos[dst]  # (E, 3)
    d2 = off.detach().pow(2).sum(1)
    first = torch.full((N,), e.shape[1], dtype=torch.long, device=pos.device).scatter_reduce(
        0, dst, torch.arange(e.shape[1], device=pos.device), "amin")
    slot = torch.arange(e.shape[1], device=pos.device) - first[dst]
    dist = torch.full((N, k), float("inf"), dtype=d2.dtype, device=pos.device)
    dist[dst, slot] = d2
    rows = pos.new_zeros(N, k, 3)
    rows[dst, slot] = off
    rank = torch.sort(dist, dim=1, stable=True).indices  # nearest first, whatever order the search returned
    return rows.gather(1, rank[:, :, None].expand(N, k, 3))


class APENBlock(nn.Module):
    r"""One piecewise-equivariant layer: per-part frames, a shared point MLP, part pooling, rotate back, combine.

    For each row (point :math:`i` of part :math:`j` in frame :math:`g = (R, t)` of :math:`j`) the input is
    :math:`[R^\top(x_i - t),\ R^\top v_{i1}, \dots, R^\top v_{iV},\ s_i,\ D(R^\top) x_i]` (framed position,
    framed equivariant vectors, invariant scalars, framed typed features); a shared MLP gives :math:`f`; the
    rows of each (part, frame) are pooled (pair-weighted mean and max of :math:`w f`); a second MLP on
    :math:`[f, \text{pools}]` gives ``out_scalars`` invariants and ``out_vectors`` vectors (in frame
    coordinates, rotated back by :math:`R`), which are averaged over the frames and combined over the pairs of
    each point. Scalars out are piecewise invariant, vectors out piecewise equivariant (rotation only: they
    are displacements, not positions).

    **Cloud context** (``context=True``). Inside its own frame a part does not see the rest of the cloud, so
    parts of similar shape look alike. Each part gets an invariant descriptor: its pooled features averaged
    over its frames with the frame weights, :math:`\bar p_j = \sum_g \omega_g [\mathrm{mean}_{jg},
    \mathrm{max}_{jg}]`, and its shape, :math:`\sqrt{\lambda_{j}}` (PCA eigenvalues) and the share of the
    cloud's points it holds. The cloud's context is the max and the point-share-weighted mean of the
    descriptors over the parts of the cloud, mapped by a linear layer to ``channels[-1]`` and given to every
    row's second MLP with the row's own part shape. Every term is invariant under the motion of each part
    and symmetric in the parts, so the block stays exactly piecewise equivariant.

    Args:
        in_scalars: invariant scalar channels :math:`s_i`.
        in_vectors: equivariant 3-vectors :math:`v_i` per point.
        out_scalars, out_vectors: output widths.
        channels: widths of the shared point MLP (its last width is the pooled feature).
        irreps_in: e3nn irreps of typed input features ``x`` (rotated into every frame), or ``None``.
        context: add the cloud context (above) to the second MLP.

    Shapes:
        ``pos`` ``(N, 3)``; ``scalars`` ``(N, in_scalars)``; ``vectors`` ``(N, in_vectors, 3)``; ``x``
        ``(N, irreps_in.dim)`` -> ``(N, out_scalars)``, ``(N, out_vectors, 3)``.
    """

    def __init__(self, in_scalars: int, in_vectors: int, out_scalars: int, out_vectors: int,
                 channels: Sequence[int] = (64, 128), irreps_in=None, context: bool = False) -> None:
        super().__init__()
        self.in_scalars, self.in_vectors = int(in_scalars), int(in_vectors)
        self.out_scalars, self.out_vectors = int(out_scalars), int(out_vectors)
        self.channels = check_widths(channels, "channels")
        self.irreps_in = irreps_in
        row_in = 3 + 3 * self.in_vectors + self.in_scalars + (irreps_in.dim if irreps_in is not None else 0)
        c = self.channels[-1]
        self.point_mlp = nn.Sequential(*mlp_layers([row_in, *self.channels]))
        if not isinstance(context, bool):
            raise TypeError(f"context must be a bool, got {type(context).__name__} {context!r}")
        self.context = context
        #: part shape invariants: sqrt of the 3 PCA eigenvalues and the share of the cloud's points
        self.context_lin = nn.Linear(2 * (2 * c + 4), c) if context else None
        extra = c + 4 if context else 0
        self.out_mlp = nn.Sequential(*mlp_layers([3 * c + extra, c]),
                                     nn.Linear(c, self.out_scalars + 3 * self.out_vectors))

    def forward(self, pos: Tensor, partition: Partition, frames: Frames, scalars: Tensor | None = None,
                vectors: Tensor | None = None, x: Tensor | None = None) -> tuple[Tensor, Tensor]:
        N, dt = pos.shape[0], pos.dtype
        part_of, frame_of, w_frame = frame_pairs(frames)  # (K,) each, every frame with positive weight
        K = part_of.shape[0]
        counts = torch.bincount(partition.part, minlength=partition.num_parts)
        pair, row_k, _ = repeat_segments(counts, part_of)  # rows: pair `pair` in (part, frame) `row_k`
        pt = partition.point[pair]
        R = frames.rotations[part_of, frame_of]  # (K, 3, 3) float64, detached
        rel = pos.to(torch.float64)[pt] - frames.translation[part_of][row_k]
        feats = [torch.einsum("ri,rij->rj", rel, R[row_k]).to(dt)]  # R^T (x - t)
        Rd = R.to(dt)[row_k]  # (rows, 3, 3)
        if self.in_vectors:
            feats.append(torch.einsum("rvi,rij->rvj", vectors[pt], Rd).reshape(pt.shape[0], -1))  # R^T v
        if self.in_scalars:
            feats.append(scalars[pt])
        if self.irreps_in is not None:
            feats.append(rotate_irreps(x[pt], self.irreps_in, R.mT, row_k))
        f = self.point_mlp(torch.cat(feats, dim=1))  # (rows, c), >= 0 (ReLU)
        w = partition.weight.to(dt)[pair]
        wsum = aggregate(w, row_k, K).clamp_min(torch.finfo(dt).tiny)
        wf = w[:, None] * f
        mean = aggregate(wf, row_k, K) / wsum[:, None]
        mx = aggregate(wf, row_k, K, "max")
        cols = [f, mean[row_k], mx[row_k]]
        if self.context:
            cols += self._context(partition, frames, part_of, w_frame, mean, mx, row_k)
        g = self.out_mlp(torch.cat(cols, dim=1))
        a, b = self.out_scalars, self.out_vectors
        wr = (w_frame.to(dt)[row_k] * w)[:, None]
        s_out = aggregate(g[:, :a] * wr, pt, N)
        v_rows = torch.einsum("rij,rvj->rvi", Rd, g[:, a:].reshape(-1, b, 3))  # R v
        v_out = aggregate(v_rows * wr[:, :, None], pt, N)
        return s_out, v_out

    def _context(self, partition: Partition, frames: Frames, part_of: Tensor, w_frame: Tensor, mean: Tensor,
                 mx: Tensor, row_k: Tensor) -> list[Tensor]:
        """The cloud context and the part shape of every row (see the class docstring)."""
        dt, P = mean.dtype, partition.num_parts
        pb = partition.part_batch
        B = int(pb.max()) + 1 if pb.numel() else 0
        wk = w_frame.to(dt)[:, None]
        desc = aggregate(wk * torch.cat([mean, mx], dim=1), part_of, P)  # (P, 2c): frame average, invariant
        mass = aggregate(partition.weight.to(dt), partition.part, P)  # (P,) pair weight of each part
        share = mass / aggregate(mass, pb, B).clamp_min(torch.finfo(dt).tiny)[pb]
        shape = torch.cat([frames.eigenvalues.to(dt).clamp_min(0).sqrt(), share[:, None]], dim=1)  # (P, 4)
        d = torch.cat([desc, shape], dim=1)
        cloud = torch.cat([aggregate(d, pb, B, "max"), aggregate(share[:, None] * d, pb, B)], dim=1)
        ctx = self.context_lin(cloud)  # (B, c)
        return [ctx[pb[part_of]][row_k], shape[part_of][row_k]]

    def extra_repr(self) -> str:
        return (f"scalars={self.in_scalars}->{self.out_scalars}, vectors={self.in_vectors}->{self.out_vectors}, "
                f"channels={self.channels}" + (", context=True" if self.context else ""))
