"""The Gaunt benchmark suite (equinets.train.bench.bench_gaunt, ``equinets bench gaunt``) on tiny sizes."""

import csv
import math

import pytest
import torch

from equinets.gaunt import gaunt_product
from equinets.gaunt.tables import gaunt_c
from equinets.train import bench
from equinets.train.bench import (
    GAUNT_FILES,
    Skipped,
    bench_gaunt,
    copy_bandwidth,
    cue_channelwise_tp,
    e3nn_full_tp,
    e3nn_gaunt_tp,
    fitted_exponent,
    gaunt_paths,
    oeq_channelwise_tp,
)
from equinets.train.cli import main


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    res = bench_gaunt(lmax=5, e3nn_lmax=2, full_lmax=1, sweep_L=1, batches=(2,), channels=(3,), batch=8,
                      repeats=1, warmup=0, out=out, copy_mbytes=4, clock="cpu", log=lambda s: None)
    return res, out


def test_gaunt_paths_are_the_nonzero_gaunt_coefficients():
    for L1, L2, Lo in [(2, 3, 4), (3, 3, 6), (4, 1, 2)]:
        paths = gaunt_paths(L1, L2, Lo)
        every = [(a, b, c) for a in range(L1 + 1) for b in range(L2 + 1) for c in range(Lo + 1)]
        assert paths == [p for p in every if gaunt_c(*p) > 1e-12]


def test_e3nn_gaunt_path_tensor_product_is_the_integral_gaunt_product_per_channel():
    L, C = 3, 2
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its Clebsch-Gordan buffers in the default dtype
    try:
        tp, npaths = e3nn_gaunt_tp(L, C)
    finally:
        torch.set_default_dtype(default)
    assert npaths == len(gaunt_paths(L, L, 2 * L))
    g = torch.Generator().manual_seed(0)
    x1, x2 = (torch.randn(4, C, (L + 1) ** 2, dtype=torch.float64, generator=g) for _ in range(2))
    to_e3nn = lambda x, L: torch.cat([x[..., l * l:(l + 1) ** 2].reshape(4, -1) for l in range(L + 1)], -1)  # noqa: E731
    got = tp(to_e3nn(x1, L), to_e3nn(x2, L))
    want = to_e3nn(gaunt_product(x1, x2, normalization="integral"), 2 * L)
    assert (got - want).abs().max() < 1e-12


def test_full_tensor_product_has_every_clebsch_gordan_path():
    tp, npaths = e3nn_full_tp(2)
    assert npaths == sum(1 for a in range(3) for b in range(3) for c in range(abs(a - b), a + b + 1))
    assert tp.irreps_out.dim == 9 * 9


def test_gpu_baselines_are_skipped_with_a_reason_on_cpu():
    for make, name in ((cue_channelwise_tp, "cuequivariance"), (oeq_channelwise_tp, "openequivariance")):
        with pytest.raises(Skipped, match=f"{name}|CUDA"):
            make(2, 1, "cpu", torch.float32)


def test_fitted_exponent_recovers_a_power_law():
    Ls = [4, 6, 8, 12, 16]
    assert abs(fitted_exponent(Ls, [3.0 * L**2.5 for L in Ls]) - 2.5) < 1e-12
    assert math.isnan(fitted_exponent([4], [1.0]))


def test_copy_bandwidth_is_positive_and_finite():
    bw = copy_bandwidth("cpu", mbytes=4, repeats=3)
    assert math.isfinite(bw) and bw > 0


def test_suite_writes_every_file_with_routes_baselines_sweeps_and_bandwidth(suite):
    res, out = suite
    assert sorted(p.name for p in out.iterdir()) == sorted(GAUNT_FILES)
    routes = _rows(out / "gaunt_routes.csv")
    assert {r["impl"] for r in routes} == {"grid_dense", "grid_sep", "grid_sep_fft", "fourier"}
    assert sorted({int(r["L"]) for r in routes}) == [1, 2, 3, 4, 5]
    assert all(float(r["median_ms"]) > 0 and r["cpu"] and r["torch"] and r["clock"] == "cpu" for r in routes)
    # the exponent of the fastest route over L = 4..5, as fitted from the rows themselves
    best = {L: min(float(r["median_ms"]) for r in routes if int(r["L"]) == L) for L in (4, 5)}
    assert abs(float(routes[0]["fit_exponent_L4_16"]) - fitted_exponent([4, 5], [best[4], best[5]])) < 1e-3
    base = _rows(out / "gaunt_vs_e3nn.csv")
    got = {(r["baseline"], int(r["L"]), r["pass"]) for r in base}
    assert got == {(b, L, p) for b, Lm in (("e3nn_gaunt_tp", 2), ("e3nn_full_tp", 1)) for L in range(1, Lm + 1)
                   for p in ("forward", "forward+backward")}
    for r in base:  # same numbers checked before timing; bandwidth = least traffic / time, fraction of the copy
        if r["baseline"] == "e3nn_gaunt_tp" and r["impl"] == "equinets":
            assert float(r["same_math_rel_err"]) < 1e-5
        assert abs(float(r["bandwidth_fraction"]) - float(r["achieved_gbps"]) / float(r["copy_gbps"])) < 1e-3
        assert r["copy_gbps"] == r["copy_gbps"] and float(r["copy_gbps"]) > 0
    sweeps = _rows(out / "gaunt_sweeps.csv")
    assert {(r["table"], int(r["batch"]), int(r["channels"])) for r in sweeps} == {
        ("sweep_batch", 2, 1), ("sweep_channels", 8, 3)}
    assert not any(r["baseline"] == "e3nn_full_tp" and int(r["channels"]) > 1 for r in sweeps)
    assert res["routes"] and res["vs_e3nn"] and res["sweeps"]


def test_cli_bench_gaunt_writes_a_fresh_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "copy_bandwidth", lambda device, **kw: 1.0)  # its own test above; 256 MB is slow here
    argv = ["bench", "gaunt", "--lmax", "1", "--e3nn-lmax", "1", "--full-lmax", "0", "--sweep-l", "0",
            "--repeats", "1", "--warmup", "0", "--batch", "4", "--no-plots"]
    assert main(argv) == 0 and main(argv) == 0  # the second run does not touch the first one's files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench-gaunt", "bench-gaunt-2"]
    assert sorted(p.name for p in (tmp_path / "bench-gaunt").iterdir()) == ["gaunt_routes.csv", "gaunt_vs_e3nn.csv"]
    assert "wrote bench-gaunt-2" in capsys.readouterr().out
