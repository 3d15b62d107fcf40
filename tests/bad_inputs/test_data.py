"""Bad inputs to the datasets: each case asserts the error type and that the message names the argument or key.

Fixtures are tiny files in the real on-disk formats (PointNet HDF5, ScanObjectNN HDF5, ModelNet40
``normal_resampled`` text, ShapeNetPart ``_normal`` text).
"""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from equinets._json import dumps, json_safe
from equinets.data import ModelNet40, PartsDataset, ScanObjectNN, ShapeNetPart, ShapesDataset, create_dataset
from equinets.data.shapenetpart import SHAPENETPART_CATEGORIES
from equinets.train.cli import main

RNG = np.random.default_rng(0)


def _modelnet_h5(root, n_data=3, n_label=3, n_normal=None, points=64):
    folder = root / "modelnet40_ply_hdf5_2048"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shape_names.txt").write_text("\n".join(f"c{i}" for i in range(40)) + "\n")
    with h5py.File(folder / "ply_data_train0.h5", "w") as f:
        f["data"] = RNG.standard_normal((n_data, points, 3)).astype(np.float32)
        f["label"] = RNG.integers(0, 40, (n_label, 1)).astype(np.uint8)
        if n_normal is not None:
            f["normal"] = RNG.standard_normal((n_normal, points, 3)).astype(np.float32)
    return folder


def _scanobjectnn(root, n_data=3, n_label=3, mask_shape=None):
    folder = root / "h5_files" / "main_split"
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "training_objectdataset.h5", "w") as f:
        f["data"] = RNG.standard_normal((n_data, 64, 3)).astype(np.float32)
        f["label"] = RNG.integers(0, 15, n_label)
        if mask_shape is not None:
            f["mask"] = np.zeros(mask_shape, np.int64)


def _modelnet_text(root, train=("airplane_0001",)):
    folder = root / "modelnet40_normal_resampled"
    (folder / "airplane").mkdir(parents=True)
    (folder / "modelnet40_shape_names.txt").write_text("airplane\n" + "\n".join(f"c{i}" for i in range(39)) + "\n")
    arr = np.concatenate([RNG.standard_normal((20, 3)), RNG.standard_normal((20, 3))], 1)
    np.savetxt(folder / "airplane" / "airplane_0001.txt", arr, fmt="%.5f", delimiter=",")
    (folder / "modelnet40_train.txt").write_text("".join(f"{n}\n" for n in train))
    (folder / "modelnet40_test.txt").write_text("")
    return folder


def _shapenetpart(root):
    """Two Airplane shapes in train, one Mug in val, none in test."""
    folder = root / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    (folder / "train_test_split").mkdir(parents=True)
    entries = {"train": [], "val": [], "test": []}
    for j, (split, c) in enumerate([("train", 0), ("train", 0), ("val", 11)]):
        syn = SHAPENETPART_CATEGORIES[c][1]
        (folder / syn).mkdir(exist_ok=True)
        lo = sum(k for _, _, k in SHAPENETPART_CATEGORIES[:c])
        arr = np.concatenate([RNG.standard_normal((30, 6)), lo + np.zeros((30, 1))], 1)
        np.savetxt(folder / syn / f"s{j}.txt", arr, fmt="%.5f")
        entries[split].append(f"shape_data/{syn}/s{j}")
    for split, items in entries.items():
        (folder / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(items))
    return folder


# --- array lengths checked against their partners ---------------------------------------------------


def test_modelnet40_hdf5_clouds_vs_labels(tmp_path):
    _modelnet_h5(tmp_path, n_data=3, n_label=2)
    with pytest.raises(ValueError, match=r"ply_data_train0.h5: 'data' holds 3 clouds but 'label' holds 2"):
        ModelNet40(tmp_path, "train", num_points=16)


def test_modelnet40_hdf5_clouds_vs_normals(tmp_path):
    _modelnet_h5(tmp_path, n_data=3, n_label=3, n_normal=4)
    with pytest.raises(ValueError, match=r"'data' holds 3 clouds but 'normal' holds 4"):
        ModelNet40(tmp_path, "train", num_points=16)


def test_modelnet40_hdf5_label_of_the_wrong_shape(tmp_path):
    folder = _modelnet_h5(tmp_path)
    with h5py.File(folder / "ply_data_train0.h5", "a") as f:
        del f["label"]
        f["label"] = np.zeros((3, 2), np.uint8)
    with pytest.raises(ValueError, match=r"'label' should have shape \(n,\) or \(n, 1\)"):
        ModelNet40(tmp_path, "train", num_points=16)


