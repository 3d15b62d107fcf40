r"""Partition prediction for APEN: candidate part centres, a Gaussian-mixture EM with merging, assignments.

From Atzmon, Huang, Williams, Litany, "Approximately Piecewise E(3) Equivariant Point Networks" (ICLR 2024),
Sec. 4: every point votes for the centre of its part (:math:`y_i = x_i + d_i`, the votes are equivariant
per part), an isotropic Gaussian mixture is fitted to the votes with a fixed variance :math:`\sigma_l^2`
per layer (the variance schedule grows from layer to layer, so partitions go from fine to coarse), and
components whose means come closer than ``merge_radius`` :math:`\sigma_l` are merged (the paper's KL
repulsion term, replaced in its code by merging). The assignment distribution is

.. math::
    Q_{ij} = \frac{\pi_j\, \mathcal{N}(y_i; \mu_j, \sigma^2 I)}{\sum_{j'} \pi_{j'}\, \mathcal{N}(y_i; \mu_{j'}, \sigma^2 I)}
    \qquad \text{(Eq. 10)}.

**Gradients.** The paper differentiates the EM fixed point implicitly (a Fisher-information step); here the
EM iterations are *unrolled* (every E- and M-step is written in differentiable torch ops), so
:math:`\partial Q / \partial y` and :math:`\partial \mu / \partial y` are the exact derivatives of the
computed ``num_iters``-step map, checked against finite differences in float64 (``tests/piecewise``). At
convergence the two agree (the implicit derivative is the limit of the unrolled one); unrolling needs no
matrix inverse and no per-sample loop. Merging is differentiable in the means (a :math:`\pi`-weighted mean),
discrete in which components merge.

**Order independence.** Candidates are chosen by farthest-point sampling started at the point farthest
from the cloud's centroid (not at the first stored point), merged components are the connected components
of the "closer than the radius" graph (not a greedy pass over an ordered list), and every reduction is a
sum over points, so permuting the points permutes the assignments and leaves the partition unchanged
(ties between exactly equal distances aside).

**Cost.** The E-step holds one ``(N, K)`` table of log-responsibilities for ``K`` candidate slots per
cloud (a few MB at N = 16384, K = 64); the per-part network of :mod:`equinets.piecewise.blocks` never sees
it: it runs on the sparse list of (point, part) pairs of :class:`Partition`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import check_batch, check_choice, check_finite, check_int, check_real
from ..nn.neighbors import fps

__all__ = ["Partition", "Mixture", "ASSIGNMENTS", "fps_candidates", "init_mixture", "gmm_em", "merge_components",
           "fit_mixture", "mean_per_component", "assign", "partition_from_labels", "check_labels_partition"]

#: how points are assigned to parts: the argmax of Q (one pair per point), or its largest entries
ASSIGNMENTS = ("hard", "soft")


class Partition(NamedTuple):
    """A partition of a batch of clouds as a sparse list of (point, part) pairs.

    Attributes:
        point: ``(M,)`` long point of each pair; pairs are sorted by part (each part's pairs contiguous).
        part: ``(M,)`` long part of each pair, in ``[0, num_parts)`` (parts numbered over the whole batch,
            in order of cloud, then of candidate slot or label).
        weight: ``(M,)`` float weight of each pair; the weights of one point sum to 1 (hard: one pair of
            weight 1 per point; in training it carries the straight-through gradient of :math:`Q`).
        part_batch: ``(P,)`` long cloud of each part.
        label: ``(N,)`` long hard part of each point (the argmax), in ``[0, num_parts)``.
        num_parts: ``P``, parts with at least one pair (empty parts are never listed).
    """

    point: Tensor
    part: Tensor
    weight: Tensor
    part_batch: Tensor
    label: Tensor
    num_parts: int


class Mixture(NamedTuple):
    """An isotropic Gaussian mixture with ``K`` component slots per cloud (dead slots are ignored).

    Attributes:
        means: ``(B, K, 3)`` component means :math:`\\mu_j`.
        pi: ``(B, K)`` mixture weights :math:`\\pi_j` (0 for dead slots; each row sums to 1).
        alive: ``(B, K)`` bool, the slot holds a component.
        log_resp: ``(N, K)`` log-responsibilities :math:`\\log Q_{ij}` of every point for its cloud's slots
            (``-inf`` on dead slots), from an E-step with the final means; ``None`` before any E-step.
        variance: :math:`\\sigma^2` of every component.
    """

    means: Tensor
    pi: Tensor
    alive: Tensor
    log_resp: Tensor | None
    variance: float


def _check_points(y, batch, name: str) -> tuple[Tensor, Tensor, int]:
    if not isinstance(y, Tensor) or not y.is_floating_point() or y.dim() != 2 or y.shape[1] != 3:
        got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"{name} must be a floating-point tensor of shape (N, 3), got {got}")
    if y.shape[0] == 0:
        raise ValueError(f"{name} is empty: got shape (0, 3)")
    check_finite(y, name)
    if batch is None:
        batch = torch.zeros(y.shape[0], dtype=torch.long, device=y.device)
    batch = check_batch(batch, y.shape[0], of=name)
    B = int(batch[-1]) + 1
    counts = torch.bincount(batch, minlength=B)
    if bool((counts == 0).any()):
        empty = int((counts == 0).nonzero()[0])
        raise ValueError(f"cloud {empty} of the batch is empty (no point has batch == {empty})")
    return y, batch, B


def fps_candidates(pos: Tensor, batch: Tensor | None, num_candidates: int) -> tuple[Tensor, Tensor]:
    r"""``num_candidates`` farthest-point-sampled points per cloud, started at the point farthest from the centroid.

    The start rule makes the selection independent of the storage order of the points (the default start,
    the first stored point, is not). A cloud with fewer points than ``num_candidates`` gives all of them.

    Returns:
        ``(index, valid)``: ``index`` ``(B, K)`` long point indices (into ``pos``), ``valid`` ``(B, K)`` bool
        (False in the slots a small cloud could not fill; their index repeats the cloud's first pick).

    Example:
        >>> pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0], [9.0, 0, 0]])
        >>> idx, valid = fps_candidates(pos, None, 2)
        >>> idx.tolist(), valid.tolist()
        ([[3, 0]], [[True, True]])
    """
    K = check_int(num_candidates, "num_candidates", 1)
    pos, batch, B = _check_points(pos, batch, "pos")
    pos = pos.detach()
    n = pos.shape[0]
    counts = torch.bincount(batch, minlength=B)
    ptr = torch.cumsum(counts, 0) - counts
    centroid = pos.new_zeros(B, 3).index_add_(0, batch, pos) / counts[:, None].to(pos.dtype)
    d = (pos - centroid[batch]).pow(2).sum(1)
    # the farthest point of each cloud (lowest index on ties) goes first in its cloud
    dmax = torch.full((B,), -math.inf, dtype=d.dtype, device=d.device).scatter_reduce(0, batch, d, "amax")
    is_max = d == dmax[batch]
    ar = torch.arange(n, device=pos.device)
    start = torch.full((B,), n, dtype=torch.long, device=pos.device).scatter_reduce(
        0, batch, torch.where(is_max, ar, torch.full_like(ar, n)), "amin")
    perm = ar.clone()
    perm[ptr] = start
    perm[start] = ptr  # swap the start into the first slot of its cloud
    ratio = min(1.0, K / float(counts.min()))
    picked = perm[fps(pos[perm], batch, ratio=ratio, random_start=False, batch_size=B)]
    m = torch.bincount(batch[picked], minlength=B)  # picks per cloud (grouped by cloud, in sampling order)
    first = torch.cumsum(m, 0) - m
    slot = torch.arange(K, device=pos.device)
    valid = slot[None, :] < torch.minimum(counts, torch.full_like(counts, K))[:, None]
    index = picked[(first[:, None] + torch.where(valid, slot[None, :], torch.zeros_like(slot)[None, :]))]
    return index, valid


def init_mixture(y: Tensor, batch: Tensor | None, num_candidates: int, variance: float) -> Mixture:
    """A mixture of ``num_candidates`` equal-weight components at farthest-point samples of ``y``.

    Example:
        >>> mix = init_mixture(torch.randn(30, 3, dtype=torch.float64), None, 4, 0.1)
        >>> mix.means.shape, mix.pi.sum().item(), mix.log_resp is None
        (torch.Size([1, 4, 3]), 1.0, True)
    """
    variance = check_real(variance, "variance")
    if not variance > 0:
        raise ValueError(f"variance must be > 0, got {variance}")
    y, batch, B = _check_points(y, batch, "y")
    idx, valid = fps_candidates(y, batch, num_candidates)
    pi = valid.to(y.dtype)
    return Mixture(y[idx], pi / pi.sum(1, keepdim=True), valid, None, variance)


class _Dense(NamedTuple):
    """Points of a flat batch in a padded ``(B, n_max)`` layout (a view when all clouds have the same size)."""

    row: Tensor  # (N,) position of each point inside its cloud
    mask: Tensor | None  # (B, n_max) bool, None when no padding
    B: int
    n: int


def _dense_layout(batch: Tensor, B: int) -> _Dense:
    N = batch.shape[0]
    counts = torch.bincount(batch, minlength=B)
    ptr = torch.cumsum(counts, 0) - counts
    row = torch.arange(N, device=batch.device) - ptr[batch]
    n = int(counts.max())
    mask = None if n * B == N else torch.arange(n, device=batch.device)[None, :] < counts[:, None]
    return _Dense(row, mask, B, n)


def _to_dense(t: Tensor, batch: Tensor, lay: _Dense) -> Tensor:
    if lay.mask is None:
        return t.reshape(lay.B, lay.n, *t.shape[1:])
    out = t.new_zeros(lay.B, lay.n, *t.shape[1:])
    return out.index_put((batch, lay.row), t)


#: log-responsibilities are kept above this many nats below each point's best component: Q >= e^-80 ~ 1.8e-35
#: (a change far below rounding) instead of values whose exponentials are subnormal floats, which x86 CPUs
#: compute 10-100x slower (they made the E-step the largest cost of an APEN forward at 64 candidates)
_LOG_FLOOR = 80.0


def _log_resp_dense(yd: Tensor, means: Tensor, pi: Tensor, alive: Tensor, variance: float) -> Tensor:
    """``(B, n, K)`` log-responsibilities; squared distances by one ``bmm`` on coordinates centred per cloud."""
    d2 = (yd.pow(2).sum(-1)[:, :, None] + means.pow(2).sum(-1)[:, None, :]
          - 2.0 * torch.bmm(yd, means.transpose(1, 2))).clamp_min(0.0)
    logit = torch.log(pi.clamp_min(torch.finfo(pi.dtype).tiny))[:, None, :] - d2 / (2.0 * variance)
    logit = logit.masked_fill(~alive[:, None, :], -math.inf)
    top = logit.detach().amax(2, keepdim=True)
    logit = torch.maximum(logit, top - _LOG_FLOOR).masked_fill(~alive[:, None, :], -math.inf)
    return torch.log_softmax(logit, dim=2)


def gmm_em(y: Tensor, batch: Tensor | None, mixture: Mixture, num_iters: int = 10, *, variance: float | None = None,
           check: bool = True) -> Mixture:
    r"""EM for an isotropic Gaussian mixture of fixed variance :math:`\sigma^2`, unrolled and differentiable.

    E-step: :math:`\log Q_{ij} = \log\pi_j - \lVert y_i-\mu_j\rVert^2 / 2\sigma^2 - \log Z_i` (Eq. 10);
    M-step: :math:`N_j = \sum_i Q_{ij}`, :math:`\mu_j = \sum_i Q_{ij} y_i / N_j` (kept where
    :math:`N_j = 0`), :math:`\pi_j = N_j / n_b`. ``num_iters`` E/M pairs then a final E-step, so
    ``log_resp`` belongs to the returned means. Gradients flow to ``y`` and to the initial means. The clouds
    are padded to one ``(B, n_max, 3)`` tensor (a view for equal sizes) and centred on their mean vote (EM is
    translation-equivariant, so this only limits the cancellation of the ``bmm`` distances).

    Args:
        y: ``(N, 3)`` votes (or points).
        batch: ``(N,)`` sorted cloud ids or ``None``.
        mixture: initial :class:`Mixture` (``K`` slots per cloud).
        num_iters: EM iterations (``>= 0``).
        variance: :math:`\sigma^2`; default ``mixture.variance``.
        check: validate the inputs (off inside APEN, which validated them at entry).

    Example:
        >>> y = torch.cat([torch.randn(20, 3) * 0.05, torch.randn(20, 3) * 0.05 + 3.0]).double()
        >>> mix = gmm_em(y, None, init_mixture(y, None, 2, 0.01), 5)
        >>> mix.log_resp.exp().argmax(1).unique(return_counts=True)[1].tolist(), round(float(mix.pi.sum()), 12)
        ([20, 20], 1.0)
    """
    num_iters = check_int(num_iters, "num_iters", 0)
    var = mixture.variance if variance is None else check_real(variance, "variance")
    if not var > 0:
        raise ValueError(f"variance must be > 0, got {var}")
    if check:
        y, batch, B = _check_points(y, batch, "votes")
        if mixture.means.dim() != 3 or mixture.means.shape[0] != B or mixture.means.shape[2] != 3:
            raise ValueError(f"mixture.means must have shape (B, K, 3) with B = {B} clouds, got "
                             f"{tuple(mixture.means.shape)}")
        check_finite(mixture.means, "mixture.means")
    elif batch is None:
        batch = torch.zeros(y.shape[0], dtype=torch.long, device=y.device)
    B = mixture.means.shape[0]
    lay = _dense_layout(batch, B)
    counts = torch.bincount(batch, minlength=B).to(y.dtype)
    centre = (y.new_zeros(B, 3).index_add(0, batch, y.detach()) / counts[:, None])[:, None, :]
    yd = _to_dense(y, batch, lay) - centre  # (B, n, 3); padding rows are masked below
    means, pi, alive = mixture.means - centre, mixture.pi, mixture.alive
    for _ in range(num_iters):
        Q = _log_resp_dense(yd, means, pi, alive, var).exp()  # (B, n, K)
        if lay.mask is not None:
            Q = Q * lay.mask[:, :, None]
        Nk = Q.sum(1)  # (B, K)
        S = torch.bmm(Q.transpose(1, 2), yd)  # (B, K, 3)
        means = torch.where((Nk > 0)[:, :, None], S / Nk.clamp_min(torch.finfo(y.dtype).tiny)[:, :, None], means)
        pi = Nk / counts[:, None]
    lq = _log_resp_dense(yd, means, pi, alive, var)[batch, lay.row]  # (N, K)
    return Mixture(means + centre, pi, alive, lq, var)


def mean_per_component(y: Tensor, batch: Tensor, mixture: Mixture) -> Mixture:
    """The mixture with every alive component moved to the :math:`Q`-weighted mean of ``y`` (same slots,
    weights and variance; components without mass keep their mean; ``log_resp`` dropped). APEN uses it to carry
    the components of one layer over to the votes of the next.

    Example:
        >>> lq = torch.log(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        >>> mix = Mixture(torch.zeros(1, 2, 3), torch.tensor([[2 / 3, 1 / 3]]), torch.ones(1, 2, dtype=torch.bool), lq, 1.0)
        >>> y = torch.tensor([[1.0, 0, 0], [3.0, 0, 0], [7.0, 0, 0]])
        >>> mean_per_component(y, torch.zeros(3, dtype=torch.long), mix).means[0, :, 0].tolist()
        [2.0, 7.0]
    """
    if mixture.log_resp is None:
        raise ValueError("mixture.log_resp is None: run an E-step (gmm_em) first")
    B, K = mixture.pi.shape
    lay = _dense_layout(batch, B)
    Q = _to_dense(mixture.log_resp.exp(), batch, lay)  # (B, n, K), zero on padding
    Nk = Q.sum(1)
    S = torch.bmm(Q.transpose(1, 2), _to_dense(y, batch, lay))
    means = torch.where((Nk > 0)[:, :, None], S / Nk.clamp_min(torch.finfo(y.dtype).tiny)[:, :, None], mixture.means)
    return Mixture(means, mixture.pi, mixture.alive, None, mixture.variance)


def merge_components(mixture: Mixture, radius: float, *, min_weight: float = 0.0) -> Mixture:
    r"""Merge the components whose means lie within ``radius`` of each other (transitively), prune light ones.

    Two alive slots are linked when :math:`\lVert\mu_j - \mu_{j'}\rVert < r`; each connected component of
    that graph becomes one component in its lowest slot, with :math:`\pi = \sum \pi_j` and the
    :math:`\pi`-weighted mean of the means (plain mean when all its :math:`\pi` are 0). Then components with
    :math:`\pi \le` ``min_weight`` die (the heaviest of each cloud always survives) and :math:`\pi` is
    renormalised. Connected components do not depend on the order of the slots, unlike a greedy merge.
    ``log_resp`` is dropped (run an E-step, :func:`gmm_em` with ``num_iters=0``, to get it back).

    Example:
        >>> means = torch.tensor([[[0.0, 0, 0], [0.05, 0, 0], [0.1, 0, 0], [5.0, 0, 0]]])
        >>> mix = Mixture(means, torch.full((1, 4), 0.25), torch.ones(1, 4, dtype=torch.bool), None, 1.0)
        >>> out = merge_components(mix, 0.06)
        >>> out.alive.tolist(), out.pi.tolist(), out.means[0, 0].tolist()
        ([[True, False, False, True]], [[0.75, 0.0, 0.0, 0.25]], [0.05000000074505806, 0.0, 0.0])
    """
    radius = check_real(radius, "merge_radius", 0.0)
    min_weight = check_real(min_weight, "min_weight", 0.0)
    means, pi, alive = mixture.means, mixture.pi, mixture.alive
    B, K, _ = means.shape
    d = torch.cdist(means.detach(), means.detach())
    link = (d < radius) & alive[:, :, None] & alive[:, None, :]
    link = link | torch.eye(K, dtype=torch.bool, device=means.device)[None]
    reach = link
    for _ in range(max(1, math.ceil(math.log2(max(K, 2))))):  # transitive closure by repeated squaring
        reach = (reach.to(torch.float32) @ reach.to(torch.float32)) > 0
    slot = torch.arange(K, device=means.device)
    rep = torch.where(reach, slot[None, None, :], torch.full_like(slot, K)[None, None, :]).amin(2)  # (B, K)
    member = (rep[:, None, :] == slot[None, :, None]) & alive[:, None, :]  # member[b, r, j]: j merges into r
    mw = member.to(pi.dtype)
    pi_new = (mw * pi[:, None, :]).sum(2)  # (B, K)
    wsum = pi_new[:, :, None]
    cnt = mw.sum(2, keepdim=True)
    mean_w = (mw[..., None] * (pi[:, None, :, None] * means[:, None, :, :])).sum(2)
    mean_u = (mw[..., None] * means[:, None, :, :]).sum(2)
    means_new = torch.where(wsum > 0, mean_w / wsum.clamp_min(torch.finfo(pi.dtype).tiny),
                            mean_u / cnt.clamp_min(1))
    alive_new = alive & (rep == slot[None, :])
    means_new = torch.where(alive_new[:, :, None], means_new, means)
    heavy = torch.zeros_like(alive_new).scatter_(1, torch.where(alive_new, pi_new, -1.0).argmax(1, keepdim=True), True)
    alive_new = alive_new & ((pi_new > min_weight) | heavy)
    pi_new = torch.where(alive_new, pi_new, torch.zeros_like(pi_new))
    tot = pi_new.sum(1, keepdim=True)
    pi_new = torch.where(tot > 0, pi_new / tot.clamp_min(torch.finfo(pi.dtype).tiny),
                         alive_new.to(pi.dtype) / alive_new.sum(1, keepdim=True).clamp_min(1))
    return Mixture(means_new, pi_new, alive_new, None, mixture.variance)


def fit_mixture(y: Tensor, batch: Tensor, mixture: Mixture, variance: float, *, num_iters: int = 10,
                merge_radius: float = 1.0, min_weight: float = 1e-3, check: bool = True) -> Mixture:
    """One stage of APEN's fine-to-coarse partition: EM at ``variance``, merge within ``merge_radius * sigma``,
    prune, and a final EM pass (two iterations) on the merged mixture.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.cat([torch.randn(20, 3, generator=g) * 0.02 + c for c in (0.0, 1.0, 2.0)]).double()
        >>> mix = fit_mixture(y, torch.zeros(60, dtype=torch.long), init_mixture(y, None, 8, 0.01), 0.01)
        >>> int(mix.alive.sum()), sorted(mix.log_resp.argmax(1).unique(return_counts=True)[1].tolist())
        (3, [20, 20, 20])
    """
    mix = gmm_em(y, batch, mixture, num_iters, variance=variance, check=check)
    mix = merge_components(mix, merge_radius * math.sqrt(variance), min_weight=min_weight)
    return gmm_em(y, batch, mix, 2, variance=variance, check=False)


def _pairs(point: Tensor, part_slot: Tensor, weight: Tensor, batch: Tensor, K: int, N: int) -> Partition:
    """Compact the (cloud, slot) ids of ``part_slot`` to ``[0, P)`` and sort the pairs by part."""
    gid = batch[point] * K + part_slot
    uniq, part = torch.unique(gid, sorted=True, return_inverse=True)
    order = torch.sort(part, stable=True).indices
    point, part, weight = point[order], part[order], weight[order]
    w = weight.detach()  # the heaviest pair of each point (first in part order on ties) gives its label
    best = torch.full((N,), -1.0, dtype=w.dtype, device=w.device).scatter_reduce(0, point, w, "amax")
    first = w == best[point]
    sel = torch.full((N,), part.shape[0], dtype=torch.long, device=point.device).scatter_reduce(
        0, point, torch.where(first, torch.arange(part.shape[0], device=point.device),
                              torch.full_like(part, part.shape[0])), "amin")
    label = part[sel]
    return Partition(point, part, weight, uniq // K, label, int(uniq.shape[0]))


def assign(mixture: Mixture, batch: Tensor, mode: str = "hard", *, topk: int = 3, min_pair_weight: float = 1e-3,
           sample: bool = False, generator: torch.Generator | None = None) -> Partition:
    r"""The partition of a fitted mixture: hard (argmax of :math:`Q`) or soft (its largest entries).

    * ``"hard"``: one pair per point, part :math:`\arg\max_j Q_{ij}` (lowest slot on ties; deterministic).
      Its weight is 1 in value; when ``log_resp`` requires grad it is :math:`1 + Q_{ij} - \mathrm{sg}(Q_{ij})`
      (straight-through), so gradients reach the votes. ``sample=True`` draws the part from :math:`Q` instead
      (Gumbel-max, the official code's training behaviour); APEN uses it only in training, never in eval.
    * ``"soft"``: the ``topk`` largest :math:`Q_{ij}` of each point, those below ``min_pair_weight`` dropped
      (the largest is always kept), renormalised to sum to 1 (differentiable). Equivariance is then
      approximate, with an error that grows with the assignment uncertainty :math:`\delta(Q)`.

    Example:
        >>> lq = torch.log(torch.tensor([[0.7, 0.3, 0.0], [0.1, 0.2, 0.7]]))
        >>> mix = Mixture(torch.zeros(1, 3, 3), torch.ones(1, 3) / 3, torch.ones(1, 3, dtype=torch.bool), lq, 1.0)
        >>> p = assign(mix, torch.zeros(2, dtype=torch.long))
        >>> p.label.tolist(), p.num_parts, p.weight.tolist()
        ([0, 1], 2, [1.0, 1.0])
        >>> p = assign(mix, torch.zeros(2, dtype=torch.long), "soft", topk=2)
        >>> p.point.tolist(), p.part.tolist(), [round(w, 4) for w in p.weight.tolist()]
        ([0, 0, 1, 1], [0, 1, 1, 2], [0.7, 0.3, 0.2222, 0.7778])
    """
    check_choice(mode, "assignment", ASSIGNMENTS)
    lq = mixture.log_resp
    if lq is None:
        raise ValueError("mixture.log_resp is None: run an E-step (gmm_em) before assigning points to parts")
    check_finite(lq.masked_fill(torch.isneginf(lq), 0.0), "log_resp")
    N, K = lq.shape
    dev = lq.device
    if mode == "hard":
        if sample:
            u = torch.rand(lq.shape, dtype=lq.dtype, device=dev, generator=generator).clamp(1e-20, 1.0 - 1e-7)
            slot = (lq.detach() - torch.log(-torch.log(u))).argmax(1)
        else:
            slot = lq.detach().argmax(1)
        point = torch.arange(N, device=dev)
        q = lq.gather(1, slot[:, None]).squeeze(1).exp()
        weight = 1.0 + (q - q.detach()) if q.requires_grad else torch.ones_like(q)
        return _pairs(point, slot, weight, batch, K, N)
    topk = min(check_int(topk, "topk", 1), K)
    min_pair_weight = check_real(min_pair_weight, "min_pair_weight", 0.0)
    q, slot = lq.exp().topk(topk, dim=1)  # (N, topk), sorted descending
    keep = (q.detach() >= min_pair_weight) & torch.isfinite(lq.gather(1, slot))
    keep[:, 0] = True
    q = torch.where(keep, q, torch.zeros_like(q))
    q = q / q.sum(1, keepdim=True)
    point = torch.arange(N, device=dev)[:, None].expand(N, topk)
    return _pairs(point[keep], slot[keep], q[keep], batch, K, N)


def check_labels_partition(partition, n: int, num_parts: int) -> Tensor:
    """A user-given partition: ``(N,)`` integer part ids in ``[0, num_parts)``, one per point; returned as long.

    >>> check_labels_partition(torch.tensor([0, 1, 1]), 3, 2).tolist()
    [0, 1, 1]
    >>> check_labels_partition(torch.tensor([0, 2]), 2, 2)
    Traceback (most recent call last):
    ...
    ValueError: partition must hold part ids in [0, 2) (num_parts), got values in [0, 2]
    """
    if not isinstance(partition, Tensor):
        raise TypeError(f"partition must be a torch.Tensor of per-point part ids (N,), got {type(partition).__name__}")
    if partition.is_floating_point() or partition.is_complex() or partition.dtype == torch.bool:
        raise TypeError(f"partition must be an integer tensor of part ids, got dtype {partition.dtype}")
    if partition.dim() == 2 and partition.numel() == n:  # dense (B, N) ids
        partition = partition.reshape(-1)
    if partition.dim() != 1 or partition.shape[0] != n:
        raise ValueError(f"partition must have one part id per point, shape (N,) = ({n},), got {tuple(partition.shape)}")
    partition = partition.long()
    lo, hi = int(partition.min()), int(partition.max())
    if lo < 0 or hi >= num_parts:
        raise ValueError(f"partition must hold part ids in [0, {num_parts}) (num_parts), got values in [{lo}, {hi}]")
    return partition


def partition_from_labels(labels: Tensor, batch: Tensor, num_parts: int, *, dtype=torch.float32) -> Partition:
    """The hard :class:`Partition` of per-point part ids (ids are per cloud: part ``3`` of cloud 0 and part ``3``
    of cloud 1 are different parts). Ids no point uses are simply absent.

    Example:
        >>> p = partition_from_labels(torch.tensor([2, 0, 2, 1]), torch.tensor([0, 0, 0, 1]), 3)
        >>> p.point.tolist(), p.part.tolist(), p.part_batch.tolist(), p.label.tolist()
        ([1, 0, 2, 3], [0, 1, 1, 2], [0, 0, 1], [1, 0, 1, 2])
    """
    N = labels.shape[0]
    point = torch.arange(N, device=labels.device)
    return _pairs(point, labels, torch.ones(N, dtype=dtype, device=labels.device), batch, int(num_parts), N)
