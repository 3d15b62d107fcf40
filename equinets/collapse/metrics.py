r"""Neural-collapse metrics: one convention, exact in float64, from mergeable sufficient statistics.

Notation (Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase of deep
learning training", PNAS 2020): features :math:`h_i \in \mathbb{R}^d` with labels :math:`y_i \in
\{0..K-1\}`, :math:`n_k` samples of class :math:`k`, :math:`N = \sum_k n_k`, class means :math:`\mu_k`,
global mean :math:`\mu_G` (``global_mean="class"``: :math:`\frac1K\sum_k \mu_k`, the default;
``"sample"``: :math:`\frac1N \sum_i h_i`), centred means :math:`M_c \in \mathbb{R}^{K\times d}` with rows
:math:`\tilde\mu_k = \mu_k - \mu_G`, classifier :math:`W \in \mathbb{R}^{K \times d}`, bias :math:`b`.

.. math::
    \Sigma_W = \frac1N \sum_i (h_i - \mu_{y_i})(h_i - \mu_{y_i})^\top, \qquad
    \Sigma_B = \frac1K M_c^\top M_c .

Everything is computed from :class:`CollapseStats` (counts, class means, the pooled within-class scatter
:math:`N\Sigma_W` and the per-class sums :math:`\sum_{i: y_i = k}\|h_i - \mu_k\|^2`) by **one** function,
:func:`metrics_from_stats`; :func:`nc_metrics` builds the statistics of a whole array and
:class:`~equinets.collapse.CollapseTracker` accumulates the same statistics batch by batch (and across
ranks), so both give the same numbers. Only NC4 needs a second look at every sample (against the final
class means): :func:`ncc_mismatch`.

Conventions where the reference implementations disagree (see the research note): NC1 has the
:math:`1/K` (Papyan's Fig. 6; the Han/Papyan script omits it), the pseudo-inverse is the thin SVD of
:math:`M_c` with a relative cut-off (not ``svds`` with k = K-1, which fails for d <= K-1), the global mean
is the mean of class means, std has ddof = 1, NC3 is Papyan's squared form, NC4 includes the bias and is
the mismatch fraction on the data given, CDNV variances divide by :math:`n_k`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_choice, check_finite, check_int, check_labels

__all__ = ["nc_metrics", "metrics_from_stats", "collapse_stats", "CollapseStats", "ncc_mismatch", "centred_means",
           "GLOBAL_MEANS", "METRIC_KEYS", "WEIGHT_KEYS", "NC1_RTOL", "accumulate_"]

#: the two choices of the global mean
GLOBAL_MEANS = ("class", "sample")
#: relative cut-off of the singular values of the centred means in NC1's pseudo-inverse (beside the rank cap
#: min(K - 1, d)): directions with s_j <= NC1_RTOL * s_1 are treated as null (s_j^2 <= 1e-16 s_1^2 of Sigma_B)
NC1_RTOL = 1e-8
#: the keys of :func:`nc_metrics` without a classifier
METRIC_KEYS = ("nc1", "nc1_quotient", "cdnv", "equinorm_means", "equiangular_means", "max_angle_means",
               "etf_distance_means")
#: the extra keys when a classifier ``weight`` is given (``nc4`` needs the per-sample pass)
WEIGHT_KEYS = ("equinorm_weights", "equiangular_weights", "max_angle_weights", "etf_distance_weights", "nc3", "nc4")


@dataclass
class CollapseStats:
    """Sufficient statistics of labelled features, all float64 on one device.

    Attributes:
        counts: ``(K,)`` samples per class :math:`n_k` (integers stored as float64: exact below 2^53).
        means: ``(K, d)`` class means :math:`\\mu_k` (rows of absent classes are 0).
        scatter: ``(d, d)`` pooled within-class scatter :math:`\\sum_i (h_i - \\mu_{y_i})(h_i - \\mu_{y_i})^\\top`.
        sq: ``(K,)`` within-class sums of squares :math:`\\sum_{i: y_i = k} \\|h_i - \\mu_k\\|^2`.
    """

    counts: Tensor
    means: Tensor
    scatter: Tensor
    sq: Tensor

    @classmethod
    def zeros(cls, num_classes: int, dim: int, device=None) -> CollapseStats:
        kw = dict(dtype=torch.float64, device=device)
        return cls(torch.zeros(num_classes, **kw), torch.zeros(num_classes, dim, **kw), torch.zeros(dim, dim, **kw),
                   torch.zeros(num_classes, **kw))

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def merge_(self, other: CollapseStats) -> CollapseStats:
        r"""Add the samples of ``other`` in place (Chan, Golub & LeVeque's pairwise update, per class):

        .. math::
            n = n_a + n_b,\quad \delta_k = \mu_{b,k} - \mu_{a,k},\quad \mu_k = \mu_{a,k} + \tfrac{n_b}{n}\delta_k,
            \quad S = S_a + S_b + \sum_k \tfrac{n_{a,k} n_{b,k}}{n_k} \delta_k \delta_k^\top .

        The scatter is updated in place (``add_`` and one ``addmm_``): no ``d x d`` temporary.
        """
        n = self.counts + other.counts
        c = torch.where(n > 0, self.counts * other.counts / n.clamp_min(1), torch.zeros_like(n))
        delta = other.means - self.means
        frac = torch.where(n > 0, other.counts / n.clamp_min(1), torch.zeros_like(n))
        self.means.add_(delta * frac[:, None])
        with _full_precision():
            self.scatter.add_(other.scatter).addmm_((delta * c[:, None]).T, delta)
        self.sq.add_(other.sq).add_(c * (delta * delta).sum(1))
        self.counts.copy_(n)
        return self

    def clone(self) -> CollapseStats:
        return CollapseStats(self.counts.clone(), self.means.clone(), self.scatter.clone(), self.sq.clone())


@contextlib.contextmanager
def _full_precision():
    """No TF32 in float32 matrix products on CUDA (near collapse TF32's 10-bit mantissa ruins the scatter).

    PyTorch >= 2.9 has the ``fp32_precision`` API (``torch.backends.fp32_precision``,
    ``torch.backends.cuda.matmul.fp32_precision``); once a program has used it, reading the legacy
    ``allow_tf32`` flag raises. So the new attribute is used where it exists (saved, set to ``"ieee"``,
    restored), the legacy flag only on older versions.
    """
    if not torch.cuda.is_available():
        yield
        return
    matmul = torch.backends.cuda.matmul
    attr = "fp32_precision" if hasattr(matmul, "fp32_precision") else "allow_tf32"
    old = getattr(matmul, attr)
    setattr(matmul, attr, "ieee" if attr == "fp32_precision" else False)
    try:
        yield
    finally:
        setattr(matmul, attr, old)


def accumulate_(stats: CollapseStats, features: Tensor, labels: Tensor, centre: Tensor | None = None,
                workspace: Tensor | None = None) -> CollapseStats:
    r"""Add one batch (already validated) to ``stats`` in place, the products in the batch's precision.

    Rows are first centred on ``centre[y]`` (a rough per-class centre, e.g. the running means; default the
    batch's own class means computed in the input precision), so the product :math:`X_c^\top X_c` works on
    small numbers: near collapse (means ~100, spread 1e-2) a float32 product stays accurate. With the centred
    class sums :math:`s_k` and counts :math:`n_{b,k}` of the batch, its class means are
    :math:`\mu_{b,k} = c_k + m_k`, :math:`m_k = s_k / n_{b,k}`, and Chan's update (:meth:`CollapseStats.merge_`)
    becomes, with :math:`\delta_k = \mu_{b,k} - \mu_{a,k}` and :math:`c_k = n_{a,k} n_{b,k} / n_k`,

    .. math::
        S \mathrel{+}= X_c^\top X_c - \textstyle\sum_k m_k s_k^\top + \sum_k c_k \delta_k \delta_k^\top ,

    done as one ``add_`` of the GEMM (``addmm_`` straight into the float64 scatter for float64 input) and two
    rank-``K`` ``addmm_``: the only ``d x d`` temporary is the float32 product of float32 input.
    float32 (and float64) inputs keep their dtype for the products; half types are upcast to float32.
    The rows are centred and multiplied in chunks of at most ``CHUNK_ELEMENTS`` elements (2048 rows at
    ``d = 512``), each chunk's product added to the float64 scatter, so the centred copy never exceeds one
    chunk whatever the batch size. ``workspace``: an optional buffer of at least ``min(B, chunk rows) * d``
    elements of the batch's dtype for the centred rows (the tracker reuses one, so a pass allocates no
    row-sized tensor per batch).
    """
    X = features
    if X.dtype not in (torch.float32, torch.float64):
        X = X.float()
    y = labels.long()
    K, d = stats.num_classes, X.shape[1]
    B = X.shape[0]
    nb = torch.bincount(y, minlength=K).to(torch.float64)
    if centre is None:
        sums = torch.zeros(K, d, dtype=X.dtype, device=X.device).index_add_(0, y, X)
        centre = sums / nb.clamp_min(1).to(X.dtype)[:, None]
    c = centre.to(X.dtype)
    rows_per_chunk = chunk_rows(d)
    S = stats.scatter
    s_x = torch.zeros(K, d, dtype=X.dtype, device=X.device)  # centred class sums, in the input precision
    sq_b = torch.zeros(K, dtype=torch.float64, device=X.device)
    with _full_precision():
        for a in range(0, B, rows_per_chunk):
            Xa, ya = X[a:a + rows_per_chunk], y[a:a + rows_per_chunk]
            if workspace is not None and workspace.dtype == X.dtype and workspace.numel() >= Xa.numel():
                Xc = workspace.reshape(-1)[:Xa.numel()].view(Xa.shape)
                torch.index_select(c, 0, ya, out=Xc)
            else:
                Xc = c[ya]
            torch.sub(Xa, Xc, out=Xc)  # X - c[y], in place
            s_x.index_add_(0, ya, Xc)
            sq_b.index_add_(0, ya, torch.linalg.vector_norm(Xc, dim=1).to(torch.float64).square())
            if X.dtype == torch.float64:
                S.addmm_(Xc.T, Xc)
            else:
                S.add_(Xc.T @ Xc)
    s = s_x.to(torch.float64)
    m = s * torch.where(nb > 0, 1.0 / nb.clamp_min(1), torch.zeros_like(nb))[:, None]  # mu_b - c
    sq_b.sub_((s * m).sum(1))
    n = stats.counts + nb
    ck = torch.where(n > 0, stats.counts * nb / n.clamp_min(1), torch.zeros_like(n))
    frac = torch.where(n > 0, nb / n.clamp_min(1), torch.zeros_like(n))
    with _full_precision():
        S.addmm_(m.T, s, alpha=-1.0)  # - sum_k s_k s_k^T / n_bk: the batch's scatter about its own means
        delta = m.add_(c.to(torch.float64)).sub_(stats.means)  # mu_b - mu_a, in m's storage
        S.addmm_((delta * ck[:, None]).T, delta)
    stats.sq.add_(sq_b).add_(ck * (delta * delta).sum(1))
    stats.means.add_(delta * frac[:, None])
    stats.counts.copy_(n)
    return stats


CHUNK_ELEMENTS = 1 << 20  # centred rows per chunk of accumulate_: 4 MB of float32


def chunk_rows(dim: int) -> int:
    """Rows per chunk of :func:`accumulate_` at feature dimension ``dim`` (at least 1).

    >>> chunk_rows(512), chunk_rows(3), chunk_rows(10**7)
    (2048, 349525, 1)
    """
    return max(1, CHUNK_ELEMENTS // max(1, dim))


def batch_stats(features: Tensor, labels: Tensor, num_classes: int, centre: Tensor | None = None,
                workspace: Tensor | None = None) -> CollapseStats:
    """The :class:`CollapseStats` of one batch (already validated): :func:`accumulate_` into zero statistics.

    >>> s = batch_stats(torch.tensor([[0.0], [2.0], [5.0]], dtype=torch.float64), torch.tensor([0, 0, 1]), 2)
    >>> s.means.tolist(), s.scatter.tolist()
    ([[1.0], [5.0]], [[2.0]])
    """
    X = features
    stats = CollapseStats.zeros(num_classes, X.shape[1], X.device)
    return accumulate_(stats, X, labels, centre, workspace)


def _as_2d_float(t, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        try:
            t = torch.as_tensor(t)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a tensor or array of shape (N, d), got {type(t).__name__}") from None
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (N, d), got {tuple(t.shape)}")
    return t


def check_features(features, labels, num_classes: int | None = None, *,
                   name: str = "features") -> tuple[Tensor, Tensor, int]:
    """Validated ``(features (N, d) float, labels (N,) long, K)``; ``K`` is ``num_classes`` or the largest label + 1."""
    X = _as_2d_float(features, name)
    if X.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {tuple(X.shape)}")
    if X.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column (feature dimension d >= 1), got {tuple(X.shape)}")
    if not isinstance(labels, Tensor):
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"labels must be an integer tensor of shape (N,), got {type(labels).__name__}") from None
    if labels.dim() == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.dim() != 1 or labels.shape[0] != X.shape[0]:
        raise ValueError(f"labels must have shape (N,) = ({X.shape[0]},) to match {name}, got {tuple(labels.shape)}")
    if labels.dtype == torch.bool:
        raise TypeError("labels must be an integer tensor of class ids, got dtype torch.bool")
    if not bool(torch.isfinite(X.sum())):  # one reduction; the full scan only to name the first bad entry
        check_finite(X, name)
    if num_classes is None:
        if labels.is_floating_point() or labels.is_complex():
            raise TypeError(f"labels must be an integer tensor of class ids, got dtype {labels.dtype}")
        lo = int(labels.min())
        if lo < 0:
            raise ValueError(f"labels must be non-negative class ids, got minimum {lo}")
        num_classes = int(labels.max()) + 1
        if num_classes < 2:
            raise ValueError("labels must hold at least 2 classes (neural collapse compares classes), got only "
                             "class 0; pass num_classes to name the others")
    else:
        num_classes = check_int(num_classes, "num_classes", 2)
        check_labels(labels, num_classes, "labels")
    labels = labels.to(X.device)
    return X, labels.long(), num_classes


def _check_classifier(weight, bias, K: int, d: int) -> tuple[Tensor | None, Tensor | None]:
    if weight is None:
        if bias is not None:
            raise ValueError("bias was given without weight: NC3/NC4 need the classifier weight (K, d)")
        return None, None
    if not isinstance(weight, Tensor):
        weight = torch.as_tensor(weight)
    if not weight.is_floating_point() or weight.dim() != 2 or tuple(weight.shape) != (K, d):
        raise ValueError(f"weight must be a floating-point classifier matrix of shape (K, d) = ({K}, {d}), got "
                         f"{tuple(weight.shape)} {weight.dtype}")
    check_finite(weight, "weight")
    W = weight.detach().to(torch.float64)
    if bias is None:
        return W, None
    if not isinstance(bias, Tensor):
        bias = torch.as_tensor(bias)
    if not bias.is_floating_point() or bias.dim() != 1 or bias.shape[0] != K:
        raise ValueError(f"bias must be a floating-point vector of shape (K,) = ({K},), got {tuple(bias.shape)} "
                         f"{bias.dtype}")
    check_finite(bias, "bias")
    return W, bias.detach().to(torch.float64)


def collapse_stats(features, labels, num_classes: int | None = None) -> CollapseStats:
    """The float64 :class:`CollapseStats` of a whole array of features (what :func:`nc_metrics` measures).

    >>> s = collapse_stats(torch.tensor([[0.0], [2.0], [5.0]]), torch.tensor([0, 0, 1]))
    >>> s.counts.tolist(), s.means.tolist(), s.scatter.tolist(), s.sq.tolist()
    ([2.0, 1.0], [[1.0], [5.0]], [[2.0]], [2.0, 0.0])
    """
    inferred = num_classes is None
    X, y, K = check_features(features, labels, num_classes)
    if inferred:  # K = the largest label + 1: a gap is refused before the K x d allocation
        _present_labels(y, K, "error")
    return batch_stats(X.to(torch.float64), y, K)


def ncc_mismatch(features: Tensor, means: Tensor, weight: Tensor, bias: Tensor | None = None,
                 classes: Tensor | None = None) -> int:
    r"""How many rows of ``features`` the classifier and the nearest class centre label differently (NC4):

    .. math:: \#\{i : \arg\max_k (w_k^\top h_i + b_k) \ne \arg\min_k \|h_i - \mu_k\|\}

    in float64 (distances as :math:`\|\tilde\mu_k\|^2 - 2 (h - \mu_c)^\top \tilde\mu_k` around the centroid
    :math:`\mu_c` of the means, to avoid cancellation). ``classes`` restricts both to a subset of classes
    (the present ones). Ties go to the lowest class id on both sides.

    >>> h = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.9, 0.0]])
    >>> mu = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    >>> ncc_mismatch(h, mu, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))  # row 2: nearest mean 1, classifier 1
    0
    >>> ncc_mismatch(h, mu, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0.0, -1.0]))  # bias moves row 2
    1
    """
    X = features.to(torch.float64)
    mu, W = means.to(X.device, torch.float64), weight.to(X.device, torch.float64)
    b = None if bias is None else bias.to(X.device, torch.float64)
    if classes is not None:
        classes = classes.to(X.device)
        mu, W = mu[classes], W[classes]
        b = None if b is None else b[classes]
    centre = mu.mean(0)
    mc = mu - centre
    with _full_precision():
        logits = X @ W.T
        if b is not None:
            logits = logits + b
        dist = (mc * mc).sum(1) - 2.0 * ((X - centre) @ mc.T)
    return int((logits.argmax(1) != dist.argmin(1)).sum())


def centred_means(counts: Tensor, means: Tensor, global_mean: str = "class") -> Tensor:
    """:math:`M_c`: the class means minus the global mean (mean of class means, or the sample mean).

    >>> centred_means(torch.tensor([1.0, 3.0]), torch.tensor([[0.0], [4.0]]), "sample").tolist()
    [[-3.0], [1.0]]
    """
    if global_mean == "class":
        return means - means.mean(0)
    return means - (counts[:, None] * means).sum(0) / counts.sum()


def _ratio(a: float, b: float) -> float:
    """a / b with 0/0 = nan and a/0 = inf (documented degenerate values)."""
    if b > 0:
        return a / b
    return math.nan if a == 0 else math.inf


def _frame_geometry(rows: Tensor, suffix: str) -> dict[str, float]:
    """NC2 of the rows of ``rows`` (K, d): equinorm, equiangularity, maximal angle, distance to the ETF Gram."""
    K = rows.shape[0]
    norms = rows.norm(dim=1)
    mean_norm = float(norms.mean())
    out = {f"equinorm_{suffix}": _ratio(float(norms.std(correction=1)), mean_norm) if mean_norm > 0 else math.nan}
    G = rows @ rows.T
    iu = torch.triu_indices(K, K, 1, device=rows.device)
    if bool((norms > 0).all()):
        cos = (G / (norms[:, None] * norms[None, :]))[iu[0], iu[1]]
        out[f"equiangular_{suffix}"] = float(cos.std(correction=1)) if cos.numel() > 1 else 0.0
        out[f"max_angle_{suffix}"] = float((cos + 1.0 / (K - 1)).abs().mean())
    else:  # a zero row: its angles are undefined
        out[f"equiangular_{suffix}"] = out[f"max_angle_{suffix}"] = math.nan
    gnorm = float(G.norm())
    if gnorm > 0:
        E = (torch.eye(K, dtype=G.dtype, device=G.device) - 1.0 / K) / math.sqrt(K - 1)
        out[f"etf_distance_{suffix}"] = float((G / gnorm - E).norm())
    else:
        out[f"etf_distance_{suffix}"] = math.nan
    return out


def _select_present(present: Tensor, K: int, absent: str) -> Tensor | None:
    """``present`` (sorted ids of the classes with samples), or None when all K are; raises for ``absent='error'``."""
    if present.numel() == K:
        return None
    if absent == "error":
        mask = torch.ones(K, dtype=torch.bool, device=present.device)
        mask[present] = False
        missing = mask.nonzero().reshape(-1)
        shown = ", ".join(map(str, missing[:10].tolist())) + (", ..." if missing.numel() > 10 else "")
        plural = "es" if missing.numel() > 1 else ""
        raise ValueError(f"labels: {missing.numel()} of the K = {K} classes have no sample (class{plural} {shown}); "
                         f"neural-collapse metrics need every class: pass absent='drop' to measure the "
                         f"classes present only, or num_classes = the number of classes in the data")
    if present.numel() < 2:
        raise ValueError(f"labels: only {present.numel()} class has samples; neural-collapse metrics need >= 2")
    return present


def _present(stats: CollapseStats, absent: str) -> Tensor | None:
    """Indices of the classes with samples, or None when all are present; raises for ``absent='error'``."""
    return _select_present((stats.counts > 0).nonzero().reshape(-1), stats.num_classes, absent)


def _present_labels(labels: Tensor, K: int, absent: str) -> Tensor | None:
    """:func:`_present` from the labels themselves (``torch.unique``): before any ``K x d`` allocation, so a stray
    huge label with ``num_classes=None`` fails at once instead of allocating ``K x d`` float64."""
    return _select_present(torch.unique(labels), K, absent)


def metrics_from_stats(stats: CollapseStats, weight=None, bias=None, *, global_mean: str = "class",
                       mismatch: tuple[int, int] | None = None, absent: str = "error") -> dict[str, float]:
    r"""The metrics of :func:`nc_metrics` from sufficient statistics (the one implementation of the formulas).

    With :math:`N = \sum_k n_k`, :math:`\Sigma_W = S/N` (``stats.scatter`` :math:`= S`), the centred means
    :math:`M_c = U\,\mathrm{diag}(s)\,V^\top` (thin SVD) and :math:`\Sigma_B = M_c^\top M_c/K`:

    .. math::
        \mathrm{NC1} = \frac1K \mathrm{Tr}(\Sigma_W \Sigma_B^\dagger)
        = \sum_{j \le r} \frac{v_j^\top S\, v_j}{N s_j^2}, \qquad
        r = \#\{j \le \min(K-1, d) : s_j > 10^{-8} s_1\},

    the CDNV variances :math:`V_k =` ``sq[k]`` :math:`/ n_k`; the other keys as in :func:`nc_metrics`.

    Args:
        stats: :class:`CollapseStats` (of :func:`collapse_stats` or a :class:`CollapseTracker`).
        weight, bias: the classifier ``(K, d)`` and ``(K,)``, or ``None``.
        global_mean: ``"class"`` or ``"sample"``.
        mismatch: ``(mismatched, seen)`` of :func:`ncc_mismatch` over the data: gives ``nc4`` (with ``weight``).
        absent: ``"error"`` (default) or ``"drop"``: what to do with classes that have no sample.

    Example:
        >>> h = torch.tensor([[0.0, 0.0], [0.0, 2.0], [4.0, 0.0], [4.0, 2.0], [0.0, 5.0]], dtype=torch.float64)
        >>> y = torch.tensor([0, 0, 1, 1, 2])
        >>> m = metrics_from_stats(collapse_stats(h, y))  # = nc_metrics(h, y)
        >>> round(m["nc1"], 6) == round(nc_metrics(h, y)["nc1"], 6), m["nc1_quotient"]  # (4/5) / (64/9)
        (True, 0.1125)
    """
    check_choice(global_mean, "global_mean", GLOBAL_MEANS)
    check_choice(absent, "absent", ("error", "drop"))
    K, d = stats.num_classes, stats.dim
    if K < 2:
        raise ValueError(f"neural-collapse metrics need at least 2 classes, got K = {K}")
    W, b = _check_classifier(weight, bias, K, d)
    present = _present(stats, absent)
    counts, means, sq = stats.counts, stats.means, stats.sq
    if W is not None:
        W = W.to(means.device)
        b = None if b is None else b.to(means.device)
    if present is not None:
        counts, means, sq = counts[present], means[present], sq[present]
        if W is not None:
            W = W[present]
            b = None if b is None else b[present]
        K = present.numel()
    N = float(counts.sum())
    Mc = centred_means(counts, means, global_mean)
    S = stats.scatter  # N Sigma_W; no d x d temporary below
    # NC1 = Tr(Sw Sb^+)/K = sum_{j<=r} v_j^T S v_j / (N s_j^2) over the thin SVD Mc = U S V^T; the rank r is capped at
    # min(K - 1, d) (the centred means sum to 0 with weights 1 or n_k) and cut off relatively (NC1_RTOL)
    _, s, Vh = torch.linalg.svd(Mc, full_matrices=False)
    keep = (torch.arange(s.numel(), device=s.device) < min(K - 1, d)) & (s > NC1_RTOL * s[0])  # s[0] = 0: none
    V = Vh[keep].T  # (d, r)
    trW = float(torch.diagonal(S).sum()) / N
    if bool(keep.any()):
        nc1 = float(((V * (S @ V)).sum(0) / s[keep] ** 2).sum()) / N
    else:
        nc1 = _ratio(trW, 0.0)
    trB = float((Mc * Mc).sum()) / K
    out = {"nc1": nc1, "nc1_quotient": _ratio(trW, trB)}
    # CDNV: mean over i<j of (V_i + V_j) / (2 ||mu_i - mu_j||^2), V_k = sq_k / n_k
    var = sq / counts
    G = Mc @ Mc.T
    dg = torch.diagonal(G)
    dist2 = (dg[:, None] + dg[None, :] - 2 * G).clamp_min(0)
    iu = torch.triu_indices(K, K, 1, device=G.device)
    num = (var[:, None] + var[None, :])[iu[0], iu[1]]
    den = 2 * dist2[iu[0], iu[1]]
    if bool((den > 0).all()):
        out["cdnv"] = float((num / den).mean())
    else:
        out["cdnv"] = math.inf if bool((num[den == 0] > 0).any()) else math.nan
    out.update(_frame_geometry(Mc, "means"))
    if W is not None:
        out.update(_frame_geometry(W, "weights"))
        wn, mn = float(W.norm()), float(Mc.norm())
        out["nc3"] = float((W / wn - Mc / mn).pow(2).sum()) if wn > 0 and mn > 0 else math.nan
        if mismatch is not None:
            wrong, seen = mismatch
            out["nc4"] = wrong / seen if seen else math.nan
    return out


def nc_metrics(features, labels, weight=None, bias=None, *, global_mean: str = "class",
               num_classes: int | None = None, absent: str = "error") -> dict[str, float]:
    r"""Neural-collapse metrics of labelled features (and of a linear classifier).

    With the notation of the module docstring (float64 inside, whatever the input dtype):

    * ``nc1`` (Papyan et al. 2020, Fig. 6): :math:`\mathrm{Tr}(\Sigma_W \Sigma_B^\dagger)/K`, computed
      through the thin SVD :math:`M_c = U S V^\top` as :math:`\sum_{j \le r} v_j^\top \Sigma_W v_j / s_j^2`
      (no :math:`d \times d` pseudo-inverse). The rank is capped, :math:`r \le \min(K-1, d)` (the centred
      means sum to zero, so the :math:`K`-th singular value is round-off: with a common offset of 100 it
      would be ~1e-14 and its inverse square would swamp NC1), and directions with
      :math:`s_j \le 10^{-8} s_1` (:data:`NC1_RTOL`) count as null; :math:`d < K-1` works.
    * ``nc1_quotient`` (Tirer, Huang & Niles-Weed, ICML 2023, Eq. 3): :math:`\mathrm{Tr}\Sigma_W/\mathrm{Tr}\Sigma_B`.
    * ``cdnv`` (Galanti, György & Hutter, ICLR 2022): mean over pairs :math:`i<j` of
      :math:`(V_i + V_j) / (2\|\mu_i - \mu_j\|^2)`, :math:`V_k = \frac{1}{n_k}\sum_{y_i=k}\|h_i-\mu_k\|^2`.
    * NC2 of the rows :math:`r_k` of :math:`M_c` (suffix ``_means``) and, given ``weight``, of :math:`W`
      (``_weights``, rows not centred) (Papyan et al. Figs. 2-4; Zhu et al., NeurIPS 2021):
      ``equinorm`` = :math:`\mathrm{std}_k\|r_k\| / \mathrm{mean}_k\|r_k\|` (ddof = 1);
      ``equiangular`` = std (ddof = 1) of :math:`\cos(r_i, r_j)` over pairs :math:`i<j` (0 when K = 2: one
      pair); ``max_angle`` = mean over pairs of :math:`|\cos(r_i, r_j) + 1/(K-1)|`;
      ``etf_distance`` = :math:`\|G/\|G\|_F - (I - \mathbf{1}\mathbf{1}^\top/K)/\sqrt{K-1}\|_F`, :math:`G = R R^\top`.
    * ``nc3`` (Papyan et al. Fig. 5): :math:`\|W/\|W\|_F - M_c/\|M_c\|_F\|_F^2 \in [0, 4]`.
    * ``nc4`` (Papyan et al. Fig. 7): fraction of samples with
      :math:`\arg\max_k (w_k^\top h + b_k) \ne \arg\min_k \|h - \mu_k\|` (:math:`b = 0` when ``bias`` is None).

    Degenerate but legal input: a class with one sample has :math:`V_k = 0`; coinciding class means give
    ``cdnv = inf`` (``nan`` when their variances are 0 too); a zero centred mean (or zero row of ``W``)
    makes its angles undefined: ``equiangular``/``max_angle`` are ``nan``; identical class means for all
    classes give ``nc1 = nc1_quotient = inf`` (``nan`` if :math:`\Sigma_W = 0` too).

    Args:
        features: ``(N, d)`` floating-point features (tensor or array; any float dtype, used in float64).
        labels: ``(N,)`` integer class ids in ``[0, K)``.
        weight: optional classifier ``(K, d)``; bias: optional ``(K,)`` (needs ``weight``).
        global_mean: ``"class"`` (mean of the class means, default) or ``"sample"`` (mean of all samples;
            equal for balanced classes). The choice moves every metric on the centred means except CDNV.
        num_classes: ``K``; default the largest label + 1.
        absent: classes of ``[0, K)`` without samples: ``"error"`` (default: a ``ValueError`` naming them) or
            ``"drop"`` (measure the present classes only, with the matching rows of ``weight`` and ``bias``;
            NC4 then compares among the present classes).

    Returns:
        ``dict[str, float]`` with the keys of :data:`METRIC_KEYS`, and of :data:`WEIGHT_KEYS` when
        ``weight`` is given.

    Example:
        >>> K = 3
        >>> etf = torch.eye(K) - 1 / K  # simplex ETF means (centred)
        >>> h = etf.repeat(4, 1) + 0.01 * torch.randn(12, K, generator=torch.Generator().manual_seed(0))
        >>> y = torch.arange(K).repeat(4)
        >>> m = nc_metrics(h, y, weight=etf)
        >>> m["nc1"] < 1e-3, m["nc4"], m["etf_distance_means"] < 0.05
        (True, 0.0, True)
    """
    X, y, K = check_features(features, labels, num_classes)
    d = X.shape[1]
    check_choice(global_mean, "global_mean", GLOBAL_MEANS)
    check_choice(absent, "absent", ("error", "drop"))
    W, b = _check_classifier(weight, bias, K, d)  # before any work
    present = _present_labels(y, K, absent)  # before any K x d allocation
    if present is not None:  # absent="drop": relabel to the present classes (and their rows of W, b)
        y, K = torch.searchsorted(present, y), present.numel()
        if W is not None:
            W = W[present.to(W.device)]
            b = None if b is None else b[present.to(b.device)]
    stats = batch_stats(X.to(torch.float64), y, K)
    mismatch = None if W is None else (ncc_mismatch(X, stats.means, W, b), X.shape[0])
    return metrics_from_stats(stats, W, b, global_mean=global_mean, mismatch=mismatch)
