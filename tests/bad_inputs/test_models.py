"""Bad inputs to the point backbones, EdgeConv, the neighbour ops and the model registry.

Every case is refused where the input enters, with the exception type and a message naming the argument.
"""

from __future__ import annotations

import pytest
import torch

from equinets.nn import (
    DGCNN,
    GNN,
    EdgeConv,
    PointMessageLayer,
    PointNet,
    create_model,
    fps,
    knn,
    knn_dense,
    knn_graph,
    radius,
    radius_graph,
)
from equinets.nn.message_passing import aggregate

TINY = {
    "PointNet": lambda **kw: PointNet(hidden_channels=(8,), emb_dims=16, head_channels=(8,), **kw),
    "DGCNN": lambda **kw: DGCNN(k=3, hidden_channels=(8,), emb_dims=16, head_channels=(8,), **kw),
    "GNN": lambda **kw: GNN(hidden_channels=8, num_layers=1, k=3, head_channels=(8,), **kw),
}
POS = torch.randn(8, 3)
X2 = torch.randn(8, 2)
B2 = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])


def _nan_pos():
    p = POS.clone()
    p[3, 2] = float("nan")
    return p


# (model kwargs, call kwargs, exception, message) -- run against each of PointNet, DGCNN and GNN
FORWARD_CASES = {
    "pos (N, 2)": ({}, dict(pos=POS[:, :2]), ValueError, r"pos must have shape \(N, 3\) or \(B, N, 3\), got \(8, 2\)"),
    "pos integer": ({}, dict(pos=POS.long()), TypeError, "pos must be a floating-point tensor"),
    "pos NaN": ({}, dict(pos=_nan_pos()), ValueError, r"pos must be finite, but 1 entry is NaN or Inf \(first at "
                                                      r"index \(3, 2\)\)"),
    "x width": (dict(in_channels=2), dict(x=torch.randn(8, 3)), ValueError, "x must have in_channels = 2 columns, "
                                                                           "got 3"),
    "x for in_channels=0": ({}, dict(x=X2), ValueError, "x must be None for a model built with in_channels=0"),
    "x missing": (dict(in_channels=2), dict(x=None), ValueError, "x is required"),
    "batch unsorted": ({}, dict(batch=torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])), ValueError, "batch must be sorted"),
    "batch float": ({}, dict(batch=B2.float()), TypeError, "batch must be an integer tensor"),
    "batch negative": ({}, dict(batch=B2 - 1), ValueError, "batch must hold graph ids >= 0"),
    "batch length": ({}, dict(batch=B2[:7]), ValueError, r"batch must have shape \(N,\) = \(8,\) to match pos, "
                                                         r"got \(7,\)"),
    "pos float64 into float32 model": ({}, dict(pos=POS.double()), TypeError,
                                       r"pos has dtype torch.float64 but the model's parameters are torch.float32; "
                                       r"convert one of them \(pos.to\(torch.float32\) or model.to\(torch.float64\)\)"),
    "pos float16 into float32 model": ({}, dict(pos=POS.half()), TypeError, "pos has dtype torch.float16"),
    "x float64 into float32 model": (dict(in_channels=2), dict(x=X2.double()), TypeError, "x has dtype torch.float64"),
    "category missing": (dict(task="seg", num_categories=3), {}, ValueError, "category is required"),
    "category out of range": (dict(task="seg", num_categories=3), dict(category=torch.tensor([0, 3])), ValueError,
                              r"category must hold class ids in \[0, 3\)"),
    "category for num_categories=0": ({}, dict(category=torch.tensor([0, 1])), ValueError,
                                      "category was given but the model was built with num_categories=0"),
}


@pytest.mark.parametrize("case", list(FORWARD_CASES))
@pytest.mark.parametrize("model", list(TINY))
def test_backbone_forward_refuses(model, case):
    build, call, exc, msg = FORWARD_CASES[case]
    net = TINY[model](**build).eval()
    kw = dict(pos=POS, batch=B2, **({"x": X2} if build.get("in_channels") else {}))
    kw.update(call)
    with pytest.raises(exc, match=msg):
        net(kw.pop("pos"), kw.pop("x", None), kw.pop("batch", None), **kw)


@pytest.mark.parametrize("model", ["PointNet", "DGCNN"])
def test_one_cloud_batch_in_training_mode_names_cause_and_fix(model):
    net = TINY[model]().train()  # cloud-level BatchNorm in the classification head
    with pytest.raises(ValueError, match=r"the batch holds 1 cloud, but the model's BatchNorm layers are in training "
                                         r"mode .* use a batch of >= 2 clouds, or call model.eval\(\)"):
        net(POS)
    net(POS, batch=B2)  # two clouds: fine
    TINY[model](task="seg").train()(POS)  # per-point BatchNorm only: one cloud of 8 points is fine


