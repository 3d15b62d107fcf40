"""The APEN benchmark and bound scripts at tiny sizes: they run, write their CSV and figure, and the bound holds."""

import csv
import json
import math


def test_bench_apen_quick(tmp_path, capsys, kernel_script):
    mod = kernel_script("bench_apen")
    rows = mod.main(["--quick", "--no-memory", "--out", str(tmp_path)])
    assert {r["table"] for r in rows} == {"cost", "parts", "points"}
    with open(tmp_path / "apen_bench.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert (tmp_path / "apen_bench.png").stat().st_size > 0
    cost = {r["side"]: r for r in rows if r["table"] == "cost"}
    assert cost["apen"]["rows"] == 3 * 4 * 2 * 128  # 3 blocks x 4 SE3 frames x B N points (hard, simple spectra)
    capsys.readouterr()
    mod.main(["--child", "apen_known", "--quick", "--batch-size", "2", "--num-points", "64", "--parts", "4"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["peak_mib"] >= 0


def test_apen_bound_quick_refinements_are_exact_and_the_bound_holds(tmp_path, kernel_script):
    mod = kernel_script("apen_bound")
    rows = mod.main(["--parts", "2", "48", "--variances", "0.003", "--clouds", "2", "--samples", "3",
                     "--points-per-part", "16", "--out", str(tmp_path)])
    assert (tmp_path / "apen_bound.csv").exists() and (tmp_path / "apen_bound.png").stat().st_size > 0
    assert rows[0]["lambda"] == 1.0  # 2 candidates for 6 true parts: never a refinement
    for r in rows:
        assert r["err_sampled"] <= r["lambda"] + r["delta"]  # Thm. 1 with the measured M
        if not math.isnan(r["err_given_refinement_max"]):
            assert r["err_given_refinement_max"] < 1e-12  # the subpartition lemma, float64
    assert any(not math.isnan(r["err_given_refinement_max"]) for r in rows)


def test_apen_bound_exactness_table(tmp_path, kernel_script):
    rows = kernel_script("apen_bound").main(["--exactness", "--quick", "--out", str(tmp_path)])
    assert (tmp_path / "apen_exactness.csv").exists() and len(rows) == 8
    for r in rows:
        tol = 1e-12 if r["dtype"] == "float64" else 1e-4
        assert r["true_partition"] < tol and r["true_partition_votes"] < 100 * tol
        assert r["two_parts_merged"] > 1e-3 and r["global_fa_pointnet"] > 1e-2
        if r["group"] in ("SE3", "E3"):
            assert r["refinement"] < tol


def test_apen_compare_partial_run_keeps_the_other_models_rows(kernel_script):
    mod = kernel_script("apen_compare")
    old = [{"experiment": e, "method": m, "v": 1} for e in ("articulated", "subject")
           for m in (*mod.METHODS.values(), mod.ORACLE)]
    new = [{"experiment": "articulated", "method": m, "v": 2} for m in (mod.ORACLE, mod.METHODS["apen"])]
    rows = mod.merge_rows(old, new)
    assert [(r["experiment"], r["method"], r["v"]) for r in rows] == [
        ("articulated", "PointNet", 1), ("articulated", "FA-PointNet (global E3 FA)", 1),
        ("articulated", "APEN (piecewise SE3)", 2), ("articulated", mod.ORACLE, 2),
        *[("subject", m, 1) for m in (*mod.METHODS.values(), mod.ORACLE)]]
