r"""Streaming neural-collapse statistics: one pass over batches, mergeable across processes.

:class:`CollapseTracker` keeps the :class:`~equinets.collapse.metrics.CollapseStats` of everything it has
seen (``K d`` class means, the ``d x d`` pooled within-class scatter, ``2K`` counts and sums of squares,
all float64) and hands them to the same :func:`~equinets.collapse.metrics.metrics_from_stats` that
:func:`~equinets.collapse.nc_metrics` uses, so the two agree to round-off: for **float64** input to 1e-8
relative and better (typically 1e-12). **float32** input keeps float32 for the centred ``d x d`` product
(the speed), while :func:`~equinets.collapse.nc_metrics` upcasts first, so the two differ by float32 round-off:
measured 2.6e-9 to 1.1e-7 relative on NC1, its quotient and CDNV over 18 cases (K = 7-10, d = 12-64, 900-6000
rows, near collapse included; ``tests/collapse/test_tracker.py``); pass float64 batches for 1e-8 agreement.

**Per batch** (:func:`~equinets.collapse.metrics.accumulate_`): rows are centred on the running class
means (float32 stays float32 for the ``d x d`` product, TF32 off on CUDA), the batch's exact class means
and scatter follow from the centred sums, and Chan's pairwise update merges them in float64. Centring on
running means is what keeps float32 input exact near collapse (means ~100, spread 1e-2: NC1 within 1e-5
of float64, where the one-pass :math:`E[hh^\top] - \mu\mu^\top` in float32 is off by orders of magnitude).

**Across processes** (:meth:`CollapseTracker.all_reduce`): counts and class sums are all-reduced first,
giving the global means; each rank then moves its scatter to the global means (parallel-axis theorem,
:math:`S + \sum_k n_k (\mu_{r,k} - \mu_k)(\mu_{r,k} - \mu_k)^\top`) and those are summed: exact, and equal to
one process over all the data.

**NC4** compares each sample's classifier decision with its nearest class mean, so it needs the *final*
means: it is a second pass, :meth:`CollapseTracker.update_nc4`, over the same features after the first
pass (and after :meth:`all_reduce` under DDP; call :meth:`all_reduce` again after the second pass to sum the
mismatch counts). Without it, :meth:`compute` leaves ``nc4`` out. The second pass freezes the statistics:
``update`` afterwards is an error.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_choice, check_int
from .metrics import (
    GLOBAL_MEANS,
    CollapseStats,
    _check_classifier,
    _present,
    accumulate_,
    check_features,
    chunk_rows,
    metrics_from_stats,
    ncc_mismatch,
)

__all__ = ["CollapseTracker"]


class CollapseTracker:
    """Neural-collapse metrics of a stream of labelled feature batches (DDP-mergeable).

    Memory: the state is ``K d + d^2 + 2K`` float64 numbers, plus one chunk of centred rows (a reused
    workspace of at most 2^20 elements: :func:`~equinets.collapse.metrics.accumulate_` centres and multiplies
    a batch chunk by chunk) and, per update, short-lived temporaries: about ten ``K x d`` float64 tensors and,
    for float32 input, the ``d x d`` float32 product of each chunk (no ``d x d`` float64 temporary: the
    scatter is updated in place). At ``K = 100``, ``d = 512``, batches of 8192 float32 rows: 2.39 MB of state
    + a 4 MB workspace; the measured peak extra RSS of a 1,000,000-row pass is 12.7 MB, within the
    ``K d + d^2`` float64 plus one batch (2.39 + 16 = 18.4 MB) of issue #10, glibc allocator slack included
    (``kernels/results/collapse_tracker.csv``; the process's first float64 GEMM/SVD adds ~5 MB of library
    buffers once).

    Args:
        num_classes: ``K`` (>= 2).
        dim: feature dimension ``d``.
        device: where the accumulators live (default CPU); batches are moved there.
        global_mean: ``"class"`` or ``"sample"`` (see :func:`~equinets.collapse.nc_metrics`).

    Example:
        >>> from equinets.collapse import nc_metrics
        >>> g = torch.Generator().manual_seed(0)
        >>> h, y = torch.randn(100, 8, generator=g, dtype=torch.float64), torch.arange(100) % 4
        >>> tr = CollapseTracker(4, 8)
        >>> for i in range(0, 100, 32):
        ...     tr.update(h[i:i + 32], y[i:i + 32])
        >>> abs(tr.compute()["nc1"] - nc_metrics(h, y)["nc1"]) < 1e-12
        True
    """

    def __init__(self, num_classes: int, dim: int, *, device=None, global_mean: str = "class") -> None:
        self.num_classes = check_int(num_classes, "num_classes", 2)
        self.dim = check_int(dim, "dim", 1)
        self.global_mean = check_choice(global_mean, "global_mean", GLOBAL_MEANS)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.reset()

    def reset(self) -> None:
        """Forget everything seen."""
        self.stats = CollapseStats.zeros(self.num_classes, self.dim, self.device)
        self._mismatch = torch.zeros(2, dtype=torch.float64, device=self.device)  # (mismatched, seen)
        self._nc4_key: tuple | None = None
        self._workspace: Tensor | None = None  # the centred rows of one chunk, reused
        self._reduced = False
        self._nc4_reduced = False

    @property
    def num_samples(self) -> int:
        """Samples seen by the first pass."""
        return int(self.stats.counts.sum())

    def _check_batch(self, features, labels) -> tuple[Tensor, Tensor]:
        X, y, _ = check_features(features, labels, self.num_classes)
        if X.shape[1] != self.dim:
            raise ValueError(f"features must have dim = {self.dim} columns (the tracker's), got {X.shape[1]}")
        return X.detach().to(self.device), y.to(self.device)

    @torch.no_grad()
    def update(self, features, labels) -> None:
        """Add a batch: ``features`` ``(B, d)`` (any float dtype; half types are upcast to float32, float32 and
        float64 keep their precision for the scatter product), ``labels`` ``(B,)`` in ``[0, K)``."""
        if self._nc4_key is not None or self._reduced:
            raise RuntimeError("CollapseTracker.update after update_nc4 or all_reduce: the first pass is closed "
                               "(call reset() to start again)")
        X, y = self._check_batch(features, labels)
        seen = self.stats.counts > 0
        dtype = X.dtype if X.dtype in (torch.float32, torch.float64) else torch.float32
        centre = self.stats.means  # read before accumulate_ updates the means in place
        if not bool(seen.all()):  # classes new in this batch: centre on their batch means (no batch-sized temporary)
            centre = torch.where(seen[:, None], centre, torch.zeros_like(centre))
            sums = torch.zeros(self.num_classes, self.dim, dtype=dtype, device=self.device).index_add_(0, y, X.to(dtype))
            n = torch.bincount(y, minlength=self.num_classes).clamp_min(1).to(torch.float64)
            centre = torch.where(seen[:, None], centre, sums.to(torch.float64) / n[:, None])
        need = min(X.shape[0], chunk_rows(self.dim)) * self.dim
        if self._workspace is None or self._workspace.dtype != dtype or self._workspace.numel() < need:
            self._workspace = torch.empty(need, dtype=dtype, device=self.device)
        accumulate_(self.stats, X, y, centre, self._workspace)

    def merge(self, other: CollapseTracker) -> CollapseTracker:
        """Add the first-pass statistics (and NC4 counts) of another tracker of the same shape, in place."""
        if not isinstance(other, CollapseTracker):
            raise TypeError(f"other must be a CollapseTracker, got {type(other).__name__}")
        if (other.num_classes, other.dim) != (self.num_classes, self.dim):
            raise ValueError(f"other must track K = {self.num_classes} classes of dim {self.dim}, got "
                             f"K = {other.num_classes}, dim {other.dim}")
        if self._nc4_key is not None or other._nc4_key is not None:
            if self._nc4_key is None or other._nc4_key is None:
                raise RuntimeError("merge: one tracker has an NC4 pass and the other not")
            self._mismatch += other._mismatch.to(self.device)
            return self
        self.stats.merge_(CollapseStats(*(t.to(self.device) for t in (other.stats.counts, other.stats.means,
                                                                           other.stats.scatter, other.stats.sq))))
        return self

    @torch.no_grad()
    def all_reduce(self, group=None) -> None:
        """Combine the statistics of every rank of ``group`` (default the world) exactly; a no-op without
        ``torch.distributed``. After the first pass it merges the statistics; after the NC4 pass it sums the
        mismatch counts. Every rank ends with the same numbers."""
        import torch.distributed as dist

        from ..train.metrics import all_reduce_

        if not (dist.is_available() and dist.is_initialized()):
            return
        if self._nc4_key is not None:
            if not self._nc4_reduced:
                all_reduce_(self._mismatch, group=group)
                self._nc4_reduced = True
            return
        if self._reduced:
            return
        s = self.stats
        counts = s.counts.clone()
        sums = s.means * s.counts[:, None]
        all_reduce_(counts, sums, group=group)
        means = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], torch.zeros_like(sums))
        delta = s.means - means
        scatter = s.scatter.addmm_((delta * s.counts[:, None]).T, delta)  # in place: no d x d temporary
        sq = s.sq + s.counts * (delta * delta).sum(1)
        all_reduce_(scatter, sq, group=group)
        self.stats = CollapseStats(counts, means, scatter, sq)
        self._reduced = True

    @torch.no_grad()
    def update_nc4(self, features, labels, weight, bias=None) -> None:
        """Second pass for NC4: count the samples of this batch whose classifier decision
        ``argmax(W h + b)`` differs from the nearest final class mean. Feed the same features as the first
        pass (under DDP: after :meth:`all_reduce`). ``labels`` are checked against the first pass's range only."""
        X, _ = self._check_batch(features, labels)
        W, b = _check_classifier(weight, bias, self.num_classes, self.dim)
        key = (W.cpu(), None if b is None else b.cpu())
        if self._nc4_key is None:
            self._nc4_key = key
        elif not (torch.equal(key[0], self._nc4_key[0]) and ((key[1] is None and self._nc4_key[1] is None) or (
                key[1] is not None and self._nc4_key[1] is not None and torch.equal(key[1], self._nc4_key[1])))):
            raise ValueError("weight/bias of update_nc4 changed between batches of the NC4 pass")
        present = _present(self.stats, "drop")
        wrong = ncc_mismatch(X, self.stats.means, W, b, present)
        self._mismatch += torch.tensor([wrong, X.shape[0]], dtype=torch.float64, device=self.device)

    def finalize_means(self) -> Tensor:
        """The final class means ``(K, d)`` float64 (what the NC4 pass compares against)."""
        return self.stats.means.clone()

    def compute(self, weight=None, bias=None, *, absent: str = "error") -> dict[str, float]:
        """The metrics of :func:`~equinets.collapse.nc_metrics` over everything seen (``nc4`` only after an
        :meth:`update_nc4` pass with the same ``weight`` and ``bias`` over all samples)."""
        if self.num_samples == 0:
            raise ValueError("CollapseTracker.compute: no sample seen yet (call update first)")
        mismatch = None
        if weight is not None and self._nc4_key is not None:
            W, b = _check_classifier(weight, bias, self.num_classes, self.dim)
            same_b = (b is None and self._nc4_key[1] is None) or (
                b is not None and self._nc4_key[1] is not None and torch.equal(b.cpu(), self._nc4_key[1]))
            if not (torch.equal(W.cpu(), self._nc4_key[0]) and same_b):
                raise ValueError("compute: weight/bias differ from those of the update_nc4 pass")
            wrong, seen = (int(v) for v in self._mismatch.tolist())
            if seen != self.num_samples:
                raise ValueError(f"compute: the NC4 pass saw {seen} samples, the first pass {self.num_samples}; "
                                 f"feed both passes the same features")
            mismatch = (wrong, seen)
        return metrics_from_stats(self.stats, weight, bias, global_mean=self.global_mean, mismatch=mismatch,
                                  absent=absent)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_classes={self.num_classes}, dim={self.dim}, "
                f"global_mean={self.global_mean!r}, samples={self.num_samples})")
