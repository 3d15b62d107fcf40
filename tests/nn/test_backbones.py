"""PointNet, DGCNN and GNN: layouts, symmetry, gradients, errors, registry."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from equinets.nn import DGCNN, GNN, PointNet, create_model, list_models, register_model

TINY = {
    "pointnet": dict(hidden_channels=(8, 8), emb_dims=16, head_channels=(8,), seg_channels=(8,)),
    "pointnet_tnet": dict(
        hidden_channels=(8,), emb_dims=16, head_channels=(8,), seg_channels=(8,), input_transform=True
    ),
    "dgcnn": dict(k=4, hidden_channels=(8, 8), emb_dims=16, head_channels=(8,), seg_channels=(8,)),
    "gnn": dict(hidden_channels=8, num_layers=2, k=4, head_channels=(8,)),
    "gnn_radius_max": dict(hidden_channels=8, num_layers=2, radius=1.0, aggr="max", head_channels=(8,)),
}
CLASSES = {"pointnet": PointNet, "pointnet_tnet": PointNet, "dgcnn": DGCNN, "gnn": GNN, "gnn_radius_max": GNN}
NAMES = list(TINY)


def make(name, task="cls", in_channels=0, out_channels=5, dtype=torch.float64, **kw):
    model = CLASSES[name](in_channels, out_channels, task, **TINY[name], **kw)
    return model.to(dtype).eval()


def perturb_batchnorm(model):
    """Non-trivial running statistics so that eval-mode batch norm is not the identity."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


# ----------------------------------------------------------------------------- shapes and layouts
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("task", ["cls", "seg"])
def test_output_shapes_in_every_layout(name, task):
    model = make(name, task, in_channels=2)
    pos, x = torch.randn(3, 10, 3, dtype=torch.float64), torch.randn(3, 10, 2, dtype=torch.float64)
    batch = torch.arange(3).repeat_interleave(10)
    per_point = task == "seg"
    assert model(pos, x).shape == ((3, 10, 5) if per_point else (3, 5))
    assert model(pos.view(-1, 3), x.view(-1, 2), batch).shape == ((30, 5) if per_point else (3, 5))
    data = Data(pos=pos[0], x=x[0])
    assert model(data).shape == ((10, 5) if per_point else (1, 5))
    big = Batch.from_data_list([Data(pos=pos[i, : 6 + i], x=x[i, : 6 + i]) for i in range(3)])
    assert model(big).shape == ((21, 5) if per_point else (3, 5))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("task", ["cls", "seg"])
def test_flat_and_dense_inputs_agree(name, task):
    model = perturb_batchnorm(make(name, task, in_channels=1))
    pos, x = torch.randn(2, 12, 3, dtype=torch.float64), torch.randn(2, 12, 1, dtype=torch.float64)
    batch = torch.arange(2).repeat_interleave(12)
    dense = model(pos, x)
    flat = model(pos.reshape(-1, 3), x.reshape(-1, 1), batch)
    torch.testing.assert_close(dense.reshape(flat.shape), flat, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("task", ["cls", "seg"])
def test_ragged_batch_equals_clouds_one_by_one(name, task):
    """The ragged (padded / edge-list) path gives each cloud what it gets alone (dense path)."""
    model = perturb_batchnorm(make(name, task))
    sizes = [7, 12, 3]
    clouds = [torch.randn(n, 3, dtype=torch.float64) for n in sizes]
    batch = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    out = model(torch.cat(clouds), batch=batch)
    alone = [model(c) for c in clouds]
    ref = torch.cat(alone) if task == "seg" else torch.cat(alone, 0)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- symmetry
@pytest.mark.parametrize("name", NAMES)
def test_seg_equivariant_and_cls_invariant_to_point_order(name):
    pos = torch.randn(2, 16, 3, dtype=torch.float64)
    perm = torch.randperm(16)
    seg = perturb_batchnorm(make(name, "seg"))
    torch.testing.assert_close(seg(pos[:, perm]), seg(pos)[:, perm], rtol=0, atol=1e-9)
    cls = perturb_batchnorm(make(name, "cls"))
    torch.testing.assert_close(cls(pos[:, perm]), cls(pos), rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- training mode
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("task", ["cls", "seg"])
def test_gradients_reach_every_parameter(name, task):
    extra = {"num_categories": 3} if task == "seg" else {}
    model = make(name, task, in_channels=2, dtype=torch.float32, **extra)
    model.train()
    if getattr(model, "tnet", None) is not None:  # zero-initialised last T-Net layer blocks the rest at init
        torch.nn.init.normal_(model.tnet.head[-1].weight, std=0.01)
    pos = torch.randn(2, 12, 3, requires_grad=True)
    kw = {"category": torch.tensor([0, 2])} if task == "seg" else {}
    out = model(pos, torch.randn(2, 12, 2), **kw)
    assert out.dtype == torch.float32
    out.square().sum().backward()
    assert pos.grad is not None and bool(torch.isfinite(pos.grad).all())
    missing = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("name", ["pointnet", "dgcnn", "gnn"])
def test_category_one_hot_changes_seg_output(name):
    model = perturb_batchnorm(make(name, "seg", num_categories=4))
    pos = torch.randn(2, 10, 3, dtype=torch.float64)
    a = model(pos, category=torch.tensor([0, 1]))
    b = model(pos, category=torch.tensor([3, 1]))
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])


