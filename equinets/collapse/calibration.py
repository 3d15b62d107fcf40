r"""Calibration of a classifier: expected calibration error and the reliability diagram.

Guo, Pleiss, Sun, Weinberger, "On calibration of modern neural networks" (ICML 2017, Sec. 2), the
standard definition used by the mixup papers (Thulasidasan et al. 2019; Fisher, Meng & Papyan 2024):
with the confidence :math:`\hat p_i = \max_k p_{ik}`, the prediction :math:`\hat y_i = \arg\max_k p_{ik}`
and :math:`B` equal-width bins :math:`I_b = ((b-1)/B,\ b/B]` of confidence (:math:`b = 1..B`, default
:math:`B = 15`; a confidence on an edge belongs to the lower bin, as the input's floating-point value
decides, and exactly 0 to the first bin),

.. math::
    \mathrm{ECE} = \sum_{b=1}^{B} \frac{|B_b|}{n}\,\big|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big|,
    \qquad \mathrm{acc}(B_b) = \frac{1}{|B_b|}\sum_{i \in B_b} [\hat y_i = y_i], \quad
    \mathrm{conf}(B_b) = \frac{1}{|B_b|}\sum_{i \in B_b} \hat p_i,

empty bins contributing 0. ECE is in :math:`[0, 1]`; a perfectly calibrated model
(:math:`P(\hat y = y \mid \hat p) = \hat p`) has ECE 0 up to sampling noise of order
:math:`\sum_b \frac{|B_b|}{n}\sqrt{\mathrm{conf}_b(1-\mathrm{conf}_b)/|B_b|}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from .._atomic import atomic_open
from .._checks import check_finite, check_int, check_labels

__all__ = ["CalibrationBins", "calibration_bins", "expected_calibration_error", "reliability_diagram"]


class CalibrationBins(NamedTuple):
    """Per-bin statistics of :func:`calibration_bins` (all ``(B,)`` float64; empty bins have count 0 and
    ``accuracy``/``confidence`` NaN), the bin ``edges`` ``(B+1,)`` and the ``ece``."""

    edges: Tensor
    count: Tensor
    accuracy: Tensor
    confidence: Tensor
    ece: float


def _probabilities(probs, from_logits: bool) -> Tensor:
    if not isinstance(probs, Tensor):
        probs = torch.as_tensor(probs)
    if not probs.is_floating_point():
        raise TypeError(f"probs must be a floating-point tensor (N, K), got dtype {probs.dtype}")
    if probs.dim() != 2 or probs.shape[1] < 2:
        raise ValueError(f"probs must have shape (N, K) with K >= 2 classes, got {tuple(probs.shape)}")
    check_finite(probs, "probs")
    p = probs.detach().to(torch.float64)
    if from_logits:
        return torch.softmax(p, dim=1)
    if p.numel() and (bool((p < 0).any()) or bool(((p.sum(1) - 1).abs() > 1e-4).any())):
        raise ValueError("probs must hold probabilities (rows >= 0 summing to 1); pass from_logits=True for logits")
    return p


def calibration_bins(probs, labels, *, num_bins: int = 15, from_logits: bool = False) -> CalibrationBins:
    """Confidence histogram of the predictions: count, accuracy and mean confidence per equal-width bin.

    Args:
        probs: ``(N, K)`` predicted probabilities (or logits with ``from_logits=True``).
        labels: ``(N,)`` true class ids.
        num_bins: :math:`B` equal-width bins of ``[0, 1]``.
        from_logits: apply a softmax first.

    Returns:
        :class:`CalibrationBins`.

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
        >>> b = calibration_bins(p, torch.tensor([0, 1, 1]), num_bins=2)
        >>> b.count.tolist(), b.accuracy.tolist(), round(b.ece, 6)
        ([0.0, 3.0], [nan, 0.6666666666666666], 0.066667)
    """
    p = _probabilities(probs, from_logits)
    y = torch.as_tensor(labels)
    if y.dim() != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"labels must have shape (N,) = ({p.shape[0]},) to match probs, got {tuple(y.shape)}")
    check_labels(y, p.shape[1], "labels")
    B = check_int(num_bins, "num_bins", 1)
    if p.shape[0] == 0:
        raise ValueError("probs is empty: ECE needs at least one prediction")
    conf, pred = p.max(dim=1)
    correct = (pred == y.to(pred.device)).to(torch.float64)
    # bin b holds conf in ((b-1)/B, b/B]; conf = 0 goes to the first bin
    idx = (torch.ceil(conf * B).long() - 1).clamp(0, B - 1)
    count = torch.bincount(idx, minlength=B).to(torch.float64)
    acc_sum = torch.bincount(idx, weights=correct, minlength=B)
    conf_sum = torch.bincount(idx, weights=conf, minlength=B)
    nan = torch.full_like(count, float("nan"))
    acc = torch.where(count > 0, acc_sum / count.clamp_min(1), nan)
    cnf = torch.where(count > 0, conf_sum / count.clamp_min(1), nan)
    ece = float(((acc_sum - conf_sum).abs()).sum() / p.shape[0])  # sum_b |B_b|/n |acc_b - conf_b|
    return CalibrationBins(torch.linspace(0, 1, B + 1, dtype=torch.float64), count, acc, cnf, ece)


def expected_calibration_error(probs, labels, *, num_bins: int = 15, from_logits: bool = False) -> float:
    r"""Expected calibration error with ``num_bins`` equal-width confidence bins (module docstring; Guo et al. 2017).

    Args:
        probs: ``(N, K)`` probabilities (or logits with ``from_logits=True``).
        labels: ``(N,)`` class ids.
        num_bins: :math:`B` (default 15).
        from_logits: apply a softmax first.

    Returns:
        ECE in ``[0, 1]``.

    Example:
        >>> p = torch.tensor([[0.875, 0.125], [0.625, 0.375], [0.25, 0.75], [0.5625, 0.4375]])
        >>> expected_calibration_error(p, torch.tensor([0, 1, 1, 0]), num_bins=4)  # (|2 - 1.9375| + |1 - 0.875|) / 4
        0.046875
    """
    return calibration_bins(probs, labels, num_bins=num_bins, from_logits=from_logits).ece


def reliability_diagram(probs, labels, path: str | Path, *, num_bins: int = 15, from_logits: bool = False,
                        title: str | None = None) -> CalibrationBins:
    """Draw the reliability diagram (accuracy against confidence per bin, with the diagonal and the
    per-bin gap) and the confidence histogram; write it to ``path`` (PNG or PDF) atomically.

    Returns the :class:`CalibrationBins` drawn; the title shows the ECE.

    Example:
        >>> import tempfile
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     bins = reliability_diagram(p, torch.tensor([0, 1, 1]), Path(tmp) / "rel.png", num_bins=2)
        ...     (Path(tmp) / "rel.png").stat().st_size > 0
        True
        >>> bins.count.tolist(), round(bins.ece, 6)
        ([0.0, 3.0], 0.066667)
    """
    bins = calibration_bins(probs, labels, num_bins=num_bins, from_logits=from_logits)
    path = Path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    B = len(bins.count)
    centres = ((bins.edges[:-1] + bins.edges[1:]) / 2).numpy()
    width = 1.0 / B
    acc = torch.nan_to_num(bins.accuracy, nan=0.0).numpy()
    cnf = torch.nan_to_num(bins.confidence, nan=0.0).numpy()
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(4.2, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(centres, acc, width=width, edgecolor="black", color="tab:blue", label="accuracy")
    ax.bar(centres, cnf - acc, bottom=acc, width=width, edgecolor="tab:red", color="tab:red", alpha=0.3, label="gap")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{title + ': ' if title else ''}ECE = {bins.ece:.4f} ({B} bins)", fontsize=9)
    axh.bar(centres, bins.count.numpy() / float(bins.count.sum()), width=width, color="gray", edgecolor="black")
    axh.set_xlabel("confidence")
    axh.set_ylabel("fraction")
    fig.tight_layout()
    fmt = path.suffix.lstrip(".") or "png"
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=120)
    plt.close(fig)
    return bins
