"""The ``equinets`` command line end to end on tiny generated data (seconds each)."""

import csv
import json
import os
import stat

import pytest
import yaml

import equinets.data
import equinets.train.loop as loop
from equinets.train import load_checkpoint
from equinets.train.cli import main

TINY = ["num_points=32", "dataset_kwargs.num_train=40", "dataset_kwargs.num_test=20", "batch_size=16",
        "eval_batch_size=32", "model_kwargs.emb_dims=32"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One generated data root for the module (generation is the slow part of a tiny run)."""
    return f"data_root={tmp_path_factory.mktemp('data')}"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_overrides_anywhere_on_the_line_and_yaml12_floats(tmp_path, data, capsys):
    out = tmp_path / "run"
    argv = ["train", "lr=1e-3", "--config", "shapes-pointnet", *TINY[:3], "--out", str(out), *TINY[3:],
            "--epochs", "1", "weight_decay=5E-4", data, "momentum=.5"]
    assert main(argv) == 0
    got = _json(capsys.readouterr().out)
    assert got["out"] == str(out) and 0 <= got["acc"] <= 1 and got["best_epoch"] == 1
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["lr"], cfg["weight_decay"], cfg["momentum"], cfg["epochs"], cfg["batch_size"]) == (1e-3, 5e-4, 0.5, 1, 16)


def test_yaml_file_with_exponent_floats_trains(tmp_path, data, capsys):
    p = tmp_path / "my.yaml"
    p.write_text("base: shapes-pointnet\nlr: 1e-3\nweight_decay: 5e-4\nmin_lr: 1E-6\nepochs: 1\n")
    assert main(["train", "--config", str(p), "--out", str(tmp_path / "r"), *TINY, data]) == 0
    ck = load_checkpoint(tmp_path / "r" / "last.pt")
    assert (ck["config"]["lr"], ck["config"]["weight_decay"], ck["config"]["min_lr"], ck["config"]["name"]) == \
        (1e-3, 5e-4, 1e-6, "shapes-pointnet")


def test_resume_extends_a_finished_run_with_a_monotone_cosine_schedule(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", "shapes-pointnet", "--out", str(out), "--epochs", "3", *TINY, data]) == 0
    # a cosine over 3 epochs was at lr(2); a cosine over N gives lr(3) <= lr(2) only for N <= 3*3/2
    assert main(["train", "--out", str(out), "--resume", "--epochs", "6"]) == 2
    err = capsys.readouterr().err
    assert "not be monotone" in err and "pass --epochs 4 or fewer" in err
    assert main(["train", "--out", str(out), "--resume", "--epochs", "4"]) == 0
    rows = _rows(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    lrs = [float(r["lr"]) for r in rows]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(lrs, lrs[1:])), lrs
    lr, m = 1e-3, 1e-5  # epoch 4 follows the cosine over the new total T = 4 exactly
    import math

    assert lrs[3] == pytest.approx(m + 0.5 * (lr - m) * (1 + math.cos(math.pi * 3 / 4)), rel=1e-12)
    assert yaml.safe_load((out / "config.yaml").read_text())["epochs"] == 4
    assert load_checkpoint(out / "last.pt")["config"]["epochs"] == 4


def test_ctrl_c_says_how_to_resume_exits_130_and_keeps_the_last_finished_epoch(tmp_path, data, capsys, monkeypatch):
    out = tmp_path / "run"
    calls = []
    forward = loop._forward

    def interrupt_in_epoch_2(model, batch, cfg):
        calls.append(1)
        if len(calls) == 4:  # epoch 1: 2 training steps + 1 evaluation batch; call 4 is epoch 2's first step
            raise KeyboardInterrupt
        return forward(model, batch, cfg)

    monkeypatch.setattr(loop, "_forward", interrupt_in_epoch_2)
    assert main(["train", "--config", "shapes-pointnet", "--out", str(out), "--epochs", "2", *TINY, data]) == 130
    err = capsys.readouterr().err
    assert f"holds epoch 1 of 2; continue with: equinets train --out {out} --resume" in err
    assert load_checkpoint(out / "last.pt")["epoch"] == 1 and not (out / ".lock").exists()
    monkeypatch.setattr(loop, "_forward", forward)
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert [int(r["epoch"]) for r in _rows(out / "metrics.csv")] == [1, 2]


def test_ctrl_c_in_the_first_epoch_leaves_nothing_behind(tmp_path, data, capsys, monkeypatch):
    def interrupt(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_forward", interrupt)
    out = tmp_path / "runs" / "new"
    assert main(["train", "--config", "shapes-pointnet", "--out", str(out), *TINY, data]) == 130
    assert "before the first epoch finished; nothing was saved" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_log_every_prints_the_training_loss_every_n_steps(tmp_path, data, capsys):
    assert main(["train", "--config", "shapes-pointnet", "--out", str(tmp_path / "r"), "--epochs", "1", *TINY,
                 "log_every=2", data]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if " step " in ln]
    assert [ln.split()[3] for ln in lines] == ["2/2"]  # 40 clouds / batch 16, last partial batch dropped: 2 steps
    assert float(lines[0].split("loss=")[1]) > 0


def test_time_budget_stops_after_an_evaluated_epoch_and_the_run_resumes(tmp_path, data, capsys):
    out = tmp_path / "r"
    assert main(["train", "--config", "shapes-pointnet", "--out", str(out), "--epochs", "3", *TINY, "eval_every=3",
                 "time_budget=1e-9", data]) == 0
    rows = _rows(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1] and rows[0]["eval_acc"] != ""
    assert "continue with: equinets train --out" in capsys.readouterr().out


def test_files_are_created_with_the_users_umask(tmp_path, data, capsys):
    old = os.umask(0o027)
    try:
        assert main(["train", "--config", "shapes-pointnet", "--out", str(tmp_path / "r"), "--epochs", "1", *TINY,
                     data]) == 0
    finally:
        os.umask(old)
    for f in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "curves.png"):
        assert stat.S_IMODE((tmp_path / "r" / f).stat().st_mode) == 0o640, f


def test_test_at_best_reports_test_metrics_at_the_best_validation_epoch(tmp_path, data, capsys):
    sizes = "dataset_kwargs={num_train: 24, num_val: 12, num_test: 12, frame_in: 1, frame_out: 2}"
    out = tmp_path / "nb"
    assert main(["train", "--config", "nbody-fa-gnn", "--out", str(out), "--epochs", "3", "eval_every=1",
                 "batch_size=12", "model_kwargs.hidden_channels=6", "model_kwargs.num_layers=1", sizes,
                 data]) == 0
    got = _json(capsys.readouterr().out)
    rows = _rows(out / "metrics.csv")
    best = min(rows, key=lambda r: float(r["eval_mse"]))
    assert got["best_epoch"] == int(best["epoch"]) and got["best_mse"] == pytest.approx(float(best["eval_mse"]))
    assert got["test_mse"] == pytest.approx(float(best["test_mse"]))
    # test is evaluated exactly where validation improved
    vals = [float(r["eval_mse"]) for r in rows]
    assert [r["test_mse"] != "" for r in rows] == [v < min(vals[:i], default=float("inf")) for i, v in enumerate(vals)]
    ck = load_checkpoint(out / "best.pt")
    assert ck["best_test"]["mse"] == pytest.approx(got["test_mse"]) and ck["epoch"] == got["best_epoch"]


def test_config_and_model_are_checked_before_any_dataset_is_built(tmp_path, data, capsys, monkeypatch):
    def no_data(*a, **k):
        raise AssertionError("a dataset was built")

    monkeypatch.setattr(equinets.data, "create_dataset", no_data)
    for bad in ("model=pointnett", "dataset_kwargs.num_trian=3", "lr=nan", "model_kwargs.emb_dim=3"):
        assert main(["train", "--out", str(tmp_path / "r"), bad]) == 2
        assert capsys.readouterr().err.startswith("equinets train: error:")
    assert not (tmp_path / "r").exists()
