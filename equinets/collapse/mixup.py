r"""Geometry of mixed-example features (Fisher, Meng & Papyan, "Pushing boundaries: mixup's influence on neural
collapse", ICLR 2024).

A mixed example :math:`x = \lambda x_a + (1-\lambda) x_b` of classes :math:`(y_a, y_b)` reaches the classifier
:math:`z = W h + b` with a feature :math:`h`. The paper finds that same-class mixtures collapse onto
:math:`w_c` for every :math:`\lambda`, while different-class mixtures spread along the decision boundary of
:math:`c` and :math:`c'` as :math:`\lambda` varies, and that in the mixup UFM with a fixed simplex-ETF classifier
the logit gap tends to the log-odds (:func:`equinets.collapse.ufm.mixup_ufm_features`):

.. math:: z_c - z_{c'} \;\to\; \log\frac{\lambda}{1-\lambda}.

:func:`mixup_geometry` measures this per unordered class pair :math:`c \le c'` and :math:`\lambda` bin, with
:math:`\lambda` oriented as the weight of :math:`c` (a pair ``(a, b, lam)`` with :math:`a > b` is read as
``(b, a, 1 - lam)``):

* ``cos_c``, ``cos_c2``: mean :math:`\cos(h, w_c)` and :math:`\cos(h, w_{c'})`;
* ``boundary_distance``: mean signed distance to the decision boundary of :math:`c` and :math:`c'`,
  :math:`\big((w_c - w_{c'})^\top h + b_c - b_{c'}\big)/\|w_c - w_{c'}\|` (positive on :math:`c`'s side);
* ``gap_mean``: mean logit gap :math:`z_c - z_{c'}` (from ``logits`` when given, else :math:`Wh + b`);
* ``log_odds``: :math:`\log(\bar\lambda/(1-\bar\lambda))` of the bin's mean :math:`\bar\lambda`;
* ``gap_minus_log_odds``: mean over the bin's samples with :math:`0 < \lambda < 1` of
  :math:`z_c - z_{c'} - \log(\lambda/(1-\lambda))`.

Same-class rows (:math:`c = c'`) have no boundary: those three fields are NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_finite, check_int, check_labels

__all__ = ["mixup_geometry", "orient_pairs"]

F64 = torch.float64


def orient_pairs(y_a: Tensor, y_b: Tensor, lam: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(c, c2, lam_c)`` with ``c <= c2`` and ``lam_c`` the weight of ``c`` (swapped pairs get ``1 - lam``).

    >>> orient_pairs(torch.tensor([3, 1]), torch.tensor([1, 2]), torch.tensor([0.8, 0.8], dtype=torch.float64))
    (tensor([1, 1]), tensor([3, 2]), tensor([0.2000, 0.8000], dtype=torch.float64))
    """
    swap = y_a > y_b
    c = torch.where(swap, y_b, y_a)
    c2 = torch.where(swap, y_a, y_b)
    return c, c2, torch.where(swap, 1 - lam, lam)


