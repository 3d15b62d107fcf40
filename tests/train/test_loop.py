"""End-to-end runs of the training loop on tiny generated data (seconds each)."""

import csv
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from equinets.errors import UserError
from equinets.train import CheckpointError, RunExistsError, TrainingDiverged, load_checkpoint, resolve_config, train
from equinets.train.cli import main

TINY = ["num_points=48", "dataset_kwargs.num_train=60", "dataset_kwargs.num_test=30", "batch_size=16",
        "eval_batch_size=32", "epochs=3", "jitter=0.01"]


def _cfg(root, *extra):
    return resolve_config("shapes-pointnet", TINY + [f"data_root={root}", *extra])


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(f)]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_run_directory_holds_config_metrics_plots_and_checkpoints(tmp_path):
    out = tmp_path / "run"
    final = train(_cfg(tmp_path / "data"), out)
    for f in ("config.yaml", "metrics.csv", "curves.png", "last.pt", "best.pt"):
        assert (out / f).is_file(), f
    rows = _rows(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert 0.0 <= final["acc"] <= 1.0 and 0.0 <= final["balanced_acc"] <= 1.0
    assert float(rows[-1]["eval_acc"]) == pytest.approx(final["acc"])
    best = load_checkpoint(out / "best.pt")
    assert best["best"] == pytest.approx(max(float(r["eval_acc"]) for r in rows))


def test_eval_every_evaluates_every_kth_and_the_last_epoch(tmp_path):
    out = tmp_path / "run"
    final = train(_cfg(tmp_path / "data", "epochs=5", "eval_every=2"), out)
    rows = _rows(out / "metrics.csv")
    assert [r["eval_acc"] != "" for r in rows] == [False, True, False, True, True]
    assert all(r["train_loss"] != "" for r in rows)
    assert float(rows[-1]["eval_acc"]) == pytest.approx(final["acc"])
    best = load_checkpoint(out / "best.pt")
    assert best["best"] == pytest.approx(max(float(r["eval_acc"]) for r in rows if r["eval_acc"]))
    assert best["epoch"] in (2, 4, 5)
    assert (out / "curves.png").is_file()


def test_same_seed_same_result_on_cpu(tmp_path):
    a = train(_cfg(tmp_path / "data", "epochs=2"), tmp_path / "a")
    b = train(_cfg(tmp_path / "data", "epochs=2"), tmp_path / "b")
    assert a == b
    sa, sb = load_checkpoint(tmp_path / "a/last.pt")["model"], load_checkpoint(tmp_path / "b/last.pt")["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_killed_mid_epoch_then_resumed_matches_uninterrupted(tmp_path):
    # every run is a fresh process with the same thread count (CPU results are bitwise
    # deterministic for a fixed number of threads)
    data = tmp_path / "data"
    run = [sys.executable, "-m", "equinets", "train", "--config", "shapes-pointnet", *TINY, f"data_root={data}"]
    r = subprocess.run(run + ["--out", str(tmp_path / "full")], env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # a real process, killed with SIGKILL in the middle of epoch 2 (after epoch 1's checkpoint)
    script = textwrap.dedent(f"""
        import os, signal
        from equinets.train import resolve_config, train
        cfg = resolve_config("shapes-pointnet", {TINY!r} + ["data_root={data}"])
        def hook(epoch, step):
            if epoch == 1 and step == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        train(cfg, "{tmp_path / 'killed'}", _after_step=hook)
    """)
    r = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True)
    assert r.returncode == -9, r.stderr
    assert load_checkpoint(tmp_path / "killed/last.pt")["epoch"] == 1  # only the unfinished epoch is lost
    r = subprocess.run([sys.executable, "-m", "equinets", "train", "--out", str(tmp_path / "killed"), "--resume"],
                       env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _rows(tmp_path / "killed/metrics.csv") == _rows(tmp_path / "full/metrics.csv")
    a = load_checkpoint(tmp_path / "full/last.pt")["model"]
    b = load_checkpoint(tmp_path / "killed/last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_can_extend_epochs(tmp_path):
    train(_cfg(tmp_path / "data", "epochs=1"), tmp_path / "r")
    train(None, tmp_path / "r", resume=True, epochs=2)
    assert [int(r["epoch"]) for r in _rows(tmp_path / "r/metrics.csv")] == [1, 2]


def test_diverged_run_never_overwrites_good_checkpoints(tmp_path, monkeypatch):
    import equinets.train.loop as loop

    out = tmp_path / "run"
    train(_cfg(tmp_path / "data", "epochs=1"), out)
    before = {f: (out / f).read_bytes() for f in ("last.pt", "best.pt", "metrics.csv")}
    models = []
    build = loop.build_model
    monkeypatch.setattr(loop, "build_model", lambda cfg, ds=None, **kw: models.append(build(cfg, ds, **kw)) or models[-1])

    def poison(epoch, step):
        with torch.no_grad():
            for p in models[0].parameters():
                p.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="keeps the checkpoints of the last good epoch"):
        train(None, out, resume=True, epochs=2, _after_step=poison)
    assert {f: (out / f).read_bytes() for f in before} == before


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    out = tmp_path / "run"
    train(_cfg(tmp_path / "data", "epochs=1"), out)
    before = (out / "last.pt").read_bytes()
    with pytest.raises(RunExistsError, match="already holds a run"):
        train(_cfg(tmp_path / "data", "epochs=1"), out)
    assert (out / "last.pt").read_bytes() == before
    assert main(["train", "--out", str(out), "epochs=1", f"data_root={tmp_path / 'data'}"]) == 2


def test_corrupt_checkpoint_on_resume_and_eval(tmp_path, capsys):
    out = tmp_path / "run"
    train(_cfg(tmp_path / "data", "epochs=1"), out)
    good = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(good[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train(None, out, resume=True)
    assert main(["eval", "--checkpoint", str(out / "last.pt")]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_eval_cli_reproduces_final_metrics_and_takes_test_rotation(tmp_path, capsys):
    import json

    out = tmp_path / "run"
    final = train(_cfg(tmp_path / "data", "epochs=1"), out)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "last.pt")]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["acc"] == pytest.approx(final["acc"], abs=1e-12)
    per_class = got["per_class_acc"]  # named by the dataset's classes; their mean is the balanced accuracy
    assert per_class and all(isinstance(k, str) and 0 <= v <= 1 for k, v in per_class.items())
    assert sum(per_class.values()) / len(per_class) == pytest.approx(final["balanced_acc"], abs=1e-12)
    assert main(["eval", "--checkpoint", str(out / "last.pt"), "test_rotation=SO3"]) == 0
    assert json.loads(capsys.readouterr().out)["test_rotation"] == "SO3"


def test_missing_dataset_root_is_a_clear_cli_error(tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path / "r"), "dataset=modelnet40", f"data_root={tmp_path / 'nowhere'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "datasets/README.md" in err
    assert not (tmp_path / "r" / "last.pt").exists()


def test_labels_out_of_range_in_a_dataset_file_are_named(tmp_path):
    root = tmp_path / "mn" / "modelnet40_ply_hdf5_2048"
    root.mkdir(parents=True)
    names = [f"c{i}" for i in range(40)]
    (root / "shape_names.txt").write_text("\n".join(names) + "\n")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        with h5py.File(root / f"ply_data_{split}0.h5", "w") as f:
            f["data"] = rng.standard_normal((8, 64, 3)).astype(np.float32)
            f["label"] = np.array([[0], [1], [45], [2], [3], [4], [5], [6]], dtype=np.uint8)
    cfg = resolve_config("shapes-pointnet", ["dataset=modelnet40", f"data_root={tmp_path / 'mn'}", "num_points=32",
                                             "epochs=1", "batch_size=8"])
    with pytest.raises(UserError, match=r"dataset 'modelnet40' \(train split\): .*ply_data_train0\.h5.*\[0, 45\]"):
        train(cfg, tmp_path / "run")


def test_segmentation_and_regression_tasks_train(tmp_path):
    seg = resolve_config("parts-pointnet", ["num_points=48", "dataset_kwargs.num_train=40",
                                            "dataset_kwargs.num_test=20", "epochs=1", "batch_size=10",
                                            f"data_root={tmp_path / 'data'}"])
    m = train(seg, tmp_path / "seg")
    assert 0 <= m["instance_miou"] <= 1 and 0 <= m["class_miou"] <= 1 and 0 <= m["point_acc"] <= 1
    reg = resolve_config("shapes-extent-reg", TINY + ["epochs=1", f"data_root={tmp_path / 'data'}"])
    m = train(reg, tmp_path / "reg")
    assert m["mse"] >= 0 and np.isfinite(m["mse"])


def test_ddp_two_processes_on_cpu_match_single_process_eval(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun is not None
    out = tmp_path / "ddp"
    args = ["--standalone", "--nproc_per_node=2", "-m", "equinets", "train", "--out", str(out),
            f"data_root={tmp_path / 'data'}", *TINY, "epochs=2"]
    r = subprocess.run([torchrun, *args], env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(out / "metrics.csv")
    assert [int(x["epoch"]) for x in rows] == [1, 2]
    ck = load_checkpoint(out / "last.pt")
    assert not any(k.startswith("module.") for k in ck["model"])  # saved unwrapped
    # the all-reduced DDP evaluation equals a single-process evaluation of the same weights
    r = subprocess.run([sys.executable, "-m", "equinets", "eval", "--checkpoint", str(out / "last.pt")],
                       env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    import json

    single = json.loads(r.stdout.strip().splitlines()[-1])
    assert single["acc"] == pytest.approx(float(rows[-1]["eval_acc"]), abs=1e-12)
    assert single["loss"] == pytest.approx(float(rows[-1]["eval_loss"]), rel=1e-6)


def test_frame_averaged_model_scores_the_same_under_any_test_rotation(tmp_path, capsys):
    import json

    cfg = resolve_config("shapes-fa-pointnet", TINY + ["epochs=1", f"data_root={tmp_path / 'data'}",
                                                       "model_kwargs.emb_dims=64"])
    train(cfg, tmp_path / "fa")
    got = {}
    for rot in ("I", "z", "SO3", "O3"):
        capsys.readouterr()
        assert main(["eval", "--checkpoint", str(tmp_path / "fa/last.pt"), f"test_rotation={rot}"]) == 0
        got[rot] = json.loads(capsys.readouterr().out)
    for rot in ("z", "SO3", "O3"):  # E(3)-invariant: identical predictions, loss equal to float32 rounding
        assert got[rot]["acc"] == got["I"]["acc"]
        assert got[rot]["loss"] == pytest.approx(got["I"]["loss"], rel=1e-4)


def test_modelnet40_fa_config_reads_the_hdf5_layout_and_is_invariant_to_the_test_rotation(tmp_path, capsys):
    """The real-data recipe of issue 11 (detail signs, harmonic ties, 8 frames per step) end to end on a tiny
    ModelNet40 HDF5 folder: it trains, and its checkpoint scores the same under every test rotation."""
    import json

    import h5py
    import numpy as np

    root = tmp_path / "mn"
    root.mkdir()
    (root / "shape_names.txt").write_text("\n".join(f"c{i}" for i in range(40)) + "\n")
    rng = np.random.default_rng(3)
    for split, n in (("train", 24), ("test", 12)):
        lab = np.arange(n) % 3
        pos = rng.standard_normal((n, 64, 3)) * np.array([3.0, 2.0, 1.0]) * (1 + lab[:, None, None])
        pos[:, :8] += 2.5 * (lab[:, None, None] == 1)  # a small asymmetric detail on one class
        with h5py.File(root / f"ply_data_{split}0.h5", "w") as f:
            f["data"], f["label"] = pos.astype(np.float32), lab.astype(np.uint8)[:, None]
    cfg = resolve_config("modelnet40-fa-pointnet", [f"data_root={root}", "num_points=64", "epochs=1", "batch_size=8",
                                                    "eval_batch_size=12", "model_kwargs.emb_dims=32", "device=cpu"])
    assert (cfg["fa_signs"], cfg["fa_degenerate"], cfg["fa_num_samples"]) == ("detail", "harmonic", 8)
    train(cfg, tmp_path / "run", progress=False)
    got = {}
    for rot in ("I", "SO3", "O3"):
        capsys.readouterr()
        assert main(["eval", "--checkpoint", str(tmp_path / "run/last.pt"), f"test_rotation={rot}"]) == 0
        got[rot] = json.loads(capsys.readouterr().out)
    assert set(got["I"]["per_class_acc"]) == {"c0", "c1", "c2"}  # named from shape_names.txt
    for rot in ("SO3", "O3"):
        assert got[rot]["acc"] == got["I"]["acc"]
        assert got[rot]["loss"] == pytest.approx(got["I"]["loss"], rel=1e-4)


def test_frame_averaging_needs_feature_irreps(tmp_path):
    from equinets.train import ConfigError

    with pytest.raises(ConfigError, match="'fa_irreps_in' is needed"):  # at config time, before any data
        resolve_config("shapes-fa-pointnet", TINY + ["use_features=true", f"data_root={tmp_path / 'data'}"])


def test_data_and_configs_commands(tmp_path, capsys):
    import json

    assert main(["data", "shapes", "--root", str(tmp_path), "--split", "test", "--num-points", "16"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"dataset": "shapes", "split": "test", "size": 600, "task": "cls", "num_classes": 15}
    assert main(["configs"]) == 0
    assert "shapes-pointnet" in capsys.readouterr().out.split()
    assert main(["data", "nope", "--root", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["steady", "default"])
def test_cpu_runs_set_the_configured_allocator_and_results_do_not_depend_on_it(tmp_path, monkeypatch, mode):
    """``cpu_allocator`` chooses how glibc serves the tensors of a CPU run (equinets._bench.set_allocator, called
    once by train() before any model or data); the numbers are the same either way (it moves memory, not math)."""
    import equinets.train.loop as loop

    seen = []
    monkeypatch.setattr(loop, "set_allocator", lambda m: seen.append(m) or m)
    final = train(_cfg(tmp_path / "data", "epochs=1", f"cpu_allocator={mode}"), tmp_path / mode)
    assert seen == [mode]
    ref = train(_cfg(tmp_path / "data", "epochs=1", "cpu_allocator=default"), tmp_path / f"ref_{mode}")
    assert final["loss"] == ref["loss"] and final["acc"] == ref["acc"]
