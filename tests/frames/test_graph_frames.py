import math

import pytest
import torch

from equinets.frames import GraphFrameAveraging, graph_frames
from equinets.nn import GIN

# -- graphs ------------------------------------------------------------------------------------------------


def _undirected(src, dst):
    e = torch.stack([torch.as_tensor(src), torch.as_tensor(dst)])
    return torch.cat([e, e.flip(0)], 1)


def csl(n, r):
    """Circular skip-link graph: cycle of n nodes plus chords i ~ i + r (mod n)."""
    i = torch.arange(n)
    return _undirected(torch.cat([i, i]), torch.cat([(i + 1) % n, (i + r) % n]))


def hexagon():
    i = torch.arange(6)
    return _undirected(i, (i + 1) % 6)


def two_triangles():
    return _undirected([0, 1, 2, 3, 4, 5], [1, 2, 0, 4, 5, 3])


def random_graph(n, p=0.3, gen=None):
    a = torch.rand(n, n, generator=gen) < p
    src, dst = torch.triu(a, 1).nonzero().T
    return _undirected(src, dst)


def batch_of(graphs):
    """Concatenate (edge_index, n) pairs into one batch."""
    eis, batch, off = [], [], 0
    for b, (ei, n) in enumerate(graphs):
        eis.append(ei + off)
        batch.append(torch.full((n,), b))
        off += n
    return torch.cat(eis, 1), torch.cat(batch), off


def relabel(ei, batch, x):
    """Random relabelling of the nodes inside every graph (batch stays sorted): new node perm^-1[i] holds old node i."""
    counts = torch.bincount(batch).tolist()
    offsets = torch.tensor([0] + counts[:-1]).cumsum(0).tolist()
    perm = torch.cat([torch.randperm(c) + o for c, o in zip(counts, offsets)])  # new node j is old node perm[j]
    inv = perm.argsort()
    return inv[ei], batch[perm], x[perm], perm


def _orderings_as_sets(fr, b):
    return {tuple(o) for o in fr.orderings(b).tolist()}


