"""Fixtures shared by the command-line bad-input suites."""

import pytest

import equinets.data
from equinets.train.cli import main


@pytest.fixture
def no_dataset(monkeypatch):
    """Make building any dataset fail, so a test shows that its input was refused before any data was touched."""

    def fail(*a, **k):
        raise AssertionError("a dataset was built before the input was validated")

    monkeypatch.setattr(equinets.data, "create_dataset", fail)


@pytest.fixture
def cli(capsys):
    """Run ``equinets ARGV`` and return its stderr, asserting a user error: exit 2, one ``error:`` line, no traceback."""

    def run(argv, cmd="train"):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith(f"equinets {cmd}: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        return err

    return run
