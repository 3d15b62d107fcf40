"""Generated datasets: ``shapes`` and ``parts``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from equinets.data import (
    PART_CATEGORY_PARTS,
    SHAPE_CLASSES,
    PartsDataset,
    ShapesDataset,
    create_dataset,
    generate_parts,
    generate_shapes,
)
from equinets.data._io import content_hash
from equinets.data.shapes import sample_shape

SMALL = dict(num_points=128, num_train=60, num_test=30)
CONVEX = ["sphere", "ellipsoid", "cube", "box", "cylinder", "cone", "pyramid", "capsule", "triangular_prism",
          "octahedron", "tetrahedron", "hemisphere"]  # fmt: skip


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return ShapesDataset(tmp_path_factory.mktemp("d"), "train", **SMALL)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return PartsDataset(tmp_path_factory.mktemp("d"), "train", num_points=256, num_train=32, num_test=16)


def test_shapes_items_have_documented_fields(shapes):
    d = shapes[0]
    assert d.pos.dtype == torch.float32 and d.pos.shape == (128, 3)
    assert d.x.dtype == torch.float32 and d.x.shape == (128, 3)
    assert d.y.dtype == torch.long and d.y.shape == (1,)
    assert d.extent.shape == (1, 3) and bool((d.extent[0, 1:] >= d.extent[0, :-1]).all())
    assert shapes.num_classes == len(SHAPE_CLASSES) >= 12 and shapes.classes == SHAPE_CLASSES
    assert shapes.task == "cls" and shapes.up_axis == "z"


def test_shapes_classes_are_balanced(shapes):
    counts = shapes.label_counts()
    assert counts.tolist() == [60 // 15] * 15


def test_shapes_normals_are_unit_and_outward_for_convex_solids():
    out = generate_shapes(2 * 15, 256, seed=3, noise=0.0)
    assert torch.allclose(out["normal"].norm(dim=-1), torch.ones(30, 256), atol=1e-5)
    rel = out["pos"] - out["pos"].mean(1, keepdim=True)
    outward = ((rel * out["normal"]).sum(-1) > 0).float().mean(1)
    for i, c in enumerate(out["y"].tolist()):
        if SHAPE_CLASSES[c] in CONVEX:
            assert outward[i] > 0.99, SHAPE_CLASSES[c]


def test_shapes_are_in_the_unit_sphere_and_centred(shapes):
    norms = shapes.pos.norm(dim=-1)
    assert torch.allclose(norms.amax(1), torch.ones(len(shapes)), atol=1e-5)
    assert shapes.pos.mean(1).abs().max() < 1e-5


def test_shapes_extent_matches_the_points_bounding_box():
    # without noise, the sorted half extents bound the sorted half ranges of the points, and are close
    for label in range(15):
        p, _, ext = sample_shape(label, np.random.default_rng(label), 4096, noise=0.0)
        half = np.sort((p.max(0) - p.min(0)) / 2)
        assert np.all(half <= ext + 1e-4), SHAPE_CLASSES[label]
        assert np.all(half >= 0.85 * ext), SHAPE_CLASSES[label]


def test_shapes_are_deterministic_per_item_and_seed():
    a = generate_shapes(20, 64, seed=5)
    b = generate_shapes(20, 64, seed=5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = generate_shapes(20, 64, seed=6)
    assert not torch.equal(a["pos"], c["pos"])
    # an item does not depend on how many items were generated before or after it
    d = generate_shapes(7, 64, seed=5)
    assert torch.equal(d["pos"], a["pos"][:7])
    # train and test differ
    e = generate_shapes(20, 64, seed=5, split="test")
    assert not torch.equal(a["pos"], e["pos"])


def test_shapes_cache_is_written_reused_and_verified(tmp_path, monkeypatch):
    import equinets.data.shapes as shapes_mod

    ds = ShapesDataset(tmp_path, "test", **SMALL)
    folders = list((tmp_path / "shapes").iterdir())
    assert len(folders) == 1
    assert sorted(p.name for p in folders[0].iterdir()) == [".lock", "manifest.json", "test.pt"]
    manifest = json.loads((folders[0] / "manifest.json").read_text())
    assert manifest["num_points"] == 128 and manifest["dataset"] == "shapes"
    assert manifest["sha256"]["test"] == content_hash(torch.load(folders[0] / "test.pt"))
    calls = []
    real = shapes_mod.generate_shapes
    monkeypatch.setattr(shapes_mod, "generate_shapes", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = ShapesDataset(tmp_path, "test", **SMALL)  # a cache hit: nothing generated
    assert calls == [] and torch.equal(again.pos, ds.pos)
    # a cache file changed behind the manifest's back is regenerated, not trusted
    blob = torch.load(folders[0] / "test.pt")
    blob["pos"] = blob["pos"] * 0.5
    torch.save(blob, folders[0] / "test.pt")
    with pytest.warns(UserWarning, match="SHA-256"):
        fresh = ShapesDataset(tmp_path, "test", **SMALL)
    assert calls == [1] and torch.equal(fresh.pos, ds.pos)
    ShapesDataset(tmp_path, "test", **SMALL, force_reload=True)
    assert calls == [1, 1]
    # the train split joins the same folder and manifest without disturbing the test entry
    ShapesDataset(tmp_path, "train", **SMALL)
    assert set(json.loads((folders[0] / "manifest.json").read_text())["sha256"]) == {"train", "test"}
    assert ShapesDataset(tmp_path, "test", **SMALL) is not None and calls == [1, 1, 1]
    assert not list(folders[0].glob("*.tmp"))


def test_shapes_transform_is_applied_on_access(tmp_path):
    ds = ShapesDataset(tmp_path, "test", **SMALL, transform=lambda d: d.update({"pos": d.pos * 2}) or d)
    assert torch.equal(ds[3].pos, ds.pos[3] * 2)
    assert torch.equal(ds.get(3).pos, ds.pos[3])


def test_parts_labels_are_global_and_within_their_category(parts):
    assert parts.task == "seg" and parts.num_categories >= 6
    flat = [p for ps in parts.category_parts for p in ps]
    assert flat == list(range(parts.num_classes))  # contiguous global ids
    assert all(2 <= len(p) <= 4 for p in parts.category_parts)
    for i in range(len(parts)):
        d = parts[i]
        assert d.y.shape == (256,) and d.y.dtype == torch.long and d.category.shape == (1,)
        allowed = set(parts.category_parts[int(d.category)])
        assert set(d.y.tolist()) <= allowed


def test_parts_every_part_appears_and_categories_are_balanced(parts):
    assert torch.bincount(parts.extra["category"]).tolist() == [32 // 8] * 8
    assert bool((parts.label_counts() > 0).all())
    assert parts.part_to_category()[PART_CATEGORY_PARTS[3][1]] == 3


def test_parts_normals_unit_and_clouds_normalised(parts):
    assert torch.allclose(parts.normal.norm(dim=-1), torch.ones(32, 256), atol=1e-5)
    assert torch.allclose(parts.pos.norm(dim=-1).amax(1), torch.ones(32), atol=1e-5)
    assert parts.pos.mean(1).abs().max() < 1e-5


def test_parts_are_deterministic():
    a, b = generate_parts(10, 64, seed=1), generate_parts(10, 64, seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["pos"], generate_parts(10, 64, seed=2)["pos"])
    assert torch.equal(generate_parts(4, 64, seed=1)["y"], a["y"][:4])


def test_generated_datasets_collate_with_pyg_loader(parts):
    batch = next(iter(DataLoader(parts, batch_size=4)))
    assert batch.pos.shape == (4 * 256, 3) and batch.y.shape == (4 * 256,) and batch.category.shape == (4,)


def test_create_dataset_knows_every_name(tmp_path):
    ds = create_dataset("parts", tmp_path, "test", num_points=32, num_train=8, num_test=8)
    assert isinstance(ds, PartsDataset)
    known = "articulated, dfaust, modelnet40, nbody, parts, scanobjectnn, scenes, shapenetpart, shapes, shapes-hard"
    with pytest.raises(ValueError, match=f"known: {known}"):
        create_dataset("nope")


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="split"):
        ShapesDataset(tmp_path, "val")
    with pytest.raises(ValueError, match="noise"):
        PartsDataset(tmp_path, noise=-1.0)
