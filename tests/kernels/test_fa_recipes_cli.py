"""The recipes script refuses bad ``--recipes``, ``--csv`` and ``--allocator`` before it builds or times anything."""

import re

import pytest


@pytest.mark.parametrize("argv, match", [
    (["--recipes", "plain", "detail, 4 sampled"], r"--recipes: expected names from \[.*'faces, 8 sampled'\] "
                                                   r"including 'plain' \(the reference\), got \['plain', 'detail, 4"),
    (["--recipes", "sampled frames"], r"--recipes: expected names .* including 'plain'"),
    (["--csv", "../elsewhere.csv"], r"--csv: expected a file name ending in \.csv \(written under --out\), "
                                    r"got '\.\./elsewhere\.csv'"),
    (["--csv", "results.txt"], r"--csv: expected a file name ending in \.csv"),
    (["--allocator", "jemalloc"], r"--allocator: invalid choice: 'jemalloc'"),
])
def test_bad_arguments_are_refused_before_any_work(argv, match, capsys, tmp_path, kernel_script):
    with pytest.raises(SystemExit) as e:
        kernel_script("fa_recipes").main(argv + ["--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"),
                               "--data", str(tmp_path / "data")])
    assert e.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not any(tmp_path.iterdir())  # nothing written: no data, no runs, no results
