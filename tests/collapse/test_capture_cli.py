"""find_classifier and feature capture (plain and frame-averaged models); the collapse CLI."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equinets.collapse import (
    METRIC_KEYS,
    WEIGHT_KEYS,
    FeatureCapture,
    capture_features,
    find_classifier,
    measure_collapse,
    nc_metrics,
)
from equinets.frames import FrameAveraging
from equinets.nn import create_model
from equinets.train import resolve_config, train
from equinets.train.loop import build_model, mixup_batch

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


def test_apen_classifier_is_found_and_captured():
    torch.manual_seed(3)
    net = create_model("apen", in_channels=0, out_channels=5, task="cls", num_parts=4, num_blocks=1, channels=(16,),
                       num_scalars=8, num_vectors=4, head_channels=(16,)).double().eval()
    lin = getattr(*find_classifier(net))
    with torch.no_grad(), FeatureCapture(net) as cap:
        out = net(torch.randn(2, 64, 3, dtype=torch.float64))
    assert torch.allclose(cap.features @ lin.weight.T + lin.bias, out, rtol=0, atol=1e-10)


def test_capture_removes_hooks_and_pop():
    net = _model("pointnet")
    lin = getattr(*find_classifier(net))
    with FeatureCapture(net) as cap:
        net(torch.randn(2, 10, 3, dtype=torch.float64))
        assert cap.pop().shape[0] == 2 and cap.features.shape[0] == 0
    assert not lin._forward_pre_hooks


def test_capture_features_returns_features_labels_logits():
    from torch_geometric.data import Batch, Data

    torch.manual_seed(1)
    net = _model("pointnet", "SO3")
    data = [Data(pos=torch.randn(12, 3, dtype=torch.float64), y=torch.tensor([i % 5])) for i in range(6)]
    batches = [Batch.from_data_list(data[:4]), Batch.from_data_list(data[4:])]
    h, y, logits = capture_features(net, batches)
    lin = getattr(*find_classifier(net))
    assert h.shape == (6, 8) and y.tolist() == [0, 1, 2, 3, 4, 0]
    assert torch.allclose(h @ lin.weight.T + lin.bias, logits, rtol=0, atol=1e-10)


def test_measure_collapse_cached_equals_rerun_and_nc_metrics():
    from torch_geometric.data import Batch, Data

    torch.manual_seed(2)
    net = _model("pointnet", "E3")
    data = [Data(pos=torch.randn(10, 3, dtype=torch.float64) * torch.tensor([1.0, 2, 3], dtype=torch.float64),
                 y=torch.tensor([i % 5])) for i in range(11)]
    batches = [Batch.from_data_list(data[i:i + 4]) for i in range(0, 11, 4)]
    m_cached, tr = measure_collapse(net, batches, 5)
    m_rerun, _ = measure_collapse(net, batches, 5, cache_bytes=0)
    h, y, _ = capture_features(net, batches)
    lin = getattr(*find_classifier(net))
    ref = nc_metrics(h, y, lin.weight.detach(), lin.bias.detach())
    assert m_cached == m_rerun and tr.num_samples == 11
    for k, v in ref.items():
        assert m_cached[k] == pytest.approx(v, rel=1e-9, abs=1e-15), k


def test_mixup_batch_pairs_same_size_clouds_and_mixes_linearly():
    import numpy as np
    from torch_geometric.data import Batch, Data

    sizes = [5, 7, 5, 5, 7, 3]
    data = [Data(pos=torch.randn(n, 3), x=torch.randn(n, 2), y=torch.tensor([i])) for i, n in enumerate(sizes)]
    batch = Batch.from_data_list(data)
    mixed, y_a, y_b, lam = mixup_batch(batch, 0.4, np.random.default_rng(0), torch.Generator().manual_seed(0))
    assert 0 < lam < 1 and y_a.tolist() == list(range(6))
    for i, j in enumerate(y_b.tolist()):
        assert sizes[i] == sizes[j]  # partners have the same number of points (the size-3 cloud pairs with itself)
        rows = batch.batch == i
        assert torch.allclose(mixed.pos[rows], lam * data[i].pos + (1 - lam) * data[j].pos, atol=1e-6)
        assert torch.allclose(mixed.x[rows], lam * data[i].x + (1 - lam) * data[j].x, atol=1e-6)
    assert y_b[5] == 5


TINY = ["num_points=24", "dataset_kwargs.num_train=30", "dataset_kwargs.num_test=15", "batch_size=10",
        "eval_batch_size=16", "epochs=2", "model_kwargs.emb_dims=32", "model_kwargs.hidden_channels=[16]",
        "model_kwargs.head_channels=[16]"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny FA-PointNet run with collapse_every=1 and input mixup."""
    root = tmp_path_factory.mktemp("collapse_run")
    cfg = resolve_config("shapes-fa-pointnet", TINY + [f"data_root={root / 'data'}", "collapse_every=1",
                                                       "mixup_alpha=0.4"])
    train(cfg, root / "run", progress=False)
    return root / "run"


