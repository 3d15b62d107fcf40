import torch

from equinets.nn.graph_ops import fold_graph, full_graph, repeat_segments, segment_ptr


def test_repeat_segments_matches_a_loop():
    counts = torch.tensor([3, 0, 2, 4])
    index = torch.tensor([2, 0, 0, 3, 1, 2])
    item, copy, start = repeat_segments(counts, index)
    ptr = segment_ptr(counts).tolist()
    ref_item = [ptr[g] + r for g in index.tolist() for r in range(int(counts[g]))]
    ref_copy = [k for k, g in enumerate(index.tolist()) for _ in range(int(counts[g]))]
    assert item.tolist() == ref_item and copy.tolist() == ref_copy
    assert start.tolist() == [0, 2, 5, 8, 12, 12]


def test_fold_graph_matches_a_loop_with_edges_in_any_order():
    gen = torch.Generator().manual_seed(0)
    sizes = [3, 5, 4]
    batch = torch.arange(3).repeat_interleave(torch.tensor(sizes))
    ptr = segment_ptr(torch.tensor(sizes)).tolist()
    edges = []
    for b, n in enumerate(sizes):
        a = torch.rand(n, n, generator=gen) < 0.5
        edges += [(ptr[b] + j, ptr[b] + i) for j, i in a.nonzero().tolist()]
    ei = torch.tensor(edges).T[:, torch.randperm(len(edges), generator=gen)]
    index = torch.tensor([1, 2, 1, 0])
    f = fold_graph(ei, batch, index)
    # reference: copy k is graph index[k] relabelled to rows start_k .. start_k + n - 1
    rows, ref_edges, start = [], [], 0
    for g in index.tolist():
        rows += list(range(ptr[g], ptr[g] + sizes[g]))
        ref_edges += [(j - ptr[g] + start, i - ptr[g] + start) for j, i in ei.T.tolist() if batch[j] == g]
        start += sizes[g]
    assert f.node.tolist() == rows
    assert f.copy.tolist() == [k for k, g in enumerate(index.tolist()) for _ in range(sizes[g])]
    assert [tuple(e) for e in f.edge_index.T.tolist()] == ref_edges  # same edges, same order inside a copy
    assert torch.equal(f.node[f.edge_index], ei[:, f.edge])  # folded edges are copies of the original ones


def test_full_graph_is_every_ordered_pair_of_a_cloud():
    batch = torch.tensor([0, 0, 0, 1, 2, 2])
    ei = full_graph(batch)
    ref = [(j, i) for i in range(6) for j in range(6) if i != j and batch[i] == batch[j]]
    assert [tuple(e) for e in ei.T.tolist()] == ref  # grouped by target, sources ascending
    assert full_graph(torch.zeros(5, dtype=torch.long)).shape == (2, 20)
