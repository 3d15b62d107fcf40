"""Frame averaging (Puny et al., ICLR 2022): PCA frames for O(3)/SO(3)/E(3)/SE(3) and the averaging wrappers.

* :func:`pca_frames` -> :class:`Frames`: PCA frames with weights, a degenerate-spectrum policy (``blend``,
  or ``harmonic``: near-ties oriented by angular moments) and a sign policy (``all``, or ``shrink``: signs
  fixed by the skewness of the projections, :func:`frame_sign_stats`, so a generic cloud has one frame);
* :class:`FrameAveraging`: wrap any point backbone, fold the frames into the batch, rotate back, average;
* :func:`irreps_D`, :func:`rotate_irreps`: O(3) representation matrices on e3nn irreps, float64-exact;
* :class:`FAGNN`: FA-GNN for particle systems (n-body), latent vectors re-framed per layer;
* :func:`graph_frames` -> :class:`GraphFrames`, :class:`GraphFrameAveraging`: permutation frames of graphs
  and frame-averaged GNNs with node identifiers (e.g. around :class:`equinets.nn.GIN`).

One vocabulary across the wrappers: ``num_samples`` is a sample *count* (in training mode, that many
frames per cloud or graph drawn from the frame weights; ``None`` and ``eval()``: the full average),
the config's ``fa_num_samples``; ``max_frames`` (graphs only, where frames can hold ``n!`` orderings)
is a *cap* (enumerate up to that many, sample that many beyond). The folds of all three wrappers are
:mod:`equinets.nn.graph_ops`.
"""

from __future__ import annotations

from ._wigner import irreps_D, rotate_irreps
from .averaging import FrameAveraging
from .fagnn import FAGNN, FAGNNLayer
from .graph import GraphFrameAveraging, GraphFrames, graph_frames, rank_encoding
from .pca import GROUPS, SIGN_POLICIES, Frames, default_tol, frame_pairs, frame_sign_stats, pca_frames

__all__ = ["Frames", "pca_frames", "frame_pairs", "frame_sign_stats", "SIGN_POLICIES", "default_tol", "FrameAveraging",
           "irreps_D", "rotate_irreps", "GROUPS",
           "FAGNN", "FAGNNLayer", "GraphFrames", "graph_frames", "GraphFrameAveraging", "rank_encoding"]