def mixup_geometry(features, y_a, y_b, lam, *, weight, bias=None, logits=None, num_bins: int = 10) -> list[dict]:
    r"""Per class pair and :math:`\lambda` bin: cosines with the classifier rows, signed boundary distance and
    logit gap against the log-odds (module docstring).

    Args:
        features: ``(S, d)`` features of the mixed examples (the classifier's input).
        y_a, y_b: ``(S,)`` the two mixed labels (equal for a same-class mixture).
        lam: ``(S,)`` or a float: the weight of ``y_a``, in ``[0, 1]``.
        weight: ``(K, d)`` classifier rows :math:`w_k`; bias: optional ``(K,)``.
        logits: optional ``(S, K)`` logits of the examples (heads that are not linear in :math:`h`, e.g.
            :class:`~equinets.collapse.heads.EBVHead`); default :math:`W h + b`.
        num_bins: equal-width bins of :math:`\lambda` on ``[0, 1]`` (bin :math:`j` holds
            :math:`j/B \le \lambda < (j+1)/B`, the last one includes 1).

    Returns:
        ``list[dict]``, one row per non-empty (c, c2, bin), sorted: ``c``, ``c2``, ``lambda_bin``,
        ``lambda_lo``, ``lambda_hi``, ``count``, ``lambda_mean``, ``cos_c``, ``cos_c2``,
        ``boundary_distance``, ``gap_mean``, ``log_odds``, ``gap_minus_log_odds``.

    Example:
        >>> W = torch.eye(2, dtype=torch.float64)
        >>> rows = mixup_geometry(torch.tensor([[2.0, 0.5]]), torch.tensor([0]), torch.tensor([1]), 0.75, weight=W)
        >>> r = rows[0]
        >>> r["lambda_bin"], round(r["boundary_distance"], 6), round(r["gap_mean"] - math.log(3), 6)
        (7, 1.06066, 0.401388)
    """
    h = torch.as_tensor(features)
    if not h.is_floating_point() or h.dim() != 2:
        raise ValueError(f"features must be a floating-point (S, d) tensor, got {tuple(h.shape)} {h.dtype}")
    check_finite(h, "features")
    h = h.detach().to(F64)
    S, d = h.shape
    W = torch.as_tensor(weight).detach().to(F64)
    if W.dim() != 2 or W.shape[1] != d:
        raise ValueError(f"weight must have shape (K, d) = (K, {d}) to match features, got {tuple(W.shape)}")
    K = W.shape[0]
    b = torch.zeros(K, dtype=F64) if bias is None else torch.as_tensor(bias).detach().to(F64)
    if b.shape != (K,):
        raise ValueError(f"bias must have shape (K,) = ({K},), got {tuple(b.shape)}")
    ya, yb = torch.as_tensor(y_a).reshape(-1), torch.as_tensor(y_b).reshape(-1)
    for name, y in (("y_a", ya), ("y_b", yb)):
        if y.shape[0] != S:
            raise ValueError(f"{name} must have shape (S,) = ({S},) to match features, got {tuple(y.shape)}")
        check_labels(y, K, name)
    lam = torch.as_tensor(lam, dtype=F64).reshape(-1)
    if lam.numel() == 1:
        lam = lam.expand(S)
    if lam.shape[0] != S:
        raise ValueError(f"lam must be a float or have shape (S,) = ({S},), got {tuple(lam.shape)}")
    if bool(((lam < 0) | (lam > 1) | ~torch.isfinite(lam)).any()):
        raise ValueError("lam must lie in [0, 1] (the weight of y_a)")
    if logits is None:
        z = h @ W.T + b
    else:
        z = torch.as_tensor(logits).detach().to(F64)
        if z.shape != (S, K):
            raise ValueError(f"logits must have shape (S, K) = ({S}, {K}), got {tuple(z.shape)}")
    B = check_int(num_bins, "num_bins", 1)
    c, c2, lc = orient_pairs(ya.long(), yb.long(), lam)
    hn = h.norm(dim=1).clamp_min(1e-300)
    Wn = W.norm(dim=1).clamp_min(1e-300)
    idx = torch.arange(S)
    cos_c = (h * W[c]).sum(1) / (hn * Wn[c])
    cos_c2 = (h * W[c2]).sum(1) / (hn * Wn[c2])
    dw = W[c] - W[c2]
    dist = ((h * dw).sum(1) + b[c] - b[c2]) / dw.norm(dim=1).clamp_min(1e-300)
    gap = z[idx, c] - z[idx, c2]
    inside = (lc > 0) & (lc < 1)
    safe = torch.where(inside, lc, torch.full_like(lc, 0.5))
    err = gap - torch.log(safe / (1 - safe))
    bins = (lc * B).floor().long().clamp(0, B - 1)
    key = (c * K + c2) * B + bins
    rows = []
    for k in torch.unique(key).tolist():
        m = key == k
        n = int(m.sum())
        cc, cc2, j = k // B // K, k // B % K, k % B
        lm = float(lc[m].mean())
        row = {"c": cc, "c2": cc2, "lambda_bin": j, "lambda_lo": j / B, "lambda_hi": (j + 1) / B, "count": n,
               "lambda_mean": lm, "cos_c": float(cos_c[m].mean()), "cos_c2": float(cos_c2[m].mean())}
        if cc == cc2:
            row.update(boundary_distance=math.nan, gap_mean=math.nan, log_odds=math.nan, gap_minus_log_odds=math.nan)
        else:
            mi = m & inside
            row.update(boundary_distance=float(dist[m].mean()), gap_mean=float(gap[m].mean()),
                       log_odds=math.log(lm / (1 - lm)) if 0 < lm < 1 else (math.inf if lm >= 1 else -math.inf),
                       gap_minus_log_odds=float(err[mi].mean()) if bool(mi.any()) else math.nan)
        rows.append(row)
    return rows
