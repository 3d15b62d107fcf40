"""Transforms on single clouds and on collated batches."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from equinets.data import (
    Compose,
    Jitter,
    NormalizeUnitSphere,
    RandomRotate,
    RandomScale,
    RandomShift,
    RandomSubsample,
    random_rotation_matrices,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _cloud(n=20, seed=0, dtype=torch.float32):
    g = _gen(seed)
    pos = torch.randn(n, 3, generator=g, dtype=dtype)
    return Data(pos=pos, x=pos / pos.norm(dim=1, keepdim=True), y=torch.tensor([seed]), seg=torch.arange(n))


def _batch():
    return Batch.from_data_list([_cloud(20, 0), _cloud(13, 1), _cloud(7, 2)])


ALL = [
    RandomRotate("SO3", vector_keys=("pos", "x")),
    RandomRotate("O3", vector_keys=("pos", "x")),
    RandomRotate("z", up_axis="y", vector_keys=("pos", "x")),
    Jitter(0.02, 0.05),
    RandomScale(),
    RandomScale(anisotropic=False),
    RandomShift(0.2),
    RandomSubsample(10),
    NormalizeUnitSphere(),
]
COMPOSED = [
    Compose([RandomRotate("SO3", vector_keys=("pos", "x")), RandomScale(), RandomShift(), Jitter(),
             RandomSubsample(5)]),
]


@pytest.mark.parametrize(
    "protocol,up,det", [("SO3", "z", [1.0]), ("z", "z", [1.0]), ("z", "x", [1.0]), ("O3", "z", [-1.0, 1.0])]
)
def test_rotations_are_orthogonal_with_the_protocols_determinant(protocol, up, det, dtype):
    R = random_rotation_matrices(500, protocol, up, generator=_gen(), dtype=dtype)
    eye = torch.eye(3, dtype=dtype).expand(500, 3, 3)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(R @ R.transpose(1, 2), eye, atol=tol)
    dets = torch.linalg.det(R)
    assert set(dets.round().tolist()) == set(det)
    assert torch.allclose(dets.abs(), torch.ones(500, dtype=dtype), atol=tol)


def test_so3_and_o3_draws_are_haar_distributed():
    R = random_rotation_matrices(20000, "SO3", generator=_gen(), dtype=torch.float64)
    assert R.mean(0).abs().max() < 0.03  # E[R] = 0 under Haar
    # E[R_ij^2] = 1/3, and the rotation angle has density (1 - cos t) / pi: E[cos t] = -1/2 ... via trace
    assert torch.allclose((R**2).mean(0), torch.full((3, 3), 1 / 3, dtype=torch.float64), atol=0.01)
    tr = R.diagonal(dim1=1, dim2=2).sum(-1)
    assert abs(float(tr.mean()) - 0.0) < 0.03 and abs(float((tr**2).mean()) - 1.0) < 0.05
    O = random_rotation_matrices(20000, "O3", generator=_gen(1), dtype=torch.float64)
    assert O.mean(0).abs().max() < 0.03
    assert abs(float((torch.linalg.det(O) < 0).double().mean()) - 0.5) < 0.02


@pytest.mark.parametrize("up", ["x", "y", "z"])
def test_z_protocol_rotates_about_the_up_axis(up, dtype):
    d = _cloud(dtype=dtype)
    t = RandomRotate("z", up_axis=up, vector_keys=("pos", "x"))
    out = t(d, _gen())
    i = "xyz".index(up)
    rest = [j for j in range(3) if j != i]
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    for key in ("pos", "x"):
        assert torch.equal(out[key][:, i], d[key][:, i]), key  # the up coordinate is untouched, exactly
        assert torch.allclose(out[key][:, rest].norm(dim=1), d[key][:, rest].norm(dim=1), atol=tol)
        assert not torch.allclose(out[key], d[key])
    R = t.sample(1, _gen(), dtype=torch.float64)[0]
    e = torch.zeros(3, dtype=torch.float64)
    e[i] = 1.0
    assert torch.equal(R @ e, e)


def test_z_rotation_angle_is_uniform():
    R = random_rotation_matrices(10000, "z", generator=_gen(), dtype=torch.float64)
    angle = torch.atan2(R[:, 1, 0], R[:, 0, 0])
    assert abs(float(torch.cos(angle).mean())) < 0.03 and abs(float(angle.mean())) < 0.06


def test_identity_protocol_changes_nothing():
    d = _cloud()
    out = RandomRotate("I", vector_keys=("pos", "x"))(d, _gen())
    assert torch.equal(out.pos, d.pos) and torch.equal(out.x, d.x)


@pytest.mark.parametrize("protocol", ["SO3", "O3", "z"])
def test_rotation_applies_the_sampled_matrix_to_pos_and_normals(protocol, dtype):
    d = _cloud(dtype=dtype)
    d.normal = d.x.clone()
    t = RandomRotate(protocol, vector_keys=("pos", "x", "normal"))
    out = t(d, _gen(7))
    R = t.sample(1, _gen(7), dtype=dtype)[0]
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(out.pos, d.pos @ R.T, atol=tol)
    assert torch.allclose(out.x, d.x @ R.T, atol=tol)
    assert torch.allclose(out.normal, d.normal @ R.T, atol=tol)
    # normals stay consistent with positions: the dot products are invariant
    assert torch.allclose((out.pos * out.x).sum(1), (d.pos * d.x).sum(1), atol=tol * 10)


def test_only_the_declared_keys_and_columns_rotate(dtype):
    d = Data(pos=torch.randn(5, 3, dtype=dtype), x=torch.randn(5, 7, dtype=dtype), n=torch.randn(5, 3, dtype=dtype),
             q=torch.randn(5, 1, dtype=dtype))
    t = RandomRotate("SO3", vector_keys=("pos", ("x", slice(0, 3)), ("x", slice(4, 7))))
    out = t(d, _gen(2))
    R = t.sample(1, _gen(2), dtype=torch.float64)[0].to(dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert torch.allclose(out.pos, d.pos @ R.T, atol=tol)
    assert torch.allclose(out.x[:, :3], d.x[:, :3] @ R.T, atol=tol)
    assert torch.allclose(out.x[:, 4:], d.x[:, 4:] @ R.T, atol=tol)
    assert torch.equal(out.x[:, 3], d.x[:, 3]) and torch.equal(out.n, d.n) and torch.equal(out.q, d.q)
    assert out.x.dtype == dtype
    # an explicit declaration is exact: normals left out stay put
    out = RandomRotate("SO3", vector_keys=("pos",))(_cloud(), _gen())
    assert torch.equal(out.x, _cloud().x) and not torch.equal(out.pos, _cloud().pos)


def test_default_declaration_is_pos_and_the_normals_x_when_present(dtype):
    d, t = _cloud(dtype=dtype), RandomRotate("O3")
    R = t.sample(1, _gen(3), dtype=torch.float64)[0].to(dtype)
    out = t(d, _gen(3))
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert torch.allclose(out.pos, d.pos @ R.T, atol=tol) and torch.allclose(out.x, d.x @ R.T, atol=tol)
    bare = Data(pos=d.pos)
    assert torch.allclose(t(bare, _gen(3)).pos, d.pos @ R.T, atol=tol)
    assert t.vector_keys is None


def test_declarations_are_normalised():
    t = RandomRotate("O3", "y", ["pos", ("x", slice(None, 3)), ["v", slice(3, 6, 1)]])
    assert t.vector_keys == (("pos", None), ("x", slice(0, 3)), ("v", slice(3, 6)))
    assert "vector_keys=(('pos', None)" in repr(t)


def test_batch_rotates_per_point_and_per_cloud_vectors_with_their_clouds_matrix(dtype):
    clouds = [Data(pos=torch.randn(n, 3, dtype=dtype), x=torch.randn(n, 5, dtype=dtype),
                   v=torch.randn(1, 3, dtype=dtype)) for n in (4, 6, 2)]
    b = Batch.from_data_list(clouds)
    t = RandomRotate("SO3", vector_keys=("pos", ("x", slice(1, 4)), "v"))
    out = t(b, _gen(4))
    R = t.sample(3, _gen(4), dtype=torch.float64).to(dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    for c, (d, o) in enumerate(zip(clouds, out.to_data_list())):
        assert torch.allclose(o.pos, d.pos @ R[c].T, atol=tol)
        assert torch.allclose(o.x[:, 1:4], d.x[:, 1:4] @ R[c].T, atol=tol)
        assert torch.equal(o.x[:, [0, 4]], d.x[:, [0, 4]])
        assert torch.allclose(o.v, d.v @ R[c].T, atol=tol)


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
def test_batch_application_matches_per_cloud_application(t):
    b = _batch()
    out = t(b, _gen(3))
    g = _gen(3)
    ref = Batch.from_data_list([t(d, g) for d in b.to_data_list()])
    for key in ("pos", "x", "y", "seg", "batch"):
        assert torch.allclose(out[key].double(), ref[key].double(), atol=1e-6), key
    assert torch.equal(out.ptr, ref.ptr)
    assert [d.pos.shape[0] for d in out.to_data_list()] == [d.pos.shape[0] for d in ref.to_data_list()]


@pytest.mark.parametrize("t", ALL + COMPOSED, ids=lambda t: type(t).__name__)
def test_transforms_do_not_mutate_their_input(t):
    for data in (_cloud(), _batch()):
        before = {k: v.clone() for k, v in data.items() if isinstance(v, torch.Tensor)}
        t(data, _gen())
        for k, v in before.items():
            assert torch.equal(data[k], v), k


def test_generator_makes_transforms_reproducible():
    t = COMPOSED[0]
    a, b = t(_batch(), _gen(5)), t(_batch(), _gen(5))
    assert torch.equal(a.pos, b.pos)
    assert not torch.equal(a.pos, t(_batch(), _gen(6)).pos)


def test_scale_keeps_normals_normal_to_the_scaled_surface():
    # points on the plane n . p = 0 stay on the scaled plane, with the transformed normal
    n = torch.tensor([1.0, 2.0, 2.0]) / 3
    basis = torch.linalg.svd(n[None])[2][1:]  # two tangent directions
    pos = torch.randn(30, 2) @ basis
    d = Data(pos=pos, x=n.expand(30, 3).clone())
    out = RandomScale(0.5, 2.0)(d, _gen())
    assert torch.allclose(out.x.norm(dim=1), torch.ones(30), atol=1e-6)
    assert (out.pos * out.x).sum(1).abs().max() < 1e-5
    assert not torch.allclose(out.x, d.x)


def test_jitter_is_clipped_and_shift_is_per_cloud():
    d = Data(pos=torch.zeros(1000, 3))
    noise = Jitter(0.05, 0.03)(d, _gen()).pos
    assert noise.abs().max() <= 0.03 + 1e-7 and noise.std() > 0.01
    out = RandomShift(0.2)(_batch(), _gen())
    delta = out.pos - _batch().pos
    for c in range(3):
        rows = delta[out.batch == c]
        assert torch.allclose(rows, rows[:1].expand_as(rows)) and rows.abs().max() <= 0.2


def test_subsample_takes_distinct_points_and_repeats_small_clouds():
    b = _batch()
    out = RandomSubsample(10)(b, _gen())
    assert out.pos.shape == (30, 3) and out.batch.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    for c, data in enumerate(out.to_data_list()):
        src = b.to_data_list()[c]
        assert torch.equal(src.pos[data.seg], data.pos) and torch.equal(src.x[data.seg], data.x)
        assert data.y.tolist() == [c]
        if src.pos.shape[0] >= 10:
            assert len(set(data.seg.tolist())) == 10
        else:  # 7 points: every point appears, some twice
            assert set(data.seg.tolist()) == set(range(7))


def test_normalize_unit_sphere_per_cloud_and_single_point():
    out = NormalizeUnitSphere()(_batch())
    for data in out.to_data_list():
        assert data.pos.mean(0).abs().max() < 1e-5
        assert math.isclose(float(data.pos.norm(dim=1).max()), 1.0, rel_tol=1e-5)
    one = NormalizeUnitSphere()(Data(pos=torch.tensor([[3.0, 4.0, 5.0]])))
    assert torch.equal(one.pos, torch.zeros(1, 3))
