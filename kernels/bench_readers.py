"""Benchmark: first read (parse the text files, write the processed cache) and cached read of the text readers.

Builds, in a temporary folder (deleted afterwards unless ``--keep``), synthetic fixtures in the
real on-disk formats:

* ShapeNetPart ``shapenetcore_partanno_segmentation_benchmark_v0_normal/``: ``--snp-files`` shapes
  (default 2000) spread over the 16 categories, ``--snp-points`` rows (default 2500) of
  ``x y z nx ny nz part`` each (``%.6f``), all listed in ``shuffled_train_file_list.json``;
* ModelNet40 ``modelnet40_normal_resampled/``: ``--mn-files`` shapes (default 1000) spread over the
  40 classes, ``--mn-points`` rows (default 10000) of ``x,y,z,nx,ny,nz`` (``%.6f``), all listed in
  ``modelnet40_train.txt``.

To keep the fixture quick to write, the files cycle through a few distinct contents (three per
category / class); parsing cost does not depend on the values. Then times, for each reader:

* ``first``: the first construction (parse every file, resample, hash and write the cache);
* ``cached``: ``--repeats`` further constructions (stat the sources, load the ``.pt``, check its
  SHA-256), min / median / max.

The source files were just written, so they are in the OS page cache on the first read too: the
``first`` figure is parsing, not disk, time. Writes ``kernels/results/readers.csv`` with the machine
(CPU model, cores, load average) beside each row.

Usage::

    python kernels/bench_readers.py [--snp-files 2000] [--mn-files 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from equinets._bench import machine_info, write_results
from equinets.data import ModelNet40, ShapeNetPart
from equinets.data.shapenetpart import SHAPENETPART_CATEGORIES

RESULTS = Path(__file__).resolve().parent / "results"


def _table(arr: np.ndarray, delimiter: str) -> str:
    buf = io.StringIO()
    np.savetxt(buf, arr, fmt="%.6f", delimiter=delimiter)
    return buf.getvalue()


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def build_shapenetpart(root: Path, files: int, points: int, rng: np.random.Generator) -> Path:
    folder = root / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    (folder / "train_test_split").mkdir(parents=True)
    (folder / "synsetoffset2category.txt").write_text("".join(f"{c}\t{s}\n" for c, s, _ in SHAPENETPART_CATEGORIES))
    offsets = np.cumsum([0] + [k for _, _, k in SHAPENETPART_CATEGORIES])
    texts = {}
    for c, (_, syn, k) in enumerate(SHAPENETPART_CATEGORIES):
        (folder / syn).mkdir()
        for v in range(3):
            xyz = rng.uniform(-1, 1, (points, 3))
            part = offsets[c] + rng.integers(0, k, points)
            texts[c, v] = _table(np.concatenate([xyz, _unit(rng.standard_normal((points, 3))), part[:, None]], 1), " ")
    listed = []
    for i in range(files):
        c = i % len(SHAPENETPART_CATEGORIES)
        syn = SHAPENETPART_CATEGORIES[c][1]
        (folder / syn / f"{i:08x}.txt").write_text(texts[c, i % 3])
        listed.append(f"shape_data/{syn}/{i:08x}")
    for split, items in (("train", listed), ("val", []), ("test", [])):
        (folder / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(items))
    return folder


def build_modelnet(root: Path, files: int, points: int, rng: np.random.Generator) -> Path:
    folder = root / "modelnet40_normal_resampled"
    folder.mkdir(parents=True)
    classes = [f"class{c:02d}" for c in range(40)]
    (folder / "modelnet40_shape_names.txt").write_text("\n".join(classes) + "\n")
    texts = [_table(np.concatenate([rng.uniform(-1, 1, (points, 3)), _unit(rng.standard_normal((points, 3)))], 1), ",")
             for _ in range(3)]
    names = []
    for i in range(files):
        cls = classes[i % 40]
        (folder / cls).mkdir(exist_ok=True)
        name = f"{cls}_{i // 40 + 1:04d}"
        (folder / cls / f"{name}.txt").write_text(texts[i % 3])
        names.append(name)
    (folder / "modelnet40_train.txt").write_text("\n".join(names) + "\n")
    (folder / "modelnet40_test.txt").write_text("")
    return folder


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def time_reader(name: str, make, folder: Path, files: int, points_on_disk: int, num_points: int,
                repeats: int) -> dict:
    source_bytes = _du(folder)
    t0 = time.perf_counter()
    ds = make()
    first = time.perf_counter() - t0
    assert len(ds) == files, (name, len(ds))
    cached = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        again = make()
        cached.append(time.perf_counter() - t0)
        assert len(again) == files
    return {
        "reader": name, "files": files, "points_per_file": points_on_disk, "num_points": num_points,
        "source_MB": round(source_bytes / 2**20, 1), "cache_MB": round(_du(folder / "processed") / 2**20, 1),
        "first_s": round(first, 3), "cached_min_s": round(min(cached), 3),
        "cached_median_s": round(statistics.median(cached), 3), "cached_max_s": round(max(cached), 3),
        "speedup_median": round(first / statistics.median(cached), 1), "repeats": repeats,
    }  # fmt: skip


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snp-files", type=int, default=2000)
    ap.add_argument("--snp-points", type=int, default=2500)
    ap.add_argument("--snp-num-points", type=int, default=2048)
    ap.add_argument("--mn-files", type=int, default=1000)
    ap.add_argument("--mn-points", type=int, default=10000)
    ap.add_argument("--mn-num-points", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the fixture folder (its path is printed)")
    ap.add_argument("--out", type=Path, default=RESULTS / "readers.csv")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="equinets_bench_readers_"))
    rows = []
    try:
        t0 = time.perf_counter()
        snp = build_shapenetpart(tmp / "snp", args.snp_files, args.snp_points, rng)
        mn = build_modelnet(tmp / "mn", args.mn_files, args.mn_points, rng)
        print(f"fixture written in {time.perf_counter() - t0:.1f} s under {tmp}")
        rows.append(time_reader("ShapeNetPart", lambda: ShapeNetPart(snp, "train", num_points=args.snp_num_points),
                                snp, args.snp_files, args.snp_points, args.snp_num_points, args.repeats))
        rows.append(time_reader("ModelNet40 (text)", lambda: ModelNet40(mn, "train", num_points=args.mn_num_points),
                                mn, args.mn_files, args.mn_points, args.mn_num_points, args.repeats))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    info = machine_info()
    for r in rows:
        print(", ".join(f"{k}={v}" for k, v in r.items()))
    print(", ".join(f"{k}={v}" for k, v in info.items()))
    write_results(rows, args.out, info)
    print(f"wrote {os.path.relpath(args.out)}")
    return rows


if __name__ == "__main__":
    main()
