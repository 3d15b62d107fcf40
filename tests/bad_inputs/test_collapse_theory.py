"""Bad input to the collapse heads, UFM solvers, mixup analysis and calibration: clear errors naming the argument."""

import pytest
import torch
from torch import nn

from equinets.collapse.heads import EBVHead, SimplexETFHead, SparseETFHead, attach_head, generate_ebv, simplex_etf
from equinets.nn import PointNet


# -- heads ------------------------------------------------------------------------------------------------
def test_etf_refuses_too_few_dimensions():
    with pytest.raises(ValueError, match="in_channels must be >= num_classes - 1 = 9"):
        SimplexETFHead(8, 10)
    with pytest.raises(ValueError, match="dim must be >= num_classes - 1"):
        simplex_etf(10, 5)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"num_classes": 1}, ValueError, "num_classes"),
    ({"num_classes": 2.0}, TypeError, "num_classes"),
    ({"in_channels": 0}, ValueError, "in_channels"),
    ({"scale": 0.0}, ValueError, "scale"),
    ({"scale": "1"}, TypeError, "scale"),
    ({"bias": 1}, TypeError, "bias"),
    ({"seed": 1.5}, TypeError, "seed"),
])
def test_etf_head_arguments(kwargs, exc, match):
    args = {"in_channels": 8, "num_classes": 4, **kwargs}
    with pytest.raises(exc, match=match):
        SimplexETFHead(args.pop("in_channels"), args.pop("num_classes"), **args)


def test_ebv_refuses_tau_below_welch_bound_naming_it():
    with pytest.raises(ValueError, match=r"tau must be >= the Welch bound .* = 0\.2810 for K = 20"):
        generate_ebv(20, 8, 0.28)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"tau": 1.0}, ValueError, "tau must be < 1"),
    ({"tau": -0.1}, ValueError, "tau"),
    ({"tau": float("nan")}, ValueError, "tau"),
    ({"max_steps": 0}, ValueError, "max_steps"),
    ({"lr": 0.0}, ValueError, "lr"),
])
def test_ebv_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        generate_ebv(20, 8, **{"tau": 0.5, **kwargs})


def test_ebv_unreachable_tau_says_what_was_reached():
    from equinets.collapse.heads import EBVNotReachedError
    from equinets.errors import UserError

    with pytest.raises(EBVNotReachedError, match=r"max \|cos\| = .* after max_steps = 3, above tau = 0.29") as e:
        generate_ebv(20, 8, 0.29, max_steps=3)
    assert isinstance(e.value, UserError)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"temperature": 0.0}, ValueError, "temperature"),
    ({"normalize": "yes"}, TypeError, "normalize"),
])
def test_ebv_head_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        EBVHead(8, 4, **kwargs)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"sparsity": 1.0}, ValueError, "sparsity"),
    ({"sparsity": -0.1}, ValueError, "sparsity"),
    ({"steps": -1}, ValueError, "steps"),
    ({"lr": -1.0}, ValueError, "lr"),
    ({"sparsity": 0.99}, ValueError, "sparsity"),
])
def test_sparse_etf_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SparseETFHead(4, 5, **{"steps": 0, **kwargs})


def test_head_forward_checks_the_feature_width():
    head = SimplexETFHead(8, 4)
    with pytest.raises(ValueError, match="h must have in_channels = 8"):
        head(torch.zeros(2, 7))
    with pytest.raises(TypeError, match="h must be a floating-point"):
        head(torch.zeros(2, 8, dtype=torch.long))


def _net():
    return PointNet(0, 4, hidden_channels=(8,), emb_dims=16, head_channels=(8,))


@pytest.mark.parametrize("head,kwargs,exc,match", [
    ("etff", {}, ValueError, "head must be one of 'linear', 'etf', 'ebv', 'sparse_etf'"),
    (3, {}, TypeError, "head"),
    ("etf", {"num_classes": 1}, ValueError, "num_classes"),
    ("etf", {"num_classes": 20}, ValueError, "in_channels must be >= num_classes - 1"),
    (nn.Linear(8, 4), {"num_classes": 4}, ValueError, "num_classes and head keyword arguments"),
])
def test_attach_head_arguments(head, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        attach_head(_net(), head, **kwargs)


def test_attach_head_refuses_non_models_and_segmentation_models():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        attach_head("pointnet", "etf")
    with pytest.raises(ValueError, match="model must be a classification model"):
        attach_head(PointNet(0, 4, "seg", hidden_channels=(8,), emb_dims=16, seg_channels=(8,)), "etf")
