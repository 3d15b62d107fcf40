"""Generated articulated bodies (``articulated``): rigid parts, joint limits, unseen poses, labels and offsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from equinets.data import ARTICULATED_CATEGORIES, ArticulatedDataset, articulated_body, create_dataset
from equinets.data.articulated import _BUILDERS, generate_articulated
from equinets.data.transforms import RandomRotate

SMALL = dict(num_points=192, num_train=20, num_test=20)
BODIES = [(c, k) for c in ARTICULATED_CATEGORIES for k in range(_BUILDERS[c][1])]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("art")


@pytest.fixture(scope="module")
def train(root):
    return ArticulatedDataset(root, "train", **SMALL)


@pytest.fixture(scope="module")
def test(root):
    return ArticulatedDataset(root, "test", **SMALL)


def _rodrigues(axis: int, a: float) -> np.ndarray:
    """Rotation about a coordinate axis by the Rodrigues formula I + sin(a) K + (1 - cos(a)) K^2."""
    e = np.eye(3)[axis]
    K = np.array([[0, -e[2], e[1]], [e[2], 0, -e[0]], [-e[1], e[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


def _kabsch(a: np.ndarray, b: np.ndarray):
    """The proper rigid motion (R, t) minimising |a R^T + t - b| and its largest residual."""
    ca, cb = a.mean(0), b.mean(0)
    U, _, Vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    R = Vt.T @ np.diag([1, 1, d]) @ U.T
    t = cb - R @ ca
    return R, t, np.abs(a @ R.T + t - b).max()


@pytest.mark.parametrize("category,subject", BODIES)
def test_each_part_moves_rigidly_between_two_poses(category, subject):
    body = articulated_body(category, subject)
    rng = np.random.default_rng(7)
    local, nrm, part = body.sample(rng, 600)
    p1, n1 = body.pose(body.random_angles(rng, 0.0, 0.35), local, nrm, part)
    p2, n2 = body.pose(body.random_angles(rng, 0.35, 1.0), local, nrm, part)
    assert np.abs(np.linalg.norm(n2, axis=1) - 1).max() < 1e-12
    for k in range(body.num_parts):
        m = part == k
        assert m.sum() >= 3, (category, k)
        R, t, res = _kabsch(p1[m], p2[m])
        assert res < 1e-10, (category, k, res)
        assert np.abs(R.T @ R - np.eye(3)).max() < 1e-12 and np.linalg.det(R) > 0
        assert np.abs(n1[m] @ R.T - n2[m]).max() < 1e-10  # normals rotate with the part
        d1 = np.linalg.norm(p1[m][:, None] - p1[m][None], axis=-1)  # second formula: distances preserved
        d2 = np.linalg.norm(p2[m][:, None] - p2[m][None], axis=-1)
        assert np.abs(d1 - d2).max() < 1e-10


def test_two_parts_of_one_body_do_not_move_together():
    body = articulated_body("humanoid", 0)
    rng = np.random.default_rng(1)
    local, nrm, part = body.sample(rng, 2000)
    p1, _ = body.pose(np.zeros(body.num_dofs), local, nrm, part)
    p2, _ = body.pose(body.random_angles(rng, 0.5, 1.0), local, nrm, part)
    m = (part == 3) | (part == 4)  # upper arm and forearm across the elbow
    assert _kabsch(p1[m], p2[m])[2] > 1e-2


def test_forward_kinematics_matches_rodrigues_composition():
    body = articulated_body("humanoid", 2)
    angles = body.random_angles(np.random.default_rng(3), 0.2, 0.9)
    R, t = body.transforms(angles)
    d = 0
    for k, j in enumerate(body.joints):
        J = np.eye(3)
        for dof in j.dofs:
            J = J @ _rodrigues(dof.axis, angles[d])
            d += 1
        if j.parent < 0:
            np.testing.assert_allclose(R[k], J, atol=1e-14)
            continue
        np.testing.assert_allclose(R[j.parent].T @ R[k], J, atol=1e-13)  # relative rotation = the joint's
        np.testing.assert_allclose(t[k], R[j.parent] @ np.asarray(j.anchor) + t[j.parent], atol=1e-14)
    R0, t0 = body.transforms(np.zeros(body.num_dofs))
    np.testing.assert_allclose(R0, np.broadcast_to(np.eye(3), R0.shape), atol=0)


def test_hinge_elbow_closed_form():
    """Bending only the left elbow by a moves the forearm about the elbow axis (x) and nothing else."""
    body = articulated_body("humanoid", 0)
    a = 1.1
    angles = np.zeros(body.num_dofs)
    elbow = sum(len(j.dofs) for j in body.joints[:4])  # the forearm_l joint's only DOF
    angles[elbow] = a
    local, nrm, part = body.sample(np.random.default_rng(0), 3000)
    p0, _ = body.pose(np.zeros(body.num_dofs), local, nrm, part)
    p1, _ = body.pose(angles, local, nrm, part)
    fore = part == body.part_names.index("forearm_l")
    pivot = body.transforms(np.zeros(body.num_dofs))[1][4]
    c, s = np.cos(a), np.sin(a)
    Rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    np.testing.assert_allclose(p1[fore], (p0[fore] - pivot) @ Rx.T + pivot, atol=1e-13)
    np.testing.assert_allclose(p1[~fore], p0[~fore], atol=0)


def test_joint_limits_and_the_unseen_pose_split(train, test):
    a = train.train_articulation
    for ds, (lo, hi) in ((train, (0.0, a)), (test, (a, 1.0))):
        for i in range(len(ds)):
            body = ds.body(i)
            ang = ds[i].angles[0, : body.num_dofs].double().numpy()
            assert (ang >= body.lower - 1e-6).all() and (ang <= body.upper + 1e-6).all()
            s = body.articulation(ang)
            assert (s >= lo - 1e-5).all() and (s <= hi + 1e-5).all(), (ds.split, i)
            assert not ds[i].angles[0, body.num_dofs:].any()  # padding is zero


def test_labels_offsets_and_subjects_are_consistent(train):
    S = len(train.subject_names)
    assert S == 10 and train.num_classes == 22 and train.classes[0] == "humanoid/pelvis"
    for i in range(len(train)):
        d = train[i]
        assert int(d.subject) == i % S and torch.equal(d.y, d.part)
        parts = train.category_parts[int(d.category)]
        assert set(d.part.tolist()) <= set(parts)
        centre = d.pos.double() + d.part_offset.double()
        for k in d.part.unique().tolist():
            m = d.part == k
            np.testing.assert_allclose(centre[m], d.pos[m].double().mean(0).expand(int(m.sum()), 3), atol=2e-6)
    assert np.allclose(train.pos.double().mean(1).numpy(), 0, atol=1e-5)  # centred at the centroid


def test_subject_classification_task(root):
    ds = ArticulatedDataset(root, "test", task="cls", categories=["humanoid"], **SMALL)
    assert ds.task == "cls" and ds.classes == [f"humanoid/s{k}" for k in range(6)]
    assert [int(ds[i].y) for i in range(8)] == [i % 6 for i in range(8)]
    assert ds.num_categories == 1 and ds.category_parts == [list(range(11))]
    assert ds.label_counts().tolist() == [4, 4, 3, 3, 3, 3]


def test_subjects_differ_and_bodies_are_fixed():
    ext = []
    for k in range(6):
        body = articulated_body("humanoid", k)
        p, n, part = body.sample(np.random.default_rng(0), 4000)
        p, _ = body.pose(np.zeros(body.num_dofs), p, n, part)
        ext.append(p.max(0) - p.min(0))
        again = articulated_body("humanoid", k)
        assert [q.params for q in again.patches] == [q.params for q in body.patches]
    ext = np.array(ext)
    assert np.abs(ext[:, None] - ext[None]).max(-1)[~np.eye(6, dtype=bool)].min() > 0.02


def test_deterministic_cached_and_seeded(root, train):
    again = ArticulatedDataset(root, "train", **SMALL)
    assert torch.equal(again.pos, train.pos) and torch.equal(again.extra["part"], train.extra["part"])
    fresh = generate_articulated(3, 192, seed=0, split="train", noise=0.005)
    assert torch.equal(fresh["pos"], train.pos[:3])
    other = generate_articulated(3, 192, seed=1, split="train", noise=0.005)
    assert not torch.equal(other["pos"], fresh["pos"])
    assert len(list((root / "articulated").glob("*/manifest.json"))) >= 1
    made = create_dataset("articulated", root, "train", **SMALL)
    assert torch.equal(made.pos, train.pos)


def test_rotation_protocol_rotates_the_offsets(train):
    t = RandomRotate.for_dataset("O3", train)
    R = t.sample(1, torch.Generator().manual_seed(4))[0]
    d = train[2]
    out = t(train[2], torch.Generator().manual_seed(4))
    torch.testing.assert_close(out.part_offset, d.part_offset @ R.T, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.pos, d.pos @ R.T, atol=1e-6, rtol=0)
    assert torch.equal(out.part, d.part) and torch.equal(out.angles, d.angles)


def test_batches_collate_per_point_fields(train):
    batch = next(iter(DataLoader(train, batch_size=4)))
    assert batch.part.shape == (4 * 192,) and batch.part_offset.shape == (4 * 192, 3)
    assert batch.subject.shape == (4,) and batch.category.shape == (4,) and batch.angles.shape == (4, 22)