CONSTRUCTOR_CASES = {
    "task": (PointNet, dict(task="det"), ValueError, "task must be one of 'cls', 'seg', got 'det'"),
    "task not a string": (GNN, dict(task=1), TypeError, "task must be a string"),
    "dropout 1.0": (DGCNN, dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\), got 1.0"),
    "dropout negative": (PointNet, dict(dropout=-0.1), ValueError, "dropout must be a finite number >= 0.0"),
    "dropout string": (GNN, dict(dropout="0.5"), TypeError, "dropout must be a real number"),
    "out_channels 0": (PointNet, dict(out_channels=0), ValueError, "out_channels must be an integer >= 1, got 0"),
    "in_channels float": (DGCNN, dict(in_channels=2.0), TypeError, "in_channels must be an integer"),
    "num_categories with cls": (GNN, dict(num_categories=3), ValueError, "num_categories is used by task='seg' only"),
    "k 0": (DGCNN, dict(k=0), ValueError, "k must be an integer >= 1, got 0"),
    "k True": (GNN, dict(k=True), TypeError, "k must be an integer, got bool True"),
    "hidden_channels int for PointNet": (PointNet, dict(hidden_channels=64), TypeError,
                                         r"hidden_channels must be a sequence of layer widths such as \(64, 128\)"),
    "hidden_channels entry 0": (DGCNN, dict(hidden_channels=(8, 0)), ValueError,
                                "every entry of hidden_channels must be an integer >= 1"),
    "hidden_channels 0 for GNN": (GNN, dict(hidden_channels=0), ValueError, "hidden_channels must be an integer >= 1"),
    "aggr": (GNN, dict(aggr="min"), ValueError, "aggr must be one of 'sum', 'mean', 'max', got 'min'"),
    "radius negative": (GNN, dict(radius=-1.0), ValueError, "radius must be"),
    "emb_dims 0": (PointNet, dict(emb_dims=0), ValueError, "emb_dims must be an integer >= 1"),
}


@pytest.mark.parametrize("case", list(CONSTRUCTOR_CASES))
def test_backbone_constructor_refuses(case):
    cls, kw, exc, msg = CONSTRUCTOR_CASES[case]
    with pytest.raises(exc, match=msg):
        cls(**kw)


# -- EdgeConv and PointMessageLayer -----------------------------------------------------------------
H = torch.randn(10, 3)
EI = torch.tensor([[1, 2, 3], [0, 0, 1]])

LAYER_CASES = {
    "edge_index (3, E)": (dict(edge_index=torch.zeros(3, 4, dtype=torch.long)), ValueError,
                          r"edge_index must have shape \(2, E\), got \(3, 4\)"),
    "edge_index out of range": (dict(edge_index=torch.tensor([[0, 10], [1, 2]])), ValueError,
                                r"edge_index must hold node ids in \[0, 10\), got values in \[0, 10\]"),
    "edge_index negative": (dict(edge_index=torch.tensor([[0, -1], [1, 2]])), ValueError,
                            r"edge_index must hold node ids in \[0, 10\)"),
    "edge_index float": (dict(edge_index=EI.float()), TypeError, "edge_index must be an integer tensor"),
    "h width": (dict(h=torch.randn(10, 4), edge_index=EI), ValueError,
                r"h must be a floating-point tensor of shape \(N, in_channels\) = \(N, 3\), got \(10, 4\)"),
    "h float64 into float32 layer": (dict(h=H.double(), edge_index=EI), TypeError, "h has dtype torch.float64"),
    "idx and edge_index": (dict(idx=torch.zeros(2, 5, 2, dtype=torch.long), edge_index=EI), ValueError,
                           "pass exactly one of idx"),
    "neither idx nor edge_index": ({}, ValueError, "pass exactly one of idx"),
    "idx out of range": (dict(idx=torch.full((2, 5, 2), 5)), ValueError, r"idx must hold point ids in \[0, 5\)"),
    "idx float": (dict(idx=torch.zeros(2, 5, 2)), ValueError, r"idx must be an integer tensor of shape \(B, n, k\)"),
    "idx covers wrong N": (dict(idx=torch.zeros(3, 5, 2, dtype=torch.long)), ValueError,
                           r"idx of shape \(3, 5, 2\) covers B n = 15 points, but h has 10 rows"),
}


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_edgeconv_refuses(case):
    kw, exc, msg = LAYER_CASES[case]
    kw = dict(kw)
    h = kw.pop("h", H)
    with pytest.raises(exc, match=msg):
        EdgeConv(3, 4).eval()(h, **kw)


