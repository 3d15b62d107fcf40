"""Compiled-backend dispatch (pyg-lib / torch-cluster, injected as fakes) and kNN with coincident points."""

from __future__ import annotations

import pytest
import torch

from equinets import typing as eq_typing
from equinets.nn import DGCNN, GNN, fps, knn, knn_dense, knn_graph, neighbors, radius_graph

F64 = torch.float64


# ----------------------------------------------------------------------------- brute-force references
def _clouds_of(ptr, n):
    return torch.repeat_interleave(torch.arange(len(ptr) - 1), ptr[1:] - ptr[:-1]) if ptr is not None \
        else torch.zeros(n, dtype=torch.long)


def brute_knn(x, y, k, bx, by, farthest=False, self_last=False):
    """[y index; x index]: for each y, its k nearest x of the same cloud by (distance, index).

    ``farthest`` returns the k farthest instead (a wrong answer whose use a model must show);
    ``self_last`` breaks distance ties by descending index, so a point with copies can lose itself.
    """
    rows, cols = [], []
    d = torch.cdist(y.double(), x.double())
    for i in range(y.shape[0]):
        cand = [j for j in range(x.shape[0]) if bx[j] == by[i]]
        row = d[i]

        def key(j, row=row):
            if farthest:
                return (-row[j].item(), j)
            return (row[j].item(), -j) if self_last else (row[j].item(), j)

        for j in sorted(cand, key=key)[:k]:
            rows.append(i)
            cols.append(j)
    return torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1)


def brute_knn_graph_sets(x, k, batch, loop=False):
    """Per target, the set of its k sources (self excluded by index), ties by lower index."""
    e = brute_knn(x, x, k + (0 if loop else 1) + x.shape[0], batch, batch)  # every same-cloud point, ordered
    out = [[] for _ in range(x.shape[0])]
    for i, j in zip(*e.tolist()):
        if (loop or i != j) and len(out[i]) < k:
            out[i].append(j)
    return [sorted(s) for s in out]


def graph_sets(e, n):
    out = [[] for _ in range(n)]
    for j, i in zip(*e.tolist()):  # source j, target i
        out[i].append(j)
    return [sorted(s) for s in out]


# ----------------------------------------------------------------------------- fakes
class FakePygLib:
    """``torch.ops.pyg``'s knn / radius / fps signatures, brute force; records every call."""

    def __init__(self, farthest=False, self_last=False):
        self.calls, self.farthest, self.self_last = [], farthest, self_last

    def knn(self, x, y, ptr_x, ptr_y, k, cosine, num_workers):
        self.calls.append("knn")
        bx, by = _clouds_of(ptr_x, x.shape[0]), _clouds_of(ptr_y, y.shape[0])
        return brute_knn(x, y, k, bx, by, self.farthest, self.self_last)

    def radius(self, x, y, ptr_x, ptr_y, r, max_num_neighbors, num_workers, ignore_same_index):
        self.calls.append("radius")
        bx, by = _clouds_of(ptr_x, x.shape[0]), _clouds_of(ptr_y, y.shape[0])
        e = brute_knn(x, y, max_num_neighbors + 1, bx, by)
        e = e[:, (x[e[1]] - y[e[0]]).norm(dim=1) < r]
        if ignore_same_index:
            e = e[:, e[0] != e[1]]
        return e

    def fps(self, x, ptr, ratio, random_start):
        self.calls.append("fps")
        return torch.arange(0, x.shape[0], 2)


class FakeTorchCluster:
    """``torch_cluster``'s knn / radius / fps signatures on top of :class:`FakePygLib`."""

    def __init__(self, **kw):
        self.lib = FakePygLib(**kw)
        self.calls = self.lib.calls

    @staticmethod
    def _ptr(batch, n):
        if batch is None:
            return None
        counts = torch.bincount(batch)
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)])

    def knn(self, x, y, k, batch_x=None, batch_y=None, cosine=False, num_workers=1):
        return self.lib.knn(x, y, self._ptr(batch_x, len(x)), self._ptr(batch_y, len(y)), k, cosine, num_workers)

    def radius(self, x, y, r, batch_x=None, batch_y=None, max_num_neighbors=32, num_workers=1):
        return self.lib.radius(x, y, self._ptr(batch_x, len(x)), self._ptr(batch_y, len(y)), r, max_num_neighbors,
                               num_workers, False)

    def fps(self, x, batch=None, ratio=0.5, random_start=True):
        return self.lib.fps(x, self._ptr(batch, len(x)), ratio, random_start)


@pytest.fixture(params=["pyg_lib", "torch_cluster"])
def backend(request, monkeypatch):
    """Install a fake backend (flag + function) the way an import of the real one would."""

    def install(**kw):
        if request.param == "pyg_lib":
            fake = FakePygLib(**kw)
            monkeypatch.setattr(eq_typing, "WITH_PYG_LIB", True)
            monkeypatch.setattr(neighbors, "_pyg_lib", lambda: fake)
        else:
            fake = FakeTorchCluster(**kw)
            monkeypatch.setattr(eq_typing, "WITH_PYG_LIB", False)
            monkeypatch.setattr(eq_typing, "WITH_TORCH_CLUSTER", True)
            monkeypatch.setattr(neighbors, "_torch_cluster", lambda: fake)
        return fake

    return install


