r"""Per-part frames: the one frame builder, :func:`equinets.frames.pca_frames`, on the (point, part) pairs.

Each part :math:`j` of a :class:`~equinets.piecewise.Partition` gets the PCA frame of its points weighted by
their pair weights :math:`w_{ij}` (Atzmon et al., ICLR 2024, Sec. 4: :math:`c_j = \sum_i w_{ij} x_i / \sum_i
w_{ij}`, :math:`C_j = \sum_i w_{ij} (x_i - c_j)(x_i - c_j)^\top / \sum_i w_{ij}`), through
:func:`~equinets.frames.pca_frames` with the part as the cloud id and the pair weights as point weights: 8
sign frames for O3/E3, 4 for SO3/SE3 when the spectrum is simple.

**Small and flat parts.** The official code replaces the covariance of a part with at most one point by
random numbers, which breaks equivariance. Here the degenerate-spectrum policy of ``pca_frames``
(``degenerate="blend"``) acts instead, deterministically: a part of one point (or of coincident points) has
a triple zero eigenvalue and is averaged over the octahedral frame set (48 / 24 frames); a part of two
points, or collinear points, has a double zero eigenvalue and is averaged over a grid of rotations about
its axis (``num_angles`` per half-turn); a planar part (one zero eigenvalue) has a simple spectrum and gets
the plain sign frames. Outputs and gradients stay finite; equivariance is exact for simple spectra and
approximate (see ``pca_frames``) inside the degenerate band. For E3/SE3 the framed inputs of a one- or two-point
part are themselves symmetric under the free rotations (a centred point is 0; two centred points lie on the
axis), so the block output of such a part stays exact; for O3/SO3 (every part rotates about the common origin,
positions are not centred) it is only approximate: ``kernels/apen_bound.py --exactness`` measured about 4e-4
relative on a refinement into pieces of 1 to 7 points, 2e-16 once every piece has about 16 points.
"""

from __future__ import annotations

from torch import Tensor

from ..frames.pca import Frames, pca_frames
from .partition import Partition

__all__ = ["part_frames"]


def part_frames(pos: Tensor, partition: Partition, group: str = "SE3", *, tol: float | None = None,
                degenerate: str = "blend", num_angles: int = 4) -> Frames:
    """The PCA frames of every part of ``partition`` (``P`` parts -> :class:`~equinets.frames.Frames` of ``P`` rows).

    Pair weights enter as point weights (detached: frames carry no gradient, as in the paper and in
    :class:`~equinets.frames.FrameAveraging`); the centroid keeps its gradient with respect to ``pos``.

    Example:
        >>> import torch
        >>> from equinets.piecewise.partition import partition_from_labels
        >>> pos = torch.randn(12, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0])
        >>> part = partition_from_labels(torch.tensor([0] * 6 + [1] * 5 + [2]), torch.zeros(12, dtype=torch.long), 3)
        >>> fr = part_frames(pos, part, "SE3")
        >>> fr.rotations.shape[0], [int((w > 0).sum()) for w in fr.weights]  # a 1-point part: 24 frames
        (3, [4, 4, 24])
    """
    return pca_frames(pos[partition.point], partition.part, group, weights=partition.weight.detach(), tol=tol,
                      degenerate=degenerate, num_angles=num_angles)

