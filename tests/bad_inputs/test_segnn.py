"""Bad input to SEGNN (equinets.nn.segnn): each case names the argument in a clear error, raised at entry."""

import functools

import pytest
import torch

from equinets.nn.segnn import SEGNN, SteerableProduct


@functools.lru_cache(maxsize=None)
def _model():
    torch.manual_seed(0)
    return SEGNN(4, 3, hidden_channels=2, num_layers=1)


def _inputs():
    pos, x = torch.randn(10, 3), torch.randn(10, 4)
    return pos, x, torch.arange(2).repeat_interleave(5)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"product": "clebsch"}, ValueError, "product must be one of 'gaunt', 'cg', got 'clebsch'"),
    ({"product": 1}, TypeError, "product must be a string"),
    ({"lmax": 0}, ValueError, "lmax must be an integer >= 1, got 0"),
    ({"lmax_attr": 0}, ValueError, "lmax_attr must be an integer >= 1, got 0"),
    ({"hidden_channels": 0}, ValueError, "hidden_channels must be an integer >= 1, got 0"),
    ({"out_channels": 4}, ValueError, "out_channels must be a multiple of 3"),
    ({"task": "cls"}, ValueError, "task must be 'seg'"),
    ({"num_vectors": 2}, ValueError, "num_vectors must be an integer with 0 <= 3 \\* num_vectors <= in_channels = 4"),
    ({"aggr": "prod"}, ValueError, "aggr must be one of"),
    ({"route": "cuda"}, ValueError, "route must be one of"),
    ({"weight_init": "kaiming"}, ValueError, "weight_init must be one of 'e3nn', 'fan_in', got 'kaiming'"),
    ({"attr_normalization": "norm"}, ValueError, "attr_normalization must be one of 'component', 'integral', got 'norm'"),
    ({"velocity_attr": "unit"}, ValueError, "velocity_attr must be one of 'scaled', 'direction', got 'unit'"),
    ({"edge_distance": "cubed"}, ValueError, "edge_distance must be one of 'squared', 'norm', got 'cubed'"),
    ({"edge_vector": "both"}, ValueError, "edge_vector must be one of 'in', 'out', got 'both'"),
    ({"node_attr_scalar": 2}, TypeError, "node_attr_scalar must be a string"),
    ({"norm": "false"}, TypeError, "norm must be a bool, got str 'false'"),
    ({"node_scalars": 0}, TypeError, "node_scalars must be a bool, got int 0"),
])
def test_constructor_rejects(kwargs, exc, match):
    kw = {"in_channels": 4, "out_channels": 3, "hidden_channels": 2, "num_layers": 1, **kwargs}
    with pytest.raises(exc, match=match):
        SEGNN(**kw)


def test_steerable_product_rejects_unknown_product():
    with pytest.raises(ValueError, match="product must be one of 'gaunt', 'cg', got 'fft'"):
        SteerableProduct("2x0e", "0e", "2x0e", product="fft")


def _nan_x():
    pos, x, batch = _inputs()
    x[3, 1] = float("nan")
    return pos, x, batch, None


def _case(**change):
    pos, x, batch = _inputs()
    args = {"pos": pos, "x": x, "batch": batch, "edge_index": None, **change}
    return args["pos"], args["x"], args["batch"], args["edge_index"]


@pytest.mark.parametrize("make, exc, match", [
    (lambda: _case(x=torch.randn(10, 3)), ValueError, "x must have in_channels = 4 columns, got 3"),
    (lambda: _case(x=None), ValueError, "x is required: the model was built with in_channels=4"),
    (_nan_x, ValueError, "x must be finite, but 1 entry is NaN or Inf \\(first at index \\(3, 1\\)\\)"),
    (lambda: _case(pos=torch.randn(10, 2)), ValueError, "pos must have shape \\(N, 3\\)"),
    (lambda: _case(pos=torch.randn(10, 3, dtype=torch.float64), x=torch.randn(10, 4, dtype=torch.float64)),
     TypeError, "pos has dtype torch.float64 but the model.s parameters are torch.float32"),
    (lambda: _case(batch=torch.tensor([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])), ValueError, "batch must be sorted"),
    (lambda: _case(batch=torch.zeros(9, dtype=torch.long)), ValueError, "batch must have shape \\(N,\\) = \\(10,\\)"),
    (lambda: _case(batch=torch.zeros(10)), TypeError, "batch must be an integer tensor"),
    (lambda: _case(edge_index=torch.tensor([[0, 12], [1, 0]])), ValueError,
     "edge_index must hold node ids in \\[0, 10\\), got values in \\[0, 12\\]"),
    (lambda: _case(edge_index=torch.tensor([[0, 1, 2]])), ValueError, "edge_index must have shape \\(2, E\\)"),
    (lambda: _case(edge_index=torch.tensor([[0, 1], [1, 1]])), ValueError,
     "edge_index must not hold self-loops \\(edge 1 from node 1 to itself\\)"),
    (lambda: _case(edge_index=torch.tensor([[0, 7], [1, 2]])), ValueError,
     "edge_index must connect nodes of the same cloud, but edge 1 goes from node 7 \\(cloud 1\\) to node 2 \\(cloud 0\\)"),
    (lambda: _case(edge_index=torch.tensor([[0.0], [1.0]])), TypeError, "edge_index must be an integer tensor"),
])
def test_forward_rejects(make, exc, match):
    pos, x, batch, edge_index = make()
    with pytest.raises(exc, match=match):
        _model()(pos, x, batch, edge_index=edge_index)