def test_point_message_layer_and_aggregate_refuse_bad_edges():
    with pytest.raises(ValueError, match=r"edge_index must hold node ids in \[0, 4\)"):
        PointMessageLayer(4)(torch.randn(4, 4), torch.randn(4, 3), torch.tensor([[0, 7], [1, 2]]))
    with pytest.raises(ValueError, match="aggr must be one of"):
        aggregate(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), 2, "min")


# -- neighbour operations ----------------------------------------------------------------------------
P = torch.randn(12, 3)
B = torch.tensor([0] * 6 + [1] * 6)

NEIGHBOUR_CASES = {
    "knn k 0": (lambda: knn(P, P, 0), ValueError, "k must be an integer >= 1, got 0"),
    "knn k True": (lambda: knn(P, P, True), TypeError, "k must be an integer, got bool True"),
    "knn_graph k 2.0": (lambda: knn_graph(P, 2.0), TypeError, "k must be an integer, got float 2.0"),
    "knn x integer": (lambda: knn(P.long(), P, 2), TypeError, "x must be a floating-point tensor"),
    "knn y (N, D, 1)": (lambda: knn(P, P.unsqueeze(-1), 2), ValueError, r"y must have shape \(N, D\)"),
    "knn columns": (lambda: knn(P, P[:, :2], 2), ValueError, "x and y must have the same number of columns, got 3 "
                                                             "and 2"),
    "knn batch_x length": (lambda: knn(P, P, 2, B[:5], B), ValueError,
                           r"batch_x must have shape \(N,\) = \(12,\) to match x, got \(5,\)"),
    "knn_graph batch unsorted": (lambda: knn_graph(P, 2, B.flip(0)), ValueError, "batch must be sorted"),
    "knn_graph batch float": (lambda: knn_graph(P, 2, B.float()), TypeError, "batch must be an integer tensor"),
    "knn_graph batch_size too small": (lambda: knn_graph(P, 2, B, batch_size=1), ValueError,
                                       "batch_size must be > every graph id"),
    "knn_graph NaN": (lambda: knn_graph(torch.full((3, 3), float("nan")), 1), ValueError, "x must be finite"),
    "knn_graph flow": (lambda: knn_graph(P, 2, flow="sideways"), ValueError, "flow must be 'source_to_target'"),
    "knn num_workers 0": (lambda: knn(P, P, 2, num_workers=0), ValueError, "num_workers must be an integer >= 1"),
    "knn_dense k > N - 1": (lambda: knn_dense(P.view(2, 6, 3), 6, loop=False), ValueError,
                            r"k must be <= 5 \(N = 6, loop=False\)"),
    "knn_dense (N, D)": (lambda: knn_dense(P, 2), ValueError, r"pos must have shape \(B, N, D\)"),
    "radius r 0": (lambda: radius(P, P, 0.0), ValueError, "r must be > 0"),
    "radius r string": (lambda: radius(P, P, "1"), TypeError, "r must be a real number"),
    "radius_graph r inf": (lambda: radius_graph(P, float("inf")), ValueError, "r must be > 0 and finite"),
    "radius max_num_neighbors 0": (lambda: radius(P, P, 1.0, max_num_neighbors=0), ValueError,
                                   "max_num_neighbors must be an integer >= 1"),
    "fps ratio 0": (lambda: fps(P, ratio=0.0), ValueError, r"ratio must be a number in \(0, 1\]"),
    "fps ratio 1.5": (lambda: fps(P, B, ratio=1.5), ValueError, r"ratio must be a number in \(0, 1\]"),
    "fps batch negative": (lambda: fps(P, B - 1), ValueError, "batch must hold graph ids >= 0"),
}


@pytest.mark.parametrize("case", list(NEIGHBOUR_CASES))
def test_neighbour_ops_refuse(case):
    fn, exc, msg = NEIGHBOUR_CASES[case]
    with pytest.raises(exc, match=msg):
        fn()


# -- registry ------------------------------------------------------------------------------------------
REGISTRY_CASES = {
    "unknown model": (lambda: create_model("resnet"), ValueError, r"unknown model 'resnet'; known models: .*pointnet"),
    "unknown kwarg": (lambda: create_model("dgcnn", chanels=(8,)), TypeError,
                      r"model 'dgcnn' takes no argument 'chanels'; it takes: in_channels, .*hidden_channels"),
    "old kwarg name": (lambda: create_model("pointnet", channels=(8,)), TypeError, "takes no argument 'channels'"),
    "name not a string": (lambda: create_model(None), TypeError, "name must be a string"),
    "bad task via registry": (lambda: create_model("gnn", task="reg"), ValueError, "task must be one of"),
}


@pytest.mark.parametrize("case", list(REGISTRY_CASES))
def test_create_model_refuses(case):
    fn, exc, msg = REGISTRY_CASES[case]
    with pytest.raises(exc, match=msg):
        fn()
