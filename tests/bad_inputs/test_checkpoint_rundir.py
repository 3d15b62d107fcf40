"""Bad checkpoints and run directories: each is a CheckpointError / RunDir error / one-line CLI error (exit 2)
naming the file or directory, raised before any dataset is read where the check does not need one."""

import os
import shutil
import zipfile

import pytest
import torch

from equinets.errors import UserError
from equinets.train import CheckpointError, RunExistsError, load_checkpoint, resolve_config, save_checkpoint, train
from equinets.train.cli import main
from equinets.train.loop import ResumeError
from equinets.train.rundir import RunDir, RunDirError, RunLockedError

TINY = ["num_points=32", "dataset_kwargs.num_train=40", "dataset_kwargs.num_test=20", "batch_size=16",
        "eval_batch_size=32", "model_kwargs.emb_dims=32", "epochs=2"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch cosine run (read-only: tests copy it)."""
    root = tmp_path_factory.mktemp("ckpt")
    train(resolve_config("shapes-pointnet", TINY + [f"data_root={root / 'data'}"]), root / "run")
    return root / "run"


@pytest.fixture
def run(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out





def _foreign(p, kind):
    if kind == "text":
        p.write_text("model: pointnet\n")
    elif kind == "tensor":
        torch.save(torch.randn(3), p)
    elif kind == "zip":
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("weights.txt", "1 2 3")
    elif kind == "plain dict":
        torch.save({"state_dict": {"w": torch.zeros(1)}}, p)


@pytest.mark.parametrize("kind", ["text", "tensor", "zip", "plain dict"])
def test_a_file_that_is_not_a_checkpoint_is_named_so_not_truncated(cli, kind, tmp_path, no_dataset):
    p = tmp_path / "x.pt"
    _foreign(p, kind)
    err = cli(["eval", "--checkpoint", str(p)], "eval")
    assert f"checkpoint '{p}' is not an equinets checkpoint" in err and "truncated" not in err


def test_a_truncated_checkpoint_is_named_truncated(cli, run, no_dataset):
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 3])
    assert f"checkpoint '{run / 'last.pt'}' is truncated" in cli(["eval", "--checkpoint", str(run / "last.pt")],
                                                                   "eval")
    assert "is truncated" in cli(["train", "--out", str(run), "--resume"])


def test_a_missing_checkpoint(cli, tmp_path, no_dataset):
    assert "does not exist" in cli(["eval", "--checkpoint", str(tmp_path / "nope.pt")], "eval")
    assert f"no checkpoint '{tmp_path / 'empty' / 'last.pt'}' to resume from" in \
        cli(["train", "--out", str(tmp_path / "empty"), "--resume"])
    assert not (tmp_path / "empty").exists()


def _tamper_weights(path):
    st = load_checkpoint(path)
    key = next(iter(st["model"]))
    del st["model"][key]
    st["model"]["extra.weight"] = torch.zeros(2)
    save_checkpoint(st, path)
    return key


def test_weights_that_do_not_fit_the_model_name_the_keys_before_any_data(cli, run, no_dataset):
    key = _tamper_weights(run / "last.pt")
    err = cli(["eval", "--checkpoint", str(run / "last.pt")], "eval")
    assert f"the weights do not fit the model PointNet: missing keys: {key}; unexpected keys: extra.weight" in err
    with pytest.raises(CheckpointError, match=f"missing keys: {key}; unexpected keys: extra.weight"):
        train(None, run, resume=True, epochs=3)


def test_a_weight_of_the_wrong_shape_is_named(cli, run, no_dataset):
    st = load_checkpoint(run / "best.pt")
    key = next(k for k, v in st["model"].items() if v.ndim == 2)
    st["model"][key] = torch.zeros(1, 1)
    save_checkpoint(st, run / "best.pt")
    err = cli(["eval", "--checkpoint", str(run / "best.pt")], "eval")
    assert f"shape mismatches: {key} (checkpoint (1, 1), model" in err


def test_a_checkpoint_whose_config_is_not_valid(cli, run, no_dataset):
    st = load_checkpoint(run / "last.pt")
    st["config"]["lr"] = "fast"
    save_checkpoint(st, run / "last.pt")
    err = cli(["eval", "--checkpoint", str(run / "last.pt")], "eval")
    assert "holds a config equinets does not accept: config key 'lr' must be a non-negative number" in err


@pytest.mark.parametrize("override", ["lr=0.1", "model=dgcnn", "epochs=3"])
def test_eval_overrides_outside_the_allowed_set_are_refused(cli, override, run, no_dataset):
    err = cli(["eval", "--checkpoint", str(run / "last.pt"), override], "eval")
    assert f"override '{override.split('=')[0]}' is not allowed in eval" in err and "test_rotation" in err


def test_resume_with_fewer_epochs_than_done_never_shrinks_the_run(cli, run, no_dataset):
    before = (run / "last.pt").read_bytes()
    assert "--epochs 1 is below the 2 epochs this run was planned for (2 trained)" in \
        cli(["train", "--out", str(run), "--resume", "--epochs", "1"])
    with pytest.raises(ResumeError, match="a run is never shrunk"):
        train(None, run, resume=True, epochs=1)
    assert (run / "last.pt").read_bytes() == before


def test_resume_that_would_raise_a_cosine_learning_rate_is_refused_with_the_limit(cli, run, no_dataset):
    # cosine over 2 epochs was at lr(1) = midway; over N it is at lr(2) <= lr(1) only for N <= 4
    err = cli(["train", "--out", str(run), "--resume", "--epochs", "9"])
    assert "raising the learning rate, so the schedule would not be monotone; pass --epochs 4 or fewer" in err


def test_resume_below_the_planned_total_of_an_unfinished_run_is_refused(cli, run, no_dataset):
    st = load_checkpoint(run / "last.pt")
    st["config"]["epochs"] = 5  # planned for 5, interrupted after 2
    save_checkpoint(st, run / "last.pt")
    before = (run / "last.pt").read_bytes()
    err = cli(["train", "--out", str(run), "--resume", "--epochs", "3"])
    assert "--epochs 3 is below the 5 epochs this run was planned for (2 trained)" in err and "never shrunk" in err
    assert (run / "last.pt").read_bytes() == before


def test_an_existing_run_is_not_overwritten_without_resume(cli, run, no_dataset):
    before = sorted(os.listdir(run))
    err = cli(["train", "--config", "shapes-pointnet", "--out", str(run)])
    assert f"--out '{run}' already holds a run (last.pt/best.pt); pass --resume" in err
    assert sorted(os.listdir(run)) == before
    with pytest.raises(RunExistsError):
        train(resolve_config("shapes-pointnet"), run)


def test_a_locked_run_directory_refuses_a_second_writer_naming_the_holder(cli, run, no_dataset):
    holder = RunDir(run, resume=True).open()
    try:
        err = cli(["train", "--out", str(run), "--resume", "--epochs", "3"])
        assert f"--out '{run}' is in use by process {os.getpid()}" in err
        with pytest.raises(RunLockedError, match=str(os.getpid())):
            RunDir(run, resume=True).open()
        assert (run / "last.pt").is_file()
    finally:
        holder.close()
    assert not (run / ".lock").exists()


def test_out_that_is_a_file_or_cannot_be_created(cli, tmp_path, no_dataset):
    f = tmp_path / "file"
    f.write_text("x")
    assert f"--out '{f}' exists and is not a directory" in cli(["train", "--out", str(f), "epochs=1"])
    with pytest.raises(RunDirError, match="cannot create the run directory"):
        RunDir(f / "sub").open()
    assert f.read_text() == "x"


def test_a_run_that_fails_before_its_first_epoch_leaves_nothing_behind(cli, tmp_path):
    missing = f"data_root={tmp_path / 'nowhere'}"
    new = tmp_path / "runs" / "a"
    err = cli(["train", "--out", str(new), "dataset=modelnet40", missing])
    assert "dataset 'modelnet40' (train split)" in err and "nowhere" in err
    assert not (tmp_path / "runs").exists()  # not even the parent folder it made
    old = tmp_path / "mine"
    old.mkdir()
    (old / "notes.txt").write_text("keep me")
    cli(["train", "--out", str(old), "dataset=modelnet40", missing])
    assert os.listdir(old) == ["notes.txt"] and (old / "notes.txt").read_text() == "keep me"


def test_user_errors_keep_their_chain_for_debugging(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EQUINETS_TRACEBACK", "1")
    assert main(["train", "--out", str(tmp_path / "r"), "epoch=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("equinets train: error: unknown config key 'epoch'") and "Traceback" in err


def test_an_internal_error_keeps_its_traceback(tmp_path, monkeypatch):
    import equinets.train.loop as loop

    def bug(*a):
        raise ValueError("an internal bug deep in a forward pass")

    monkeypatch.setattr(loop, "_forward", bug)
    with pytest.raises(ValueError, match="internal bug") as info:
        main(["train", "--config", "shapes-pointnet", "--out", str(tmp_path / "r"), *TINY,
              f"data_root={tmp_path / 'd'}"])
    assert not isinstance(info.value, UserError)
    assert not (tmp_path / "r").exists()


def test_a_pickled_module_is_not_a_checkpoint_and_torch_warnings_do_not_leak(tmp_path):
    import warnings

    p = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="is not an equinets checkpoint: it holds Python objects other than "
                                                  "tensors and plain containers, which weights-only loading refuses$"):
            load_checkpoint(p)
    assert not caught, [str(w.message) for w in caught]
