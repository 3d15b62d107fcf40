"""The training loop adds ``model.auxiliary_loss(data)`` to the task loss (the hook APEN's vote loss uses)."""

import csv

import pytest
import torch

from equinets.nn import PointNet, registry
from equinets.train import resolve_config, train
from equinets.train.loop import _auxiliary_loss

TINY = ["num_points=32", "dataset_kwargs.num_train=30", "dataset_kwargs.num_test=15", "batch_size=15",
        "eval_batch_size=15", "epochs=1", "model_kwargs.hidden_channels=[8]", "model_kwargs.emb_dims=16",
        "model_kwargs.head_channels=[8]"]


class _OffsetPointNet(PointNet):
    """PointNet whose auxiliary term is a known constant plus a differentiable zero."""

    def auxiliary_loss(self, data):
        return 100.0 + 0.0 * sum(p.sum() for p in self.parameters())


def test_auxiliary_loss_is_added_to_the_logged_training_loss(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._MODELS, "_test_aux_pointnet", _OffsetPointNet)
    rows = {}
    for name in ("pointnet", "_test_aux_pointnet"):
        cfg = resolve_config("shapes-pointnet", TINY + [f"data_root={tmp_path / 'data'}", f"model={name}"])
        train(cfg, tmp_path / name)
        with open(tmp_path / name / "metrics.csv", newline="") as f:
            rows[name] = next(csv.DictReader(f))
    plain, aux = float(rows["pointnet"]["train_loss"]), float(rows["_test_aux_pointnet"]["train_loss"])
    # same seed, same data, same initial weights: the auxiliary constant shifts the mean loss by exactly 100
    assert aux - plain == pytest.approx(100.0, abs=1e-4)


def test_auxiliary_loss_contract():
    base = torch.tensor(1.0, dtype=torch.float64)
    assert _auxiliary_loss(torch.nn.Linear(1, 1), None, base) == 0.0

    class NoneAux(torch.nn.Module):
        def auxiliary_loss(self, data):
            return None

    class BadAux(torch.nn.Module):
        def auxiliary_loss(self, data):
            return torch.ones(3)

    assert _auxiliary_loss(NoneAux(), None, base) == 0.0
    with pytest.raises(TypeError, match="auxiliary_loss"):
        _auxiliary_loss(BadAux(), None, base)
