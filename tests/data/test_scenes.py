"""Generated multi-object scenes (``scenes``): per-object rigid motions, no overlaps, class and instance labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from equinets.data import ScenesDataset, create_dataset, scene_classes
from equinets.data.parts import sample_object
from equinets.data.scenes import generate_scenes, sample_scene
from equinets.data.shapes import sample_shape
from equinets.data.transforms import RandomRotate

SMALL = dict(num_points=240, num_train=12, num_test=12)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("scenes")


@pytest.fixture(scope="module")
def train(root):
    return ScenesDataset(root, "train", **SMALL)


@pytest.mark.parametrize("motion", ["I", "z", "SO3"])
def test_each_object_is_its_canonical_sample_under_its_own_motion(motion):
    s = sample_scene(np.random.default_rng(5), 300, num_objects=(3, 4), motion=motion)
    R, c, part = s["R"], s["centre"], s["part"]
    np.testing.assert_allclose(s["pos"], np.einsum("nij,nj->ni", R[part], s["local"]) + c[part], atol=1e-12)
    for k in range(len(R)):
        assert np.abs(R[k].T @ R[k] - np.eye(3)).max() < 1e-12 and abs(np.linalg.det(R[k]) - 1) < 1e-12
        if motion == "I":
            assert np.array_equal(R[k], np.eye(3))
        if motion == "z":
            np.testing.assert_allclose(R[k][:, 2], [0, 0, 1], atol=1e-15)
        m = part == k
        assert len(set(s["y"][m].tolist())) == 1 and s["y"][m][0] == s["classes"][k]
        # the rigid motion preserves the object's pairwise distances
        d0 = np.linalg.norm(s["local"][m][:, None] - s["local"][m][None], axis=-1)
        d1 = np.linalg.norm(s["pos"][m][:, None] - s["pos"][m][None], axis=-1)
        assert np.abs(d0 - d1).max() < 1e-12
    assert s["centre"][:, 2].tolist() == [0.0] * len(R)


def test_objects_come_from_the_shapes_and_parts_samplers():
    """An object's canonical points are the family's own sample, scaled by its radius (same generator stream)."""
    rng = np.random.default_rng(11)
    s = sample_scene(rng, 200, num_objects=(2, 2), families=["shapes"], motion="I")
    rng = np.random.default_rng(11)
    K = int(rng.integers(2, 3))
    classes = rng.integers(0, 15, K)
    radii = rng.uniform(0.35, 0.6, K)
    p, _, _ = sample_shape(int(classes[0]), rng, 100)
    np.testing.assert_allclose(s["local"][:100], p.astype(float) * radii[0], atol=0)
    s2 = sample_scene(np.random.default_rng(2), 90, num_objects=(1, 1), families=["parts"], motion="I")
    rng = np.random.default_rng(2)
    rng.integers(1, 2)
    label, r = int(rng.integers(0, 8, 1)[0]), rng.uniform(0.35, 0.6, 1)[0]
    np.testing.assert_allclose(s2["local"], sample_object(label, rng, 90)[0].astype(float) * r, atol=0)


def test_no_overlaps_bounding_balls_and_gap():
    for seed in range(20):
        s = sample_scene(np.random.default_rng(seed), 400, num_objects=(4, 6), gap=0.05)
        c, r, part = s["centre"], s["radius"], s["part"]
        K = len(r)
        for k in range(K):
            m = part == k
            assert np.linalg.norm(s["pos"][m] - c[k], axis=1).max() <= r[k] * (1 + 1e-6)
            for j in range(k):
                assert np.linalg.norm(c[k] - c[j]) >= r[k] + r[j] + 0.05 - 1e-12
                gap = np.linalg.norm(s["pos"][m][:, None] - s["pos"][part == j][None], axis=-1).min()
                assert gap >= 0.05 - 1e-9


def test_items_labels_instances_and_offsets(train):
    assert train.num_classes == 23 == len(scene_classes()) and train.category_parts == [list(range(23))]
    for i in range(len(train)):
        d = train[i]
        K = int(d.num_objects)
        assert 2 <= K <= 4 and sorted(d.part.unique().tolist()) == list(range(K))
        counts = torch.bincount(d.part, minlength=K)
        assert int(counts.max() - counts.min()) <= 1  # points split evenly among the objects
        centre = d.pos.double() + d.part_offset.double()
        for k in range(K):
            m = d.part == k
            assert len(d.y[m].unique()) == 1
            np.testing.assert_allclose(centre[m], d.pos[m].double().mean(0).expand(int(m.sum()), 3), atol=2e-6)
        assert int(d.category) == 0


def test_split_motions_and_caching(root, train):
    test = ScenesDataset(root, "test", **SMALL)
    assert train.motion == "z" and test.motion == "SO3"
    again = create_dataset("scenes", root, "train", **SMALL)
    assert torch.equal(again.pos, train.pos) and torch.equal(again.labels, train.labels)
    fresh = generate_scenes(2, 240, seed=0, split="train", noise=0.005, motion="z")
    assert torch.equal(fresh["pos"], train.pos[:2])
    upright = ScenesDataset(root, "test", test_motion="I", **SMALL)
    assert not torch.equal(upright.pos, test.pos)


def test_rotation_protocol_rotates_offsets(train):
    t = RandomRotate.for_dataset("SO3", train)
    R = t.sample(1, torch.Generator().manual_seed(1))[0]
    out = t(train[0], torch.Generator().manual_seed(1))
    torch.testing.assert_close(out.part_offset, train[0].part_offset @ R.T, atol=1e-6, rtol=0)
    assert torch.equal(out.y, train[0].y) and torch.equal(out.part, train[0].part)


def test_one_object_scene_and_one_point_per_object(root):
    ds = ScenesDataset(root, "train", num_points=3, num_train=2, num_test=2, num_objects=3, noise=0.0)
    for i in range(2):
        d = ds[i]
        assert sorted(d.part.tolist()) == [0, 1, 2] and torch.equal(d.part_offset, torch.zeros(3, 3))
