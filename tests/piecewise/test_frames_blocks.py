"""Per-part frames (weighted PCA through pca_frames), small and flat parts, within-part neighbours, folding."""

import pytest
import torch

from equinets.frames import pca_frames
from equinets.piecewise import Partition, part_frames, part_neighbors, partition_from_labels

F64 = torch.float64


def test_part_frames_equal_pca_frames_of_each_part_alone():
    pos = torch.randn(30, 3, dtype=F64) * torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    lab = torch.randint(0, 3, (30,), generator=torch.Generator().manual_seed(0))
    part = partition_from_labels(lab, torch.zeros(30, dtype=torch.long), 3)
    fr = part_frames(pos, part, "E3")
    for j in range(3):
        ref = pca_frames(pos[lab == j], group="E3")
        assert torch.allclose(fr.rotations[j], ref.rotations[0], atol=1e-12, rtol=0)
        assert torch.allclose(fr.translation[j], ref.translation[0], atol=1e-12, rtol=0)


def test_zero_weight_pairs_have_no_effect():
    pos = torch.randn(12, 3, dtype=F64) * torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    point = torch.arange(12)
    part = torch.zeros(12, dtype=torch.long)
    w = torch.ones(12, dtype=F64)
    w[9:] = 0.0  # three pairs listed with weight 0 (e.g. a soft pair at the threshold)
    p = Partition(point, part, w, torch.zeros(1, dtype=torch.long), part, 1)
    fr = part_frames(pos, p, "SE3")
    ref = pca_frames(pos[:9], group="SE3")
    assert torch.allclose(fr.rotations, ref.rotations, atol=1e-12, rtol=0)
    assert torch.allclose(fr.centroid, ref.centroid, atol=1e-12, rtol=0)


@pytest.mark.parametrize("group", ["SE3", "E3"])
def test_one_two_collinear_and_planar_parts_give_finite_frames_outputs_and_gradients(group, pw):
    """The degenerate-spectrum policy of pca_frames, never random covariances: finite, orthogonal, deterministic."""
    g = torch.Generator().manual_seed(0)
    single = torch.tensor([[5.0, 5.0, 5.0]], dtype=F64)
    pair = torch.tensor([[-5.0, 0, 0], [-4.0, 0.5, 0]], dtype=F64)
    line = torch.linspace(0, 1, 6, dtype=F64)[:, None] * torch.tensor([[1.0, 2.0, 0.5]], dtype=F64) + 9.0
    plane = torch.cat([torch.randn(8, 2, dtype=F64, generator=g) * torch.tensor([1.0, 0.5], dtype=F64),
                       torch.zeros(8, 1, dtype=F64)], 1) - 9.0
    pos = torch.cat([single, pair, line, plane])
    lab = torch.tensor([0] + [1] * 2 + [2] * 6 + [3] * 8)
    part = partition_from_labels(lab, torch.zeros(17, dtype=torch.long), 4)
    fr = part_frames(pos, part, group)
    R = fr.rotations
    eye = torch.eye(3, dtype=F64).expand_as(R)
    assert torch.isfinite(R).all() and torch.allclose(R.mT @ R, eye, atol=1e-12)
    assert torch.allclose(fr.weights.sum(1), torch.ones(4, dtype=F64), atol=1e-12)
    assert fr.degenerate.tolist() == [True, True, True, False]
    assert torch.equal(part_frames(pos, part, group).rotations, R)  # deterministic
    m = pw.small_apen(group=group)
    x = pos.clone().requires_grad_()
    out = m(x, None, None, lab)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    # predicted partitions of a cloud with a lone far point: finite too
    assert torch.isfinite(m(pos)).all()


def test_part_neighbors_stay_inside_the_part_far_from_the_origin():
    """No cross-part neighbour even where a +1000 penalty would fail (coordinates ~1e4), nearest first."""
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(40, 3, dtype=F64, generator=g) * 0.1 + 1e4
    lab = torch.randint(0, 3, (40,), generator=g)
    k = 5
    off = part_neighbors(pos, lab, k)
    d = torch.cdist(pos, pos)
    for i in range(40):
        same = (lab == lab[i]).nonzero().flatten()
        same = same[same != i]
        ref = same[d[i, same].argsort()][:k]
        want = pos[ref] - pos[i]
        assert torch.allclose(off[i, : len(ref)], want, atol=1e-9, rtol=0)
        assert (off[i, len(ref):] == 0).all()  # a small part pads with the point itself


def test_sparse_fold_equals_a_loop_over_parts_and_frames(pw):
    """The block on the folded (pair, frame) rows equals running its MLPs part by part, frame by frame."""
    pos, lab, bt = pw.separated_parts(3, 10)
    m = pw.small_apen()
    blk = m.blocks[0]
    part = partition_from_labels(lab, bt, 8, dtype=F64)
    fr = part_frames(pos, part, "SE3")
    nbr = part_neighbors(pos, part.label, m.k)
    s, v = blk(pos, part, fr, None, nbr)
    s_ref = torch.zeros_like(s)
    v_ref = torch.zeros_like(v)
    for j in range(part.num_parts):
        idx = part.point[part.part == j]
        for f in range(fr.rotations.shape[1]):
            wg = float(fr.weights[j, f])
            if wg == 0:
                continue
            R, t = fr.rotations[j, f], fr.translation[j]
            feat = torch.cat([(pos[idx] - t) @ R, (nbr[idx] @ R).reshape(len(idx), -1)], 1)
            h = blk.point_mlp(feat)
            pooled = torch.cat([h.mean(0), h.max(0).values]).expand(len(idx), -1)
            g = blk.out_mlp(torch.cat([h, pooled], 1))
            s_ref[idx] += wg * g[:, : blk.out_scalars]
            v_ref[idx] += wg * g[:, blk.out_scalars:].reshape(len(idx), -1, 3) @ R.T
    assert torch.allclose(s, s_ref, atol=1e-12, rtol=0) and torch.allclose(v, v_ref, atol=1e-12, rtol=0)
