"""find_classifier and feature capture (plain and frame-averaged models); the collapse CLI."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equinets.collapse import FeatureCapture, find_classifier
from equinets.frames import FrameAveraging
from equinets.nn import create_model

SMALL = {"pointnet": dict(hidden_channels=(8,), emb_dims=16, head_channels=(8,)),
         "dgcnn": dict(k=4, hidden_channels=(8,), emb_dims=16, head_channels=(8,)),
         "gnn": dict(hidden_channels=8, num_layers=1, k=4, head_channels=(8,))}


def _model(name: str, fa: str | None = None) -> nn.Module:
    try:
        m = create_model(name, in_channels=0, out_channels=5, task="cls", **SMALL[name])
    except TypeError:
        m = create_model(name, in_channels=0, out_channels=5, task="cls")
    m = m.double()
    return (FrameAveraging(m, fa) if fa else m).eval()


@pytest.mark.parametrize("name", ["pointnet", "dgcnn", "gnn"])
@pytest.mark.parametrize("fa", [None, "E3", "O3"])
def test_captured_features_reproduce_logits(name, fa):
    torch.manual_seed(0)
    net = _model(name, fa)
    parent, attr = find_classifier(net)
    lin = getattr(parent, attr)
    assert isinstance(lin, nn.Linear) and lin.out_features == 5
    pos = torch.randn(3, 24, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    with torch.no_grad(), FeatureCapture(net) as cap:
        out = net(pos)
    h = cap.features
    assert h.shape == (3, lin.in_features)
    assert torch.allclose(h @ lin.weight.T + lin.bias, out, rtol=0, atol=1e-10)


def test_capture_removes_hooks_and_pop():
    net = _model("pointnet")
    lin = getattr(*find_classifier(net))
    with FeatureCapture(net) as cap:
        net(torch.randn(2, 10, 3, dtype=torch.float64))
        assert cap.pop().shape[0] == 2 and cap.features.shape[0] == 0
    assert not lin._forward_pre_hooks
