"""Shrunk frames (``signs="shrink"``): signs fixed by the skewness of the projections, exact for every input."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from equinets.frames import FrameAveraging, pca_frames
from equinets.frames.pca import frame_sign_stats
from equinets.nn import PointNet
from equinets.testing import assert_equivariant, random_group_elements

POLICIES = [("shrink", "none"), ("shrink", "blend"), ("shrink", "harmonic"), ("all", "harmonic"), ("extent", "none"),
            ("extent", "harmonic"), ("detail", "none"), ("detail", "harmonic"), ("faces", "none"),
            ("faces", "harmonic")]


def _skewed(b=3, n=64, seed=0):
    """Anisotropic clouds with clearly skewed projections (exponential coordinates), randomly rotated."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.empty(b, n, 3, dtype=torch.float64).exponential_(generator=g) * torch.tensor([1.0, 2.0, 3.5])
    return pos @ o3.rand_matrix(b, dtype=torch.float64).mT


def _net(out=4):
    torch.manual_seed(0)
    return PointNet(0, out, hidden_channels=(16,), emb_dims=32, head_channels=(16,)).double().eval()


@pytest.mark.parametrize("group,signs,degenerate", [(g, s, d) for g in ("E3", "SE3") for s, d in POLICIES]
                         + [("O3", "shrink", "harmonic"), ("SO3", "shrink", "harmonic"),
                            ("O3", "extent", "harmonic"), ("SO3", "extent", "harmonic"),
                            ("O3", "detail", "harmonic"), ("SO3", "detail", "harmonic"),
                            ("O3", "faces", "harmonic"), ("SO3", "faces", "harmonic")])
def test_every_policy_is_exactly_equivariant_float64(group, signs, degenerate):
    fa = FrameAveraging(_net(), group, irreps_out="0e + 1o", signs=signs, degenerate=degenerate).eval()
    torch.manual_seed(1)
    for pos in (_skewed(n=32), torch.randn(3, 32, 3, dtype=torch.float64) * torch.tensor([1.0, 1.05, 2.0])):
        err = assert_equivariant(fa, pos, group=group, irreps_out="0e + 1o", n_trials=2, rtol=1.0)
        assert err <= 1e-9, (group, signs, degenerate, err)


