import math

import pytest
import torch
from e3nn import o3

from equinets.frames import default_tol, pca_frames


def _cloud(n=40, b=1, dtype=torch.float64):
    """Anisotropic clouds in a random orientation (healthy eigen-gaps)."""
    pos = torch.randn(b, n, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.5], dtype=torch.float64)
    return (pos @ o3.rand_matrix(b, dtype=torch.float64).mT).to(dtype)


@pytest.mark.parametrize("group,nf", [("O3", 8), ("E3", 8), ("SO3", 4), ("SE3", 4)])
def test_sign_frames_are_orthogonal_and_proper_for_so3(group, nf):
    fr = pca_frames(_cloud(b=3), group=group, degenerate="none")
    assert fr.rotations.shape == (3, nf, 3, 3) and fr.rotations.dtype == torch.float64
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(fr.rotations.mT @ fr.rotations, eye, atol=1e-12)
    det = torch.linalg.det(fr.rotations)
    if group in ("SO3", "SE3"):
        assert torch.allclose(det, torch.ones_like(det))
    else:
        assert sorted(det[0].round().tolist()) == [-1.0] * 4 + [1.0] * 4
    assert torch.allclose(fr.weights.sum(1), torch.ones(3, dtype=torch.float64))
    assert not fr.degenerate.any()
    if group in ("O3", "SO3"):
        assert torch.equal(fr.translation, torch.zeros_like(fr.centroid))
    else:
        assert torch.equal(fr.translation, fr.centroid)


def test_blend_frames_shapes_and_weights():
    fr = pca_frames(_cloud(b=2), group="E3", num_angles=3)
    assert fr.rotations.shape == (2, 8 * (2 * 3 + 4), 3, 3)
    assert torch.allclose(fr.weights.sum(1), torch.ones(2, dtype=torch.float64))
    assert (fr.weights[:, 8:] == 0).all()  # generic clouds use only the 8 sign frames
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(fr.rotations.mT @ fr.rotations, eye, atol=1e-12)
    fr = pca_frames(_cloud(b=2), group="SO3")
    det = torch.linalg.det(fr.rotations)
    assert torch.allclose(det, torch.ones_like(det))


@pytest.mark.parametrize("group", ["E3", "SE3"])
def test_frame_set_is_equivariant(group):
    pos = _cloud(n=30)[0]
    Q = o3.rand_matrix(dtype=torch.float64)
    if group == "E3":
        Q = -Q
    t = torch.randn(3, dtype=torch.float64) * 10
    a = pca_frames(pos, group=group, degenerate="none")
    b = pca_frames(pos @ Q.T + t, group=group, degenerate="none")
    assert torch.allclose(b.centroid[0], Q @ a.centroid[0] + t, atol=1e-12)
    moved = Q @ a.rotations[0]  # (F, 3, 3)
    dist = (b.rotations[0][:, None] - moved[None]).flatten(2).abs().amax(-1)  # (F, F)
    assert dist.amin(1).max() < 1e-10 and dist.amin(0).max() < 1e-10  # equal as sets


def test_zero_weight_points_do_not_count_and_weights_are_scale_free():
    pos = _cloud(n=20)[0]
    w = torch.rand(20, dtype=torch.float64)
    extra = torch.randn(5, 3, dtype=torch.float64) * 100
    a = pca_frames(pos, weights=w)
    b = pca_frames(torch.cat([pos, extra]), weights=torch.cat([3 * w, torch.zeros(5, dtype=torch.float64)]))
    assert torch.allclose(a.centroid, b.centroid) and torch.allclose(a.eigenvalues, b.eigenvalues)
    assert torch.allclose(a.rotations.abs(), b.rotations.abs(), atol=1e-10)
    with pytest.raises(ValueError, match="non-negative"):
        pca_frames(pos, weights=-w)
    # all-zero weights fall back to uniform
    c = pca_frames(pos, weights=torch.zeros(20, dtype=torch.float64))
    assert torch.allclose(c.centroid, pos.mean(0, keepdim=True))


def test_centroid_accumulated_in_float64():
    pos64 = _cloud(n=1000)[0] + 1e4
    fr = pca_frames(pos64.float())
    exact = pos64.float().double().mean(0)
    assert fr.centroid.dtype == torch.float64
    assert (fr.centroid[0] - exact).abs().max() < 1e-9


def test_batched_equals_per_cloud_ragged():
    sizes = [3, 7, 12]
    pos = torch.randn(sum(sizes), 3, dtype=torch.float64)
    batch = torch.arange(3).repeat_interleave(torch.tensor(sizes))
    fr = pca_frames(pos, batch)
    for b, chunk in enumerate(pos.split(sizes)):
        one = pca_frames(chunk)
        assert torch.allclose(fr.centroid[b], one.centroid[0])
        assert torch.allclose(fr.eigenvalues[b], one.eigenvalues[0])
        assert torch.allclose(fr.weights[b], one.weights[0])


def _polygon(k):
    th = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return torch.stack([th.cos(), th.sin(), torch.zeros_like(th)], 1)


@pytest.mark.parametrize(
    "name,pos,expect",
    [
        ("one point", torch.ones(1, 3, dtype=torch.float64), "triple"),
        ("duplicates", torch.ones(5, 3, dtype=torch.float64) * 2.5, "triple"),
        ("line", torch.linspace(0, 1, 6, dtype=torch.float64)[:, None] * torch.tensor([1.0, 2.0, 3.0]), "12"),
        ("hexagon", _polygon(6), "23"),
        ("cube", torch.cartesian_prod(*[torch.tensor([-1.0, 1.0], dtype=torch.float64)] * 3), "triple"),
    ],
)
def test_degenerate_spectra_are_detected(name, pos, expect):
    fr = pca_frames(pos)
    assert bool(fr.degenerate), name
    assert torch.isfinite(fr.rotations).all() and torch.isfinite(fr.weights).all()
    F0, m = 8, 4
    w = fr.weights[0]
    sets = {"12": w[F0 : F0 + 8 * (m - 1)], "23": w[F0 + 8 * (m - 1) : F0 + 16 * (m - 1)], "triple": w[-40:]}
    assert (sets[expect] > 0).all(), name
    assert torch.allclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_blend_weights_are_continuous_in_the_gap():
    tol = 1e-3
    gaps = torch.logspace(-6, -2, 41, dtype=torch.float64)
    pos = torch.cat([torch.eye(3), -torch.eye(3)]).double()
    ws, rel = [], []
    for g in gaps:
        scale = torch.tensor([1.0, (1 + g).sqrt(), 2.0], dtype=torch.float64)
        fr = pca_frames(pos * scale, tol=tol)
        ws.append(fr.weights[0])
        rel.append(fr.rel_gaps[0, 0])
    ws, rel = torch.stack(ws), torch.stack(rel)
    assert torch.allclose(rel, gaps / 4)  # eigenvalues proportional to (1, 1 + g, 4)
    extra = ws[:, 8:].sum(1)
    assert (extra > 0)[rel < tol * 0.99].all() and (extra == 0)[rel >= tol].all()
    assert (ws[1:] - ws[:-1]).abs().max() < 0.2  # no jump between neighbouring gaps
    assert default_tol(torch.float32) == pytest.approx(3.45e-4, rel=1e-2)
