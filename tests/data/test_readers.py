"""File readers: tiny fixtures written in the real on-disk formats, read back with the real readers."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from equinets.data import ModelNet40, ScanObjectNN, ShapeNetPart, create_dataset
from equinets.data.shapenetpart import SHAPENETPART_CATEGORIES

RNG = np.random.default_rng(0)


def _unit(a):
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


# --- ModelNet40 ---------------------------------------------------------------------------------


def _modelnet_hdf5(folder, normals=True):
    folder.mkdir(parents=True)
    names = [f"class{i:02d}" for i in range(40)]
    (folder / "shape_names.txt").write_text("\n".join(names) + "\n")
    files = {}
    for name, n in [("ply_data_train0.h5", 3), ("ply_data_train1.h5", 2), ("ply_data_test0.h5", 2)]:
        data = RNG.standard_normal((n, 2048, 3)).astype(np.float32)
        nrm = _unit(RNG.standard_normal((n, 2048, 3)))
        label = RNG.integers(0, 40, (n, 1)).astype(np.uint8)
        with h5py.File(folder / name, "w") as f:
            f["data"], f["label"] = data, label
            if normals:
                f["normal"] = nrm
            f["faceId"] = np.zeros((n, 2048), np.int32)
        files[name] = (data, nrm, label)
    (folder / "train_files.txt").write_text("ply_data_train0.h5\nply_data_train1.h5\n")
    return files


def test_modelnet40_hdf5_values_round_trip(tmp_path):
    files = _modelnet_hdf5(tmp_path / "modelnet40_ply_hdf5_2048")
    ds = ModelNet40(tmp_path, "train", num_points=1024)  # root = parent folder
    assert ds.layout == "hdf5" and len(ds) == 5 and ds.num_classes == 40 and ds.up_axis == "y"
    data = np.concatenate([files["ply_data_train0.h5"][0], files["ply_data_train1.h5"][0]])
    nrm = np.concatenate([files["ply_data_train0.h5"][1], files["ply_data_train1.h5"][1]])
    label = np.concatenate([files["ply_data_train0.h5"][2], files["ply_data_train1.h5"][2]])[:, 0]
    d = ds[4]
    assert torch.equal(d.pos, torch.from_numpy(data[4, :1024]))  # the FIRST num_points points
    assert torch.equal(d.x, torch.from_numpy(nrm[4, :1024]))
    assert d.y.tolist() == [int(label[4])] and d.y.dtype == torch.long
    test = ModelNet40(tmp_path / "modelnet40_ply_hdf5_2048", "test", num_points=16)  # root = the folder
    assert len(test) == 2 and test[0].pos.shape == (16, 3)


def test_modelnet40_hdf5_without_normals_has_no_x(tmp_path):
    _modelnet_hdf5(tmp_path / "modelnet40_ply_hdf5_2048", normals=False)
    d = ModelNet40(tmp_path, "test", num_points=8)[0]
    assert d.x is None


def test_modelnet40_text_layout_round_trip(tmp_path):
    folder = tmp_path / "modelnet40_normal_resampled"
    classes = ["airplane", "night_stand"] + [f"c{i}" for i in range(38)]
    folder.mkdir()
    (folder / "modelnet40_shape_names.txt").write_text("\n".join(classes) + "\n")
    shapes = {"airplane_0001": None, "night_stand_0002": None, "airplane_0003": None}
    for name in shapes:
        cls = name.rsplit("_", 1)[0]
        (folder / cls).mkdir(exist_ok=True)
        arr = np.concatenate([RNG.standard_normal((40, 3)), _unit(RNG.standard_normal((40, 3)))], 1)
        np.savetxt(folder / cls / f"{name}.txt", arr, fmt="%.6f", delimiter=",")
        shapes[name] = arr.astype(np.float32)
    (folder / "modelnet40_train.txt").write_text("airplane_0001\nnight_stand_0002\n")
    (folder / "modelnet40_test.txt").write_text("airplane_0003\n")
    ds = ModelNet40(tmp_path, "train", num_points=32, layout="text")
    assert ds.layout == "text" and len(ds) == 2
    d = ds[1]
    assert d.y.tolist() == [1]
    np.testing.assert_allclose(d.pos.numpy(), shapes["night_stand_0002"][:32, :3], atol=1e-5)
    np.testing.assert_allclose(d.x.numpy(), shapes["night_stand_0002"][:32, 3:], atol=1e-5)
    assert len(ModelNet40(folder, "test", num_points=32)) == 1  # auto finds the text layout


def test_modelnet40_missing_root_names_the_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        ModelNet40(tmp_path / "nowhere", "train")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "modelnet40_ply_hdf5_2048" / "shape_names.txt") in msg
    assert "modelnet40_normal_resampled" in msg and "datasets/README.md" in msg


def test_modelnet40_truncated_hdf5_gives_an_error_naming_the_file(tmp_path):
    folder = tmp_path / "modelnet40_ply_hdf5_2048"
    _modelnet_hdf5(folder)
    path = folder / "ply_data_train1.h5"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(OSError, match="ply_data_train1.h5"):
        ModelNet40(tmp_path, "train")


def test_modelnet40_too_few_points_is_reported(tmp_path):
    _modelnet_hdf5(tmp_path / "modelnet40_ply_hdf5_2048")
    with pytest.raises(ValueError, match="fewer than num_points"):
        ModelNet40(tmp_path, "train", num_points=4096)


# --- ShapeNetPart -------------------------------------------------------------------------------


def _shapenetpart(root, points=50):
    folder = root / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    (folder / "train_test_split").mkdir(parents=True)
    (folder / "synsetoffset2category.txt").write_text(
        "".join(f"{name}\t{syn}\n" for name, syn, _ in SHAPENETPART_CATEGORIES)
    )
    cat_ids = {"Airplane": 0, "Mug": 11, "Table": 15}
    offsets = np.cumsum([0] + [k for _, _, k in SHAPENETPART_CATEGORIES])
    shapes = {}
    for j, (cat, c) in enumerate([("Airplane", 0), ("Mug", 11), ("Table", 15), ("Mug", 11)]):
        syn = SHAPENETPART_CATEGORIES[c][1]
        (folder / syn).mkdir(exist_ok=True)
        sid = f"shape{j:04d}"
        n = points + j  # different point counts per file
        part = offsets[c] + RNG.integers(0, SHAPENETPART_CATEGORIES[c][2], n)
        xyz, nrm = RNG.standard_normal((n, 3)), _unit(RNG.standard_normal((n, 3)))
        arr = np.concatenate([xyz, nrm, part[:, None]], 1)
        np.savetxt(folder / syn / f"{sid}.txt", arr, fmt="%.6f")
        shapes[f"{syn}/{sid}"] = (arr.astype(np.float32), cat_ids[cat])
    keys = list(shapes)
    for split, ks in [("train", keys[:2]), ("val", keys[2:3]), ("test", keys[3:])]:
        (folder / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(
            json.dumps([f"shape_data/{k}" for k in ks])
        )
    return folder, shapes


def test_shapenetpart_round_trip_and_global_part_ids(tmp_path):
    folder, shapes = _shapenetpart(tmp_path)
    ds = ShapeNetPart(tmp_path, "train", num_points=50)
    assert len(ds) == 2 and ds.num_classes == 50 and ds.num_categories == 16 and ds.up_axis == "y"
    arr, cat = shapes[ds.shape_ids[0]]
    d = ds[0]
    assert len(arr) == 50  # same count: taken in file order
    np.testing.assert_allclose(d.pos.numpy(), arr[:, :3], atol=1e-5)
    np.testing.assert_allclose(d.x.numpy(), arr[:, 3:6], atol=1e-5)
    assert d.y.tolist() == arr[:, 6].astype(int).tolist() and d.category.tolist() == [cat]
    # resampling (51 points on disk -> 50) is deterministic and keeps rows intact
    arr1, cat1 = shapes[ds.shape_ids[1]]
    d1 = ds[1]
    dist = np.linalg.norm(d1.pos.numpy()[:, None] - arr1[None, :, :3], axis=-1)
    assert dist.min(1).max() < 1e-5 and len(set(dist.argmin(1).tolist())) == 50  # distinct rows
    assert set(d1.y.tolist()) <= set(ds.category_parts[cat1])
    again = ShapeNetPart(folder, "train", num_points=50)  # root = the folder itself
    assert torch.equal(again.pos, ds.pos)
    assert ds.category_parts[0] == [0, 1, 2, 3] and ds.category_parts[15] == [47, 48, 49]


def test_shapenetpart_trainval_upsampling_and_category_filter(tmp_path):
    _shapenetpart(tmp_path)
    tv = ShapeNetPart(tmp_path, "trainval", num_points=64)  # more than on disk: with replacement
    assert len(tv) == 3 and tv.pos.shape == (3, 64, 3)
    mugs = ShapeNetPart(tmp_path, "trainval", num_points=16, categories=["mug"])
    assert len(mugs) == 1 and mugs[0].category.tolist() == [11]
    with pytest.raises(ValueError, match="unknown ShapeNetPart categories"):
        ShapeNetPart(tmp_path, "train", categories=["Spaceship"])


def test_shapenetpart_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        ShapeNetPart(tmp_path, "test")
    assert "train_test_split/shuffled_test_file_list.json" in str(e.value)
    assert "datasets/README.md" in str(e.value)
    folder, shapes = _shapenetpart(tmp_path)
    (folder / f"{next(iter(shapes))}.txt").unlink()
    with pytest.raises(FileNotFoundError, match="shape0000.txt"):
        ShapeNetPart(tmp_path, "train")


# --- ScanObjectNN -------------------------------------------------------------------------------


def _scanobjectnn(root, sub, name, n=4):
    folder = root / "h5_files" / sub
    folder.mkdir(parents=True, exist_ok=True)
    data = RNG.standard_normal((n, 2048, 3)).astype(np.float32)
    label = RNG.integers(0, 15, n).astype(np.int64)
    mask = RNG.integers(-1, 2, (n, 2048)).astype(np.int64)
    with h5py.File(folder / name, "w") as f:
        f["data"], f["label"], f["mask"] = data, label, mask
    return folder / name, data, label, mask


@pytest.mark.parametrize(
    "variant,sub,name",
    [
        ("PB_T50_RS", "main_split", "training_objectdataset_augmentedrot_scale75.h5"),
        ("OBJ_ONLY", "main_split_nobg", "training_objectdataset.h5"),
        ("PB_T25_R", "main_split", "training_objectdataset_augmented25rot.h5"),
    ],
)
def test_scanobjectnn_variants_round_trip(tmp_path, variant, sub, name):
    _, data, label, mask = _scanobjectnn(tmp_path, sub, name)
    ds = ScanObjectNN(tmp_path, "train", variant=variant, num_points=100)
    assert len(ds) == 4 and ds.num_classes == 15 and ds.classes[0] == "bag"
    d = ds[2]
    assert torch.equal(d.pos, torch.from_numpy(data[2, :100])) and d.x is None
    assert d.y.tolist() == [int(label[2])] and torch.equal(d.mask, torch.from_numpy(mask[2, :100]))
    assert len(ScanObjectNN(tmp_path / "h5_files", "train", variant=variant)) == 4


def test_scanobjectnn_missing_and_truncated(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        ScanObjectNN(tmp_path, "test", variant="OBJ_BG")
    assert str(tmp_path / "h5_files" / "main_split" / "test_objectdataset.h5") in str(e.value)
    path, *_ = _scanobjectnn(tmp_path, "main_split", "test_objectdataset.h5")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(OSError, match="test_objectdataset.h5"):
        create_dataset("scanobjectnn", tmp_path, "test", variant="OBJ_BG")
    with pytest.raises(ValueError, match="variant"):
        ScanObjectNN(tmp_path, variant="PB_T99")


def test_hdf5_missing_key_is_reported(tmp_path):
    folder = tmp_path / "h5_files" / "main_split"
    folder.mkdir(parents=True)
    with h5py.File(folder / "test_objectdataset.h5", "w") as f:
        f["data"] = np.zeros((1, 2048, 3), np.float32)
    with pytest.raises(KeyError, match="label"):
        ScanObjectNN(tmp_path, "test", variant="OBJ_BG")


# --- the processed cache of the text readers ------------------------------------------------------


def _counting(monkeypatch, module):
    """Count the text files ``module`` parses (its ``read_txt_array``)."""
    from equinets.data import _io

    calls = []

    def counted(path, cols):
        calls.append(str(path))
        return _io.read_txt_array(path, cols)

    monkeypatch.setattr(module, "read_txt_array", counted)
    return calls


def test_shapenetpart_cache_is_written_in_processed_and_hit_without_parsing(tmp_path, monkeypatch):
    import equinets.data.shapenetpart as snp
    from equinets.data._io import content_hash

    folder, shapes = _shapenetpart(tmp_path)
    calls = _counting(monkeypatch, snp)
    first = ShapeNetPart(tmp_path, "trainval", num_points=40, seed=3)
    assert len(calls) == 3  # train (2 files) + val (1 file)
    cache = folder / "processed" / "n40_s3_v1"
    assert sorted(p.name for p in cache.iterdir()) == [".lock", "manifest.json", "train.pt", "val.pt"]
    meta = json.loads((cache / "manifest.json").read_text())
    assert meta["dataset"] == "shapenetpart" and meta["num_points"] == 40 and meta["seed"] == 3
    assert meta["sources"]["train"]["count"] == 3  # the split file and its two shape files
    assert meta["sha256"]["val"] == content_hash(torch.load(cache / "val.pt"))
    second = ShapeNetPart(tmp_path, "trainval", num_points=40, seed=3)
    assert len(calls) == 3  # a cache hit parses nothing
    for k in ("pos", "normal", "labels"):
        assert torch.equal(getattr(first, k), getattr(second, k))
    assert torch.equal(first.extra["category"], second.extra["category"]) and second.labels.dtype == torch.long
    assert second.shape_ids == first.shape_ids
    # a category subset has its own entries; the split entries stay valid
    mugs = ShapeNetPart(tmp_path, "trainval", num_points=40, seed=3, categories=("Mug",))
    assert len(mugs) == 1 and (cache / "train_mug.pt").is_file() and len(calls) == 4
    assert torch.equal(mugs.pos[0], first.pos[first.shape_ids.index(mugs.shape_ids[0])])
    ShapeNetPart(tmp_path, "trainval", num_points=40, seed=3, force_reload=True)
    assert len(calls) == 7


def test_shapenetpart_cache_is_rebuilt_when_a_source_file_changes(tmp_path, monkeypatch):
    import os

    import equinets.data.shapenetpart as snp

    folder, shapes = _shapenetpart(tmp_path)
    calls = _counting(monkeypatch, snp)
    ds = ShapeNetPart(tmp_path, "train", num_points=50)
    key = ds.shape_ids[0]
    arr, _ = shapes[key]
    arr = arr.copy()
    arr[:, :3] += 1.0  # the same file, moved by (1, 1, 1)
    path = folder / f"{key}.txt"
    np.savetxt(path, arr, fmt="%.6f")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a distinct mtime even on coarse clocks
    with pytest.warns(UserWarning, match="source files of 'train' changed"):
        again = ShapeNetPart(tmp_path, "train", num_points=50)
    assert len(calls) == 4  # re-parsed
    np.testing.assert_allclose(again.pos[0].numpy(), ds.pos[0].numpy() + 1.0, atol=1e-5)
    assert torch.equal(again.pos[1], ds.pos[1])
    ShapeNetPart(tmp_path, "train", num_points=50)
    assert len(calls) == 4  # and the rebuilt cache is hit again


def test_corrupt_manifest_or_tensors_are_rebuilt_not_trusted(tmp_path, monkeypatch):
    import equinets.data.shapenetpart as snp

    folder, _ = _shapenetpart(tmp_path)
    calls = _counting(monkeypatch, snp)
    ds = ShapeNetPart(tmp_path, "test", num_points=20)
    cache = folder / "processed" / "n20_s0_v1"
    (cache / "manifest.json").write_text('{"cache_format": 1, "sha256": ')  # truncated JSON
    with pytest.warns(UserWarning, match="manifest.json cannot be read"):
        again = ShapeNetPart(tmp_path, "test", num_points=20)
    assert len(calls) == 2 and torch.equal(again.pos, ds.pos)
    raw = (cache / "test.pt").read_bytes()
    (cache / "test.pt").write_bytes(raw[: len(raw) // 2])  # a truncated tensor file
    with pytest.warns(UserWarning, match="cannot be loaded"):
        third = ShapeNetPart(tmp_path, "test", num_points=20)
    assert len(calls) == 3 and torch.equal(third.pos, ds.pos)
    blob = torch.load(cache / "test.pt")
    blob["pos"][0, 0, 0] += 1.0  # a well-formed file whose tensors differ from the manifest's hash
    torch.save(blob, cache / "test.pt")
    with pytest.warns(UserWarning, match="SHA-256"):
        fourth = ShapeNetPart(tmp_path, "test", num_points=20)
    assert len(calls) == 4 and torch.equal(fourth.pos, ds.pos)


def test_concurrent_builders_parse_once_and_read_complete_caches(tmp_path, monkeypatch):
    """Two readers at once: the second waits on the cache lock, then loads what the first wrote."""
    import threading
    import time

    import equinets.data.shapenetpart as snp
    from equinets.data import _io

    _shapenetpart(tmp_path)
    calls = []

    def slow(path, cols):
        calls.append(str(path))
        time.sleep(0.05)
        return _io.read_txt_array(path, cols)

    monkeypatch.setattr(snp, "read_txt_array", slow)
    out, errors = [None, None], []

    def read(i):
        try:
            out[i] = ShapeNetPart(tmp_path, "train", num_points=30)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(calls) == 2  # the two files of 'train' parsed once, by one of the two readers
    assert torch.equal(out[0].pos, out[1].pos) and torch.equal(out[0].labels, out[1].labels)


def test_modelnet40_text_cache_hit_and_invalidation(tmp_path, monkeypatch):
    import equinets.data.modelnet as mn

    folder = tmp_path / "modelnet40_normal_resampled"
    classes = ["airplane", "bed"] + [f"c{i}" for i in range(38)]
    folder.mkdir()
    (folder / "modelnet40_shape_names.txt").write_text("\n".join(classes) + "\n")
    for name in ("airplane_0001", "bed_0001", "bed_0002"):
        cls = name.rsplit("_", 1)[0]
        (folder / cls).mkdir(exist_ok=True)
        arr = np.concatenate([RNG.standard_normal((30, 3)), _unit(RNG.standard_normal((30, 3)))], 1)
        np.savetxt(folder / cls / f"{name}.txt", arr, fmt="%.6f", delimiter=",")
    (folder / "modelnet40_train.txt").write_text("airplane_0001\nbed_0001\n")
    (folder / "modelnet40_test.txt").write_text("bed_0002\n")
    calls = _counting(monkeypatch, mn)
    a = ModelNet40(tmp_path, "train", num_points=16)
    assert len(calls) == 2 and (folder / "processed" / "n16_v1" / "train.pt").is_file()
    b = ModelNet40(tmp_path, "train", num_points=16)
    assert len(calls) == 2 and torch.equal(a.pos, b.pos) and torch.equal(a.normal, b.normal)
    assert b.labels.tolist() == [0, 1]
    (folder / "modelnet40_train.txt").write_text("airplane_0001\nbed_0001\nbed_0002\n")  # the listing changes
    with pytest.warns(UserWarning, match="changed"):
        c = ModelNet40(tmp_path, "train", num_points=16)
    assert len(calls) == 5 and len(c) == 3 and c.labels.tolist() == [0, 1, 1]
    assert torch.equal(c.pos[:2], a.pos)
    ModelNet40(tmp_path, "train", num_points=8)  # another num_points: another cache folder
    assert len(calls) == 8 and (folder / "processed" / "n8_v1" / "manifest.json").is_file()


def test_load_cached_rebuilds_on_other_parameters_and_reads_through_an_unwritable_folder(tmp_path):
    from equinets.data._io import load_cached

    calls = []

    def build():
        calls.append(1)
        return {"a": {"x": torch.arange(4.0)}, "b": {"x": torch.ones(2)}}

    folder = tmp_path / "c"
    assert load_cached(folder, "a", build, params={"p": 1})["x"].tolist() == [0, 1, 2, 3]
    assert load_cached(folder, "b", build, params={"p": 1})["x"].tolist() == [1, 1] and len(calls) == 1
    with pytest.warns(UserWarning, match="other parameters"):
        load_cached(folder, "a", build, params={"p": 2})
    assert len(calls) == 2 and json.loads((folder / "manifest.json").read_text())["p"] == 2
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="without a cache"):
        out = load_cached(blocker / "sub", "a", build, params={"p": 1})
    assert out["x"].tolist() == [0, 1, 2, 3] and len(calls) == 3
    with pytest.raises(RuntimeError, match="'c'"):
        load_cached(tmp_path / "d", "c", build, params={})
