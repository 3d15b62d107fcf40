"""APEN: exact piecewise equivariance with a known partition, the subpartition lemma, determinism, losses."""

import io

import pytest
import torch
from torch_geometric.data import Data

from equinets.collapse import find_classifier
from equinets.frames import FrameAveraging
from equinets.nn import PointNet, create_model
from equinets.piecewise import APEN

F64 = torch.float64
GROUPS = ["SE3", "E3", "SO3", "O3"]


@pytest.mark.parametrize("group", GROUPS)
def test_known_partition_exact_under_independent_part_motions(group, dtype, tol, pw):
    """Each part moved by its own rigid motion (reflections for O3/E3): logits invariant, votes rotate per part."""
    pos, lab, bt = pw.separated_parts(3, 20, clouds=2)
    Q, t = pw.part_motions(lab, bt, group, 3, clouds=2)
    seg = pw.small_apen(group=group, dtype=dtype)
    cls = pw.small_apen(task="cls", group=group, dtype=dtype)
    r1 = seg.forward_all(pos.to(dtype), None, bt, lab)
    r2 = seg.forward_all(pw.move(pos, Q, t).to(dtype), None, bt, lab)
    assert r1.out.dtype == dtype and r1.out.shape == (pos.shape[0], 5)
    assert pw.rel_err(r2.out, r1.out) < tol
    for v1, v2 in zip(r1.votes, r2.votes):  # vote displacements are vectors: rotated, not translated
        assert pw.rel_err(v2, torch.einsum("nij,nj->ni", Q.to(dtype), v1)) < tol
    c1, c2 = cls(pos.to(dtype), None, bt, lab), cls(pw.move(pos, Q, t).to(dtype), None, bt, lab)
    assert c1.shape == (2, 5) and pw.rel_err(c2, c1) < tol


def test_typed_features_rotate_per_part(pw):
    """Normals (irreps_in='1o') rotate with their part: still exact (improper motions included)."""
    pos, lab, bt = pw.separated_parts(3, 16)
    nrm = torch.nn.functional.normalize(torch.randn(pos.shape[0], 3, dtype=F64), dim=1)
    Q, t = pw.part_motions(lab, bt, "E3", 3)
    m = pw.small_apen(group="E3", in_channels=3, irreps_in="1o")
    a = m(pos, nrm, bt, lab)
    b = m(pw.move(pos, Q, t), torch.einsum("nij,nj->ni", Q, nrm), bt, lab)
    assert pw.rel_err(b, a) < 1e-9
    # the features matter: ignoring their rotation breaks it
    assert pw.rel_err(m(pw.move(pos, Q, t), nrm, bt, lab), a) > 1e-4


def test_refinement_stays_exact_and_merging_breaks_it(pw):
    """Subpartition lemma: a random refinement of the true partition is still exact; merging two parts is not."""
    pos, lab, bt = pw.separated_parts(3, 30)
    Q, t = pw.part_motions(lab, bt, "SE3", 3)
    moved = pw.move(pos, Q, t)
    m = pw.small_apen(num_parts=12)
    g = torch.Generator().manual_seed(3)
    # refinement: each true part split into up to 4 random pieces (ids 4 * part + piece)
    fine = 4 * lab + torch.randint(0, 4, lab.shape, generator=g)
    err_fine = pw.rel_err(m(moved, None, bt, fine), m(pos, None, bt, fine))
    assert err_fine < 1e-9
    coarse = torch.where(lab == 1, torch.zeros_like(lab), lab)  # parts 0 and 1 merged
    err_merge = pw.rel_err(m(moved, None, bt, coarse), m(pos, None, bt, coarse))
    assert err_merge > 1e-3 and err_merge > 1e6 * max(err_fine, 1e-16)


def test_global_frame_averaging_is_orders_of_magnitude_worse(pw):
    """A globally frame-averaged PointNet is exact for one global motion only, not for per-part motions."""
    pos, lab, bt = pw.separated_parts(3, 24)
    Q, t = pw.part_motions(lab, bt, "SE3", 3)
    moved = pw.move(pos, Q, t)
    apen = pw.small_apen()
    fa = FrameAveraging(PointNet(0, 5, "seg", hidden_channels=(16, 24), emb_dims=32, seg_channels=(16,)).double(),
                        "SE3").eval()
    err_apen = pw.rel_err(apen(moved, None, bt, lab), apen(pos, None, bt, lab))
    err_fa = pw.rel_err(fa(moved, None, bt), fa(pos, None, bt))
    assert err_apen < 1e-9 and err_fa > 1e-3 and err_fa > 1e6 * max(err_apen, 1e-16)


def test_eval_is_bitwise_deterministic_from_a_checkpoint(pw):
    """The same checkpoint and input give bitwise the same output twice (predicted partitions, no noise)."""
    pos, _, bt = pw.separated_parts(4, 20, clouds=2)
    pos = pos.float()
    m = pw.small_apen(dtype=torch.float32, train_sampling=True)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = pw.small_apen(dtype=torch.float32, train_sampling=True)
    m2.load_state_dict(torch.load(buf))
    m2.eval()
    a, b, c = m(pos, None, bt), m2(pos, None, bt), m2(pos, None, bt)
    assert torch.equal(a, b) and torch.equal(b, c)