def _pure(monkeypatch):
    monkeypatch.setattr(eq_typing, "WITH_PYG_LIB", False)
    monkeypatch.setattr(eq_typing, "WITH_TORCH_CLUSTER", False)


# ----------------------------------------------------------------------------- dispatch
MODELS = {
    "dgcnn": lambda: DGCNN(0, 3, k=4, hidden_channels=(8, 8), emb_dims=16, head_channels=(8,), dropout=0.0),
    "gnn": lambda: GNN(0, 3, hidden_channels=8, num_layers=2, k=4, head_channels=(8,), dropout=0.0),
    "gnn_radius": lambda: GNN(0, 3, hidden_channels=8, num_layers=2, radius=1.5, head_channels=(8,), dropout=0.0),
}


@pytest.mark.parametrize("ragged", [False, True], ids=["equal", "ragged"])
@pytest.mark.parametrize("name", list(MODELS))
def test_backbone_forward_uses_the_installed_backend(name, ragged, backend, monkeypatch):
    torch.manual_seed(0)
    model = MODELS[name]().double().eval()
    sizes = [9, 13] if ragged else [12, 12]
    pos = torch.randn(sum(sizes), 3, dtype=F64)
    batch = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    _pure(monkeypatch)
    pure = model(pos, batch=batch)
    exact = backend()
    out = model(pos, batch=batch)
    assert exact.calls and set(exact.calls) == {"radius" if name == "gnn_radius" else "knn"}
    torch.testing.assert_close(out, pure, rtol=1e-10, atol=1e-12)  # exact backend: the same function
    if name != "gnn_radius":
        wrong = backend(farthest=True)  # a wrong graph changes the output: the backend's answer is used
        assert not torch.allclose(model(pos, batch=batch), pure, atol=1e-6) and wrong.calls


def test_neighbour_functions_dispatch_and_keep_their_contract(backend):
    x, b = torch.randn(20, 3, dtype=F64), torch.tensor([0] * 8 + [1] * 12)
    fake = backend()
    e = knn(x, x[:5], 3, b, b[:5])
    assert e.shape == (2, 15) and bool((e[0][1:] >= e[0][:-1]).all())
    idx = knn_dense(x[:16].view(2, 8, 3), 3, loop=False)
    assert idx.shape == (2, 8, 3) and not bool((idx == torch.arange(8).view(1, 8, 1)).any())
    g = radius_graph(x, 1.0, b, max_num_neighbors=50)
    assert not bool((g[0] == g[1]).any()) and bool((b[g[0]] == b[g[1]]).all())
    assert fps(x, b, 0.5).tolist() == list(range(0, 20, 2))
    assert fake.calls == ["knn", "knn", "radius", "fps"]
    fake.calls.clear()
    fps(x, b, 0.5, generator=torch.Generator().manual_seed(0))  # a generator asks for the pure-torch path
    assert fake.calls == []


# ----------------------------------------------------------------------------- coincident points
def _with_duplicates(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = [40, 33]
    x = torch.randn(sum(sizes), 3, generator=g, dtype=F64)
    x[1:9] = x[0]  # 9 copies of one point (more than k + 1)
    x[20:23] = x[10]
    x[45:52] = x[44]
    x[60:62] = x[70]
    return x.to(dtype), torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])


@pytest.mark.parametrize("k", [3, 6])
def test_knn_graph_no_loop_with_many_duplicates_matches_bruteforce(dtype, k):
    x, b = _with_duplicates(dtype)
    e = knn_graph(x, k, b)
    assert not bool((e[0] == e[1]).any()), "self excluded by index"
    assert torch.equal(torch.bincount(e[1], minlength=len(x)), torch.full((len(x),), k)), "exactly k per node"
    assert graph_sets(e, len(x)) == brute_knn_graph_sets(x, k, b), "same sets, ties by lower index"
    dense = knn_dense(x[:40].unsqueeze(0), k, loop=False)[0]
    assert [sorted(r) for r in dense.tolist()] == brute_knn_graph_sets(x[:40], k, torch.zeros(40, dtype=torch.long))


def test_knn_graph_no_loop_with_duplicates_through_a_backend_that_drops_self(backend):
    x, b = _with_duplicates(F64)
    backend(self_last=True)  # ties by descending index: point 0 is not among its own k + 1 nearest
    k = 4
    e = knn_graph(x, k, b)
    assert not bool((e[0] == e[1]).any())
    assert torch.equal(torch.bincount(e[1], minlength=len(x)), torch.full((len(x),), k))
    d = (x[e[0]] - x[e[1]]).norm(dim=1)
    ref = [sorted((x[i] - x[j]).norm().item() for j in s) for i, s in enumerate(brute_knn_graph_sets(x, k, b))]
    got = [[] for _ in range(len(x))]
    for i, di in zip(e[1].tolist(), d.tolist()):
        got[i].append(di)
    torch.testing.assert_close(torch.tensor([sorted(g) for g in got]), torch.tensor(ref), rtol=0, atol=1e-12)


def test_knn_ties_broken_by_lower_index(dtype):
    x = torch.zeros(12, 2, dtype=dtype)  # all coincident
    assert knn(x, x[:1], 5)[1].sort().values.tolist() == [0, 1, 2, 3, 4]
    assert graph_sets(knn_graph(x, 3), 12)[0] == [1, 2, 3]
    assert graph_sets(knn_graph(x, 3), 12)[5] == [0, 1, 2]
