"""Generated N-body data (``nbody``): integrator, stream order, items, cache, baselines."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from equinets.data import NBody, create_dataset, nbody_baselines
from equinets.data import nbody as nb

SMALL = dict(num_train=64, num_val=32, num_test=32, seed=7)  # default frames 30 -> 40


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("nbody")


@pytest.fixture(scope="module")
def small(root):
    return {s: NBody(root, s, **SMALL) for s in ("train", "val", "test")}


def _reference(x0, v0, q, record_steps, dt=nb.DT, max_force=nb.MAX_FORCE):
    """Slow per-trajectory, per-particle version of the scheme in plain Python floats."""
    n = len(x0)
    x, v = [list(map(float, p)) for p in x0], [list(map(float, p)) for p in v0]
    q = [float(c[0]) for c in q]

    def forces():
        out = []
        for i in range(n):
            f = [0.0, 0.0, 0.0]
            for j in range(n):
                if j != i:
                    d = [x[i][c] - x[j][c] for c in range(3)]
                    r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
                    s = q[i] * q[j] / (r2 * math.sqrt(r2))
                    f = [f[c] + s * d[c] for c in range(3)]
            out.append([min(max(fc, -max_force), max_force) for fc in f])
        return out

    def kick():
        f = forces()
        for i in range(n):
            v[i] = [v[i][c] + dt * f[i][c] for c in range(3)]

    kick()
    rec = {}
    for step in range(1, max(record_steps) + 1):
        for i in range(n):
            x[i] = [x[i][c] + dt * v[i][c] for c in range(3)]
        if step in record_steps:
            rec[step] = (np.array(x), np.array(v))
        kick()
    return [rec[s] for s in record_steps]


def test_integrator_matches_slow_python_reference():
    rng = np.random.RandomState(0)
    x0, v0, q = nb.draw_initial_states(rng, 3)
    x0[0, 1] = x0[0, 0] + [0.03, 0.0, 0.0]  # a close pair: the force clipping is active
    q[0, :2] = [[1.0], [1.0]]
    steps = [200, 500, 700]
    got = nb.simulate_charged(x0, v0, q, steps)
    got_chunked = nb.simulate_charged(x0, v0, q, steps, chunk=2)
    for m in range(3):
        ref = _reference(x0[m], v0[m], q[m], steps)
        for (x, v), (xc, vc), (xr, vr) in zip(got, got_chunked, ref):
            np.testing.assert_allclose(x[m], xr, rtol=0, atol=1e-12)
            np.testing.assert_allclose(v[m], vr, rtol=0, atol=1e-12)
            assert np.array_equal(x[m], xc[m]) and np.array_equal(v[m], vc[m])
    diff = x0[0, 0] - x0[0, 1]
    assert abs(float(diff @ diff) ** -1.5 * 0.03) > nb.MAX_FORCE  # clipping did happen


def test_uncharged_and_single_particles_move_in_straight_lines():
    rng = np.random.RandomState(1)
    x0, v0, _ = nb.draw_initial_states(rng, 4)
    ((x, v),) = nb.simulate_charged(x0, v0, np.zeros((4, 5, 1)), [1000])
    assert np.array_equal(v, v0)
    np.testing.assert_allclose(x, x0 + 1.0 * v0, rtol=0, atol=1e-12)
    ((x1, v1),) = nb.simulate_charged(x0[:, :1], v0[:, :1], np.ones((4, 1, 1)), [1000])
    assert np.array_equal(v1, v0[:, :1])
    np.testing.assert_allclose(x1, x0[:, :1] + v0[:, :1], rtol=0, atol=1e-12)


def test_like_charges_repel_and_momentum_is_conserved():
    x0 = np.array([[[-1.0, 0, 0], [1.0, 0, 0]]])
    v0 = np.zeros((1, 2, 3))
    ((x_rep, v_rep),) = nb.simulate_charged(x0, v0, np.ones((1, 2, 1)), [500])
    ((x_att, _),) = nb.simulate_charged(x0, v0, np.array([[[1.0], [-1.0]]]), [500])
    assert x_rep[0, 1, 0] - x_rep[0, 0, 0] > 2.0 > x_att[0, 1, 0] - x_att[0, 0, 0]
    np.testing.assert_allclose(v_rep.sum(1), 0.0, atol=1e-14)  # Newton's third law
    rng = np.random.RandomState(2)
    x0, v0, q = nb.draw_initial_states(rng, 8)
    ((x, v),) = nb.simulate_charged(x0 * 3, v0, q, [300])  # spread out: no clipping
    np.testing.assert_allclose(v.sum(1), v0.sum(1), rtol=0, atol=1e-10)


def test_initial_states_follow_the_original_order_of_draws():
    """Same numbers as the original per-trajectory call sequence on the legacy stream."""
    n, box = 5, 1.2  # a small box so that the wall reflection is exercised
    rng = np.random.RandomState(43)
    ref = []
    for _ in range(6):
        q = rng.choice(np.array([-1.0, 0.0, 1.0]), size=(n, 1), p=[0.5, 0.0, 0.5])
        x = rng.randn(3, n) * nb.LOC_STD
        v = rng.randn(3, n)
        v = v * 0.5 / np.sqrt((v**2).sum(axis=0)).reshape(1, -1)
        over = x > box
        x[over] = 2 * box - x[over]
        v[over] = -np.abs(v[over])
        under = x < -box
        x[under] = -2 * box - x[under]
        v[under] = np.abs(v[under])
        rng.randn(49, 3, n)
        rng.randn(49, 3, n)
        ref.append((x.T, v.T, q))
    x0, v0, q0 = nb.draw_initial_states(np.random.RandomState(43), 6, box_size=box)
    assert (np.abs(x0) > 1.0).any()
    for m, (x, v, q) in enumerate(ref):
        np.testing.assert_allclose(x0[m], x, rtol=0, atol=1e-15)
        np.testing.assert_allclose(v0[m], v, rtol=0, atol=1e-15)
        assert np.array_equal(q0[m], q)
    np.testing.assert_allclose(np.linalg.norm(v0, axis=-1), 0.5, rtol=1e-14)


def test_items_have_documented_fields(small):
    ds = small["train"]
    assert len(ds) == 64 and len(small["val"]) == 32 and len(small["test"]) == 32
    assert ds.task == "reg" and ds.delta_t == pytest.approx(1.0)
    d = ds[3]
    for key, shape in dict(pos=(5, 3), vel=(5, 3), charges=(5, 1), y=(5, 3), edge_attr=(20, 1)).items():
        assert d[key].dtype == torch.float32 and d[key].shape == shape, key
    assert d.edge_index.dtype == torch.long and d.edge_index.shape == (2, 20)
    src, dst = d.edge_index
    assert bool((src != dst).all()) and len(set(zip(src.tolist(), dst.tolist()))) == 20
    assert torch.equal(d.edge_attr[:, 0], d.charges[src, 0] * d.charges[dst, 0])
    q = torch.cat([small[s].charges for s in small])
    assert set(q.unique().tolist()) == {-1.0, 1.0}
    assert 0.3 < float((q > 0).float().mean()) < 0.7


def test_splits_are_distinct_and_deterministic(small, tmp_path):
    assert not torch.equal(small["val"].pos[:32], small["test"].pos)
    assert not torch.equal(small["train"].pos[:32], small["val"].pos)
    again = NBody(tmp_path, "test", **SMALL)
    assert torch.equal(again.pos, small["test"].pos) and torch.equal(again.y, small["test"].y)
    other = nb.generate_nbody(num_train=4, num_val=2, num_test=2, seed=8, frame_in=1, frame_out=2)
    same = nb.generate_nbody(num_train=4, num_val=2, num_test=2, seed=8, frame_in=1, frame_out=2)
    assert all(torch.equal(other[s][k], same[s][k]) for s in other for k in other[s])
    first = [nb.draw_initial_states(np.random.RandomState(seed), 2)[0] for seed in (8, 9)]
    assert not np.array_equal(*first)


def test_val_and_test_do_not_depend_on_num_train_below_the_original_10000():
    a = nb.generate_nbody(num_train=2, num_val=2, num_test=1, seed=3, frame_in=0, frame_out=1)
    b = nb.generate_nbody(num_train=5, num_val=2, num_test=1, seed=3, frame_in=0, frame_out=1)
    assert torch.equal(a["val"]["pos"], b["val"]["pos"]) and torch.equal(a["test"]["y"], b["test"]["y"])
    assert torch.equal(a["train"]["pos"], b["train"]["pos"][:2])


def test_frames_are_the_stored_steps(small):
    """pos/vel at step 3100 and y at step 4100 of the integrator, from the drawn initial states."""
    rng = np.random.RandomState(SMALL["seed"])
    x0, v0, q = nb.draw_initial_states(rng, 3)
    (x30, v30), (x40, _) = nb.simulate_charged(x0, v0, q, [3100, 4100])
    ds = small["train"]
    torch.testing.assert_close(ds.pos[:3], torch.from_numpy(x30).float())
    torch.testing.assert_close(ds.vel[:3], torch.from_numpy(v30).float())
    torch.testing.assert_close(ds.y[:3], torch.from_numpy(x40).float())
    assert torch.equal(ds.charges[:3], torch.from_numpy(q).float())


def test_cache_is_reused_checked_and_regenerated(small, root, monkeypatch):
    folders = list((root / "nbody").iterdir())
    assert [f.name for f in folders] == ["tr64_va32_te32_s7_f30-40_v1"]
    meta = json.loads((folders[0] / "manifest.json").read_text())
    assert meta["seed"] == 7 and meta["num_train"] == 64 and meta["step_in"] == 3100
    assert meta["step_out"] == 4100 and set(meta["sha256"]) == {"train", "val", "test"}

    def boom(**kw):
        raise AssertionError("regenerated")

    monkeypatch.setattr(nb, "generate_nbody", boom)
    again = NBody(root, "val", **SMALL)
    assert torch.equal(again.pos, small["val"].pos)
    with pytest.raises(AssertionError, match="regenerated"):
        NBody(root, "val", **SMALL, force_reload=True)
    monkeypatch.undo()
    meta["sha256"]["val"] = "0" * 64  # a file that does not match its manifest is regenerated
    (folders[0] / "manifest.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="regenerating"):
        fresh = NBody(root, "val", **SMALL)
    assert torch.equal(fresh.pos, small["val"].pos)
    assert json.loads((folders[0] / "manifest.json").read_text())["sha256"]["val"] != "0" * 64


def test_baselines_by_hand():
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(10, 5, 3, generator=g), torch.randn(10, 5, 3, generator=g)
    w = torch.tensor([2.0, -1.0, 0.5])
    y = w * x + 0.25 * v + torch.tensor([1.0, 0.0, -3.0])
    tr = SimpleNamespace(pos=x[:6], vel=v[:6], y=y[:6], delta_t=1.0)
    te = SimpleNamespace(pos=x[6:], vel=v[6:], y=y[6:], delta_t=1.0)
    out = nbody_baselines(tr, te)
    assert out["zero_motion"] == pytest.approx(float(((y[6:] - x[6:]) ** 2).mean()))
    assert out["constant_velocity"] == pytest.approx(float(((y[6:] - x[6:] - v[6:]) ** 2).mean()))
    assert out["linear"] < 1e-10  # the targets are exactly linear per coordinate
    c = float(((y[:6] - x[:6]) * v[:6]).sum() / (v[:6] ** 2).sum())
    assert out["linear_dynamics"] == pytest.approx(float(((y[6:] - x[6:] - c * v[6:]) ** 2).mean()))


def test_baselines_on_small_data(small):
    out = nbody_baselines(small["train"], small["test"])
    tr, te = small["train"], small["test"]
    A = lambda d, c: np.stack([d.pos[..., c].numpy().ravel(), d.vel[..., c].numpy().ravel(),  # noqa: E731
                               np.ones(d.pos[..., c].numel())], 1).astype(np.float64)  # fmt: skip
    err = []
    for c in range(3):
        w = np.linalg.lstsq(A(tr, c), tr.y[..., c].numpy().ravel().astype(np.float64), rcond=None)[0]
        err.append((A(te, c) @ w - te.y[..., c].numpy().ravel()) ** 2)
    assert out["linear"] == pytest.approx(float(np.mean(err)), rel=1e-6)
    assert out["linear"] < out["constant_velocity"] < out["zero_motion"]


def test_collates_with_pyg_and_create_dataset(small, root):
    batch = next(iter(DataLoader(small["train"], batch_size=4)))
    assert batch.pos.shape == (20, 3) and batch.y.shape == (20, 3) and batch.edge_attr.shape == (80, 1)
    assert batch.edge_index.shape == (2, 80) and int(batch.edge_index.max()) == 19
    assert torch.equal(batch.batch[batch.edge_index[0]], batch.batch[batch.edge_index[1]])
    ds = create_dataset("nbody", root, "test", **SMALL)
    assert isinstance(ds, NBody) and torch.equal(ds.y, small["test"].y)


def test_simulation_leaves_its_inputs_alone():
    x0, v0, q = nb.draw_initial_states(np.random.RandomState(5), 1)
    before = (x0.copy(), v0.copy())
    nb.simulate_charged(x0, v0, q, [10])
    assert np.array_equal(x0, before[0]) and np.array_equal(v0, before[1])


def test_bad_arguments_are_rejected(tmp_path, small):
    with pytest.raises(ValueError, match="split"):
        NBody(tmp_path, "valid")
    with pytest.raises(ValueError, match="frame_in"):
        NBody(tmp_path, "train", frame_in=40, frame_out=30)
    with pytest.raises(ValueError, match="frame_out"):
        NBody(tmp_path, "train", frame_out=49)
    with pytest.raises(IndexError):
        small["test"][32]
    with pytest.raises(ValueError, match="record_steps"):
        nb.simulate_charged(np.zeros((1, 1, 3)), np.zeros((1, 1, 3)), np.zeros((1, 1, 1)), [0])
