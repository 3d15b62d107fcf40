"""Matplotlib plots of a run's ``metrics.csv`` (loss and every metric against epochs, per split), of its
neural-collapse columns (NC1 to NC4 against epochs), and of the class-mean geometry of one analysis."""

from __future__ import annotations

import csv
from pathlib import Path

from .._atomic import atomic_open

__all__ = ["plot_curves", "plot_collapse", "plot_collapse_geometry", "COLLAPSE_COLUMNS"]


def _collapse_keys() -> tuple[str, ...]:
    from ..collapse.metrics import METRIC_KEYS, WEIGHT_KEYS

    return METRIC_KEYS + WEIGHT_KEYS


#: the ``metrics.csv`` columns of the training loop's collapse metrics (``collapse_every``): ``train_<key>``
COLLAPSE_COLUMNS = tuple(f"train_{k}" for k in _collapse_keys())


def _read(metrics_csv) -> list[dict]:
    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{metrics_csv} has no rows to plot")
    return rows


def _value(cell) -> float:
    return float(cell) if cell not in ("", "nan", None) else float("nan")


def plot_curves(metrics_csv: str | Path, out_png: str | Path) -> Path:
    """Plot train/eval (and test, with ``test_at_best``) curves from ``metrics_csv`` into ``out_png`` (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = _read(metrics_csv)
    epochs = [int(r["epoch"]) for r in rows]
    names = sorted({k.split("_", 1)[1] for k in rows[0] if k.startswith(("train_", "eval_", "test_"))
                    and k not in COLLAPSE_COLUMNS})  # collapse metrics: plot_collapse
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for split in ("train", "eval", "test"):  # test: only where validation improved (test_at_best)
            key = f"{split}_{name}"
            if key in rows[0]:
                vals = [float(r[key]) if r[key] not in ("", "nan") else float("nan") for r in rows]
                ax.plot(epochs, vals, marker="o", ms=3, label=split)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_open(out_png, "wb") as f:
        fig.savefig(f, dpi=90, format="png")
    plt.close(fig)
    return out_png


#: the panels of :func:`plot_collapse`: (title, [(column suffix, label), ...])
_NC_PANELS = (
    ("NC1: within-class variability", [("nc1", "Tr(Sw Sb+)/K"), ("nc1_quotient", "Tr Sw / Tr Sb"), ("cdnv", "CDNV")]),
    ("NC2: distance to a simplex ETF", [("etf_distance_means", "ETF distance, means"),
                                         ("etf_distance_weights", "ETF distance, weights"),
                                         ("equinorm_means", "equinorm CoV, means"),
                                         ("equiangular_means", "equiangular std, means"),
                                         ("max_angle_means", "|cos + 1/(K-1)|, means")]),
    ("NC3: self-duality", [("nc3", "||W/|W| - Mc/|Mc|||^2")]),
    ("NC4: classifier vs nearest mean", [("nc4", "mismatch fraction")]),
)


def plot_collapse(metrics_csv: str | Path, out_png: str | Path) -> Path | None:
    """Plot the training loop's neural-collapse columns (``train_nc1`` ...) of ``metrics_csv`` against epochs
    (one panel per NC1-NC4) into ``out_png``; ``None`` when the file has no collapse column yet.

    NC1-NC3 use a log axis (values <= 0, e.g. an exact 0, are left out of those curves); NC4, a mismatch
    fraction in [0, 1] that is exactly 0 once the classifier agrees with the nearest class mean, uses a linear
    axis from 0 so its zeros are drawn."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = _read(metrics_csv)
    have = [r for r in rows if r.get("train_nc1") not in (None, "")]
    if not have:
        return None
    epochs = [int(r["epoch"]) for r in have]
    fig, axes = plt.subplots(1, len(_NC_PANELS), figsize=(4.2 * len(_NC_PANELS), 3.3), squeeze=False)
    for ax, (title, series) in zip(axes[0], _NC_PANELS):
        for key, label in series:
            col = f"train_{key}"
            if col in have[0]:
                vals = [_value(r[col]) for r in have]
                if key == "nc4" or any(v > 0 for v in vals):
                    ax.plot(epochs, vals, marker="o", ms=3, label=label)
        if ax.lines:
            if series[0][0] == "nc4":  # a fraction that reaches 0: linear, from 0
                finite = [float(v) for ln in ax.lines for v in ln.get_ydata() if v == v]
                ax.set_ylim(0.0, 1.1 * max([1e-3, *finite]))
            else:
                ax.set_yscale("log")
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_open(out_png, "wb") as f:
        fig.savefig(f, dpi=90, format="png")
    plt.close(fig)
    return out_png


def plot_collapse_geometry(stats, out_png: str | Path, *, weight=None, global_mean: str = "class",
                           title: str = "") -> Path:
    """The geometry of one collapse analysis (:class:`~equinets.collapse.CollapseStats`) into ``out_png``:
    the normalised Gram matrix :math:`G/\\|G\\|_F` of the centred class means beside the simplex-ETF target
    :math:`(I - 11^T/K)/\\sqrt{K-1}` (and of the classifier rows, when ``weight`` is given), the singular
    values of :math:`M_c` (all equal for an ETF), and the within-class variances :math:`V_k` over the mean
    squared norm of the centred means."""
    import math

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import torch

    from ..collapse.metrics import centred_means

    present = stats.counts > 0
    counts, means, sq = stats.counts[present], stats.means[present], stats.sq[present]
    Mc = centred_means(counts, means, global_mean).cpu()
    K = Mc.shape[0]
    G = Mc @ Mc.T
    G = G / G.norm().clamp_min(1e-300)
    E = (torch.eye(K, dtype=G.dtype) - 1.0 / K) / math.sqrt(K - 1)
    grams = [("centred means: G/|G|", G), ("simplex ETF", E)]
    if weight is not None:
        W = weight.detach().to(torch.float64).cpu()[present.cpu()]
        GW = W @ W.T
        grams.append(("classifier rows: WW^T/|WW^T|", GW / GW.norm().clamp_min(1e-300)))
    n = len(grams) + 2
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    lim = float(max(g.abs().max() for _, g in grams))
    for ax, (name, g) in zip(axes[0], grams):
        im = ax.imshow(g.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0][len(grams) - 1], fraction=0.046)
    s = torch.linalg.svdvals(Mc)
    ax = axes[0][len(grams)]
    ax.bar(range(1, s.numel() + 1), (s / s[0].clamp_min(1e-300)).numpy())
    ax.axvline(K - 0.5, color="k", lw=0.8, ls="--")
    ax.set_title("singular values of Mc / max (ETF: K-1 ones)", fontsize=9)
    ax.set_xlabel("index")
    ax = axes[0][len(grams) + 1]
    scale = float((Mc * Mc).sum(1).mean())
    var = (sq / counts).cpu() / (scale if scale > 0 else 1.0)
    ax.bar(range(K), var.numpy())
    ax.set_title("within-class variance V_k / mean |mu_k - mu_G|^2", fontsize=9)
    ax.set_xlabel("class (present)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_open(out_png, "wb") as f:
        fig.savefig(f, dpi=90, format="png")
    plt.close(fig)
    return out_png
