"""Piecewise-E(3) equivariant point networks: APEN (Atzmon, Huang, Williams, Litany, ICLR 2024).

* :mod:`~equinets.piecewise.partition`: farthest-point candidates, an unrolled (differentiable) Gaussian-mixture
  EM with order-independent merging, hard / soft assignments as a sparse list of (point, part) pairs
  (:class:`Partition`);
* :func:`part_frames`: per-part weighted PCA frames through :func:`equinets.frames.pca_frames`;
* :class:`APENBlock`: the shared PointNet-style network run on every (pair, frame) row, pooled per part;
* :class:`APEN`: the model (``create_model("apen", ...)``), with ``forward(pos, x=None, batch=None,
  partition=None)`` and the vote loss :meth:`APEN.auxiliary_loss`.
"""

from __future__ import annotations

from .blocks import APENBlock, part_neighbors
from .frames import part_frames
from .model import APEN, APENOutput, default_variances
from .partition import (
    Mixture,
    Partition,
    assign,
    fit_mixture,
    fps_candidates,
    gmm_em,
    init_mixture,
    merge_components,
    partition_from_labels,
)

__all__ = ["APEN", "APENOutput", "APENBlock", "Partition", "Mixture", "part_frames", "part_neighbors", "assign",
           "fit_mixture", "fps_candidates", "gmm_em", "init_mixture", "merge_components", "partition_from_labels",
           "default_variances"]
