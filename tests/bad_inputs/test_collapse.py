"""Bad input to the collapse metrics, tracker, capture, analysis, CLI and config keys: each raises a clear error
naming the argument (CLI: exit 2, one line), before any work."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equinets.collapse import CollapseTracker, find_classifier, measure_collapse, nc_metrics
from equinets.collapse.analysis import analyse_checkpoint
from equinets.frames import FrameAveraging
from equinets.nn import PointNet
from equinets.train.config import ConfigError, resolve_config

g = torch.Generator().manual_seed(0)
H = torch.randn(12, 4, dtype=torch.float64, generator=g)
Y = torch.arange(12) % 3
W = torch.randn(3, 4, dtype=torch.float64, generator=g)
B = torch.randn(3, dtype=torch.float64, generator=g)


def _nan():
    h = H.clone()
    h[3, 1] = float("nan")
    return h


NC_CASES = [
    ("1-D features", dict(features=H[:, 0], labels=Y), ValueError, "features must have shape"),
    ("integer features", dict(features=H.long(), labels=Y), TypeError, "features must be a floating"),
    ("no samples", dict(features=H[:0], labels=Y[:0]), ValueError, "features must hold at least one"),
    ("NaN feature", dict(features=_nan(), labels=Y), ValueError, r"features must be finite.*\(3, 1\)"),
    ("labels length", dict(features=H, labels=Y[:-1]), ValueError, r"labels must have shape \(N,\) = \(12,\)"),
    ("float labels", dict(features=H, labels=Y.double()), TypeError, "labels must be an integer"),
    ("labels beyond num_classes", dict(features=H, labels=Y, num_classes=2), ValueError, r"labels must hold .*\[0, 2\)"),
    ("negative label", dict(features=H, labels=Y - 1), ValueError, "labels must be non-negative class ids, got minimum -1$"),
    ("one class", dict(features=H, labels=Y * 0), ValueError, "labels must hold at least 2 classes"),
    ("num_classes 1", dict(features=H, labels=Y * 0, num_classes=1), ValueError, "num_classes must be an integer >= 2"),
    ("num_classes float", dict(features=H, labels=Y, num_classes=3.0), TypeError, "num_classes must be an integer"),
    ("absent class", dict(features=H, labels=Y, num_classes=5), ValueError, r"labels: 2 of the K = 5 .*classes 3, 4"),
    ("absent choice", dict(features=H, labels=Y, absent="skip"), ValueError, "absent must be one of"),
    ("global_mean", dict(features=H, labels=Y, global_mean="median"), ValueError, "global_mean must be one of"),
    ("weight shape", dict(features=H, labels=Y, weight=W.T), ValueError, r"weight must be .* \(K, d\) = \(3, 4\)"),
    ("weight NaN", dict(features=H, labels=Y, weight=W * float("nan")), ValueError, "weight must be finite"),
    ("integer weight", dict(features=H, labels=Y, weight=W.long()), ValueError, "weight must be a floating"),
    ("bias length", dict(features=H, labels=Y, weight=W, bias=B[:2]), ValueError, r"bias must be .* \(K,\) = \(3,\)"),
    ("bias without weight", dict(features=H, labels=Y, bias=B), ValueError, "bias was given without weight"),
]


@pytest.mark.parametrize("what,kwargs,exc,match", NC_CASES, ids=[c[0] for c in NC_CASES])
def test_nc_metrics_refuses(what, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        nc_metrics(**kwargs)


TRACKER_ARGS = [
    (dict(num_classes=1, dim=4), ValueError, "num_classes must be an integer >= 2"),
    (dict(num_classes=3, dim=0), ValueError, "dim must be an integer >= 1"),
    (dict(num_classes=3, dim=4.0), TypeError, "dim must be an integer"),
    (dict(num_classes=3, dim=4, global_mean="weighted"), ValueError, "global_mean must be one of"),
]


@pytest.mark.parametrize("kwargs,exc,match", TRACKER_ARGS)
def test_tracker_constructor_refuses(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        CollapseTracker(**kwargs)


def test_tracker_methods_refuse():
    tr = CollapseTracker(3, 4)
    with pytest.raises(ValueError, match="no sample seen yet"):
        tr.compute()
    with pytest.raises(ValueError, match="features must have dim = 4"):
        tr.update(H[:, :3], Y)
    with pytest.raises(ValueError, match=r"labels must hold class ids in \[0, 3\)"):
        tr.update(H, Y + 1)
    with pytest.raises(ValueError, match="features must be finite"):
        tr.update(_nan(), Y)
    assert tr.num_samples == 0  # nothing was added by the refused batches
    with pytest.raises(ValueError, match="other must track K = 3"):
        tr.merge(CollapseTracker(4, 4))
    with pytest.raises(TypeError, match="other must be a CollapseTracker"):
        tr.merge({"counts": 1})
    tr.update(H, Y)
    with pytest.raises(ValueError, match=r"weight must be .* \(3, 4\)"):
        tr.update_nc4(H, Y, W[:2])


def test_find_classifier_refuses():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        find_classifier("pointnet")
    seg = PointNet(0, 4, task="seg", hidden_channels=(8,), emb_dims=16, head_channels=(8,))
    with pytest.raises(ValueError, match="model must be a classification model .*task='seg'"):
        find_classifier(seg)
    net = PointNet(0, 4, hidden_channels=(8,), emb_dims=16, head_channels=(8,))
    with pytest.raises(ValueError, match="model must output invariant logits.*irreps_out"):
        find_classifier(FrameAveraging(net, "E3", irreps_out="1x0e + 1x1o"))
    with pytest.raises(ValueError, match=r"last layer with parameters .* \(BatchNorm1d\), not an nn.Linear"):
        find_classifier(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.BatchNorm1d(4)))
    with pytest.raises(ValueError, match="has no layer with parameters"):
        find_classifier(nn.Sequential(nn.ReLU()))


def _batches():
    from torch_geometric.data import Batch, Data

    return [Batch.from_data_list([Data(pos=torch.randn(8, 3), y=torch.tensor([i % 4])) for i in range(4)])]


def test_measure_collapse_refuses():
    net = PointNet(0, 4, hidden_channels=(8,), emb_dims=16, head_channels=(8,))
    with pytest.raises(ValueError, match="num_classes = 3 but the model's classifier has 4 outputs"):
        measure_collapse(net, _batches(), 3)
    with pytest.raises(ValueError, match="batches: no sample"):
        measure_collapse(net, [], 4)
    with pytest.raises(ValueError, match="cache_bytes must be an integer >= 0"):
        measure_collapse(net, _batches(), 4, cache_bytes=-1)
    with pytest.raises(ValueError, match="labels: the batches carry no attribute 'label'"):
        measure_collapse(net, _batches(), 4, labels="label")
    assert net.training  # the model's mode is restored after a refused run


def test_analyse_checkpoint_refuses_before_reading(tmp_path, no_dataset):
    from equinets.train.checkpoint import CheckpointNotFoundError

    with pytest.raises(ValueError, match="split must be one of 'train', 'val', 'test'"):
        analyse_checkpoint(tmp_path / "best.pt", split="validation")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        analyse_checkpoint(tmp_path / "best.pt", batch_size=0)
    with pytest.raises(CheckpointNotFoundError, match="best.pt"):
        analyse_checkpoint(tmp_path / "best.pt")


CLI_CASES = [
    (["collapse"], "--checkpoint"),
    (["collapse", "--checkpoint", "x.pt", "--split", "val2"], "--split"),
    (["collapse", "--checkpoint", "x.pt", "--batch-size", "0"], "--batch-size"),
    (["collapse", "--checkpoint", "x.pt", "--global-mean", "median"], "--global-mean"),
    (["collapse", "--checkpoint", "x.pt", "lr=1"], "collapse takes no key=value overrides"),
    (["collapse", "--checkpoint", "RUN_MISSING/best.pt"], "RUN_MISSING/best.pt"),
]


@pytest.mark.parametrize("argv,match", CLI_CASES, ids=[" ".join(c[0][1:]) or "bare" for c in CLI_CASES])
def test_cli_collapse_one_line_errors(argv, match, cli, no_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = cli(argv, "collapse")
    assert match in err


CONFIG_CASES = [
    ("collapse_every=-1", "'collapse_every' must be a non-negative integer"),
    ("collapse_every=2.5", "'collapse_every' must be a non-negative integer"),
    ("head=cosine", "'head' must be one of ['linear', 'simplex_etf', 'ebv', 'sparse_etf']"),
    ("head_kwargs=3", "'head_kwargs' must be a mapping"),
    ("head_kwargs.scale=2", "'head_kwargs' ({'scale': 2}) needs a head other than 'linear'"),
    ("mixup_alpha=-0.2", "'mixup_alpha' must be a non-negative number"),
    ("mixup_alpha=.nan", "'mixup_alpha' must be a finite"),
]


@pytest.mark.parametrize("override,match", CONFIG_CASES)
def test_config_keys_refused(override, match, no_dataset):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        resolve_config("shapes-pointnet", [override])


@pytest.mark.parametrize("key", ["collapse_every=2", "mixup_alpha=0.2", "head=simplex_etf"])
def test_collapse_keys_need_classification(key, no_dataset):
    with pytest.raises(ConfigError, match=f"config key '{key.split('=')[0]}' .* needs a classification task"):
        resolve_config("shapes-extent-reg", [key])


@pytest.mark.parametrize("fn", ["nc_metrics", "collapse_stats"])
def test_stray_huge_label_refused_before_any_k_by_d_allocation(fn, monkeypatch):
    """num_classes=None and one label 5,000,000 (d = 64): K x d float64 would be 2.5 GB. The absent-class error
    must come from the labels, before batch_stats allocates anything of size K x d."""
    import equinets.collapse.metrics as metrics

    def no_stats(*args, **kwargs):
        raise AssertionError("batch_stats reached: K x d allocated before the absent-class check")

    monkeypatch.setattr(metrics, "batch_stats", no_stats)
    h = torch.randn(40, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.arange(40) % 3
    y[7] = 5_000_000
    with pytest.raises(ValueError, match=r"labels: 4999997 of the K = 5000001 classes have no sample \(classes 3, 4,"):
        getattr(metrics, fn)(h, y)
    with pytest.raises(ValueError, match="labels: 2 of the K = 5 classes"):  # an explicit num_classes likewise
        metrics.nc_metrics(h, y % 3, num_classes=5)
