"""Bad input to the piecewise-equivariance data: ``articulated``, ``scenes`` and the DFAUST reader."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest

from equinets.data import DFAUST, ArticulatedDataset, ScenesDataset, articulated_body
from equinets.data._io import CorruptFileError
from equinets.train.config import ConfigError, resolve_config
from equinets.train.loop import build_datasets

V = 6890
TINY = dict(num_points=16, num_train=2, num_test=2)


# --- articulated ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(categories=["dragon"]), ValueError, "categories"),
    (dict(categories=[]), TypeError, "categories"),
    (dict(categories=["lamp", "lamp"]), ValueError, "categories"),
    (dict(train_articulation=1.0), ValueError, "train_articulation"),
    (dict(train_articulation=0.0), ValueError, "train_articulation"),
    (dict(train_articulation="0.3"), TypeError, "train_articulation"),
    (dict(task="reg"), ValueError, "task"),
    (dict(num_points=0), ValueError, "num_points"),
    (dict(noise=-0.1), ValueError, "noise"),
    (dict(seed=1.5), TypeError, "seed"),
])
def test_articulated_arguments(tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ArticulatedDataset(tmp_path, "train", **{**TINY, **kwargs})
    assert not (tmp_path / "articulated").exists()  # refused before any work


def test_articulated_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        ArticulatedDataset(tmp_path, "val", **TINY)


def test_articulated_body_arguments():
    with pytest.raises(ValueError, match="subject"):
        articulated_body("humanoid", 6)
    with pytest.raises(ValueError, match="category"):
        articulated_body("dragon", 0)
    body = articulated_body("lamp", 0)
    with pytest.raises(ValueError, match="angles"):
        body.transforms(np.zeros(body.num_dofs + 1))


def test_articulated_task_must_match_the_config(tmp_path):
    cfg = resolve_config("articulated-subject-pointnet", [f"data_root={tmp_path}", "dataset_kwargs.task=seg",
                                                          "dataset_kwargs.num_train=2", "dataset_kwargs.num_test=2",
                                                          "num_points=16"])
    with pytest.raises(ConfigError, match="task"):
        build_datasets(cfg, splits=("train",))


# --- scenes --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(num_objects=(3, 2)), ValueError, "num_objects"),
    (dict(num_objects=0), ValueError, "num_objects"),
    (dict(num_objects="2"), TypeError, "num_objects"),
    (dict(num_objects=(1, 2, 3)), TypeError, "num_objects"),
    (dict(families=["trees"]), ValueError, "families"),
    (dict(families=[]), TypeError, "families"),
    (dict(train_motion="O3"), ValueError, "train_motion"),
    (dict(test_motion=3), TypeError, "test_motion"),
    (dict(num_points=2, num_objects=3), ValueError, "num_points"),
])
def test_scenes_arguments(tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ScenesDataset(tmp_path, "train", **{**TINY, **kwargs})
    assert not (tmp_path / "scenes").exists()


# --- DFAUST --------------------------------------------------------------------------------------------------------

def _write(folder, seqs=None, faces=True, part_map="npy", nan=False):
    """A tiny DFAUST folder in the official layout (one male file), with the requested defect."""
    folder.mkdir(parents=True, exist_ok=True)
    seqs = seqs or {"50002_punching": (V, 3, 2), "50002_hips": (V, 3, 1)}
    with h5py.File(folder / "registrations_m.hdf5", "w") as f:
        for k, shape in seqs.items():
            v = np.random.default_rng(0).standard_normal(shape)
            if nan:
                v.reshape(-1)[5] = np.nan
            f.create_dataset(k, data=v)
        if faces:
            f.create_dataset("faces", data=np.stack([np.arange(V - 2), np.arange(1, V - 1), np.arange(2, V)], 1))
    if part_map == "npy":
        np.save(folder / "part_map.npy", np.arange(V) % 4)
    return folder.parent


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(protocol="random"), ValueError, "protocol"),
    (dict(test_sequences=["dancing"]), ValueError, "test_sequences"),
    (dict(test_sequences="punching"), TypeError, "test_sequences"),
    (dict(test_fraction=1.0), ValueError, "test_fraction"),
    (dict(num_points=7000), ValueError, "num_points"),
    (dict(frame_step=0), ValueError, "frame_step"),
    (dict(task="seg-and-cls"), ValueError, "task"),
    (dict(part_map=123), TypeError, "part_map"),
])
def test_dfaust_arguments(tmp_path, kwargs, exc, match):
    root = _write(tmp_path / "dfaust")
    with pytest.raises(exc, match=match):
        DFAUST(root, "train", **kwargs)
    assert not (tmp_path / "dfaust" / "processed").exists()


def test_dfaust_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="registrations_m.hdf5"):
        DFAUST(tmp_path, "train")
    root = _write(tmp_path / "dfaust", part_map=None)
    with pytest.raises(FileNotFoundError, match="part_map"):
        DFAUST(root, "train")


@pytest.mark.parametrize("content,match", [
    (np.arange(V - 1) % 4, "one part id per vertex"),
    (np.arange(V) - 1, ">= 0"),
    (np.full(V, 0.5), "integer"),
])
def test_dfaust_bad_part_map(tmp_path, content, match):
    root = _write(tmp_path / "dfaust")
    np.save(tmp_path / "dfaust" / "part_map.npy", content)
    with pytest.raises(ValueError, match=f"part_map.*{match}"):
        DFAUST(root, "train")


def test_dfaust_text_part_map_with_words(tmp_path):
    root = _write(tmp_path / "dfaust")
    bad = tmp_path / "map.txt"
    bad.write_text("0 1 head " * 10)
    with pytest.raises(ValueError, match="part_map"):
        DFAUST(root, "train", part_map=bad)


@pytest.mark.parametrize("seqs,match", [
    ({"50002_punching": (V, 3)}, "50002_punching"),  # a frame axis missing
    ({"50002_punching": (100, 3, 2)}, "6890"),  # not a registration
    ({"bob_punching": (V, 3, 1)}, "bob_punching"),  # not <subject>_<sequence>
])
def test_dfaust_bad_layout(tmp_path, seqs, match):
    root = _write(tmp_path / "dfaust", seqs=seqs)
    with pytest.raises(ValueError, match=match):
        DFAUST(root, "train")


def test_dfaust_no_faces_and_corrupt_file(tmp_path):
    root = _write(tmp_path / "a" / "dfaust", faces=False)
    with pytest.raises(CorruptFileError, match="faces"):
        DFAUST(root, "train")
    root = _write(tmp_path / "b" / "dfaust")
    (tmp_path / "b" / "dfaust" / "registrations_m.hdf5").write_bytes(b"not an hdf5 file")
    with pytest.raises(OSError, match="registrations_m.hdf5"):
        DFAUST(root, "train")


def test_dfaust_nan_coordinates_and_empty_split(tmp_path):
    root = _write(tmp_path / "a" / "dfaust", nan=True)
    with pytest.raises(ValueError, match="NaN"):
        DFAUST(root, "train", test_sequences=["punching"])
    root = _write(tmp_path / "b" / "dfaust")
    with pytest.raises(ValueError, match="split 'test'"):
        DFAUST(root, "test", test_sequences=["knees"])  # no subject performed it


def test_dfaust_without_h5py_names_the_package(tmp_path, monkeypatch):
    root = _write(tmp_path / "dfaust")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="h5py"):
        DFAUST(root, "train")