def test_scanobjectnn_clouds_vs_labels(tmp_path):
    _scanobjectnn(tmp_path, n_data=3, n_label=5)
    with pytest.raises(ValueError, match=r"training_objectdataset.h5: 'data' holds 3 clouds but 'label' holds 5"):
        ScanObjectNN(tmp_path, "train", variant="OBJ_BG", num_points=16)


def test_scanobjectnn_mask_points_vs_cloud_points(tmp_path):
    _scanobjectnn(tmp_path, mask_shape=(3, 32))
    with pytest.raises(ValueError, match=r"'data' holds \(3, 64\) \(clouds, points\) but 'mask' holds \(3, 32\)"):
        ScanObjectNN(tmp_path, "train", variant="OBJ_BG", num_points=16)


def test_text_file_with_a_bad_token_or_a_short_row(tmp_path):
    folder = _modelnet_text(tmp_path)
    path = folder / "airplane" / "airplane_0001.txt"
    path.write_text(path.read_text().replace(",", ",x", 1))
    with pytest.raises(ValueError, match=r"cannot parse .*airplane_0001.txt as a table of numbers"):
        ModelNet40(tmp_path, "train", num_points=16)
    snp = _shapenetpart(tmp_path / "s")
    shape = next((snp / SHAPENETPART_CATEGORIES[0][1]).glob("*.txt"))
    shape.write_text(shape.read_text() + "0.1 0.2 0.3 0 0 1\n")  # a row of 6 numbers, 7 expected
    with pytest.raises(ValueError, match=rf"{shape.name} should hold rows of 7 numbers"):
        ShapeNetPart(tmp_path / "s", "train", num_points=16)


def test_shapenetpart_part_label_outside_its_category(tmp_path):
    folder = _shapenetpart(tmp_path)
    shape = next((folder / SHAPENETPART_CATEGORIES[0][1]).glob("*.txt"))
    arr = np.loadtxt(shape)
    arr[0, 6] = 47  # a Table part id in an Airplane
    np.savetxt(shape, arr, fmt="%.5f")
    with pytest.raises(ValueError, match=r"part labels in \[0.0, 47.0\], but Airplane has global integer part ids 0-3"):
        ShapeNetPart(tmp_path, "train", num_points=16)


@pytest.mark.parametrize("damage", ["truncate", "drop_label"])
def test_cli_data_on_a_damaged_hdf5_file_is_one_error_line(tmp_path, capsys, damage):
    folder = tmp_path / "h5_files" / "main_split"
    folder.mkdir(parents=True)
    path = folder / "test_objectdataset_augmentedrot_scale75.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros((2, 64, 3), np.float32)
        if damage == "truncate":
            f["label"] = np.zeros(2, np.int64)
    if damage == "truncate":
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    assert main(["data", "scanobjectnn", "--root", str(tmp_path), "--split", "test", "--num-points", "16"]) == 2
    err = capsys.readouterr().err
    assert path.name in err and len(err.strip().splitlines()) == 1
    assert ("truncated or corrupt" if damage == "truncate" else "has no key(s) ['label']") in err


# --- empty splits ----------------------------------------------------------------------------------


def test_modelnet40_hdf5_empty_split(tmp_path):
    _modelnet_h5(tmp_path, n_data=0, n_label=0)
    with pytest.raises(ValueError, match=r"split 'train' in .*modelnet40_ply_hdf5_2048 is empty"):
        ModelNet40(tmp_path, "train", num_points=16)


def test_modelnet40_text_empty_split(tmp_path):
    _modelnet_text(tmp_path)
    with pytest.raises(ValueError, match=r"split 'test' in .*modelnet40_normal_resampled is empty"):
        ModelNet40(tmp_path, "test", num_points=16)


def test_shapenetpart_empty_split_and_category_with_no_shapes(tmp_path):
    _shapenetpart(tmp_path)
    with pytest.raises(ValueError, match=r"split 'test' in .* is empty"):
        ShapeNetPart(tmp_path, "test", num_points=16)
    with pytest.raises(ValueError, match=r"split 'train' .* is empty .*categories \['Mug'\]"):
        ShapeNetPart(tmp_path, "train", num_points=16, categories=["Mug"])


def test_scanobjectnn_empty_split(tmp_path):
    _scanobjectnn(tmp_path, n_data=0, n_label=0)
    with pytest.raises(ValueError, match=r"split 'train' .* is empty \(training_objectdataset.h5 holds 0 clouds\)"):
        ScanObjectNN(tmp_path, "train", variant="OBJ_BG", num_points=16)