# -- frames ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,ei,n,size", [
    ("path3", _undirected([0, 1], [1, 2]), 3, 2),
    ("hexagon", hexagon(), 6, 12),  # |Aut| = 12 (dihedral)
    ("two_triangles", two_triangles(), 6, 72),  # |Aut| = 3! 3! 2
    ("csl11_2", csl(11, 2), 11, 22),  # |Aut| = 22
    ("csl11_3", csl(11, 3), 11, 22),
])
def test_frame_sizes_reach_automorphism_group(name, ei, n, size):
    fr = graph_frames(ei, n)
    assert fr.size == [size] and fr.complete.tolist() == [True]
    orders = fr.orderings(0)
    assert orders.shape == (size, n)
    assert len(_orderings_as_sets(fr, 0)) == size  # a set: no ordering twice
    assert torch.equal(orders.sort(1).values, torch.arange(n).expand(size, n))  # permutations
    assert torch.allclose(fr.weight.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_sort_only_frame_is_consistent_with_tie_blocks_and_samples_large_frames():
    gen = torch.Generator().manual_seed(0)
    ei = random_graph(9, gen=gen)
    fr = graph_frames(ei, 9, individualize=0, max_frames=10**6)
    sizes = torch.bincount(fr.color).tolist()
    assert fr.size == [math.prod(math.factorial(s) for s in sizes)]
    for o in fr.orderings(0):
        assert torch.equal(fr.color[o], fr.color.sort().values)  # blocks appear in key order
    # vertex-transitive: every node ties and the sort-only frame is S_n -> sampled
    fr = graph_frames(csl(11, 2), 11, individualize=0, max_frames=16, generator=gen)
    assert fr.size == [math.factorial(11)] and fr.complete.tolist() == [False] and fr.num_frames == 16
    assert (fr.color == 0).all()


@pytest.mark.parametrize("individualize,num_eigvecs", [(0, None), (3, None), (2, 3)])
def test_frames_are_equivariant(individualize, num_eigvecs):
    """F(sigma G) = sigma F(G): relabelled frames equal the frames of the relabelled graph, as sets."""
    gen = torch.Generator().manual_seed(1)
    graphs = [(hexagon(), 6), (two_triangles(), 6), (random_graph(7, gen=gen), 7)]
    if individualize:
        graphs.append((csl(11, 3), 11))  # sort-only: S_11, too large to enumerate
    ei, batch, N = batch_of(graphs)
    x = torch.arange(N)
    ei2, batch2, _, perm = relabel(ei, batch, x)
    kw = dict(individualize=individualize, num_eigvecs=num_eigvecs, max_frames=10**4)
    fr, fr2 = graph_frames(ei, N, batch, **kw), graph_frames(ei2, N, batch2, **kw)
    assert fr.size == fr2.size and fr.complete.all()
    for b in range(len(graphs)):
        nodes = (batch == b).nonzero().flatten()  # old global ids, storage order
        nodes2 = (batch2 == b).nonzero().flatten()  # new global ids, storage order
        got = {tuple(perm[nodes2[o]].tolist()) for o in fr2.orderings(b)}  # as old global ids
        ref = {tuple(nodes[o].tolist()) for o in fr.orderings(b)}
        assert got == ref


def test_batched_frames_match_single_graph_frames():
    graphs = [(hexagon(), 6), (csl(11, 2), 11), (two_triangles(), 6), (csl(11, 4), 11)]
    ei, batch, N = batch_of(graphs)
    fr = graph_frames(ei, N, batch)
    for b, (e, n) in enumerate(graphs):
        single = graph_frames(e, n)
        assert fr.size[b] == single.size[0]
        assert _orderings_as_sets(fr, b) == _orderings_as_sets(single, 0)


# -- frame averaging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("task,encoding", [("cls", "onehot"), ("seg", "sinusoidal")])
def test_fa_gin_is_exactly_invariant_with_complete_frames(task, encoding):
    gen = torch.Generator().manual_seed(2)
    graphs = [(hexagon(), 6), (two_triangles(), 6), (random_graph(8, gen=gen), 8), (csl(11, 3), 11)]
    ei, batch, N = batch_of(graphs)
    x = torch.randn(N, 2, dtype=torch.float64)
    fa = GraphFrameAveraging(GIN(2 + 12, 3, task, hidden_channels=16).double(), id_dim=12, id_encoding=encoding)
    y = fa(x, ei, batch)
    assert y.shape == ((4, 3) if task == "cls" else (N, 3))
    ei2, batch2, x2, perm = relabel(ei, batch, x)
    y2 = fa(x2, ei2, batch2)
    if task == "seg":
        y2 = y2[perm.argsort()]  # back to the old node order
    assert (y - y2).abs().max() < 1e-12


def test_plain_gin_cannot_separate_1wl_equivalent_graphs_but_fa_gin_can():
    for seed in range(2):
        torch.manual_seed(seed)
        gin = GIN(1 + 11, 8, hidden_channels=16).double()
        fa = GraphFrameAveraging(gin, id_dim=11)
        pairs = {"hex/2tri": [(hexagon(), 6), (two_triangles(), 6)],
                 "csl11_2/csl11_3": [(csl(11, 2), 11), (csl(11, 3), 11)]}
        for graphs in pairs.values():
            ei, batch, N = batch_of(graphs)
            x = torch.ones(N, 1, dtype=torch.float64)
            plain = gin(torch.cat([x, x.new_zeros(N, 11)], 1), ei, batch)
            assert (plain[0] - plain[1]).abs().max() < 1e-6  # 1-WL: identical
            y = fa(x, ei, batch)
            assert (y[0] - y[1]).abs().max() > 1e-4 * y.abs().max()  # separated
            ei2, batch2, x2, _ = relabel(ei, batch, x)
            assert (fa(x2, ei2, batch2) - y).abs().max() < 1e-12  # and relabelling-invariant
        # CSL(11, 2) and CSL(11, 5) are isomorphic (i -> 6 i mod 11): FA-GIN must not separate them
        ei, batch, N = batch_of([(csl(11, 2), 11), (csl(11, 5), 11)])
        y = fa(torch.ones(N, 1, dtype=torch.float64), ei, batch)
        assert (y[0] - y[1]).abs().max() < 1e-12


def test_sampled_frames_are_invariant_in_distribution():
    """Sort-only frame of the hexagon is S_6 (720): the mean over sampled frames converges to the exact average."""
    gin = GIN(1 + 6, 2, hidden_channels=8).double()
    ei, batch, N = batch_of([(hexagon(), 6)])
    x = torch.ones(N, 1, dtype=torch.float64)
    exact = GraphFrameAveraging(gin, id_dim=6, individualize=0, max_frames=720)(x, ei, batch)
    fa = GraphFrameAveraging(gin, id_dim=6, individualize=0, max_frames=500)
    gen = torch.Generator().manual_seed(3)
    samples = {"G": [], "sigma G": []}
    for _ in range(4):
        fr = fa.frames(ei, N, batch, generator=gen)
        assert not fr.complete.any() and fr.num_frames == 500
        samples["G"].append(fa(x, ei, batch, frames=fr))
        ei2, batch2, x2, _ = relabel(ei, batch, x)
        samples["sigma G"].append(fa(x2, ei2, batch2, generator=gen))
    # per-frame spread of the backbone output bounds the standard error of the 2000-sample mean
    fr_all = fa.frames(ei, N, batch, generator=gen)
    ids = torch.nn.functional.one_hot(fr_all.rank, 6).double()
    per_frame = gin(torch.cat([x[fr_all.node], ids], 1), _fold(ei, fr_all), fr_all.frame)
    se = per_frame.std(0) / math.sqrt(2000)
    for ys in samples.values():
        mean = torch.stack(ys).mean(0)
        assert ((mean - exact).abs() < 5 * se + 1e-12).all()
    assert (samples["G"][0] - exact).abs().max() > 0  # a single estimate is not exact


def _fold(ei, fr):
    """Edge index of a single graph replicated once per frame (rows frame-major)."""
    n = fr.node.shape[0] // fr.num_frames
    return torch.cat([ei + k * n for k in range(fr.num_frames)], 1)


def test_errors_and_repr():
    ei = hexagon()
    with pytest.raises(ValueError, match="id_dim"):
        GraphFrameAveraging(GIN(1 + 4, 2, hidden_channels=8), id_dim=4)(torch.ones(6, 1), ei)
    with pytest.raises(ValueError, match="id_encoding"):
        GraphFrameAveraging(GIN(5, 2, hidden_channels=8), id_encoding="binary")
    with pytest.raises(ValueError, match="same graph"):
        graph_frames(torch.tensor([[0], [1]]), 2, torch.tensor([0, 1]))
    fa = GraphFrameAveraging(GIN(8, 2, hidden_channels=8), id_dim=8)
    assert "GraphFrameAveraging(max_frames=512" in repr(fa)
    assert fa(None, ei, num_nodes=6).shape == (1, 2)  # identifiers only
    fa64 = GraphFrameAveraging(GIN(8, 2, hidden_channels=8).double(), id_dim=8)
    assert fa64(None, ei, num_nodes=6).dtype == torch.float64  # identifiers in the GNN's dtype


def test_num_samples_draws_that_many_frames_in_training_and_eval_is_exact():
    """num_samples is a count (as in FrameAveraging): k orderings per graph in train mode, the full frame in eval."""
    gin = GIN(1 + 6, 2, hidden_channels=8).double()
    ei, batch, N = batch_of([(hexagon(), 6), (two_triangles(), 6)])
    x = torch.ones(N, 1, dtype=torch.float64)
    # sort-only frames (S_6 for the hexagon, 72 for two triangles): frame elements give different framed inputs
    exact = GraphFrameAveraging(gin, id_dim=6, individualize=0, max_frames=720)
    fa = GraphFrameAveraging(gin, id_dim=6, individualize=0, max_frames=720, num_samples=3)
    assert "num_samples=3" in repr(fa)
    fr = fa.frames(ei, N, batch, generator=torch.Generator().manual_seed(0))
    assert fr.num_frames == 6 and fr.graph.tolist() == [0, 0, 0, 1, 1, 1] and not fr.complete.any()
    full = exact.frames(ei, N, batch)
    for b in range(2):  # every sampled ordering is one of the frame's
        assert _orderings_as_sets(fr, b) <= _orderings_as_sets(full, b)
    y_train = fa(x, ei, batch)
    assert (y_train - exact(x, ei, batch)).abs().max() > 1e-6  # a 3-sample estimate, not the average
    torch.testing.assert_close(fa.eval()(x, ei, batch), exact(x, ei, batch), rtol=0, atol=1e-12)