def test_training_logs_collapse_columns_and_plot(run):
    import csv

    rows = list(csv.DictReader(open(run / "metrics.csv", newline="")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for k in METRIC_KEYS + WEIGHT_KEYS:
        assert all(r[f"train_{k}"] not in ("", "nan") for r in rows), k
    assert 0.0 <= float(rows[-1]["train_nc4"]) <= 1.0
    assert (run / "collapse.png").stat().st_size > 0


def test_cli_analysis_equals_the_training_log_and_refuses_to_clobber(run, capsys):
    import csv
    import json

    from equinets.train.cli import main

    assert main(["collapse", "--checkpoint", str(run / "last.pt")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    logged = list(csv.DictReader(open(run / "metrics.csv", newline="")))[-1]
    for k in METRIC_KEYS + WEIGHT_KEYS:  # last.pt is the last epoch's model: the same numbers
        assert out[k] == pytest.approx(float(logged[f"train_{k}"]), rel=1e-9, abs=1e-15), k
    table = {r["metric"]: r["value"] for r in csv.DictReader(open(run / "collapse_last_train.csv", newline=""))}
    assert float(table["nc1"]) == out["nc1"] and table["split"] == "train" and int(table["num_samples"]) == 30
    assert (run / "collapse_last_train.png").stat().st_size > 0
    before = (run / "collapse_last_train.csv").read_bytes()
    assert main(["collapse", "--checkpoint", str(run / "last.pt")]) == 2
    assert "--force" in capsys.readouterr().err
    assert (run / "collapse_last_train.csv").read_bytes() == before
    assert main(["collapse", "--checkpoint", str(run / "last.pt"), "--split", "test", "--force"]) == 0
    capsys.readouterr()
    assert (run / "collapse_last_test.csv").is_file() and (run / "collapse_last_train.csv").read_bytes() == before


@pytest.mark.parametrize("head", ["simplex_etf", "ebv", "sparse_etf"])
def test_config_heads_train_and_are_captured(tmp_path, head):
    pytest.importorskip("equinets.collapse.heads")
    extra = ["head_kwargs.steps=20"] if head == "sparse_etf" else []  # a short re-optimisation of the non-zeros
    cfg = resolve_config("shapes-pointnet", TINY + [f"data_root={tmp_path / 'data'}", f"head={head}", *extra])
    model = build_model(cfg, args={"in_channels": 0, "out_channels": 15, "task": "cls", **cfg["model_kwargs"]})
    layer = getattr(*find_classifier(model))
    assert not isinstance(layer, nn.Linear) and layer.weight.shape[0] == 15
    model.eval()
    pos = torch.randn(3, 32, 3)
    with torch.no_grad(), FeatureCapture(model) as cap:
        out = model(pos)
    assert cap.features.shape == (3, layer.weight.shape[1]) and out.shape == (3, 15)
    if head != "ebv":  # EBV logits are cosines over a temperature; the others are linear in the features
        b = layer.bias if layer.bias is not None else 0.0
        assert torch.allclose(cap.features @ layer.weight.T + b, out, atol=1e-5)


def test_plot_collapse_draws_nc4_zeros_on_a_linear_axis(tmp_path, monkeypatch):
    """NC4 reaches exactly 0: on a log axis those points vanish; the NC4 panel is linear and keeps every epoch."""
    import matplotlib.pyplot as plt

    from equinets.train.plots import plot_collapse

    path = tmp_path / "metrics.csv"
    nc4 = [0.2, 0.05, 0.0, 0.0]
    lines = ["epoch,train_nc1,train_nc3,train_nc4"] + [f"{e},{1.0 / (e + 1)},{0.5 / (e + 1)},{v}" for e, v in enumerate(nc4)]
    path.write_text("\n".join(lines) + "\n")
    figs = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    assert plot_collapse(path, tmp_path / "c.png").stat().st_size > 0
    axes = figs[0].axes
    nc4_ax = next(a for a in axes if a.get_title().startswith("NC4"))
    assert nc4_ax.get_yscale() == "linear" and nc4_ax.get_ylim()[0] == 0.0
    assert list(nc4_ax.lines[0].get_ydata()) == nc4
    assert next(a for a in axes if a.get_title().startswith("NC1")).get_yscale() == "log"
