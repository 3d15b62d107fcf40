"""Frame averaging (Puny et al., ICLR 2022): PCA frames for O(3)/SO(3)/E(3)/SE(3) and the averaging wrapper.

* :func:`pca_frames` -> :class:`Frames`: PCA frames with weights and a degenerate-spectrum policy;
* :class:`FrameAveraging`: wrap any backbone, fold the frames into the batch, rotate back, average;
* :func:`irreps_D`, :func:`rotate_irreps`: O(3) representation matrices on e3nn irreps, float64-exact;
* :class:`FAGNN`: FA-GNN for particle systems (n-body), latent vectors re-framed per layer.
"""

from __future__ import annotations

from ._wigner import irreps_D, rotate_irreps
from .averaging import FrameAveraging
from .fagnn import FAGNN, FAGNNLayer, full_graph
from .pca import GROUPS, Frames, default_tol, frame_pairs, pca_frames

__all__ = ["Frames", "pca_frames", "frame_pairs", "default_tol", "FrameAveraging", "irreps_D", "rotate_irreps", "GROUPS",
           "FAGNN", "FAGNNLayer", "full_graph"]

from .graph import GIN, GraphFrameAveraging, GraphFrames, graph_frames, rank_encoding  # noqa: E402

__all__ += ["GraphFrames", "graph_frames", "GraphFrameAveraging", "GIN", "rank_encoding"]
