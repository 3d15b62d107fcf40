"""Bad inputs to the graph models and the frame-averaging wrappers: each is refused at entry, naming the argument."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equinets.frames import FAGNN, FrameAveraging, GraphFrameAveraging, frame_pairs, graph_frames, pca_frames
from equinets.nn import GIN, PointNet, global_add_pool
from equinets.testing import assert_equivariant, random_group_elements

# two graphs: a triangle (nodes 0-2) and a path (nodes 3-5), both directions of every edge
EI = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 0, 4, 5]])
EI = torch.cat([EI, EI.flip(0)], 1)
BATCH = torch.tensor([0, 0, 0, 1, 1, 1])
X = torch.ones(6, 2)


def _gin():
    return GIN(2, 3, hidden_channels=8)


def _fa_gin():
    return GraphFrameAveraging(GIN(2 + 6, 3, hidden_channels=8), id_dim=6)


GRAPH_MODELS = {"GIN": _gin, "GraphFrameAveraging": _fa_gin}


def _run(model, x=X, edge_index=EI, batch=BATCH):
    return model(x, edge_index, batch)


# -- graph inputs: GIN and GraphFrameAveraging share one validator (and graph_frames too) -------------------

BAD_GRAPHS = {
    "edge_index float": (dict(edge_index=EI.float()), TypeError, "edge_index must be an integer tensor"),
    "edge_index (3, E)": (dict(edge_index=torch.zeros(3, 4, dtype=torch.long)), ValueError,
                          r"edge_index must have shape \(2, E\), got \(3, 4\)"),
    "edge_index 1-d": (dict(edge_index=EI[0]), ValueError, r"edge_index must have shape \(2, E\)"),
    "edge_index id out of range": (dict(edge_index=torch.tensor([[0, 6], [1, 0]])), ValueError,
                                   r"edge_index must hold node ids in \[0, 6\), got values in \[0, 6\]"),
    "edge_index negative id": (dict(edge_index=torch.tensor([[0, -1], [1, 0]])), ValueError,
                               r"edge_index must hold node ids in \[0, 6\), got values in \[-1, 1\]"),
    "edge between graphs": (dict(edge_index=torch.tensor([[2], [3]])), ValueError,
                            r"edge_index must connect nodes of the same graph, got edge 0 from node 2 \(graph 0\)"),
    "batch unsorted": (dict(batch=torch.tensor([0, 1, 0, 1, 0, 1])), ValueError, "batch must be sorted"),
    "batch wrong length": (dict(batch=BATCH[:5]), ValueError, r"batch must have shape \(N,\) = \(6,\) to match x"),
    "batch float": (dict(batch=BATCH.float()), TypeError, "batch must be an integer tensor of graph ids"),
    "batch negative": (dict(batch=BATCH - 1), ValueError, "batch must hold graph ids >= 0"),
    "x NaN": (dict(x=torch.tensor([[float("nan"), 0.0]] + [[1.0, 1.0]] * 5)), ValueError,
              r"x must be finite, but 1 entry is NaN or Inf \(first at index \(0, 0\)\)"),
    "x integer": (dict(x=torch.ones(6, 2, dtype=torch.long)), TypeError, "x must be a floating-point tensor"),
    "x 1-d": (dict(x=torch.ones(6)), ValueError, r"x must have shape \(N, C\)"),
    "x float64 into float32 model": (dict(x=X.double()), TypeError,
                                     r"x has dtype torch.float64 but the model's parameters are torch.float32; "
                                     r"convert one of them \(x.to\(torch.float32\) or model.to\(torch.float64\)\)"),
    "x float16 into float32 model": (dict(x=X.half()), TypeError,
                                     r"x has dtype torch.float16 but .*"
                                     r"\(x.to\(torch.float32\) or model.to\(torch.float16\)\)"),
}


@pytest.mark.parametrize("model", GRAPH_MODELS)
@pytest.mark.parametrize("case", BAD_GRAPHS)
def test_bad_graph_input(model, case):
    kwargs, exc, match = BAD_GRAPHS[case]
    with pytest.raises(exc, match=match):
        _run(GRAPH_MODELS[model](), **kwargs)


def test_graph_frames_validates_like_the_models():
    with pytest.raises(ValueError, match=r"edge_index must hold node ids in \[0, 6\)"):
        graph_frames(torch.tensor([[0, 6], [1, 0]]), 6, BATCH)
    with pytest.raises(ValueError, match=r"batch must have shape \(N,\) = \(5,\) to match num_nodes"):
        graph_frames(EI, 5, BATCH)
    with pytest.raises(ValueError, match="num_nodes must be an integer >= 0, got -1"):
        graph_frames(EI, -1)
    with pytest.raises(ValueError, match=r"graph 1 of the batch is empty \(no node has batch == 1\)"):
        graph_frames(torch.zeros(2, 0, dtype=torch.long), 4, torch.tensor([0, 0, 2, 2]))


def test_x_width_must_match_in_channels():
    with pytest.raises(ValueError, match=r"x must have in_channels = 2 columns, got 3 \(x of shape \(6, 3\)\)"):
        _run(_gin(), x=torch.ones(6, 3))
    with pytest.raises(ValueError, match="x is required: the model was built with in_channels=2"):
        _run(_gin(), x=None)
    with pytest.raises(ValueError, match=r"x must have gnn.in_channels - id_dim = 8 - 6 = 2 columns, got 3"):
        _run(_fa_gin(), x=torch.ones(6, 3))


def test_onehot_identifiers_need_id_dim_at_least_the_largest_graph():
    fa = GraphFrameAveraging(GIN(2 + 4, 3), id_dim=4)
    x = torch.ones(6, 2)
    with pytest.raises(ValueError, match=r"id_dim >= the largest graph \(6 nodes\), got id_dim=4"):
        fa(x, EI[:, :0], torch.zeros(6, dtype=torch.long))


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(max_frames=0), ValueError, "max_frames must be an integer >= 1, got 0"),
    (dict(num_samples=0), ValueError, "num_samples must be an integer >= 1, got 0"),
    (dict(num_samples=True), TypeError, "num_samples must be None or an integer, got bool True"),
    (dict(id_dim=0), ValueError, "id_dim must be an integer >= 1, got 0"),
    (dict(id_encoding="binary"), ValueError, "id_encoding must be one of 'onehot', 'sinusoidal', got 'binary'"),
    (dict(task="graph"), ValueError, r"task must be None or one of \('cls', 'seg'\), got 'graph'"),
    (dict(individualize=-1), ValueError, "individualize must be an integer >= 0, got -1"),
    (dict(tol=0.0), ValueError, "tol must be > 0, got 0.0"),
])
def test_graph_frame_averaging_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        GraphFrameAveraging(GIN(8, 3), **kwargs)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(in_channels=0), ValueError, "in_channels must be an integer >= 1, got 0"),
    (dict(hidden_channels=2.0), TypeError, "hidden_channels must be an integer, got float 2.0"),
    (dict(num_layers=0), ValueError, "num_layers must be an integer >= 1, got 0"),
    (dict(task="graph"), ValueError, r"task must be one of \('cls', 'seg'\), got 'graph'"),
])
def test_gin_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        GIN(**{"in_channels": 2, "out_channels": 3, **kwargs})


# -- BatchNorm over a batch of one -------------------------------------------------------------------------


class _PooledBN(nn.Module):
    """A graph-level GNN with BatchNorm over graphs (one row per framed graph)."""

    task = "cls"

    def __init__(self, in_channels):
        super().__init__()
        self.in_channels = in_channels
        self.lin, self.bn = nn.Linear(in_channels, 4), nn.BatchNorm1d(4)

    def forward(self, x, edge_index, batch):
        return self.bn(global_add_pool(self.lin(x), batch))


def test_one_graph_batch_in_training_with_batchnorm_names_cause_and_fix():
    fa = GraphFrameAveraging(_PooledBN(2 + 3), id_dim=3, num_samples=1)
    x, ei, batch = X[:3], torch.tensor([[0, 1, 2, 1, 2, 0], [1, 2, 0, 0, 1, 2]]), BATCH[:3]  # a triangle
    with pytest.raises(ValueError, match=r"the batch holds 1 framed graphs \(graphs x num_samples\), but the model's "
                                         r"BatchNorm layers are in training mode.*or call model.eval\(\)"):
        fa(x, ei, batch)
    assert fa.eval()(x, ei, batch).shape == (1, 4)  # eval: full frames, running statistics


def test_one_cloud_batch_in_training_with_batchnorm_names_cause_and_fix():
    fa = FrameAveraging(PointNet(0, 4, hidden_channels=(8,), emb_dims=16, head_channels=(8,)), "E3", num_samples=1)
    pos = torch.randn(1, 20, 3) * torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"the batch holds 1 framed clouds \(clouds x num_samples\).*"
                                         r"use a batch of >= 2 framed clouds"):
        fa(pos)
    assert fa.eval()(pos).shape == (1, 4)


# -- FrameAveraging, pca_frames, frame_pairs ---------------------------------------------------------------


def _pointnet(**kw):
    return PointNet(0, 4, hidden_channels=(8,), emb_dims=16, head_channels=(8,), **kw)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(group="E2"), ValueError, "group must be one of 'O3', 'SO3', 'E3', 'SE3', got 'E2'"),
    (dict(irreps_out="2x"), ValueError, "irreps_out must be e3nn irreps such as '0e \\+ 1o', got '2x'"),
    (dict(irreps_in=5), ValueError, "irreps_in must be e3nn irreps"),
    (dict(irreps_out="0e", position_output=True), ValueError, "position_output=True needs irreps_out made of 1o only"),
    (dict(num_samples=0), ValueError, "num_samples must be an integer >= 1, got 0"),
    (dict(num_samples=True), TypeError, "num_samples must be None or an integer, got bool True"),
    (dict(num_samples=1.5), TypeError, "num_samples must be None or an integer, got float 1.5"),
    (dict(task="graph"), ValueError, r"task must be None or one of \('cls', 'seg'\), got 'graph'"),
    (dict(degenerate="drop"), ValueError, "degenerate must be one of 'blend', 'none', 'harmonic', got 'drop'"),
    (dict(num_angles=0), ValueError, "num_angles must be an integer >= 1, got 0"),
    (dict(tol=-1.0), ValueError, "tol must be > 0, got -1.0"),
    (dict(tol="small"), TypeError, "tol must be a real number, got str 'small'"),
])
def test_frame_averaging_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        FrameAveraging(_pointnet(), **kwargs)


def test_frame_averaging_bad_inputs():
    fa = FrameAveraging(_pointnet(), "E3").eval()
    pos = torch.randn(2, 10, 3)
    with pytest.raises(TypeError, match=r"pos has dtype torch.float64 but the model's parameters are torch.float32"):
        fa(pos.double())
    fa_x = FrameAveraging(PointNet(3, 4, hidden_channels=(8,), emb_dims=16, head_channels=(8,)), "E3", irreps_in="1o").eval()
    with pytest.raises(ValueError, match=r"x must have irreps_in.dim = 3 columns \(1x1o\), got 2"):
        fa_x(pos, torch.randn(2, 10, 2))
    with pytest.raises(TypeError, match=r"x has dtype torch.float64 but the model's parameters are torch.float32"):
        fa_x(pos, torch.randn(2, 10, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch must be sorted"):
        fa(pos.reshape(20, 3), None, torch.tensor([0, 1] * 10))


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(group="SE2"), ValueError, "group must be one of 'O3', 'SO3', 'E3', 'SE3', got 'SE2'"),
    (dict(degenerate=None), TypeError, "degenerate must be a string"),
    (dict(num_angles=True), TypeError, "num_angles must be an integer, got bool True"),
    (dict(tol=0), ValueError, "tol must be > 0"),
    (dict(weights=-torch.ones(10)), ValueError, "weights must be non-negative"),
    (dict(weights=torch.ones(9)), ValueError, r"weights must have one entry per point \(10\)"),
])
def test_pca_frames_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pca_frames(torch.randn(10, 3), **kwargs)


def test_frame_pairs_bad_num_samples():
    fr = pca_frames(torch.randn(10, 3))
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1, got 0"):
        frame_pairs(fr, 0)
    with pytest.raises(TypeError, match="num_samples must be None or an integer, got str '2'"):
        frame_pairs(fr, "2")


# -- FAGNN ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(hidden_channels=10), ValueError, "hidden_channels must be a multiple of 3"),
    (dict(hidden_channels=True), TypeError, "hidden_channels must be an integer, got bool True"),
    (dict(num_layers=0), ValueError, "num_layers must be an integer >= 1, got 0"),
    (dict(aggr="min"), ValueError, "aggr must be one of 'sum', 'mean', 'max', got 'min'"),
    (dict(reframe="never"), ValueError, "reframe must be one of 'latent', 'input', got 'never'"),
    (dict(group="E2"), ValueError, "group must be one of"),
    (dict(num_samples=0), ValueError, "num_samples must be an integer >= 1, got 0"),
    (dict(num_vectors=2), ValueError, "num_vectors must be an integer with 0 <= 3 \\* num_vectors <= in_channels = 4"),
])
def test_fagnn_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        FAGNN(4, 3, **kwargs)


def test_fagnn_bad_inputs():
    model = FAGNN(4, 3, hidden_channels=6, num_layers=1)
    pos, x, batch = torch.randn(10, 3), torch.randn(10, 4), torch.arange(2).repeat_interleave(5)
    with pytest.raises(ValueError, match=r"x must have in_channels = 4 columns, got 3 \(x of shape \(10, 3\)\)"):
        model(pos, x[:, :3], batch)
    with pytest.raises(ValueError, match="x is required: the model was built with in_channels=4"):
        model(pos, None, batch)
    with pytest.raises(TypeError, match=r"pos has dtype torch.float64 but the model's parameters are torch.float32"):
        model(pos.double(), x, batch)
    with pytest.raises(TypeError, match=r"x has dtype torch.float16 but the model's parameters are torch.float32"):
        model(pos, x.half(), batch)
    with pytest.raises(ValueError, match="pos must be finite"):
        model(torch.where(torch.arange(10)[:, None] == 3, float("nan"), pos), x, batch)
    with pytest.raises(ValueError, match="batch must be sorted"):
        model(pos, x, batch.flip(0))
    with pytest.raises(ValueError, match="x must be None for a model built with in_channels=0"):
        FAGNN(0, 3, hidden_channels=6, num_layers=1)(pos, x, batch)


# -- assert_equivariant ------------------------------------------------------------------------------------


def _centroid(p, x, b):
    return p.mean(0, keepdim=True)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(group="E2"), ValueError, "group must be one of 'O3', 'SO3', 'E3', 'SE3', got 'E2'"),
    (dict(n_trials=0), ValueError, "n_trials must be an integer >= 1, got 0"),
    (dict(irreps_out="1x"), ValueError, "irreps_out must be e3nn irreps"),
    (dict(irreps_out="0e", position_output=True), ValueError, "position_output=True needs irreps_out made of 1o only"),
    (dict(irreps_in="1o", x=torch.randn(10, 2, dtype=torch.float64)), ValueError,
     r"x must have irreps_in.dim = 3 columns \(1x1o\), got 2"),
    (dict(rtol=-1.0), ValueError, "rtol must be a finite number >= 0.0, got -1.0"),
    (dict(atol=float("nan")), ValueError, "atol must be a finite number"),
])
def test_assert_equivariant_bad_arguments(kwargs, exc, match):
    kwargs = {"irreps_out": "1o", "position_output": True, **kwargs}
    x = kwargs.pop("x", None)
    with pytest.raises(exc, match=match):
        assert_equivariant(_centroid, torch.randn(10, 3, dtype=torch.float64), x, **kwargs)


def test_random_group_elements_bad_arguments():
    with pytest.raises(ValueError, match="group must be one of"):
        random_group_elements(2, "SO2")
    with pytest.raises(ValueError, match="num must be an integer >= 0, got -1"):
        random_group_elements(-1)
    with pytest.raises(ValueError, match="translation_scale must be a finite number >= 0.0"):
        random_group_elements(2, translation_scale=float("inf"))
