"""Rotation protocols are physical: a rotated item is the item of the rotated object, for every dataset.

For each dataset class the reference is built independently of :class:`RandomRotate`: the generated
sets (shapes, parts) are regenerated with their surface patches moved by ``R``; the file readers
read a second copy of the files holding the rotated object; n-body systems are re-simulated from
rotated initial states with the library's integrator.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from equinets.data import ModelNet40, NBody, PartsDataset, ScanObjectNN, ShapeNetPart, ShapesDataset, _surfaces
from equinets.data.nbody import _frame_step, draw_initial_states, simulate_charged
from equinets.data.shapenetpart import SHAPENETPART_CATEGORIES
from equinets.data.transforms import RandomRotate

RNG = np.random.default_rng(0)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _matrix(t: RandomRotate, seed: int) -> np.ndarray:
    """The float64 matrix ``t`` applies to one cloud when called with ``_gen(seed)``."""
    return t.sample(1, _gen(seed), dtype=torch.float64)[0].numpy()


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _tol(dtype):
    # every reference below is stored in float32 by its dataset (files, caches), so float64 cannot do better
    return 2e-5 if dtype == torch.float32 else 1e-5


def _assert_close(a, b, dtype, what):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    err = float((a - b).abs().max())
    assert err < _tol(dtype) * max(1.0, float(b.abs().max())), f"{what}: max error {err:.3g}"


def _cast(d, dtype):
    d = d.clone()
    for k in d.keys():
        if isinstance(d[k], torch.Tensor) and d[k].is_floating_point():
            d[k] = d[k].to(dtype)
    return d


# --- the declarations ---------------------------------------------------------------------------------


def test_every_dataset_class_declares_its_up_axis():
    expected = {ShapesDataset: "z", PartsDataset: "z", NBody: "z", ModelNet40: "y", ShapeNetPart: "y",
                ScanObjectNN: "y"}
    assert {cls: cls.up_axis for cls in expected} == expected
    assert NBody.vector_keys == ("pos", "vel", ("x", slice(0, 3)), "y")  # x[:, 3] is the charge, a scalar


def test_generated_datasets_are_z_up(tmp_path):
    # parts: the table top lies above its legs, the lamp shade above its base (global ids 0/1 and 7/9)
    parts = PartsDataset(tmp_path, num_points=256, num_train=8, num_test=8, noise=0.0)
    table, lamp = parts[0], parts[3]
    assert table.pos[table.y == 0, 2].mean() > table.pos[table.y == 1, 2].mean() + 0.2
    assert table.pos[table.y == 0, 2].max() == table.pos[:, 2].max()
    assert lamp.pos[lamp.y == 9, 2].mean() > lamp.pos[lamp.y == 7, 2].mean() + 0.5
    # shapes: the hemisphere (label 12) stands on its flat base, whose outward normal is -z
    hemi = ShapesDataset(tmp_path, num_points=256, num_train=15, num_test=15, noise=0.0)[12]
    assert (hemi.x[:, 2] < -0.999).sum() > 20 and (hemi.x[:, 2] > 0.999).sum() < 5


# --- generated datasets: regenerate the object with its patches moved by R -------------------------------


def _rotated_patches(monkeypatch, R):
    original = _surfaces.sample_patches

    def sample_rotated(rng, patches, n):
        return original(rng, [p.moved(R) for p in patches], n)

    monkeypatch.setattr(_surfaces, "sample_patches", sample_rotated)


@pytest.mark.parametrize("protocol", ["SO3", "O3", "z"])
def test_shapes_rotated_item_is_the_item_of_the_rotated_solid(tmp_path, monkeypatch, protocol, dtype):
    from equinets.data._generated import item_rng
    from equinets.data.shapes import _SALT, sample_shape

    ds = ShapesDataset(tmp_path, num_points=96, num_train=15, num_test=15, noise=0.0, seed=3)
    assert ds.vector_keys == ("pos", "x")  # not the extent
    t = RandomRotate.for_dataset(protocol, ds)
    for i in (1, 5, 9, 12):  # ellipsoid, cone, capsule, hemisphere
        d = ds[i]
        p, n, e = sample_shape(i % 15, item_rng(_SALT, 3, "train", i), 96, 0.0)
        assert np.array_equal(p, d.pos.numpy()) and np.array_equal(n, d.x.numpy())  # the same object
        R = _matrix(t, 10 + i)
        with monkeypatch.context() as m:
            _rotated_patches(m, R)
            pr, nr, er = sample_shape(i % 15, item_rng(_SALT, 3, "train", i), 96, 0.0)
        out = t(_cast(d, dtype), _gen(10 + i))
        _assert_close(out.pos, pr, dtype, "pos")
        _assert_close(out.x, nr, dtype, "normals")
        assert torch.allclose(out.x.norm(dim=1), torch.ones(96, dtype=dtype), atol=1e-5)
        # the extent target (sorted principal half extents) belongs to the solid, not its pose
        assert np.allclose(er, e, atol=1e-6) and torch.equal(out.extent, d.extent)
        assert torch.equal(out.y, d.y)


@pytest.mark.parametrize("protocol", ["SO3", "z"])
def test_parts_rotated_item_is_the_item_of_the_rotated_object(tmp_path, monkeypatch, protocol, dtype):
    from equinets.data._generated import item_rng
    from equinets.data.parts import _SALT, sample_object

    ds = PartsDataset(tmp_path, num_points=128, num_train=8, num_test=8, noise=0.0, seed=2)
    assert ds.vector_keys == ("pos", "x")
    t = RandomRotate.for_dataset(protocol, ds)
    for i in (0, 3, 4):  # table, lamp, airplane
        d = ds[i]
        p, n, part = sample_object(i % 8, item_rng(_SALT, 2, "train", i), 128, 0.0)
        assert np.array_equal(p, d.pos.numpy()) and np.array_equal(part, d.y.numpy())
        R = _matrix(t, i)
        with monkeypatch.context() as m:
            _rotated_patches(m, R)
            pr, nr, part_r = sample_object(i % 8, item_rng(_SALT, 2, "train", i), 128, 0.0)
        out = t(_cast(d, dtype), _gen(i))
        _assert_close(out.pos, pr, dtype, "pos")
        _assert_close(out.x, nr, dtype, "normals")  # row by row: normal i stays on point i
        assert np.array_equal(part_r, part) and torch.equal(out.y, d.y) and torch.equal(out.category, d.category)


# --- file readers: read a second copy of the files that holds the rotated object ---------------------------


def _modelnet_h5(folder, R=None, n=3):
    folder.mkdir(parents=True)
    (folder / "shape_names.txt").write_text("\n".join(f"c{i}" for i in range(40)) + "\n")
    (folder / "train_files.txt").write_text("ply_data_train0.h5\n")
    rng = np.random.default_rng(5)
    pos = rng.standard_normal((n, 64, 3)).astype(np.float32)
    nrm = _unit(rng.standard_normal((n, 64, 3))).astype(np.float32)
    if R is not None:
        pos, nrm = (pos.astype(np.float64) @ R.T).astype(np.float32), (nrm.astype(np.float64) @ R.T).astype(np.float32)
    with h5py.File(folder / "ply_data_train0.h5", "w") as f:
        f["data"], f["normal"], f["label"] = pos, nrm, np.arange(n, dtype=np.uint8)[:, None]


def _modelnet_text(folder, R=None):
    folder.mkdir(parents=True)
    (folder / "modelnet40_shape_names.txt").write_text("\n".join(["chair"] + [f"c{i}" for i in range(39)]) + "\n")
    (folder / "chair").mkdir()
    (folder / "modelnet40_train.txt").write_text("chair_0001\nchair_0002\n")
    rng = np.random.default_rng(6)
    for name in ("chair_0001", "chair_0002"):
        pos, nrm = rng.standard_normal((40, 3)).astype(np.float32), _unit(rng.standard_normal((40, 3)))
        nrm = nrm.astype(np.float32)
        if R is not None:
            pos, nrm = pos.astype(np.float64) @ R.T, nrm.astype(np.float64) @ R.T
        np.savetxt(folder / "chair" / f"{name}.txt", np.concatenate([pos, nrm], 1), fmt="%.9e", delimiter=",")


def _shapenetpart(folder, R=None):
    (folder / "train_test_split").mkdir(parents=True)
    (folder / "synsetoffset2category.txt").write_text(
        "".join(f"{name}\t{syn}\n" for name, syn, _ in SHAPENETPART_CATEGORIES))
    rng = np.random.default_rng(7)
    keys = []
    for j, c in enumerate((0, 11)):  # an airplane with 70 points, a mug with 50 (resampled to 60)
        syn, k = SHAPENETPART_CATEGORIES[c][1], SHAPENETPART_CATEGORIES[c][2]
        (folder / syn).mkdir(exist_ok=True)
        n = 70 if j == 0 else 50
        part = sum(kk for _, _, kk in SHAPENETPART_CATEGORIES[:c]) + rng.integers(0, k, n)
        pos, nrm = rng.standard_normal((n, 3)).astype(np.float32), _unit(rng.standard_normal((n, 3))).astype(np.float32)
        if R is not None:
            pos, nrm = pos.astype(np.float64) @ R.T, nrm.astype(np.float64) @ R.T
        np.savetxt(folder / syn / f"s{j}.txt", np.concatenate([pos, nrm, part[:, None]], 1), fmt="%.9e")
        keys.append(f"shape_data/{syn}/s{j}")
    for split, ks in (("train", keys), ("val", keys[:1]), ("test", keys[1:])):
        (folder / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(ks))


def _scanobjectnn(folder, R=None):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(8)
    pos = rng.standard_normal((3, 80, 3)).astype(np.float32)
    if R is not None:
        pos = (pos.astype(np.float64) @ R.T).astype(np.float32)
    with h5py.File(folder / "training_objectdataset.h5", "w") as f:
        f["data"], f["label"] = pos, np.array([0, 4, 9])
        f["mask"] = rng.integers(-1, 2, (3, 80))


READERS = {
    "modelnet40-hdf5": (lambda root, R: _modelnet_h5(root / "modelnet40_ply_hdf5_2048", R),
                        lambda root: ModelNet40(root, "train", num_points=48)),
    "modelnet40-text": (lambda root, R: _modelnet_text(root / "modelnet40_normal_resampled", R),
                        lambda root: ModelNet40(root, "train", num_points=32, layout="text")),
    "shapenetpart": (lambda root, R: _shapenetpart(root / "shapenetcore_partanno_segmentation_benchmark_v0_normal", R),
                     lambda root: ShapeNetPart(root, "train", num_points=60)),
    "scanobjectnn": (lambda root, R: _scanobjectnn(root / "h5_files" / "main_split_nobg", R),
                     lambda root: ScanObjectNN(root, "train", variant="OBJ_ONLY", num_points=64)),
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("protocol", ["SO3", "O3", "z"])
def test_reader_rotated_item_is_the_item_of_the_rotated_files(tmp_path, reader, protocol, dtype):
    write, read = READERS[reader]
    write(tmp_path / "a", None)
    a = read(tmp_path / "a")
    t = RandomRotate.for_dataset(protocol, a)
    R = _matrix(t, 4)
    write(tmp_path / "b", R)  # the same objects, rotated by R before they were written
    b = read(tmp_path / "b")
    assert a.up_axis == "y" and len(a) == len(b) > 1
    has_normals = reader != "scanobjectnn"
    assert a.vector_keys == (("pos", "x") if has_normals else ("pos",))
    if protocol == "z":  # about y, the files' up axis
        assert np.array_equal(R[:, 1], [0.0, 1.0, 0.0])
    for i in range(len(a)):
        out, ref = t(_cast(a[i], dtype), _gen(4)), b[i]
        assert sorted(out.keys()) == sorted(ref.keys())
        _assert_close(out.pos, ref.pos, dtype, "pos")
        if has_normals:
            _assert_close(out.x, ref.x, dtype, "normals")  # rows stay attached to their points
            assert torch.allclose(out.x.norm(dim=1), torch.ones(len(out.x), dtype=dtype), atol=1e-5)
        for k in out.keys():
            if k not in ("pos", "x"):
                assert torch.equal(out[k], ref[k]), k  # labels, categories, masks: untouched


# --- n-body: re-simulate the rotated system ------------------------------------------------------------


def _unclipped(x0, v0, q, steps):
    """Mask of the systems the force clipping never acts on, and their trajectories."""
    clipped = simulate_charged(x0, v0, q, steps)
    free = simulate_charged(x0, v0, q, steps, max_force=np.inf)
    keep = np.ones(len(x0), bool)
    for (xc, vc), (xf, vf) in zip(clipped, free):
        keep &= (xc == xf).all(axis=(1, 2)) & (vc == vf).all(axis=(1, 2))
    return keep, clipped


@pytest.mark.parametrize("protocol", ["SO3", "O3"])
def test_simulator_is_equivariant_while_the_clipping_is_inactive(protocol):
    x0, v0, q = draw_initial_states(np.random.RandomState(1), 24)
    steps = [150, 400]  # longer runs amplify the rounding of close (even unclipped) encounters chaotically
    keep, out = _unclipped(x0, v0, q, steps)
    assert keep.sum() >= 12
    t = RandomRotate(protocol)
    R = _matrix(t, 0)
    rot = simulate_charged(x0 @ R.T, v0 @ R.T, q, steps)
    for (x, v), (xr, vr) in zip(out, rot):
        assert np.abs(xr[keep] - x[keep] @ R.T).max() < 1e-10
        assert np.abs(vr[keep] - v[keep] @ R.T).max() < 1e-10


@pytest.fixture(scope="module")
def nbody_root(tmp_path_factory):
    return tmp_path_factory.mktemp("nbody")


@pytest.mark.parametrize("protocol", ["SO3", "O3", "z"])
def test_nbody_rotated_item_is_the_item_of_the_rotated_system(nbody_root, protocol, dtype):
    ds = NBody(nbody_root, "train", num_train=12, num_val=4, num_test=1, seed=5, frame_in=1, frame_out=3)
    x0, v0, q = draw_initial_states(np.random.RandomState(5), 12)  # the train split is drawn first
    steps = [_frame_step(1), _frame_step(3)]
    keep, ((x_in, v_in), (x_out, _)) = _unclipped(x0, v0, q, steps)
    assert np.allclose(x_in, ds.pos.numpy(), atol=1e-6) and np.allclose(x_out, ds.y.numpy(), atol=1e-6)
    assert keep.sum() >= 8
    t = RandomRotate.for_dataset(protocol, ds)
    for i in np.flatnonzero(keep)[:6]:
        R = _matrix(t, int(i))
        (xr_in, vr_in), (xr_out, _) = simulate_charged(x0[i : i + 1] @ R.T, v0[i : i + 1] @ R.T, q[i : i + 1], steps)
        d = ds[int(i)]
        out = t(_cast(d, dtype), _gen(int(i)))
        _assert_close(out.pos, xr_in[0], dtype, "pos")
        _assert_close(out.vel, vr_in[0], dtype, "vel")
        _assert_close(out.x[:, :3], vr_in[0], dtype, "x[:, :3] (velocities)")
        _assert_close(out.y, xr_out[0], dtype, "y (target positions)")
        assert torch.equal(out.x[:, 3], d.x[:, 3].to(dtype)) and torch.equal(out.charges, d.charges.to(dtype))
        assert torch.equal(out.edge_attr, d.edge_attr.to(dtype)) and torch.equal(out.edge_index, d.edge_index)


def test_nbody_batch_rotates_each_systems_vectors_with_its_own_matrix(nbody_root, dtype):
    ds = NBody(nbody_root, "val", num_train=12, num_val=4, num_test=1, seed=5, frame_in=1, frame_out=3)
    t = RandomRotate.for_dataset("SO3", ds)
    items = [_cast(ds[i], dtype) for i in range(4)]
    out = t(Batch.from_data_list(items), _gen(9)).to_data_list()
    g = _gen(9)
    ref = [t(d, g) for d in items]  # one cloud after another, same generator: the same matrices
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    for o, r, d in zip(out, ref, items):
        for k in ("pos", "vel", "x", "y"):
            assert torch.allclose(o[k], r[k], atol=tol), k
        assert not torch.allclose(o.y, d.y)


# --- the trainer: checkpoints and protocols -------------------------------------------------------------


def test_fa_gnn_nbody_checkpoint_has_the_same_mse_under_so3_and_o3(tmp_path, capsys):
    from equinets.train.cli import main
    from equinets.train.config import resolve_config
    from equinets.train.loop import train

    over = [f"data_root={tmp_path / 'data'}", "epochs=1", "batch_size=8", "eval_batch_size=12", "device=cpu",
            "model_kwargs.hidden_channels=12", "model_kwargs.num_layers=2", "dataset_kwargs.num_train=16",
            "dataset_kwargs.num_val=12", "dataset_kwargs.num_test=1", "dataset_kwargs.frame_in=1",
            "dataset_kwargs.frame_out=4"]
    cfg = resolve_config("nbody-fa-gnn", over)
    train(cfg, tmp_path / "run", progress=False)
    capsys.readouterr()
    mse = {}
    for protocol in ("I", "SO3", "O3"):
        assert main(["eval", "--checkpoint", str(tmp_path / "run" / "last.pt"), f"test_rotation={protocol}"]) == 0
        mse[protocol] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["mse"]
    assert mse["I"] > 0
    for protocol in ("SO3", "O3"):
        assert abs(mse[protocol] - mse["I"]) <= 1e-4 * mse["I"], mse
    # the check has teeth: rotating the inputs but not the target changes the MSE a lot
    from equinets.train.loop import _transforms

    ds = NBody(tmp_path / "data", "val", num_train=16, num_val=12, num_test=1, frame_in=1, frame_out=4)
    tf = _transforms({**cfg, "test_rotation": "SO3"}, ds, train=False)
    d = ds[0]
    out = tf(d, _gen())
    assert not torch.allclose(out.y, d.y) and not torch.allclose(out.x[:, :3], d.x[:, :3])


@pytest.mark.parametrize("up_axis,fixed", [(None, 1), ("z", 2)])
def test_train_rotation_z_on_a_y_up_dataset_keeps_the_up_coordinate(tmp_path, up_axis, fixed, dtype):
    from torch_geometric.loader import DataLoader

    from equinets.train.config import resolve_config
    from equinets.train.loop import _transforms, build_datasets

    _modelnet_h5(tmp_path / "modelnet40_ply_hdf5_2048")
    over = ["dataset=modelnet40", f"data_root={tmp_path}", "num_points=48", "train_rotation=z", "jitter=0.0",
            "scale_low=1.0", "scale_high=1.0", "shift=0.0"]
    if up_axis is not None:
        over.append(f"up_axis={up_axis}")
    cfg = resolve_config(None, over)
    (ds,) = build_datasets(cfg, splits=("train",))
    assert ds.up_axis == "y"
    batch = _cast(next(iter(DataLoader(ds, batch_size=3))), dtype)
    out = _transforms(cfg, ds, train=True)(batch, generator=_gen())
    others = [j for j in range(3) if j != fixed]
    for key in ("pos", "x"):
        assert torch.equal(out[key][:, fixed], batch[key][:, fixed]), key
        assert not torch.allclose(out[key][:, others], batch[key][:, others])
        r = torch.allclose(out[key][:, others].norm(dim=1), batch[key][:, others].norm(dim=1), atol=1e-5)
        assert r, key
