"""Neighbour ops (pure-torch path) against slow float64 python references."""

from __future__ import annotations

import math

import pytest
import torch

from equinets.nn import fps, knn, knn_dense, knn_graph, radius, radius_graph


# ----------------------------------------------------------------------------- slow references
def ref_knn_dists(x, y, k, bx, by, exclude_self=False):
    """For each y point: sorted list of its k smallest distances to same-cloud x points (python loops)."""
    x, y = x.double().tolist(), y.double().tolist()
    out = []
    for i, yi in enumerate(y):
        d = [math.dist(yi, xj) for j, xj in enumerate(x) if bx[j] == by[i] and not (exclude_self and i == j)]
        out.append(sorted(d)[:k])
    return out


def got_dists(x, y, row, col, n_rows):
    out = [[] for _ in range(n_rows)]
    for r, c in zip(row.tolist(), col.tolist()):
        out[r].append(math.dist(y[r].double().tolist(), x[c].double().tolist()))
    return [sorted(d) for d in out]


def assert_same_dists(got, ref, tol):
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert len(g) == len(r)
        assert all(abs(a - b) <= tol for a, b in zip(g, r)), (g, r)


def ref_fps(x, ratio, start):
    """Farthest-point sequence of one cloud, python loops, lowest index on ties."""
    pts = x.double().tolist()
    m = math.ceil(len(pts) * ratio - 1e-9)
    sel, mind = [start], [math.inf] * len(pts)
    while len(sel) < m:
        for i, p in enumerate(pts):
            mind[i] = min(mind[i], math.dist(p, pts[sel[-1]]))
        best = max(range(len(pts)), key=lambda i: (mind[i], -i))
        sel.append(best)
    return sel


def ragged(sizes, dim=3, dtype=torch.float64):
    x = torch.randn(sum(sizes), dim, dtype=dtype)
    b = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(sizes)])
    return x, b


def tol(dtype):
    return 1e-9 if dtype == torch.float64 else 1e-4


# ----------------------------------------------------------------------------- knn
@pytest.mark.parametrize("sizes", [[13], [4, 9, 1, 7], [6, 6, 6]])
def test_knn_matches_bruteforce_distances(sizes, dtype):
    x, bx = ragged(sizes, dtype=dtype)
    y, by = ragged([max(1, n - 2) for n in sizes], dtype=dtype)
    k = 4
    e = knn(x, y, k, bx, by)
    assert e.dtype == torch.long and e.shape[0] == 2
    assert bool((bx[e[1]] == by[e[0]]).all()), "neighbours must come from the same cloud"
    assert bool((e[0][1:] >= e[0][:-1]).all()), "sorted by query"
    assert_same_dists(got_dists(x, y, e[0], e[1], len(y)), ref_knn_dists(x, y, k, bx, by), tol(dtype))


