"""Frame-averaging training recipes on one budget: all frames, sampled frames, shrunk frames; PointNet and DGCNN.

Every recipe trains with the same data, epochs, optimiser and seed through :func:`equinets.train.loop.train`
(trained upright, I), the FA recipes are tested under random rotations (SO3) and the plain backbone upright (I/I,
the reference the issue's bar compares with):

* ``plain``: the backbone alone, I/I;
* ``all frames``: E3 FA over the paper's 8 sign frames (``fa_signs=all``), the full average in training too;
* ``sampled frames``: the same frames, one drawn per cloud in training (``fa_num_samples=1``, stochastic FA);
* ``shrunk frames``: ``fa_signs=shrink`` + ``fa_degenerate=harmonic``, the full (weighted) average in training;
* ``shrunk, sampled``: the shrunk frames, one drawn per cloud from their weights in training;
* ``detail, sampled``: ``fa_signs=detail`` + ``fa_degenerate=harmonic`` (signs and near-tied planes fixed by the
  range asymmetry, then the edge centroid, then the skewness), one frame drawn per cloud in training;
* ``detail, 8 sampled``: the same frames, 8 drawn per cloud and step;
* ``faces, 8 sampled``: ``fa_signs=faces`` (``detail`` with large flat faces after the edges, also orienting
  near-tied planes), 8 frames drawn per cloud and step (the ``shapes-hard-fa-pointnet`` recipe).

Cost per step: one training step (forward, backward, Adam) on a fixed batch, timed with
:func:`equinets._bench.compare` (pinned threads, warm-up, interleaved repeats, medians), as a ratio to the plain
backbone in the same run; plus the mean number of framed clouds per cloud the step runs.

Writes ``kernels/results/fa_recipes.csv`` (``--csv`` names another file) and prints a Markdown table.

Usage::

    python kernels/fa_recipes.py [--dataset shapes-hard] [--points 256] [--train 660] [--test 330] [--epochs 4]
                                 [--backbones pointnet dgcnn] [--threads 1] [--recipes plain ...] [--csv NAME]
                                 [--allocator default|steady]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import torch

from equinets._bench import ALLOCATORS, compare, pin_threads, set_allocator, timing_row, write_results
from equinets.train.config import resolve_config
from equinets.train.loop import build_datasets, build_model, train

RECIPES = {
    "plain": [],
    "all frames": ["frame_averaging=E3", "fa_signs=all", "fa_num_samples=0", "test_rotation=SO3"],
    "sampled frames": ["frame_averaging=E3", "fa_signs=all", "fa_num_samples=1", "test_rotation=SO3"],
    "shrunk frames": ["frame_averaging=E3", "fa_signs=shrink", "fa_degenerate=harmonic", "fa_num_samples=0",
                      "test_rotation=SO3"],
    "shrunk, sampled": ["frame_averaging=E3", "fa_signs=shrink", "fa_degenerate=harmonic", "fa_num_samples=1",
                        "test_rotation=SO3"],
    "detail, sampled": ["frame_averaging=E3", "fa_signs=detail", "fa_degenerate=harmonic", "fa_num_samples=1",
                        "test_rotation=SO3"],
    "detail, 8 sampled": ["frame_averaging=E3", "fa_signs=detail", "fa_degenerate=harmonic", "fa_num_samples=8",
                          "test_rotation=SO3"],
    "faces, 8 sampled": ["frame_averaging=E3", "fa_signs=faces", "fa_degenerate=harmonic", "fa_num_samples=8",
                         "test_rotation=SO3"],
}
BASE = {"pointnet": "shapes-pointnet", "dgcnn": "shapes-dgcnn"}


def _cfg(backbone: str, recipe: str, args) -> dict:
    over = [f"dataset={args.dataset}", f"num_points={args.points}", f"epochs={max(args.epochs, 1)}",
            f"data_root={args.data}",
            f"dataset_kwargs.num_train={args.train}", f"dataset_kwargs.num_test={args.test}", "eval_every=1000",
            f"name={backbone}-{recipe.replace(' ', '_').replace(',', '')}"]
    if args.dataset == "shapes-hard":
        over.append("dataset_kwargs.mirror_pairs=merge")
    return resolve_config(BASE[backbone], over + RECIPES[recipe])


def _step_fn(cfg: dict, batch):
    from equinets.train.loop import _forward

    model = build_model(cfg, build_datasets(cfg, ("train",))[0]).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        out = _forward(model, batch, cfg)
        loss = torch.nn.functional.cross_entropy(out, batch.y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return model, step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="shapes-hard")
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--train", type=int, default=660)
    ap.add_argument("--test", type=int, default=330)
    ap.add_argument("--epochs", type=int, default=4, help="0: measure the cost per step only")
    ap.add_argument("--backbones", nargs="+", default=["pointnet", "dgcnn"])
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "equinets_fa_recipes_data"))
    ap.add_argument("--runs", type=Path, default=Path("runs") / "fa_recipes")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--csv", default="fa_recipes.csv", help="file name of the results under --out")
    ap.add_argument("--allocator", choices=ALLOCATORS, default="default",
                    help="glibc heap policy (equinets._bench.set_allocator); 'steady' removes the page faults of "
                         "the large framed batches")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.recipes) - set(RECIPES))
    if unknown or "plain" not in args.recipes:
        ap.error(f"--recipes: expected names from {list(RECIPES)} including 'plain' (the reference), got {args.recipes}")
    if Path(args.csv).name != args.csv or not args.csv.endswith(".csv"):
        ap.error(f"--csv: expected a file name ending in .csv (written under --out), got {args.csv!r}")
    pin_threads(args.threads)
    allocator = set_allocator(args.allocator)
    rows = []
    for backbone in args.backbones:
        cfgs = {r: _cfg(backbone, r, args) for r in args.recipes}
        # -- cost per step: one fixed batch, every recipe interleaved with the plain backbone --------------------
        from torch_geometric.data import Batch

        ds = build_datasets(cfgs["plain"], ("train",))[0]
        batch = Batch.from_data_list([ds[i] for i in range(cfgs["plain"]["batch_size"])])
        fns, frames = {}, {}
        for r, cfg in cfgs.items():
            torch.manual_seed(0)
            model, fns[r] = _step_fn(cfg, batch)
            if hasattr(model, "frames"):
                fr = model.frames(batch.pos, batch.batch)
                k = cfg["fa_num_samples"]
                frames[r] = float(k) if k else float((fr.weights > 0).sum(1).double().mean())
            else:
                frames[r] = 1.0
        timing = compare(fns, repeats=args.repeats, warmup=1)
        # -- accuracy on one budget ---------------------------------------------------------------------------
        for r, cfg in cfgs.items():
            if args.epochs == 0:  # cost per step only
                rows.append({"backbone": backbone, "recipe": r, "frames_per_cloud_train": f"{frames[r]:.2f}",
                             **timing_row(timing[r], timing["plain"]), "points": cfg["num_points"],
                             "batch": cfg["batch_size"], "dataset": cfg["dataset"], "allocator": allocator})
                print(rows[-1], flush=True)
                continue
            out_dir = args.runs / f"{backbone}-{r.replace(' ', '_').replace(',', '')}"
            k = 0
            while (out_dir.parent / f"{out_dir.name}-{k}").exists():
                k += 1
            res = train(cfg, out_dir.parent / f"{out_dir.name}-{k}", progress=False)
            with open(out_dir.parent / f"{out_dir.name}-{k}" / "metrics.csv") as f:
                hist = list(csv.DictReader(f))
            train_s = sum(float(h.get("time_s") or 0.0) for h in hist)
            rows.append({"backbone": backbone, "recipe": r,
                         "rotation": f"{cfg['train_rotation']}/{cfg['test_rotation']}",
                         "test_acc": f"{100 * res['acc']:.1f}", "balanced_acc": f"{100 * res['balanced_acc']:.1f}",
                         "frames_per_cloud_train": f"{frames[r]:.2f}",
                         **timing_row(timing[r], timing["plain"]), "train_seconds": f"{train_s:.0f}",
                         "epochs": cfg["epochs"], "points": cfg["num_points"], "dataset": cfg["dataset"],
                         "allocator": allocator})
            print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(rows, args.out / args.csv)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
