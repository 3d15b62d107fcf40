"""The Gaunt benchmark script refuses a bad ``--number`` before it times anything."""

import importlib.util
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "kernels" / "bench_gaunt_routes.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_gaunt_routes", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("argv, match", [
    (["--bars", "--number", "0"], r"--number must be a positive integer \(calls per timed run\), got 0"),
    (["--number", "5"], r"--number applies to --bars only .* got --number 5 without --bars"),
])
def test_bad_number_is_refused_before_any_timing(argv, match, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        _script().main(argv + ["--out", str(tmp_path)])
    assert e.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not any(tmp_path.iterdir())  # nothing written
