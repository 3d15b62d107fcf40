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
    ("etff", {}, ValueError, "head must be one of 'linear', 'etf', 'simplex_etf', 'ebv', 'sparse_etf'"),
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


# -- UFM ---------------------------------------------------------------------------------------------------
from equinets.collapse.ufm import (  # noqa: E402
    ce_balanced_closed_form,
    central_path,
    dang_closed_form,
    dang_point,
    minority_collapse_threshold,
    mixup_ufm_features,
    solve_ufm,
)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"class_sizes": [5]}, ValueError, "class_sizes"),
    ({"class_sizes": [5, 0]}, ValueError, "class_sizes"),
    ({"dim": 0}, ValueError, "dim"),
    ({"num_layers": 0}, ValueError, "num_layers"),
    ({"loss": "hinge"}, ValueError, "loss must be one of 'mse', 'ce'"),
    ({"lambda_W": -1.0}, ValueError, "lambda_W"),
    ({"lambda_H": float("inf")}, ValueError, "lambda_H"),
    ({"method": "adam"}, ValueError, "method"),
    ({"max_iter": 0}, ValueError, "max_iter"),
    ({"init": ([torch.zeros(2, 2)], torch.zeros(3, 3))}, ValueError, "init must hold weights of shapes"),
    ({"init": "dang"}, ValueError, "init must be a tuple"),
])
def test_solve_ufm_arguments(kwargs, exc, match):
    args = {"class_sizes": [3, 2], "dim": 3, **kwargs}
    with pytest.raises(exc, match=match):
        solve_ufm(args.pop("class_sizes"), args.pop("dim"), **args)


def test_dang_closed_form_arguments():
    with pytest.raises(ValueError, match="lambda_W and lambda_H must be > 0"):
        dang_closed_form([3, 2], lambda_W=0.0, lambda_H=1e-2)
    with pytest.raises(ValueError, match="dim must be >= the number of classes 3"):
        dang_point([3, 2, 1], 2, lambda_W=1e-2, lambda_H=1e-2)
    with pytest.raises(ValueError, match="num_samples"):
        minority_collapse_threshold(0, 1e-2, 1e-2)
    with pytest.raises(ValueError, match="per_class"):
        ce_balanced_closed_form(3, 0, lambda_W=1e-2, lambda_H=1e-2)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"pairs": torch.tensor([[0, 5]])}, ValueError, "pairs must hold class ids in"),
    ({"pairs": torch.tensor([0, 1])}, ValueError, "pairs must have shape"),
    ({"lambdas": torch.tensor([1.5])}, ValueError, "lambdas must lie in"),
    ({"lambdas": torch.tensor([0.5, 0.5])}, ValueError, "lambdas must have one weight per pair"),
    ({"lambda_H": 0.0}, ValueError, "lambda_H must be > 0"),
    ({"weight": torch.zeros(4)}, ValueError, "weight must have shape"),
])
def test_mixup_ufm_arguments(kwargs, exc, match):
    args = {"weight": simplex_etf(4, 3), "pairs": torch.tensor([[0, 1]]), "lambdas": torch.tensor([0.7]),
            "lambda_H": 1e-3, **kwargs}
    with pytest.raises(exc, match=match):
        mixup_ufm_features(args.pop("weight"), args.pop("pairs"), args.pop("lambdas"), **args)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"labels": torch.tensor([0, 0, 0, 1])}, ValueError, "labels must hold >= 2 classes with equal counts"),
    ({"labels": torch.tensor([0, 1])}, ValueError, "labels must have shape"),
    ({"lambda_W": 0.0}, ValueError, "lambda_W must be > 0"),
    ({"num_steps": 0}, ValueError, "num_steps"),
    ({"features": torch.zeros(4, dtype=torch.long)}, ValueError, "features must be a floating-point"),
])
def test_central_path_arguments(kwargs, exc, match):
    args = {"features": torch.randn(4, 3), "labels": torch.tensor([0, 1, 0, 1]), "lambda_W": 0.1, "lambda_H": 0.1,
            **kwargs}
    with pytest.raises(exc, match=match):
        central_path(args.pop("features"), args.pop("labels"), **args)


# -- mixup geometry and calibration ------------------------------------------------------------------------
from equinets.collapse.calibration import expected_calibration_error, reliability_diagram  # noqa: E402
from equinets.collapse.mixup import mixup_geometry  # noqa: E402


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"features": torch.zeros(3)}, ValueError, "features must be a floating-point"),
    ({"features": torch.full((2, 3), float("nan"))}, ValueError, "features must be finite"),
    ({"weight": torch.zeros(4, 2)}, ValueError, "weight must have shape"),
    ({"bias": torch.zeros(3)}, ValueError, "bias must have shape"),
    ({"y_a": torch.tensor([0, 4])}, ValueError, "y_a must hold class ids"),
    ({"y_b": torch.tensor([0])}, ValueError, "y_b must have shape"),
    ({"lam": torch.tensor([0.5, 1.2])}, ValueError, "lam must lie in"),
    ({"lam": torch.tensor([0.5, 0.2, 0.1])}, ValueError, "lam must be a float or have shape"),
    ({"logits": torch.zeros(2, 3)}, ValueError, "logits must have shape"),
    ({"num_bins": 0}, ValueError, "num_bins"),
])
def test_mixup_geometry_arguments(kwargs, exc, match):
    args = {"features": torch.randn(2, 3), "y_a": torch.tensor([0, 1]), "y_b": torch.tensor([1, 2]), "lam": 0.5,
            "weight": torch.randn(4, 3), **kwargs}
    with pytest.raises(exc, match=match):
        mixup_geometry(args.pop("features"), args.pop("y_a"), args.pop("y_b"), args.pop("lam"), **args)


@pytest.mark.parametrize("probs,labels,kwargs,exc,match", [
    (torch.tensor([[0.7, 0.2]]), torch.tensor([0]), {}, ValueError, "probs must hold probabilities"),
    (torch.tensor([[1.2, -0.2]]), torch.tensor([0]), {}, ValueError, "probs must hold probabilities"),
    (torch.tensor([0.5, 0.5]), torch.tensor([0]), {}, ValueError, "probs must have shape"),
    (torch.tensor([[1, 0]]), torch.tensor([0]), {}, TypeError, "probs must be a floating-point"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([2]), {}, ValueError, "labels must hold class ids"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]), {}, ValueError, "labels must have shape"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([0]), {"num_bins": 0}, ValueError, "num_bins"),
    (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), {}, ValueError, "probs is empty"),
    (torch.tensor([[float("nan"), 0.5]]), torch.tensor([0]), {"from_logits": True}, ValueError, "probs must be finite"),
])
def test_ece_arguments(probs, labels, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        expected_calibration_error(probs, labels, **kwargs)


def test_reliability_diagram_checks_before_writing(tmp_path):
    with pytest.raises(ValueError, match="probs must hold probabilities"):
        reliability_diagram(torch.tensor([[0.7, 0.2]]), torch.tensor([0]), tmp_path / "r.png")
    assert not any(tmp_path.iterdir())