def test_knn_unbatched_and_fewer_points_than_k():
    x, y = torch.randn(5, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    e = knn(x, y, 10)
    assert e.shape == (2, 15)  # every x point for every y point
    assert_same_dists(got_dists(x, y, e[0], e[1], 3), ref_knn_dists(x, y, 10, [0] * 5, [0] * 3), 1e-12)


def test_knn_self_query_includes_self():
    x = torch.randn(20, 3, dtype=torch.float64)
    e = knn(x, x, 1)
    assert torch.equal(e[0], e[1])


def test_knn_grouped_selection_path_is_exact(dtype):
    # N = 301 columns (padded to a multiple of 8) with k small enough for the two-stage selection
    x, bx = ragged([301, 200], dtype=dtype)
    e = knn_graph(x, 5, bx)
    ref = ref_knn_dists(x, x, 5, bx.tolist(), bx.tolist(), exclude_self=True)
    assert_same_dists(got_dists(x, x, e[1], e[0], len(x)), ref, tol(dtype))


def test_knn_cosine_matches_reference():
    x, y = torch.randn(30, 4, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64)
    e = knn(x, y, 3, cosine=True)
    cos = torch.nn.functional.normalize(y, dim=1) @ torch.nn.functional.normalize(x, dim=1).T
    ref = (1 - cos).sort(1).values[:, :3]
    got = (1 - cos[e[0], e[1]]).view(7, 3).sort(1).values
    torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("flow", ["source_to_target", "target_to_source"])
def test_knn_graph_semantics(loop, flow, dtype):
    x, b = ragged([5, 11, 8], dtype=dtype)
    k = 3
    e = knn_graph(x, k, b, loop=loop, flow=flow)
    src, tgt = (e[0], e[1]) if flow == "source_to_target" else (e[1], e[0])
    assert bool((tgt[1:] >= tgt[:-1]).all())
    assert torch.equal(torch.bincount(tgt, minlength=len(x)), torch.full((len(x),), k))
    assert bool((src == tgt).any()) == loop
    ref = ref_knn_dists(x, x, k, b.tolist(), b.tolist(), exclude_self=not loop)
    assert_same_dists(got_dists(x, x, tgt, src, len(x)), ref, tol(dtype))


def test_knn_graph_no_loop_with_duplicate_points():
    x = torch.zeros(6, 3)
    e = knn_graph(x, 2)
    assert e.shape == (2, 12) and not bool((e[0] == e[1]).any())


def test_knn_graph_equal_size_fast_path_matches_ragged_path():
    x, b = ragged([64, 64, 64], dtype=torch.float64)
    e_fast = knn_graph(x, 6, b)
    x2 = torch.cat([x, torch.randn(1, 3, dtype=torch.float64)])
    b2 = torch.cat([b, torch.tensor([3])])  # an extra cloud of one point makes the batch ragged
    e_slow = knn_graph(x2, 6, b2)
    assert e_slow.shape[1] == e_fast.shape[1]  # the singleton has no other point
    d = lambda e: (x[e[0]] - x[e[1]]).norm(dim=1).view(-1, 6).sort(1).values  # noqa: E731
    torch.testing.assert_close(d(e_fast), d(e_slow), rtol=0, atol=1e-12)


@pytest.mark.parametrize("loop", [True, False])
def test_knn_dense_matches_bruteforce(loop, dtype):
    pos = torch.randn(3, 40, 3, dtype=dtype)
    idx = knn_dense(pos, 5, loop=loop)
    assert idx.shape == (3, 40, 5) and idx.dtype == torch.long
    for b in range(3):
        got = (pos[b].unsqueeze(1) - pos[b][idx[b]]).double().norm(dim=-1).sort(1).values.tolist()
        ref = ref_knn_dists(pos[b], pos[b], 5, [0] * 40, [0] * 40, exclude_self=not loop)
        assert_same_dists(got, ref, tol(dtype))
    if loop:
        assert bool((idx == torch.arange(40).view(1, 40, 1)).any(-1).all()), "each point is its own neighbour"


def test_knn_dense_large_grouped_path(dtype):
    pos = torch.randn(2, 333, 3, dtype=dtype)
    idx = knn_dense(pos, 4, loop=False)
    d = (pos.unsqueeze(2) - pos.unsqueeze(1)).double().norm(dim=-1)
    d.diagonal(dim1=1, dim2=2).fill_(math.inf)
    ref = d.topk(4, -1, largest=False).values
    got = d.gather(2, idx).sort(-1).values
    torch.testing.assert_close(got, ref, rtol=0, atol=tol(dtype))


# ----------------------------------------------------------------------------- radius
@pytest.mark.parametrize("sizes", [[12], [5, 10, 3]])
def test_radius_matches_bruteforce_sets(sizes, dtype):
    x, bx = ragged(sizes, dtype=dtype)
    y, by = ragged(sizes, dtype=dtype)
    r = 1.2
    e = radius(x, y, r, bx, by, max_num_neighbors=100)
    got = set(zip(e[0].tolist(), e[1].tolist()))
    ref = {
        (i, j)
        for i in range(len(y))
        for j in range(len(x))
        if bx[j] == by[i] and math.dist(x[j].double().tolist(), y[i].double().tolist()) < r
    }
    assert got == ref


def test_radius_max_num_neighbors_keeps_nearest():
    x = torch.arange(10, dtype=torch.float64).view(-1, 1)
    e = radius(x, torch.tensor([[0.0]], dtype=torch.float64), r=100.0, max_num_neighbors=3)
    assert e[1].tolist() == [0, 1, 2]


@pytest.mark.parametrize("loop", [False, True])
def test_radius_graph_semantics(loop):
    x, b = ragged([7, 9], dtype=torch.float64)
    e = radius_graph(x, 1.0, b, loop=loop, max_num_neighbors=100)
    got = set(zip(e[0].tolist(), e[1].tolist()))
    ref = {
        (j, i)
        for i in range(len(x))
        for j in range(len(x))
        if b[i] == b[j] and (loop or i != j) and (x[i] - x[j]).norm() < 1.0
    }
    assert got == ref
    e2 = radius_graph(x, 1.0, b, loop=loop, max_num_neighbors=100, flow="target_to_source")
    assert set(zip(e2[1].tolist(), e2[0].tolist())) == ref


# ----------------------------------------------------------------------------- fps
def test_fps_first_pick_and_sequence_match_reference(dtype):
    x, b = ragged([10, 17, 1, 6], dtype=dtype)
    idx = fps(x, b, ratio=0.5, random_start=False)
    ptr = [0, 10, 27, 28, 34]
    expect = []
    for g in range(4):
        expect += [ptr[g] + i for i in ref_fps(x[ptr[g] : ptr[g + 1]], 0.5, 0)]
    assert idx.tolist() == expect
    assert idx[0].item() == 0  # first pick = first point of the first cloud


def test_fps_random_start_with_generator_is_reproducible_and_farthest():
    x, b = ragged([30, 21], dtype=torch.float64)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    i1, i2 = fps(x, b, 0.3, generator=g1), fps(x, b, 0.3, generator=g2)
    assert torch.equal(i1, i2)
    m0 = math.ceil(30 * 0.3)
    assert len(i1) == m0 + math.ceil(21 * 0.3)
    first, second = i1[:m0], i1[m0:] - 30
    assert first.tolist() == ref_fps(x[:30], 0.3, int(first[0]))
    assert second.tolist() == ref_fps(x[30:], 0.3, int(second[0]))


def test_fps_ratio_one_is_a_permutation():
    x = torch.randn(9, 3)
    assert sorted(fps(x, ratio=1.0).tolist()) == list(range(9))


# ----------------------------------------------------------------------------- errors
def test_neighbour_ops_reject_bad_arguments():
    x = torch.randn(6, 3)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        knn(x, x, 0)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        knn_graph(x, -1)
    with pytest.raises(ValueError, match=r"batch_x must have shape \(N,\) = \(6,\)"):
        knn(x, x, 2, torch.zeros(5, dtype=torch.long), torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match=r"batch must have shape \(N,\) = \(6,\)"):
        knn_graph(x, 2, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="must be sorted"):
        knn_graph(x, 2, torch.tensor([0, 1, 0, 1, 0, 1]))
    with pytest.raises(ValueError, match="same number of columns"):
        knn(x, torch.randn(2, 2), 1)
    with pytest.raises(ValueError, match="flow must be"):
        knn_graph(x, 2, flow="sideways")
    with pytest.raises(ValueError, match="k must be <= 5"):
        knn_dense(x.unsqueeze(0), 6, loop=False)
    with pytest.raises(ValueError, match=r"ratio must be a number in \(0, 1\]"):
        fps(x, ratio=0.0)
    with pytest.raises(ValueError, match="r must be > 0"):
        radius_graph(x, 0.0)
    with pytest.raises(ValueError, match="x must be finite"):
        knn_graph(torch.full((3, 3), float("nan")), 1)
    with pytest.raises(TypeError, match="integer tensor"):
        knn_graph(x, 2, torch.zeros(6))


@pytest.mark.parametrize("chunk", [64, 2000, 1 << 12], ids=["rows", "clouds", "mixed"])
def test_knn_chunking_is_invisible(chunk, monkeypatch, dtype):
    """Small chunks (part of a cloud's rows, several clouds, a last partial chunk) give the one-chunk result."""
    from equinets.nn import neighbors

    x, b = ragged([48, 48, 48, 48, 48], dtype=dtype)
    ref_g = knn_graph(x, 4, b)
    ref_d = knn_dense(x.view(5, 48, 3), 3, loop=False)
    ref_r = knn_graph(x[:100], 4, b[:100], loop=True)
    monkeypatch.setattr(neighbors, "_CHUNK_ELEMS", chunk)
    assert torch.equal(knn_graph(x, 4, b)[1], ref_g[1])
    assert torch.equal(knn_graph(x, 4, b)[0].view(-1, 4).sort(1).values, ref_g[0].view(-1, 4).sort(1).values)
    assert torch.equal(knn_dense(x.view(5, 48, 3), 3, loop=False).sort(-1).values, ref_d.sort(-1).values)
    got_r = knn_graph(x[:100], 4, b[:100], loop=True)  # ragged: clouds of 48, 48, 4
    assert torch.equal(got_r[1], ref_r[1])
    assert torch.equal(got_r[0].view(-1, 4).sort(1).values, ref_r[0].view(-1, 4).sort(1).values)
    dists = ref_knn_dists(x, x, 4, b.tolist(), b.tolist(), exclude_self=True)
    assert_same_dists(got_dists(x, x, ref_g[1], ref_g[0], len(x)), dists, tol(dtype))
