"""The ``equinets`` command line: ``train``, ``eval``, ``bench`` and ``data``.

Examples::

    equinets train                                   # the quick-start default (shapes, PointNet)
    equinets train --config shapes-dgcnn --epochs 5 train_rotation=z test_rotation=SO3
    equinets train --config my.yaml --out runs/exp1 lr=0.01 model_kwargs.k=10
    equinets train --out runs/exp1 --resume          # continue an interrupted run
    equinets eval --checkpoint runs/exp1/best.pt test_rotation=SO3
    equinets bench --models pointnet dgcnn
    equinets data shapes
    torchrun --nproc_per_node=2 -m equinets train --out runs/ddp
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="equinets", description="Equivariant point networks: train, evaluate, benchmark.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a config")
    t.add_argument("--config", default=None, help="built-in config name or YAML path (default: shapes-fa-pointnet)")
    t.add_argument("--out", default=None, help="run directory (default: runs/<config name>, made unique)")
    t.add_argument("--epochs", type=int, default=None, help="number of epochs (overrides the config)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: on a terminal only)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    e = sub.add_parser("eval", help="evaluate a checkpoint")
    e.add_argument("--checkpoint", required=True, help="path to last.pt / best.pt")
    e.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. test_rotation=SO3 eval_split=test")

    b = sub.add_parser("bench", help="training throughput and peak memory of backbones")
    b.add_argument("--models", nargs="+", default=["pointnet", "dgcnn"])
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--num-points", type=int, default=1024)
    b.add_argument("--steps", type=int, default=5)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--device", default="auto")
    b.add_argument("--csv", default=None, help="write the results to this CSV file")

    d = sub.add_parser("data", help="generate (or check) a dataset and print its statistics")
    d.add_argument("name", help="dataset name: shapes, parts, modelnet40, shapenetpart, scanobjectnn")
    d.add_argument("--root", default="datasets")
    d.add_argument("--split", default="train")
    d.add_argument("--num-points", type=int, default=1024)

    sub.add_parser("configs", help="list the built-in configs")
    return p


def _default_out(name: str) -> Path:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SystemExit("equinets train: under torchrun, pass --out DIR so that every rank uses the same directory")
    base = Path("runs") / name
    out, i = base, 1
    while out.exists():
        i += 1
        out = base.with_name(f"{name}-{i}")
    return out


def _cmd_train(args) -> int:
    from .config import resolve_config
    from .loop import train

    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"epochs={args.epochs}")
    if args.resume:
        if args.out is None:
            raise SystemExit("equinets train --resume needs --out DIR, the run to continue")
        if args.overrides or args.config:
            raise SystemExit("equinets train --resume continues with the checkpoint's config; "
                             "only --epochs may change it")
        metrics = train(None, args.out, resume=True, epochs=args.epochs, progress=args.progress)
    else:
        cfg = resolve_config(args.config, overrides)
        if args.config is not None and cfg["name"] == "run":
            cfg["name"] = Path(str(args.config)).stem
        out = Path(args.out) if args.out else _default_out(cfg["name"])
        metrics = train(cfg, out, progress=args.progress)
        args.out = str(out)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"out": str(args.out), **metrics}))
    return 0


def _cmd_eval(args) -> int:
    import torch

    from .checkpoint import load_checkpoint
    from .config import resolve_config, validate_config
    from .loop import build_datasets, build_model, evaluate

    state = load_checkpoint(args.checkpoint)
    cfg = validate_config(state["config"])
    if args.overrides:
        allowed = {"test_rotation", "eval_split", "eval_batch_size", "data_root", "device", "seed", "num_workers"}
        over = resolve_config(None, args.overrides)
        for item in args.overrides:
            key = item.split("=", 1)[0]
            if key not in allowed:
                raise SystemExit(f"equinets eval: override {key!r} is not allowed here; allowed: {sorted(allowed)}")
            cfg[key] = over[key]
    (eval_ds,) = build_datasets(cfg, splits=("eval",))
    model = build_model(cfg, eval_ds)
    model.load_state_dict(state["model"])
    device = torch.device("cuda" if cfg["device"] != "cpu" and torch.cuda.is_available() else "cpu")
    metrics = evaluate(model.to(device), eval_ds, cfg, device=device)
    print(json.dumps({"checkpoint": str(args.checkpoint), "epoch": state["epoch"],
                      "test_rotation": cfg["test_rotation"], **metrics}))
    return 0


def _cmd_bench(args) -> int:
    from .bench import bench_training, write_csv

    rows = bench_training(args.models, batch_size=args.batch_size, num_points=args.num_points, steps=args.steps,
                          warmup=args.warmup, threads=args.threads, device=args.device)
    for r in rows:
        print(json.dumps(r))
    if args.csv:
        write_csv(rows, args.csv)
    return 0


def _cmd_data(args) -> int:
    from ..data import create_dataset, takes_num_points

    kw = {"num_points": args.num_points} if takes_num_points(args.name) else {}
    ds = create_dataset(args.name, root=args.root, split=args.split, **kw)
    info = {"dataset": args.name, "split": args.split, "size": len(ds), "task": getattr(ds, "task", "cls")}
    if hasattr(ds, "num_classes"):
        info["num_classes"] = int(ds.num_classes)
    print(json.dumps(info))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``equinets`` console script."""
    from .checkpoint import CheckpointError
    from .config import ConfigError, list_configs
    from .loop import RunExistsError, TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return _cmd_train(args)
        if args.command == "eval":
            return _cmd_eval(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "data":
            return _cmd_data(args)
        if args.command == "configs":
            print("\n".join(list_configs()))
            return 0
    except (ConfigError, CheckpointError, RunExistsError, TrainingDiverged, OSError, ValueError, KeyError) as e:
        print(f"equinets {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
