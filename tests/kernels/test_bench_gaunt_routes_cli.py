"""The Gaunt benchmark script refuses a bad ``--number`` before it times anything."""

import re

import pytest


@pytest.mark.parametrize("argv, match", [
    (["--bars", "--number", "0"], r"--number must be a positive integer \(calls per timed run\), got 0"),
    (["--number", "5"], r"--number applies to --bars only .* got --number 5 without --bars"),
])
def test_bad_number_is_refused_before_any_timing(argv, match, capsys, tmp_path, kernel_script):
    with pytest.raises(SystemExit) as e:
        kernel_script("bench_gaunt_routes").main(argv + ["--out", str(tmp_path)])
    assert e.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not any(tmp_path.iterdir())  # nothing written
