"""Near-tied eigenvalues (``degenerate="harmonic"``): a degenerate plane oriented by angular moments."""

from __future__ import annotations

import math

import pytest
import torch

from equinets.frames import FrameAveraging, pca_frames
from equinets.nn import PointNet
from equinets.testing import assert_equivariant


def _square_prism(aspect: float = 1.0) -> torch.Tensor:
    """Two generic in-plane points, their 4-fold orbit about z (an exactly isotropic in-plane covariance, no
    third harmonic, a strong fourth), at asymmetric heights; x stretched by ``aspect``."""
    base = [((1.0, 0.3), -1.0), ((0.7, -0.2), 0.4), ((0.9, 0.1), 2.5)]
    pts = []
    for (x, y), z in base:
        for k in range(4):
            c, s = math.cos(k * math.pi / 2), math.sin(k * math.pi / 2)
            pts.append((aspect * (c * x - s * y), s * x + c * y, z))
    return torch.tensor(pts, dtype=torch.float64)


def _net(out=4):
    torch.manual_seed(0)
    return PointNet(0, out, hidden_channels=(16,), emb_dims=32, head_channels=(16,)).double().eval()


def test_exact_double_eigenvalue_is_exact_with_harmonic_frames():
    pos = _square_prism()
    fr = pca_frames(pos, degenerate="harmonic")
    assert fr.rel_gaps[0].min() < 1e-12  # a double eigenvalue up to rounding: eigh's in-plane basis is arbitrary
    net = _net()
    torch.manual_seed(1)
    harm = FrameAveraging(net, "E3", irreps_out="0e + 1o", degenerate="harmonic").eval()
    blend = FrameAveraging(net, "E3", irreps_out="0e + 1o").eval()
    e_h = assert_equivariant(harm, pos, group="E3", irreps_out="0e + 1o", n_trials=4, rtol=1.0)
    e_b = assert_equivariant(blend, pos, group="E3", irreps_out="0e + 1o", n_trials=4, rtol=1.0)
    assert e_h <= 1e-9  # the four directions maximising the 4th angular moment are intrinsic to the plane
    assert e_b > 1e3 * max(e_h, 1e-15)  # the grid blend is only approximately equivariant there
    for group in ("SE3", "SO3"):
        fa = FrameAveraging(net, group, irreps_out="0e + 1o", degenerate="harmonic", signs="shrink").eval()
        assert assert_equivariant(fa, pos, group=group, irreps_out="0e + 1o", n_trials=3, rtol=1.0) <= 1e-9


@pytest.mark.parametrize("group", ["O3", "SO3"])
def test_harmonic_frames_are_orthogonal_and_weighted(group):
    fr = pca_frames(_square_prism(), group=group, degenerate="harmonic", signs="shrink")
    used = fr.weights[0] > 0
    R = fr.rotations[0, used]
    assert torch.allclose(R.mT @ R, torch.eye(3, dtype=torch.float64).expand_as(R), atol=1e-12)
    if group == "SO3":
        assert torch.allclose(torch.linalg.det(R), torch.ones(len(R), dtype=torch.float64))
    assert torch.allclose(fr.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    # 4-fold orientation: 4 directions; the z axis (skewed heights) is signed by the skewness
    assert int(used.sum()) == {"O3": 8, "SO3": 4}[group]


def test_output_is_continuous_as_the_tie_opens():
    """Stretch the square: the relative gap goes from 0 through tie_tol; no step of the output dominates."""
    fa = FrameAveraging(_net(), "E3", irreps_out="0e + 1o", degenerate="harmonic", signs="shrink").eval()
    aspects = torch.linspace(1.0, 1.5, 26, dtype=torch.float64).tolist()
    with torch.no_grad():
        outs = torch.stack([fa(_square_prism(a))[0] for a in aspects])
        gaps = [float(pca_frames(_square_prism(a)).rel_gaps[0, 0]) for a in aspects]
    assert gaps[0] < 1e-12 and gaps[-1] > 0.1  # the band [0, tie_tol = 0.1] is crossed
    steps = (outs[1:] - outs[:-1]).abs().amax(1)
    neighbours = torch.maximum(steps[:-2], steps[2:])
    assert (steps[1:-1] < 3 * neighbours).all()  # no isolated jump: each step is like its neighbours
    assert steps.max() < 0.2 * (outs - outs[:1]).abs().max()
