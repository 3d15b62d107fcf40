"""Signs by extremes first (``signs="extent"``): the range asymmetry of the projections, then the skewness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3

from equinets.data.shapes_hard import SHAPES_HARD_CLASSES, sample_shape_hard
from equinets.frames import SIGN_POLICIES, pca_frames
from equinets.frames.pca import EDGE_TOL, EXTENT_TOL, FACE_TOL, frame_sign_stats
from equinets.train.config import CHOICES


def _cloud(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.empty(n, 3, dtype=torch.float64).exponential_(generator=g) * torch.tensor([1.0, 2.0, 3.5])


def test_range_asymmetry_closed_form_and_symmetries():
    pos = _cloud()
    U = o3.rand_matrix(1, dtype=torch.float64)
    a = frame_sign_stats(pos, bases=U, statistic="extent")[0]
    z = (pos - pos.mean(0)) @ U[0]
    ref = (z.amax(0) + z.amin(0)) / (z.amax(0) - z.amin(0))
    assert torch.allclose(a, ref, atol=1e-14, rtol=0)
    # odd in the sign of each column, invariant to rotation / reflection, translation and scale
    flip = torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(frame_sign_stats(pos, bases=U * flip, statistic="extent")[0], a * flip, atol=1e-14)
    Q = o3.rand_matrix(dtype=torch.float64) * -1.0  # improper
    moved = 2.5 * pos @ Q.T + torch.tensor([3.0, -1.0, 7.0], dtype=torch.float64)
    assert torch.allclose(frame_sign_stats(moved, bases=(Q @ U[0])[None], statistic="extent")[0], a, atol=1e-12)


def test_zero_weight_points_and_degenerate_clouds():
    pos = _cloud(50)
    far = torch.cat([pos, torch.tensor([[100.0, 0.0, 0.0]], dtype=torch.float64)])
    w = torch.cat([torch.ones(50, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    U = torch.eye(3, dtype=torch.float64)[None]
    ref = frame_sign_stats(pos, bases=U, statistic="extent")
    assert torch.allclose(frame_sign_stats(far, bases=U, weights=w, statistic="extent"), ref, atol=1e-14)
    for cloud in (torch.ones(1, 3, dtype=torch.float64), torch.full((5, 3), 2.0, dtype=torch.float64),
                  torch.linspace(0, 1, 6, dtype=torch.float64)[:, None] * torch.tensor([1.0, 0.0, 0.0])):
        a = frame_sign_stats(cloud, bases=U, statistic="extent")
        assert torch.isfinite(a).all() and (a[0, 1:] == 0).all()


def test_bad_statistic_is_refused_by_name():
    with pytest.raises(ValueError, match="statistic"):
        frame_sign_stats(_cloud(10), statistic="kurtosis")


def test_config_offers_every_sign_policy():
    assert tuple(CHOICES["fa_signs"]) == SIGN_POLICIES


def _dip(seed, label="dip_6"):
    rng = np.random.default_rng(seed)
    p, _ = sample_shape_hard(SHAPES_HARD_CLASSES.index(label), rng, 1024)
    return torch.tensor(p, dtype=torch.float64) @ o3.rand_matrix(dtype=torch.float64).T


def test_dip_legs_fix_the_thin_axis_where_the_skewness_does_not():
    """A package with legs on one side: its extremes decide the sign of the thin axis in every resample, and the
    legs land on the same side of every frame; the skewness alone leaves that sign open in some resamples."""
    torch.manual_seed(0)
    open_by_skewness = 0
    for seed in range(6):
        pos = _dip(seed)
        for signs in ("shrink", "extent"):
            fr = pca_frames(pos, group="E3", signs=signs, degenerate="none")
            keep = fr.weights[0] > 0
            framed = (pos - fr.translation[0]) @ fr.rotations[0, keep]  # (F, N, 3) -> columns: thin, mid, long
            thin = framed[..., 0]
            legs_positive = thin.amax(-1) > -thin.amin(-1)  # the legs reach further than the flat top
            if signs == "extent":
                assert int(keep.sum()) == 4  # only the two mirror symmetries of the package are averaged
                assert legs_positive.all()
            else:
                open_by_skewness += int(not legs_positive.all())
    assert open_by_skewness >= 1


def test_weights_are_continuous_across_the_extent_threshold():
    """Move one extreme point through the balanced range: the +x sign weight goes from 0 to 1 through the band
    ``|a| < EXTENT_TOL`` in small steps (the skewness is switched off by a huge ``sign_tol`` to isolate the band)."""
    base = torch.cat([_cloud(300, seed=3) * torch.tensor([0.0, 1.0, 1.0]),  # a flat cloud in the y-z plane
                      torch.tensor([[-2.0, 0.0, 0.0]], dtype=torch.float64)], 0)
    base = base - base.mean(0)

    def weight_plus_x(t):
        pos = torch.cat([base, torch.tensor([[t, 0.3, 0.2]], dtype=torch.float64)])
        fr = pca_frames(pos, group="O3", signs="extent", degenerate="none", sign_tol=1e6)
        R, wts = fr.rotations[0], fr.weights[0]
        k = int(R[0, 0, :].abs().argmax())  # the frame column along x
        a = frame_sign_stats(pos, bases=R[:1], statistic="extent")[0, k] * R[0, 0, k].sign()
        return float(wts[R[:, 0, k] > 0].sum()), float(a)

    ts = torch.linspace(1.5, 2.5, 101, dtype=torch.float64).tolist()
    w, a = torch.tensor([weight_plus_x(t) for t in ts], dtype=torch.float64).T
    assert a[0] < -EXTENT_TOL and a[-1] > EXTENT_TOL
    assert w[0] < 1e-12 and w[-1] > 1 - 1e-12 and (w[1:] >= w[:-1] - 1e-12).all()
    inside = (a.abs() < EXTENT_TOL).sum()
    assert inside >= 10 and (w[1:] - w[:-1]).abs().max() < 0.1  # no switch: many small steps


# -- signs="detail": the edge centroid (surface variation of local covariances) --------------------------------------

def _notched(seed):
    rng = np.random.default_rng(seed)
    p, _ = sample_shape_hard(SHAPES_HARD_CLASSES.index("cylinder_notch"), rng, 1024)
    return torch.tensor(p, dtype=torch.float64)


def test_edge_offsets_are_invariant_odd_and_point_order_free():
    pos = _notched(0)
    U = o3.rand_matrix(1, dtype=torch.float64)
    g = frame_sign_stats(pos, bases=U, statistic="edges")[0]
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(frame_sign_stats(pos, bases=U * flip, statistic="edges")[0], g * flip, atol=1e-14)
    Q = -o3.rand_matrix(dtype=torch.float64)
    moved = 0.7 * pos @ Q.T + torch.tensor([5.0, 2.0, -3.0], dtype=torch.float64)
    perm = torch.randperm(pos.shape[0], generator=torch.Generator().manual_seed(1))
    g2 = frame_sign_stats(moved[perm], bases=(Q @ U[0])[None], statistic="edges")[0]
    assert torch.allclose(g2, g, atol=1e-12, rtol=0)


def test_edge_weights_closed_forms():
    """A flat grid has no edge inside (surface variation 0); a cloud of one point or of copies has no edges at all."""
    from equinets.frames.pca import _edge_weights

    xy = torch.cartesian_prod(torch.linspace(-1, 1, 15, dtype=torch.float64), torch.linspace(-1, 1, 15,
                                                                                               dtype=torch.float64))
    plane = torch.cat([xy, torch.zeros(225, 1, dtype=torch.float64)], 1)
    b = torch.zeros(225, dtype=torch.long)
    e = _edge_weights(plane, torch.ones(225, dtype=torch.float64), b, 1)
    assert e.abs().max() < 1e-14
    for cloud in (torch.ones(1, 3, dtype=torch.float64), torch.full((4, 3), 3.0, dtype=torch.float64)):
        n = cloud.shape[0]
        assert (_edge_weights(cloud - cloud.mean(0), torch.ones(n, dtype=torch.float64),
                              torch.zeros(n, dtype=torch.long), 1) == 0).all()
        assert (frame_sign_stats(cloud, bases=torch.eye(3, dtype=torch.float64)[None], statistic="edges") == 0).all()


def test_notch_orients_the_frame_where_moments_do_not():
    """The notched cylinder: the edge centroid leans toward the notch (several times its sampling noise), so the
    detail policy puts the notch on the same side of the frame and concentrates the weight on far fewer frames."""
    nf = {"extent": [], "detail": []}
    gs = []
    for seed in range(4):
        pos = _notched(seed)  # upright: axis z, notch at the top end, at +x
        g = frame_sign_stats(pos, bases=torch.eye(3, dtype=torch.float64)[None], statistic="edges")[0]
        assert g[0] > 0 and g[2] > 0 and g[1].abs() < EDGE_TOL  # toward the notch: +x, top; none across it
        gs.append(g)
        for signs in nf:
            fr = pca_frames(pos @ o3.rand_matrix(dtype=torch.float64).T, group="E3", signs=signs, degenerate="harmonic")
            nf[signs].append(float(1.0 / fr.weights.square().sum()))  # effective number of frames
    assert torch.stack(gs).mean(0)[0] > EDGE_TOL
    assert sum(nf["detail"]) < 0.6 * sum(nf["extent"]), nf


# -- signs="faces": large faces (normal agreement of local covariances) ---------------------------------------------

def _shaft(name, seed, jitter=0.0):
    rng = np.random.default_rng(seed)
    p, _ = sample_shape_hard(SHAPES_HARD_CLASSES.index(name), rng, 1024)
    pos = torch.tensor(p, dtype=torch.float64)
    return pos + jitter * torch.randn(pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_face_offsets_are_invariant_odd_and_point_order_free():
    pos = _shaft("cylinder_flat", 0)
    U = o3.rand_matrix(1, dtype=torch.float64)
    f = frame_sign_stats(pos, bases=U, statistic="faces")[0]
    assert f.abs().max() <= 1.0
    flip = torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(frame_sign_stats(pos, bases=U * flip, statistic="faces")[0], f * flip, atol=1e-14)
    Q = -o3.rand_matrix(dtype=torch.float64)
    moved = 1.7 * pos @ Q.T + torch.tensor([-4.0, 1.0, 2.0], dtype=torch.float64)
    perm = torch.randperm(pos.shape[0], generator=torch.Generator().manual_seed(2))
    f2 = frame_sign_stats(moved[perm], bases=(Q @ U[0])[None], statistic="faces")[0]
    assert torch.allclose(f2, f, atol=1e-11, rtol=0)


def test_face_statistic_closed_forms():
    """Exactly mirror-symmetric clouds (the 6 faces of a cube on a grid) give 0 along the axes; a single face gives
    +-1 along its normal (every face vector points the same way); one point or copies give 0."""
    g = torch.linspace(-1, 1, 9, dtype=torch.float64)
    uv = torch.cartesian_prod(g, g)
    one = torch.ones(81, 1, dtype=torch.float64)
    faces = [torch.cat([s * one, uv], 1)[:, perm] for s in (-1.0, 1.0) for perm in ([0, 1, 2], [1, 0, 2], [1, 2, 0])]
    cube = torch.cat(faces)
    eye = torch.eye(3, dtype=torch.float64)[None]
    assert frame_sign_stats(cube, bases=eye, statistic="faces").abs().max() < 1e-12
    # a box open at -z: its top face (z = +1) is the largest face, its four sides cancel along z
    box = torch.cat([faces[k] for k in (0, 1, 3, 4, 5)])
    f = frame_sign_stats(box, bases=eye, statistic="faces")[0]
    assert f[2] > 0.5 and f[:2].abs().max() < 1e-12
    for cloud in (torch.ones(1, 3, dtype=torch.float64), torch.full((5, 3), 2.0, dtype=torch.float64)):
        assert (frame_sign_stats(cloud, bases=eye, statistic="faces") == 0).all()


def test_flat_of_a_d_shaft_is_seen_by_its_faces():
    """The D-shaft (`cylinder_flat`, flat at +x): the face statistic points at the flat (several times its noise,
    with the training jitter), the edge centroid only weakly; none across the flat."""
    fs = []
    for seed in range(4):
        pos = _shaft("cylinder_flat", seed, jitter=0.01)
        f = frame_sign_stats(pos, bases=torch.eye(3, dtype=torch.float64)[None], statistic="faces")[0]
        assert f[0] > FACE_TOL and f[1].abs() < FACE_TOL, f
        fs.append(f)
    assert torch.stack(fs).mean(0)[0] > 2 * FACE_TOL


def test_faces_orient_the_d_shaft_with_fewer_frames_than_edges():
    """In the tie plane of the D-shaft the face direction (one order-1 direction at the flat) beats the weak edge
    centroid and the 3- and 4-fold moments: the weight sits on far fewer frames than with `detail`."""
    nf = {"detail": [], "faces": []}
    for seed in range(4):
        pos = _shaft("cylinder_flat", seed, jitter=0.01) @ o3.rand_matrix(dtype=torch.float64).T
        for signs in nf:
            fr = pca_frames(pos, group="E3", signs=signs, degenerate="harmonic")
            nf[signs].append(float(1.0 / fr.weights.square().sum()))  # effective number of frames
    assert sum(nf["faces"]) < 0.7 * sum(nf["detail"]), nf


def test_faces_frames_are_continuous_in_the_points():
    """Normals enter weighted by their planarity, so the frames are continuous even where a local normal is
    undefined: the weighted mean frame moves in proportion to a small displacement of the points."""
    pos = _shaft("cylinder_flat", 0, jitter=0.01)
    delta = torch.randn(pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def mean_frame(x):
        fr = pca_frames(x, group="E3", signs="faces", degenerate="harmonic")
        return (fr.rotations * fr.weights[..., None, None]).sum(1)

    ref = mean_frame(pos)
    moves = [float((mean_frame(pos + eps * delta) - ref).abs().max()) for eps in (1e-4, 1e-6, 1e-8)]
    assert moves[0] < 0.05 and moves[1] < 1e-2 * moves[0] + 1e-12 and moves[2] < 1e-2 * moves[1] + 1e-12, moves
