"""Matplotlib plots of a run's ``metrics.csv`` (loss and every metric against epochs, per split)."""

from __future__ import annotations

import csv
from pathlib import Path

from .._atomic import atomic_open

__all__ = ["plot_curves"]


def plot_curves(metrics_csv: str | Path, out_png: str | Path) -> Path:
    """Plot train/eval (and test, with ``test_at_best``) curves from ``metrics_csv`` into ``out_png`` (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{metrics_csv} has no rows to plot")
    epochs = [int(r["epoch"]) for r in rows]
    names = sorted({k.split("_", 1)[1] for k in rows[0] if k.startswith(("train_", "eval_", "test_"))})
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
