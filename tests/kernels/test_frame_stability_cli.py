"""The frame-stability script refuses bad ``--policies`` and ``--name`` before it samples or writes anything."""

import re

import pytest


@pytest.mark.parametrize("argv, match", [
    (["--policies", "faces/harmonic", "edges/harmonic"],
     r"--policies: expected names from \[.*'faces/harmonic'\], got \['edges/harmonic'\]"),
    (["--name", "../table"], r"--name: expected a plain file stem, got '\.\./table'"),
    (["--name", ""], r"--name: expected a plain file stem, got ''"),
])
def test_bad_arguments_are_refused_before_any_work(argv, match, capsys, tmp_path, kernel_script):
    with pytest.raises(SystemExit) as e:
        kernel_script("frame_stability").main(argv + ["--out", str(tmp_path / "out")])
    assert e.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not any(tmp_path.iterdir())
