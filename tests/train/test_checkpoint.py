import pytest
import torch

from equinets.train.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def _state():
    return {"model": {"w": torch.randn(3)}, "epoch": 2, "config": {"lr": 0.1}, "rng": rng_state()}


def test_roundtrip_weights_only(tmp_path):
    st = _state()
    save_checkpoint(st, tmp_path / "last.pt")
    back = load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(back["model"]["w"], st["model"]["w"]) and back["epoch"] == 2
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    p = tmp_path / "last.pt"
    save_checkpoint(_state(), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(p)


def test_garbage_and_foreign_checkpoints(tmp_path):
    p = tmp_path / "x.pt"
    p.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(p)
    torch.save({"weights": torch.zeros(1)}, p)
    with pytest.raises(CheckpointError, match="not an equinets checkpoint"):
        load_checkpoint(p)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_save_keeps_the_previous_file(tmp_path):
    p = tmp_path / "best.pt"
    save_checkpoint(_state(), p)
    before = p.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint({"model": {}, "epoch": 3, "config": {}, "x": Unpicklable()}, p)
    assert p.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp"))


def test_rng_state_restores_all_generators():
    import random

    import numpy as np

    st = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(st)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]
