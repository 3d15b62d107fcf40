import os
import stat
import zipfile

import pytest
import torch

from equinets.errors import UserError
from equinets.train.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)


def _state():
    return {"model": {"w": torch.randn(3)}, "epoch": 2, "config": {"lr": 0.1}}


def test_roundtrip_weights_only(tmp_path):
    st = _state()
    save_checkpoint(st, tmp_path / "last.pt")
    back = load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(back["model"]["w"], st["model"]["w"]) and back["epoch"] == 2
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_checkpoint_files_get_the_users_umask_not_0600(tmp_path):
    old = os.umask(0o027)
    try:
        save_checkpoint(_state(), tmp_path / "a.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.pt").stat().st_mode) == 0o640
    os.chmod(tmp_path / "a.pt", 0o604)  # a replaced file keeps its mode
    save_checkpoint(_state(), tmp_path / "a.pt")
    assert stat.S_IMODE((tmp_path / "a.pt").stat().st_mode) == 0o604


@pytest.mark.parametrize("cut", [0.5, 0.98, 100])
def test_truncated_checkpoint_is_reported_as_truncated(tmp_path, cut):
    p = tmp_path / "last.pt"
    save_checkpoint(_state(), p)
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * cut)] if cut < 1 else data[:cut])
    with pytest.raises(CheckpointError, match="is truncated"):
        load_checkpoint(p)


def test_foreign_files_are_not_equinets_checkpoints_not_truncated(tmp_path):
    p = tmp_path / "x.pt"
    cases = {
        "text": lambda: p.write_text("epochs: 3\n"),
        "random bytes": lambda: p.write_bytes(bytes(range(256)) * 4),
        "zip": lambda: zipfile.ZipFile(p, "w").writestr("readme.txt", "hi"),
        "tensor": lambda: torch.save(torch.zeros(3), p),
        "dict without keys": lambda: torch.save({"weights": torch.zeros(1)}, p),
        "module object": lambda: torch.save(torch.nn.Linear(2, 2), p),
        "wrong types": lambda: torch.save({"model": [1], "epoch": "2", "config": {}}, p),
    }
    for name, write in cases.items():
        write()
        with pytest.raises(CheckpointError, match="is not an equinets checkpoint") as info:
            load_checkpoint(p)
        assert "truncated" not in str(info.value), name
        assert str(p) in str(info.value), name
    p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated: the file is empty"):
        load_checkpoint(p)
    with pytest.raises(CheckpointNotFoundError, match="does not exist") as info:
        load_checkpoint(tmp_path / "missing.pt")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, UserError)


def test_weights_that_do_not_fit_name_missing_unexpected_and_shape_keys():
    m = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    sd = m.state_dict()
    bad = {k: v for k, v in sd.items() if k != "1.bias"}
    bad["0.weight"] = torch.zeros(4, 2)
    bad["2.weight"] = torch.zeros(1)
    before = {k: v.clone() for k, v in sd.items()}
    with pytest.raises(CheckpointError, match=r"missing keys: 1\.bias; unexpected keys: 2\.weight; shape mismatches: "
                                              r"0\.weight \(checkpoint \(4, 2\), model \(3, 2\)\)"):
        load_model_state(m, bad, "run/last.pt")
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # nothing half-loaded
    load_model_state(m, {k: torch.ones_like(v) for k, v in sd.items()})
    assert all(torch.equal(v, torch.ones_like(v)) for v in m.state_dict().values())


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
