"""DFAUST reader on a tiny fixture written in the exact layout of the official registrations files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from equinets.data import create_dataset
from equinets.data.dfaust import DFAUST, DFAUST_NUM_VERTICES, DFAUST_SUBJECTS, vertex_normals

V = DFAUST_NUM_VERTICES
SEQS = {"registrations_m.hdf5": {"50002_jumping_jacks": 3, "50002_punching": 2, "50007_punching": 2},
        "registrations_f.hdf5": {"50004_one_leg_jump": 3, "50004_hips": 2}}
FACES = np.stack([np.arange(V - 2), np.arange(1, V - 1), np.arange(2, V)], axis=1)  # a strip over every vertex


def write_dfaust(folder, seqs=SEQS, faces=FACES, part_map=None):
    """Registrations files (``<subject>_<sequence>``: (6890, 3, T) float64, ``faces``) and ``part_map.npy``."""
    folder.mkdir(parents=True, exist_ok=True)
    verts = {}
    for q, (name, keys) in enumerate(seqs.items()):
        with h5py.File(folder / name, "w") as f:
            for i, (key, T) in enumerate(keys.items()):
                v = np.random.default_rng([q, i]).standard_normal((V, 3, T))
                f.create_dataset(key, data=v)
                verts[key] = v
            f.create_dataset("faces", data=faces.astype(np.uint32))
    np.save(folder / "part_map.npy", np.arange(V) % 5 if part_map is None else part_map)
    return verts


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("dfaust_root")
    write_dfaust(r / "dfaust")
    return r


@pytest.fixture(scope="module")
def verts(root):
    out = {}
    for name in SEQS:
        with h5py.File(root / "dfaust" / name, "r") as f:
            out.update({k: f[k][()] for k in f if k != "faces"})
    return out


def test_reads_back_every_frame_in_key_and_time_order(root, verts):
    ds = DFAUST(root, "train", num_points=None, frame_step=1, test_sequences=["punching"])
    order = [("50002_jumping_jacks", t) for t in range(3)] + [("50004_hips", t) for t in range(2)] + \
            [("50004_one_leg_jump", t) for t in range(3)]
    assert len(ds) == len(order) and ds.num_points == V
    for i, (key, t) in enumerate(order):
        d = ds[i]
        v = verts[key][:, :, t]
        np.testing.assert_allclose(d.pos.double().numpy(), v - v.mean(0), atol=1e-5)
        assert torch.equal(d.part, torch.arange(V) % 5) and torch.equal(d.y, d.part)
        assert torch.equal(d.vertex, torch.arange(V))
        assert int(d.subject) == DFAUST_SUBJECTS.index(key[:5]) and int(d.frame[0, 1]) == t
    test = DFAUST(root, "test", num_points=None, frame_step=1, test_sequences=["punching"])
    assert len(test) == 4 and sorted(int(s) for s in test.extra["subject"]) == [0, 0, 1, 1]  # 50002, 50007
    assert create_dataset("dfaust", root, "test", num_points=None, frame_step=1, test_sequences=["punching"]).pos.equal(
        test.pos)


def test_vertex_normals_match_a_per_face_loop(verts):
    v = verts["50002_punching"][:, :, 1]
    ref = np.zeros((V, 3))
    for a, b, c in FACES:
        n = np.cross(v[b] - v[a], v[c] - v[a])
        ref[a] += n
        ref[b] += n
        ref[c] += n
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(vertex_normals(v, FACES), ref, atol=1e-12)
    both = vertex_normals(np.stack([v, 2 * v + 1]), FACES)
    np.testing.assert_allclose(both[1], ref, atol=1e-12)  # scale and translation leave normals alone
    lonely = vertex_normals(v, FACES[:10])
    assert np.all(lonely[20] == 0) and np.allclose(np.linalg.norm(lonely[:10], axis=1), 1)


def test_item_normals_and_offsets(root, verts):
    ds = DFAUST(root, "train", num_points=None, frame_step=1, test_sequences=["punching"])
    d = ds[1]
    np.testing.assert_allclose(d.x.numpy(), vertex_normals(verts["50002_jumping_jacks"][:, :, 1], FACES), atol=1e-6)
    c = d.pos.double() + d.part_offset.double()
    for k in range(5):
        m = d.part == k
        np.testing.assert_allclose(c[m], d.pos[m].double().mean(0).expand(int(m.sum()), 3), atol=1e-5)


def test_vertex_subsets_and_frame_step(root, verts):
    ds = DFAUST(root, "train", num_points=300, frame_step=2, test_sequences=["punching"], seed=3)
    assert len(ds) == 2 + 1 + 2 and ds.num_points == 300  # frames 0, 2 of 3; 0 of 2; 0, 2 of 3
    d = ds[1]
    assert int(d.frame[0, 1]) == 2
    v = verts["50002_jumping_jacks"][:, :, 2][d.vertex.numpy()]
    assert len(set(d.vertex.tolist())) == 300  # distinct vertices
    np.testing.assert_allclose(d.pos.double().numpy(), v - v.mean(0), atol=1e-5)
    assert torch.equal(d.part, d.vertex % 5)
    assert not torch.equal(ds[0].vertex, ds[1].vertex)  # a fresh subset per frame
    again = DFAUST(root, "train", num_points=300, frame_step=2, test_sequences=["punching"], seed=3)
    assert torch.equal(again.pos, ds.pos)


def test_protocols(root):
    kw = dict(num_points=64, frame_step=1)
    tr, te = (DFAUST(root, s, protocol="random_pose", test_fraction=0.4, **kw) for s in ("train", "test"))
    frames = {tuple(f.tolist()) for f in tr.extra["frame"]} | {tuple(f.tolist()) for f in te.extra["frame"]}
    assert len(tr) + len(te) == 12 == len(frames) and len(te) > 0
    tr, te = (DFAUST(root, s, protocol="unseen_random_pose", **kw) for s in ("train", "test"))
    for subj in set(te.extra["subject"].tolist()):
        held = {int(f[0]) for f, s in zip(te.extra["frame"], te.extra["subject"]) if int(s) == subj}
        seen = {int(f[0]) for f, s in zip(tr.extra["frame"], tr.extra["subject"]) if int(s) == subj}
        assert len(held) == 1 and not held & seen
    assert len(set(te.extra["subject"].tolist())) == 3  # one held-out sequence for each of the 3 subjects


def test_subject_classification_and_text_part_map(root, tmp_path):
    ds = DFAUST(root, "train", task="cls", num_points=64, test_sequences=["punching"])
    assert ds.task == "cls" and ds.classes == DFAUST_SUBJECTS and torch.equal(ds.labels, ds.extra["subject"])
    txt = tmp_path / "map.txt"
    txt.write_text(" ".join(str(k % 3) for k in range(V)))
    seg = DFAUST(root, "train", num_points=None, part_map=txt, test_sequences=["punching"])
    assert seg.num_classes == 3 and torch.equal(seg[0].part, torch.arange(V) % 3)


def test_cache_follows_the_part_map(tmp_path):
    write_dfaust(tmp_path / "dfaust")
    a = DFAUST(tmp_path, "train", num_points=None, test_sequences=["punching"])
    np.save(tmp_path / "dfaust" / "part_map.npy", (np.arange(V) + 1) % 5)
    with pytest.warns(UserWarning, match="source files"):
        b = DFAUST(tmp_path, "train", num_points=None, test_sequences=["punching"])
    assert torch.equal(b[0].part, (a[0].part + 1) % 5)
