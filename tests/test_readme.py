"""The README's Python examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)  # generated data goes to tmp_path/datasets
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "datasets" / "shapes").is_dir()