def test_generated_dataset_with_an_empty_split(tmp_path):
    with pytest.raises(ValueError, match="num_test must be an integer >= 1, got 0"):
        ShapesDataset(tmp_path, "test", num_points=16, num_train=15, num_test=0)


def test_cli_data_on_an_empty_split_is_one_error_line(tmp_path, capsys):
    _modelnet_text(tmp_path)
    assert main(["data", "modelnet40", "--root", str(tmp_path), "--split", "test", "--num-points", "16"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "split 'test'" in err and len(err.strip().splitlines()) == 1


# --- typed arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-5, ValueError), (2.5, TypeError), ("1024", TypeError),
                                     (True, TypeError), (None, TypeError)])  # fmt: skip
def test_num_points_of_every_reader(tmp_path, bad, exc):
    _modelnet_h5(tmp_path)
    _scanobjectnn(tmp_path)
    _shapenetpart(tmp_path)
    for make in (lambda: ModelNet40(tmp_path, "train", num_points=bad),
                 lambda: ScanObjectNN(tmp_path, "train", variant="OBJ_BG", num_points=bad),
                 lambda: ShapeNetPart(tmp_path, "train", num_points=bad),
                 lambda: ShapesDataset(tmp_path, "train", num_points=bad, num_train=15, num_test=15),
                 lambda: PartsDataset(tmp_path, "train", num_points=bad, num_train=8, num_test=8)):  # fmt: skip
        with pytest.raises(exc, match="num_points"):
            make()


def test_categories_as_a_bare_string(tmp_path):
    _shapenetpart(tmp_path)
    with pytest.raises(TypeError, match=r"categories must be None or a list .* got str 'Airplane'; .*\['Airplane'\]"):
        ShapeNetPart(tmp_path, "train", categories="Airplane")


def test_unknown_categories_are_all_listed(tmp_path):
    _shapenetpart(tmp_path)
    with pytest.raises(ValueError, match=r"categories has unknown ShapeNetPart categories \['Spaceship', 'Boat'\]"):
        ShapeNetPart(tmp_path, "train", categories=["Airplane", "Spaceship", "Boat"])


@pytest.mark.parametrize("bad,exc", [([], ValueError), ([3], TypeError), ({"Airplane"}, TypeError)])
def test_categories_empty_or_not_names(tmp_path, bad, exc):
    _shapenetpart(tmp_path)
    with pytest.raises(exc, match="categories"):
        ShapeNetPart(tmp_path, "train", categories=bad)


def test_unknown_dataset_name_and_option(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; known: articulated, dfaust, modelnet40"):
        create_dataset("mnist", tmp_path)
    with pytest.raises(TypeError, match="name must be a dataset name"):
        create_dataset(3, tmp_path)
    with pytest.raises(TypeError, match=r"dataset 'shapes' has no option\(s\) \['num_point'\]"):
        create_dataset("shapes", tmp_path, num_point=64)


@pytest.mark.parametrize("make", [
    lambda root, s: ModelNet40(root, s),
    lambda root, s: ScanObjectNN(root, s),
    lambda root, s: ShapeNetPart(root, s),
    lambda root, s: ShapesDataset(root, s),
])  # fmt: skip
def test_bad_split(tmp_path, make):
    with pytest.raises(ValueError, match="split must be one of .* got 'validation'"):
        make(tmp_path, "validation")
    with pytest.raises(TypeError, match="split must be a string"):
        make(tmp_path, ["train"])


def test_bad_layout_variant_seed_noise_and_root(tmp_path):
    with pytest.raises(ValueError, match="layout must be one of 'auto', 'hdf5', 'text', got 'ply'"):
        ModelNet40(tmp_path, layout="ply")
    with pytest.raises(ValueError, match="variant must be one of 'OBJ_BG'"):
        ScanObjectNN(tmp_path, variant="PB_T99")
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        ShapeNetPart(tmp_path, seed=-1)
    with pytest.raises(TypeError, match="noise must be a real number, got str"):
        ShapesDataset(tmp_path, noise="0.01")
    with pytest.raises(ValueError, match="noise must be a finite number >= 0.0, got nan"):
        PartsDataset(tmp_path, noise=float("nan"))
    with pytest.raises(TypeError, match="root must be a path"):
        ModelNet40(None)


# --- strict JSON ---------------------------------------------------------------------------------


def test_json_output_has_no_bare_nan():
    text = dumps({"acc": float("nan"), "loss": [math.inf, 0.5], "n": np.int64(3)})
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {"acc": None, "loss": [None, 0.5],
                                                                                    "n": 3}
    with pytest.raises(TypeError, match="cannot write a object as JSON"):
        json_safe(object())
