"""shapes-hard: deterministic, cached, registered; mirror-pair policies; the near-symmetry it is built to have."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from equinets.data import SHAPES_HARD_CLASSES, ShapesHardDataset, create_dataset, list_datasets
from equinets.data.shapes_hard import sample_shape_hard, shapes_hard_classes
from equinets.frames import pca_frames

KW = dict(num_points=128, num_train=22, num_test=11)


def test_registered_deterministic_and_cached(tmp_path):
    assert "shapes-hard" in list_datasets()
    a = create_dataset("shapes-hard", tmp_path / "a", "train", **KW)
    b = ShapesHardDataset(tmp_path / "b", "train", **KW)
    assert torch.equal(a.pos, b.pos) and torch.equal(a.labels, b.labels)
    assert a.labels.tolist() == list(range(11)) * 2 and a.classes == SHAPES_HARD_CLASSES
    manifest = list((tmp_path / "a" / "shapes-hard").glob("*/manifest.json"))
    assert len(manifest) == 1
    again = ShapesHardDataset(tmp_path / "a", "train", **KW)  # read back from the cache
    assert torch.equal(again.pos, a.pos)
    test = ShapesHardDataset(tmp_path / "a", "test", **KW)
    assert len(test) == 11 and not torch.equal(test.pos, a.pos[:11])
    d = a[4]
    assert d.pos.shape == (128, 3) and d.x.shape == (128, 3) and d.y.tolist() == [4]
    assert torch.allclose(d.x.norm(dim=1), torch.ones(128), atol=1e-5)
    assert torch.allclose(d.pos.norm(dim=1).max(), torch.tensor(1.0), atol=1e-6)


def test_mirror_pair_policies(tmp_path):
    keep = ShapesHardDataset(tmp_path, **KW)
    merge = ShapesHardDataset(tmp_path, mirror_pairs="merge", **KW)
    excl = ShapesHardDataset(tmp_path, mirror_pairs="exclude", **KW)
    assert (keep.num_classes, merge.num_classes, excl.num_classes) == (11, 10, 9)
    assert merge.classes[-1] == "marked" and "marked_cw" not in merge.classes
    cw, ccw = SHAPES_HARD_CLASSES.index("marked_cw"), SHAPES_HARD_CLASSES.index("marked_ccw")
    assert (merge.labels[keep.labels == cw] == merge.labels[keep.labels == ccw][0]).all()
    assert torch.equal(merge.pos, keep.pos)  # merge relabels only
    assert len(excl) == 18 and excl.labels.max() == 8 and excl.classes == shapes_hard_classes("exclude")
    assert torch.equal(excl.pos, keep.pos[(keep.labels != cw) & (keep.labels != ccw)])


def _boss_points(label: int) -> dict[tuple[int, int], int]:
    """Points above the plate per corner quadrant (sign of x, sign of y) of a marked plate."""
    p, _ = sample_shape_hard(label, np.random.default_rng(0), 4000)
    z_top = np.quantile(p[:, 2], 0.7)  # on the plate's top face (about 40 % of the area; no noise)
    top = p[p[:, 2] > z_top + 1e-4]
    return {(sx, sy): int(((np.sign(top[:, 0]) == sx) & (np.sign(top[:, 1]) == sy)).sum())
            for sx in (1, -1) for sy in (1, -1)}


def test_marked_plates_are_mirror_images():
    """Boss sizes grow counter-clockwise (seen from +z) on marked_ccw and clockwise on marked_cw."""
    ccw = _boss_points(SHAPES_HARD_CLASSES.index("marked_ccw"))
    cw = _boss_points(SHAPES_HARD_CLASSES.index("marked_cw"))
    assert ccw[(1, 1)] < ccw[(-1, 1)] < ccw[(-1, -1)] and ccw[(1, -1)] < ccw[(1, 1)]
    assert cw[(1, -1)] < cw[(-1, -1)] < cw[(-1, 1)] and cw[(1, 1)] < cw[(1, -1)]


@pytest.mark.parametrize("name", ["cylinder", "cylinder_flat", "cylinder_notch", "square_package"])
def test_bodies_are_near_symmetric(name):
    """The point of the benchmark: a nearly tied eigenvalue pair (relative gap below 0.12 at 1024 points)."""
    label = SHAPES_HARD_CLASSES.index(name)
    p = torch.stack([torch.from_numpy(sample_shape_hard(label, np.random.default_rng(i), 1024)[0]) for i in range(4)])
    gaps = pca_frames(p.double()).rel_gaps.min(1).values
    assert (gaps < 0.12).all(), (name, gaps)
