"""Bad inputs to the Gaunt benchmark suite: bench_gaunt and ``equinets bench gaunt`` refuse them before timing."""

import pytest
import torch

import equinets.train.bench as bench
from equinets.errors import UserError
from equinets.gaunt.tables import MAX_DEGREE

BAD = {
    "lmax beyond the supported degree": (dict(lmax=MAX_DEGREE + 1), UserError, f"lmax must be <= {MAX_DEGREE}"),
    "e3nn_lmax beyond": (dict(e3nn_lmax=MAX_DEGREE + 1), UserError, "e3nn_lmax must be <="),
    "negative lmax": (dict(lmax=-1), ValueError, "lmax must be an integer >= 0"),
    "zero batch": (dict(batch=0), ValueError, "batch must be an integer >= 1"),
    "zero repeats": (dict(repeats=0), ValueError, "repeats must be an integer >= 1"),
    "a zero in batches": (dict(batches=(4, 0)), ValueError, "batches must be an integer >= 1"),
    "channels not integers": (dict(channels=(1.5,)), TypeError, "channels must be an integer"),
    "unknown device": (dict(device="gpu"), UserError, "device must be 'auto', 'cpu' or 'cuda', got 'gpu'"),
    "unknown clock": (dict(clock="process"), UserError, r"clock must be one of \('wall', 'cpu'\), got 'process'"),
}


@pytest.fixture
def no_timing(monkeypatch):
    """Fail if anything is timed: the input must be refused first."""

    def fail(*a, **k):
        raise AssertionError("timed before the input was validated")

    monkeypatch.setattr(bench, "copy_bandwidth", fail)
    monkeypatch.setattr(bench, "gaunt_route_sweep", fail)


@pytest.mark.parametrize("case", list(BAD))
def test_bench_gaunt_refuses(case, no_timing, tmp_path):
    kw, exc, msg = BAD[case]
    with pytest.raises(exc, match=msg):
        bench.bench_gaunt(out=tmp_path, **kw)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_gaunt_refuses_cuda_without_a_gpu(no_timing):
    with pytest.raises(UserError, match="device 'cuda' was asked for but torch.cuda.is_available"):
        bench.bench_gaunt(device="cuda")


CLI = {
    "--lmax beyond": (["--lmax", str(MAX_DEGREE + 1)], "lmax must be <="),
    "--lmax negative": (["--lmax", "-1"], "argument --lmax"),
    "--batch zero": (["--batch", "0"], "argument --batch"),
    "--device unknown": (["--device", "tpu"], "argument --device"),
    "--channels not an integer": (["--channels", "x"], "argument --channels"),
    "--clock unknown": (["--clock", "tsc"], "argument --clock"),
}


@pytest.mark.parametrize("case", list(CLI))
def test_cli_bench_gaunt_refuses(case, cli, no_timing, tmp_path):
    args, msg = CLI[case]
    err = cli(["bench", "gaunt", "--out", str(tmp_path / "o"), *args], cmd="bench gaunt")
    assert msg in err
    assert not (tmp_path / "o").exists()


def test_cli_bench_gaunt_refuses_an_out_holding_results(cli, no_timing, tmp_path):
    (tmp_path / "gaunt_routes.csv").write_text("earlier results\n")
    err = cli(["bench", "gaunt", "--out", str(tmp_path)], cmd="bench gaunt")
    assert "argument --out" in err and "already holds results (gaunt_routes.csv)" in err
    assert (tmp_path / "gaunt_routes.csv").read_text() == "earlier results\n"