def test_pointnet_input_transform_starts_at_identity():
    pos = torch.randn(2, 9, 3, dtype=torch.float64)
    with_t = make("pointnet_tnet")
    without = PointNet(0, 5, hidden_channels=(8,), emb_dims=16, head_channels=(8,)).double().eval()
    without.load_state_dict({k: v for k, v in with_t.state_dict().items() if not k.startswith("tnet.")})
    torch.testing.assert_close(with_t(pos), without(pos))
    with_t.tnet.head[-1].weight.data.normal_()
    with_t.reset_parameters()
    assert bool((with_t.tnet.head[-1].weight == 0).all())


@pytest.mark.parametrize("name", NAMES)
def test_reset_parameters_reinitialises(name):
    model = make(name)
    before = [p.clone() for p in model.parameters()]
    model.reset_parameters()
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed > 0


def test_repr_shows_configuration():
    assert repr(PointNet(3, 12)).startswith("PointNet(in_channels=3, out_channels=12, task='cls'")
    assert repr(DGCNN(0, 4, "seg", num_categories=2)).startswith(
        "DGCNN(in_channels=0, out_channels=4, task='seg', num_categories=2, k=20"
    )
    assert "radius=0.5" in repr(GNN(radius=0.5))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_clear_errors(name):
    model = make(name, "cls", in_channels=2)
    pos, x = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    bad = pos.clone()
    bad[2, 1] = float("nan")
    nan_msg = r"pos must be finite, but 1 entry is NaN or Inf \(first at index \(2, 1\)\)"
    with pytest.raises(ValueError, match=nan_msg):
        model(bad, x)
    inf_x = x.clone()
    inf_x[0, 0] = float("inf")
    with pytest.raises(ValueError, match="x must be finite"):
        model(pos, inf_x)
    with pytest.raises(ValueError, match="pos is empty"):
        model(pos[:0], x[:0])
    with pytest.raises(ValueError, match=r"pos must have shape \(N, 3\) or \(B, N, 3\), got \(8, 2\)"):
        model(pos[:, :2], x)
    with pytest.raises(ValueError, match=r"batch must have shape \(N,\) = \(8,\) to match pos, got \(7,\)"):
        model(pos, x, torch.zeros(7, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must have in_channels = 2 columns, got 3"):
        model(pos, torch.randn(8, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="x is required"):
        model(pos)
    with pytest.raises(ValueError, match="cloud 1 of the batch is empty"):
        model(pos, x, torch.tensor([0, 0, 0, 0, 2, 2, 2, 2]))


@pytest.mark.parametrize("cls", [PointNet, DGCNN, GNN])
def test_constructor_validation(cls):
    with pytest.raises(ValueError, match=r"task must be one of 'cls', 'seg', got 'det'"):
        cls(0, 4, "det")
    with pytest.raises(ValueError, match="num_categories is used by task='seg' only"):
        cls(0, 4, "cls", num_categories=3)
    with pytest.raises(ValueError, match="out_channels must be an integer >= 1"):
        cls(0, 0)
    model = cls(0, 4, "seg", num_categories=3).eval()
    pos = torch.randn(2, 25, 3)
    with pytest.raises(ValueError, match="category is required"):
        model(pos)
    with pytest.raises(ValueError, match=r"category must hold class ids in \[0, 3\)"):
        model(pos, category=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"category must be a long tensor of shape \(B,\) = \(2,\)"):
        model(pos, category=torch.tensor([0]))
    with pytest.raises(ValueError, match="x must be None for a model built with in_channels=0"):
        cls(0, 4)(pos, torch.randn(2, 25, 1))


# ----------------------------------------------------------------------------- registry
def test_registry_builds_models_by_name():
    assert {"pointnet", "dgcnn", "gnn"} <= set(list_models())
    m = create_model("dgcnn", in_channels=3, out_channels=7, k=5)
    assert isinstance(m, DGCNN) and m.k == 5 and m.out_channels == 7
    assert isinstance(create_model("PointNet", out_channels=2), PointNet)
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; known models: .*dgcnn.*gnn.*pointnet"):
        create_model("resnet")
    with pytest.raises(ValueError, match="already registered"):
        register_model("gnn", PointNet)
