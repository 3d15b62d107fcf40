"""Partition teacher forcing (``APEN(teacher_partition=p)``): ground-truth partitions in training only."""

import pytest
import torch
from torch_geometric.data import Data

from equinets.piecewise import APEN
from equinets.piecewise.model import per_cloud_ids
from equinets.train.loop import _forward, _train_inputs

F64 = torch.float64


def _cloud(pw):
    pos, lab, bt = pw.separated_parts(3, 16, clouds=2)
    return pos, lab + 10 * (bt + 1), bt  # global-style ids (not in [0, num_parts)): renumbered per cloud


def test_eval_mode_ignores_the_teacher_bitwise(pw):
    pos, teacher, bt = _cloud(pw)
    torch.manual_seed(0)
    m = pw.small_apen(teacher_partition=1.0)
    plain = APEN(out_channels=5, num_parts=8, num_blocks=2, channels=(16, 24), num_scalars=8, num_vectors=3, k=4,
                 head_channels=(16,)).to(F64).eval()
    plain.load_state_dict(m.state_dict())
    ref = plain(pos, None, bt)
    assert torch.equal(m(pos, None, bt, teacher=teacher), ref)
    assert torch.equal(m(pos, None, bt), ref)


def test_training_with_p1_is_the_given_partition(pw):
    pos, teacher, bt = _cloud(pw)
    m = pw.small_apen(teacher_partition=1.0, dropout=0.0).train()
    ids = per_cloud_ids(teacher, bt, m.num_parts)
    assert int(ids.max()) == 2 and int(ids.min()) == 0
    torch.manual_seed(1)
    a = m(pos, None, bt, teacher=teacher)
    torch.manual_seed(1)
    b = m(pos, None, bt, partition=ids)
    assert torch.equal(a, b)
    # an explicit partition wins over the teacher
    other = torch.zeros_like(ids)
    torch.manual_seed(1)
    c = m(pos, None, bt, other, teacher=teacher)
    torch.manual_seed(1)
    assert torch.equal(c, m(pos, None, bt, other))


def test_p0_and_intermediate_p(pw):
    pos, teacher, bt = _cloud(pw)
    m0 = pw.small_apen(dropout=0.0).train()  # teacher_partition=0: the teacher is ignored, no random draw
    torch.manual_seed(2)
    a = m0(pos, None, bt, teacher=teacher)
    torch.manual_seed(2)
    assert torch.equal(a, m0(pos, None, bt))
    m = pw.small_apen(teacher_partition=0.5, dropout=0.0).train()
    ids = per_cloud_ids(teacher, bt, m.num_parts)
    gt, pred = m(pos, None, bt, partition=ids).detach(), m(pos, None, bt).detach()
    assert not torch.equal(gt, pred)
    torch.manual_seed(3)
    outs = [m(pos, None, bt, teacher=teacher).detach() for _ in range(40)]
    n_gt = sum(torch.equal(o, gt) for o in outs)
    n_pred = sum(torch.equal(o, pred) for o in outs)
    assert n_gt + n_pred == 40 and 5 < n_gt < 35


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_probability_raises_value_error(bad):
    with pytest.raises(ValueError, match="teacher_partition"):
        APEN(out_channels=2, num_parts=2, teacher_partition=bad)


@pytest.mark.parametrize("bad", ["0.5", None, True, [0.5]])
def test_non_number_raises_type_error(bad):
    with pytest.raises(TypeError, match="teacher_partition"):
        APEN(out_channels=2, num_parts=2, teacher_partition=bad)


def test_per_cloud_ids_and_errors():
    bt = torch.tensor([0, 0, 0, 1, 1, 1])
    assert per_cloud_ids(torch.tensor([15, 21, 15, 4, 0, 4]), bt, 2).tolist() == [0, 1, 0, 1, 0, 1]
    with pytest.raises(ValueError, match="num_parts"):
        per_cloud_ids(torch.tensor([0, 1, 2, 0, 0, 0]), bt, 2)
    with pytest.raises(TypeError, match="teacher"):
        per_cloud_ids(torch.zeros(6), bt, 2)
    with pytest.raises(ValueError, match="one part id per point"):
        per_cloud_ids(torch.zeros(5, dtype=torch.long), bt, 2)


def test_train_inputs_hook():
    d = Data(pos=torch.randn(4, 3), part=torch.tensor([3, 3, 5, 5]))
    on = APEN(out_channels=2, num_parts=2, teacher_partition=0.5)
    assert torch.equal(_train_inputs(on, d)["teacher"], d.part)
    assert _train_inputs(APEN(out_channels=2, num_parts=2), d) == {}
    with pytest.raises(ValueError, match="teacher_partition=0.5 needs the ground-truth partition data.part"):
        _train_inputs(on, Data(pos=torch.randn(4, 3)))
    assert _train_inputs(torch.nn.Linear(1, 1), d) == {}

    class Bad(torch.nn.Module):
        def train_inputs(self, data):
            return [1]

    with pytest.raises(TypeError, match="train_inputs"):
        _train_inputs(Bad(), d)


def test_the_loop_passes_the_teacher_in_training_steps_only():
    """``_forward`` (training steps and evaluation of the loop) adds ``train_inputs`` in train mode only."""
    seen = []

    class Spy(torch.nn.Module):
        def train_inputs(self, data):
            return {"teacher": data.part}

        def forward(self, pos, x, batch, **kw):
            seen.append(sorted(kw))
            return pos

    d = Data(pos=torch.randn(4, 3), part=torch.tensor([3, 3, 5, 5]), batch=torch.zeros(4, dtype=torch.long))
    cfg = {"use_features": False, "task": "cls"}
    spy = Spy()
    _forward(spy.train(), d, cfg)
    _forward(spy.eval(), d, cfg)
    assert seen == [["teacher"], []]
