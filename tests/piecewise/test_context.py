"""APEN's cloud context (``context=True``): exact piecewise invariance, symmetry in the parts, and that it matters."""

import pytest
import torch

from equinets.piecewise import APEN, APENBlock, part_frames, partition_from_labels

F64 = torch.float64


@pytest.mark.parametrize("group", ["SE3", "E3", "O3"])
def test_context_keeps_exact_invariance_under_independent_part_motions(group, dtype, tol, pw):
    pos, lab, bt = pw.separated_parts(3, 20, clouds=2)
    Q, t = pw.part_motions(lab, bt, group, 3, clouds=2)
    for task in ("seg", "cls"):
        m = pw.small_apen(task=task, group=group, dtype=dtype, context=True)
        r1 = m.forward_all(pos.to(dtype), None, bt, lab)
        r2 = m.forward_all(pw.move(pos, Q, t).to(dtype), None, bt, lab)
        assert torch.isfinite(r1.out).all() and pw.rel_err(r2.out, r1.out) < tol
        for v1, v2 in zip(r1.votes, r2.votes):
            assert pw.rel_err(v2, torch.einsum("nij,nj->ni", Q.to(dtype), v1)) < tol


def test_context_refinement_exact_merging_not(pw):
    """The subpartition lemma still holds with the context; merging two true parts breaks it."""
    pos, lab, bt = pw.separated_parts(3, 30)
    Q, t = pw.part_motions(lab, bt, "SE3", 3)
    moved = pw.move(pos, Q, t)
    m = pw.small_apen(num_parts=12, context=True)
    fine = 4 * lab + torch.randint(0, 4, lab.shape, generator=torch.Generator().manual_seed(3))
    err_fine = pw.rel_err(m(moved, None, bt, fine), m(pos, None, bt, fine))
    coarse = torch.where(lab == 1, torch.zeros_like(lab), lab)
    err_merge = pw.rel_err(m(moved, None, bt, coarse), m(pos, None, bt, coarse))
    assert err_fine < 1e-9 and err_merge > 1e-3


def test_context_sees_the_other_parts_and_not_other_clouds(pw):
    """A block's output at a point depends on the shape of the other parts of its cloud (the context), never on
    other clouds; without the context a block does not see the other parts at all (given a known partition)."""
    pos, lab, bt = pw.separated_parts(3, 20, clouds=2)
    other = (bt == 0) & (lab == 2)  # part 2 of cloud 0, stretched
    c = pos[other].mean(0)
    pos2 = pos.clone()
    pos2[other] = c + 1.7 * (pos[other] - c)
    mine, cloud1 = (bt == 0) & (lab == 0), bt == 1
    part = partition_from_labels(lab, bt, 3, dtype=F64)
    for ctx in (True, False):
        torch.manual_seed(0)
        blk = APENBlock(0, 0, 6, 2, (8, 12), context=ctx).to(F64).eval()
        (a, va), (b, vb) = (blk(p, part, part_frames(p, part, "SE3")) for p in (pos, pos2))
        assert pw.rel_err(b[cloud1], a[cloud1]) < 1e-12 and pw.rel_err(vb[cloud1], va[cloud1]) < 1e-12
        err = pw.rel_err(b[mine], a[mine])
        assert (err > 1e-4) if ctx else (err < 1e-12)


def test_context_terms_match_a_direct_formula():
    """The descriptor max/mean over parts, checked against a per-part loop written directly."""
    torch.manual_seed(0)
    pos = torch.randn(40, 3, dtype=F64) * torch.tensor([1.0, 0.5, 0.2], dtype=F64)
    lab = torch.arange(40) % 3
    part = partition_from_labels(lab, torch.zeros(40, dtype=torch.long), 3, dtype=F64)
    fr = part_frames(pos, part, "SE3")
    blk = APENBlock(0, 0, 4, 1, (8,), context=True).to(F64).eval()
    seen = {}
    blk.context_lin.register_forward_hook(lambda mod, i, o: seen.update(cloud=i[0]))
    blk(pos, part, fr)
    cloud = seen["cloud"][0]
    c = 8
    descs = []
    for j in range(3):
        assert fr.weights[j].sum().item() == pytest.approx(1.0)
        pts = pos[lab == j]
        acc = torch.zeros(2 * c, dtype=F64)
        for g in range(fr.rotations.shape[1]):
            wg = float(fr.weights[j, g])
            if wg == 0:
                continue
            R = fr.rotations[j, g]
            f = blk.point_mlp((pts - fr.translation[j]) @ R)
            acc += wg * torch.cat([f.mean(0), f.max(0).values])
        share = pts.shape[0] / 40
        descs.append(torch.cat([acc, fr.eigenvalues[j].sqrt(), torch.tensor([share], dtype=F64)]))
    d = torch.stack(descs)
    shares = torch.tensor([int((lab == j).sum()) / 40 for j in range(3)], dtype=F64)
    ref = torch.cat([d.max(0).values, (shares[:, None] * d).sum(0)])
    assert torch.allclose(cloud, ref, rtol=1e-10, atol=1e-12)


def test_context_flag_in_repr_and_default_off():
    assert APEN(out_channels=3, num_parts=2, num_blocks=1, channels=(8,), num_scalars=4, num_vectors=1, k=2,
                head_channels=(8,)).context is False
    blk = APENBlock(4, 2, 4, 2, (8,), context=True)
    assert "context=True" in repr(blk)