def test_point_permutation_permutes_outputs_and_partitions(pw):
    """Seg outputs and the votes are permutation-equivariant; predicted partitions equal up to relabelling."""
    pos, _, bt = pw.separated_parts(3, 20, clouds=2)
    perm = torch.cat([torch.randperm(60), 60 + torch.randperm(60)])  # within each cloud (batch stays sorted)
    m = pw.small_apen()
    r1, r2 = m.forward_all(pos, None, bt), m.forward_all(pos[perm], None, bt)
    assert torch.allclose(r2.out, r1.out[perm], atol=1e-10, rtol=0)
    for p1, p2, v1, v2 in zip(r1.partitions, r2.partitions, r1.votes, r2.votes):
        assert torch.allclose(v2, v1[perm], atol=1e-10, rtol=0)
        same1 = p1.label[perm][:, None] == p1.label[perm][None, :]
        same2 = p2.label[:, None] == p2.label[None, :]
        assert torch.equal(same1, same2) and p1.num_parts == p2.num_parts


def test_dense_and_data_inputs_match_flat(pw):
    pos, lab, bt = pw.separated_parts(2, 16, clouds=2)
    m = pw.small_apen()
    flat = m(pos, None, bt, lab)
    dense = m(pos.reshape(2, 32, 3), partition=lab.reshape(2, 32))
    assert dense.shape == (2, 32, 5) and torch.equal(dense.reshape(64, 5), flat)
    assert torch.equal(m(Data(pos=pos, batch=bt), partition=lab), flat)


def test_auxiliary_loss_is_the_mean_vote_error(pw):
    pos, lab, bt = pw.separated_parts(3, 12)
    off = torch.randn(pos.shape[0], 3, dtype=F64)
    for kind in ("l2", "l1"):
        m = pw.small_apen(vote_loss=kind, vote_weight=0.5)
        res = m.forward_all(pos, None, bt)
        m(pos, None, bt)
        loss = m.auxiliary_loss(Data(pos=pos, part_offset=off))
        ref = []
        for d in res.votes:
            e = d - off
            ref.append(e.pow(2).sum(1).mean() if kind == "l2" else e.abs().sum(1).mean())
        assert torch.allclose(loss, 0.5 * torch.stack(ref).mean(), rtol=1e-12, atol=0)
    assert m.auxiliary_loss(Data(pos=pos)) is None


def test_training_mode_backward_reaches_every_parameter(pw):
    """Train mode (batch norm statistics, straight-through hard weights): task + vote loss reach all weights."""
    pos, lab, bt = pw.separated_parts(3, 16, clouds=2)
    off = torch.randn(pos.shape[0], 3, dtype=F64)
    for kw in ({}, {"assignment": "soft"}, {"train_sampling": True}, {"partition_grad": True}):
        m = pw.small_apen(**kw).train()
        out = m(pos, None, bt)
        loss = out.logsumexp(1).mean() + m.auxiliary_loss(Data(pos=pos, part_offset=off))
        loss.backward()
        for name, p in m.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert sum(float(p.grad.abs().sum()) for p in m.parameters()) > 0


def test_partition_gradient_is_off_by_default(pw):
    """The task loss reaches the votes through the partition only with partition_grad=True (straight-through)."""
    pos, _, bt = pw.separated_parts(3, 16)
    grads = []
    for flag in (False, True):
        m = pw.small_apen(partition_grad=flag).train()
        res = m.forward_all(pos, None, bt)
        (g,) = torch.autograd.grad(res.out.pow(2).sum(), res.votes[0], allow_unused=True)
        grads.append(g)
    assert grads[0] is None and grads[1] is not None and float(grads[1].abs().sum()) > 0


def test_train_sampling_only_in_training(pw):
    """Gumbel-max sampling of the hard assignment draws different partitions in train mode, never in eval."""
    pos = torch.randn(80, 3, dtype=F64)  # one blob, wide components: Q far from the simplex vertices
    bt = torch.zeros(80, dtype=torch.long)
    m = pw.small_apen(train_sampling=True, num_parts=6, variances=(1.0, 1.0), merge_radius=0.0)
    m.train()
    a = m.forward_all(pos, None, bt).partitions[0].label
    b = m.forward_all(pos, None, bt).partitions[0].label
    assert not torch.equal(a, b)
    m.eval()
    c, d = m.forward_all(pos, None, bt).partitions[0].label, m.forward_all(pos, None, bt).partitions[0].label
    assert torch.equal(c, d)
    m.train_sampling = False  # eval with sampling on = argmax = train without sampling
    m.train()
    assert torch.equal(m.forward_all(pos, None, bt).partitions[0].label, c)


def test_soft_assignment_approaches_hard_on_separated_parts(pw):
    """With parts far apart relative to sigma the responsibilities sit at simplex vertices (delta ~ 0)."""
    pos, lab, bt = pw.separated_parts(3, 16, spacing=6.0)
    hard = pw.small_apen(num_parts=3, variances=(0.05, 0.05))
    soft = pw.small_apen(num_parts=3, variances=(0.05, 0.05), assignment="soft")
    soft.load_state_dict(hard.state_dict())
    rh, rs = hard.forward_all(pos, None, bt), soft.forward_all(pos, None, bt)
    same = rh.partitions[0].label[:, None] == rh.partitions[0].label[None, :]
    assert torch.equal(same, lab[:, None] == lab[None, :])  # the first partition found the blobs
    assert pw.rel_err(rs.votes[0], rh.votes[0]) < 1e-8


def test_registry_head_and_repr():
    m = create_model("apen", out_channels=7, task="cls", num_parts=4, num_blocks=1, channels=(8,), num_scalars=4,
                     num_vectors=1, k=2, head_channels=(8,))
    assert isinstance(m, APEN) and isinstance(m.head[-1], torch.nn.Linear) and m.head[-1].out_features == 7
    parent, name = find_classifier(m)
    assert getattr(parent, name) is m.head[-1]
    assert "group='SE3'" in repr(m)