def test_improper_elements_are_covered_for_o3():
    """random_group_elements with improper=True: the sign statistic is odd, so reflections are exact too."""
    torch.manual_seed(2)
    fa = FrameAveraging(_net(1), "O3", signs="shrink").eval()
    pos = _skewed(b=2)
    Q, _ = random_group_elements(4, "O3", improper=True)
    assert (torch.linalg.det(Q) < 0).all()
    with torch.no_grad():
        ref = fa(pos)
        for q in Q:
            assert torch.allclose(fa(pos @ q.T), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("group", ["O3", "E3", "SO3", "SE3"])
def test_generic_clouds_have_a_single_frame(group):
    pos = _skewed(b=6)
    fr = pca_frames(pos, group=group, signs="shrink")
    assert ((fr.weights > 0).sum(1) == 1).all()
    assert torch.allclose(fr.weights.max(1).values, torch.ones(6, dtype=torch.float64))
    # the selected frame orients every axis so that the skewness of the projections is positive (O3);
    # SO3 (det = +1): the two most decisive axes, the least decisive one follows from the determinant
    R = fr.rotations[torch.arange(6), fr.weights.argmax(1)]
    s = frame_sign_stats(pos, bases=R)
    if group in ("O3", "E3"):
        assert (s > 0).all()
    else:
        assert torch.allclose(torch.linalg.det(R), torch.ones(6, dtype=torch.float64))
        neg = s < 0
        assert (neg.sum(1) <= 1).all()
        assert (s.abs().argmin(1)[neg.any(1)] == neg.int().argmax(1)[neg.any(1)]).all()


def test_shrunk_frames_are_the_selected_sign_frames():
    """The shrunk frame is one of the paper's 8 sign frames, and FA over it equals the backbone in that frame."""
    pos = _skewed(b=2)
    full = pca_frames(pos, group="E3", degenerate="none")
    fr = pca_frames(pos, group="E3", signs="shrink", degenerate="none")
    for b in range(2):
        R = fr.rotations[b, fr.weights[b].argmax()]
        assert min(float((R - full.rotations[b, f]).abs().max()) for f in range(8)) < 1e-12
    net = _net(3)
    fa = FrameAveraging(net, "E3", signs="shrink", degenerate="none").eval()
    with torch.no_grad():
        R = fr.rotations[torch.arange(2), fr.weights.argmax(1)]
        ref = torch.stack([net((pos[b] - fr.centroid[b]) @ R[b])[0] for b in range(2)])
        assert torch.allclose(fa(pos), ref, atol=1e-12)


def test_symmetric_axes_are_averaged_uniformly():
    """A cloud mirror-symmetric across two planes: those two signs are averaged, the third is fixed."""
    g = torch.Generator().manual_seed(3)
    half = torch.empty(40, 3, dtype=torch.float64).exponential_(generator=g) * torch.tensor([1.0, 2.0, 3.0])
    pos = torch.cat([half * torch.tensor(s) for s in ([1.0, 1, 1], [-1.0, 1, 1], [1.0, -1, 1], [-1.0, -1, 1])])
    s = frame_sign_stats(pos, bases=torch.eye(3, dtype=torch.float64)[None])
    assert s[0, :2].abs().max() < 1e-12 and s[0, 2] > 0.5
    fr = pca_frames(pos, group="O3", signs="shrink", degenerate="none")
    w = fr.weights[0]
    assert torch.allclose(w[w > 0], torch.full((4,), 0.25, dtype=torch.float64))
    zrow = fr.rotations[0, w > 0][:, 2, :]  # z components of the frame axes: the z axis is always +z
    col = zrow.abs().argmax(1)
    assert (col == col[0]).all() and torch.allclose(zrow[:, col[0]], torch.ones(4, dtype=torch.float64))
    fr = pca_frames(pos, group="SO3", signs="shrink", degenerate="none")
    assert torch.allclose(fr.weights[0][fr.weights[0] > 0], torch.full((2,), 0.5, dtype=torch.float64))


def _lever(t: float) -> torch.Tensor:
    """A cloud skewed in every axis plus one point at x = -t: the skewness along x falls through 0 as t grows."""
    g = torch.Generator().manual_seed(4)
    base = torch.empty(60, 3, dtype=torch.float64).exponential_(generator=g) * torch.tensor([2.0, 1.0, 3.0])
    return torch.cat([base, torch.tensor([[-t, 0.5, 0.0]], dtype=torch.float64)])


def _skew_x(t: float) -> float:
    """Skewness along the principal axis closest to x (the statistic the frames use)."""
    pos = _lever(t)
    V = torch.linalg.eigh(torch.cov(pos.T))[1]
    k = int(V[0].abs().argmax())
    s = frame_sign_stats(pos, bases=V[None])[0, k]
    return float(s * V[0, k].sign())


def test_weights_and_outputs_are_continuous_across_the_sign_threshold():
    """Sweep an asymmetric cloud through skewness 0 along one axis: the hard sign choice jumps, the band does not."""
    lo, hi = 0.0, 40.0  # bisect for the t where the x skewness vanishes (the cloud stays clearly asymmetric)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _skew_x(mid) > 0 else (lo, mid)
    t0 = lo
    ts = [t0 + d for d in torch.linspace(-0.41, 0.39, 21, dtype=torch.float64).tolist()]  # skewness 0.13 .. -0.13
    assert _skew_x(ts[0]) > 0.06 and _skew_x(ts[-1]) < -0.06
    net = _net(4)

    def sweep(sign_tol):
        fa = FrameAveraging(net, "E3", signs="shrink", degenerate="none", sign_tol=sign_tol).eval()
        with torch.no_grad():
            nf = [int((fa.frames(_lever(t)).weights > 0).sum()) for t in ts]
            return torch.stack([fa(_lever(t))[0] for t in ts]), nf

    smooth, nf = sweep(0.05)
    assert nf[0] == nf[-1] == 1 and max(nf) == 2  # decided, ambiguous inside the band |skew| < 0.05, decided
    hard, nf_hard = sweep(1e-9)  # (almost) no band: a hard sign choice, one frame everywhere
    assert max(nf_hard) == 1
    assert torch.allclose(smooth[0], hard[0], atol=1e-12) and torch.allclose(smooth[-1], hard[-1], atol=1e-12)
    hard_steps = (hard[1:] - hard[:-1]).abs().amax(1)
    smooth_steps = (smooth[1:] - smooth[:-1]).abs().amax(1)
    jump = hard_steps.max()
    assert jump > 5 * hard_steps.median()  # the hard choice switches frames: one step dominates
    assert smooth_steps.max() < 0.5 * jump  # the band spreads the switch over several steps


@pytest.mark.parametrize("signs,degenerate", [("shrink", "blend"), ("shrink", "harmonic"), ("extent", "harmonic"),
                                                     ("detail", "harmonic"), ("faces", "harmonic")])
@pytest.mark.parametrize(
    "name,pos",
    [
        ("single point", torch.ones(1, 3, dtype=torch.float64)),
        ("duplicates", torch.full((6, 3), 2.0, dtype=torch.float64)),
        ("cube", torch.cartesian_prod(*[torch.tensor([-1.0, 1.0], dtype=torch.float64)] * 3)),
        ("cylinder", torch.cat([torch.stack([torch.cos(a), torch.sin(a), z.expand(12)], 1)
                                for a in [torch.arange(12, dtype=torch.float64) * torch.pi / 6]
                                for z in torch.linspace(-1.5, 1.5, 5, dtype=torch.float64)])),
        ("line", torch.linspace(0, 1, 7, dtype=torch.float64)[:, None] * torch.tensor([1.0, 2.0, 3.0])),
    ],
)
def test_degenerate_clouds_finite_outputs_and_gradients(name, pos, signs, degenerate):
    for group in ("E3", "SO3"):
        fa = FrameAveraging(_net(3), group, irreps_out="1o", signs=signs, degenerate=degenerate).eval()
        fr = fa.frames(pos)
        assert torch.isfinite(fr.rotations).all() and torch.isfinite(fr.weights).all(), name
        assert torch.allclose(fr.weights.sum(1), torch.ones(1, dtype=torch.float64))
        p = pos.clone().requires_grad_(True)
        out = fa(p)
        out.square().sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("signs,degenerate", POLICIES)
def test_frame_set_is_equivariant_with_weights(signs, degenerate):
    """F(QX) = Q F(X) as weighted sets: every frame of QX with weight w is Q R for a frame R of X with weight w."""
    torch.manual_seed(5)
    pos = _skewed(b=1, n=80)[0]
    fr = pca_frames(pos, group="O3", signs=signs, degenerate=degenerate)
    Q, _ = random_group_elements(1, "O3", improper=True)
    fq = pca_frames(pos @ Q[0].T, group="O3", signs=signs, degenerate=degenerate)
    keep, keepq = fr.weights[0] > 0, fq.weights[0] > 0
    A, wa = Q[0] @ fr.rotations[0, keep], fr.weights[0, keep]
    Bq, wb = fq.rotations[0, keepq], fq.weights[0, keepq]
    dist = (A[:, None] - Bq[None]).flatten(2).abs().amax(-1)  # (Fa, Fb)
    match = dist < 1e-9
    assert (match.sum(1) >= 1).all() and (match.sum(0) >= 1).all()
    # weights of matched frames agree (sum over duplicates)
    assert torch.allclose(match.double() @ wb, wa * match.sum(1).double() / match.sum(1).double(), atol=1e-9) or \
        torch.allclose((match.double() * wb).sum(1), wa, atol=1e-9)


def test_train_mode_batchnorm_exact_with_full_shrunk_frames():
    """Shrunk frames are deterministic, so the multiset of framed clouds (hence batch statistics) is invariant."""
    torch.manual_seed(6)
    net = PointNet(0, 4, hidden_channels=(16,), emb_dims=32, head_channels=(16,), dropout=0.0).double()
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
    fa = FrameAveraging(net, "E3", irreps_out="0e + 1o", signs="shrink", degenerate="harmonic").train()
    err = assert_equivariant(fa, _skewed(b=3, n=24), group="E3", irreps_out="0e + 1o", n_trials=2, rtol=1.0)
    assert err <= 1e-9
