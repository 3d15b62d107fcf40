"""The ``equinets`` command line: ``train``, ``eval``, ``collapse``, ``bench``, ``data`` and ``configs``.

Examples::

    equinets train                                   # the quick-start default (shapes, FA-PointNet)
    equinets train --config shapes-dgcnn --epochs 5 train_rotation=z test_rotation=SO3
    equinets train lr=1e-3 --config my.yaml --out runs/exp1 model_kwargs.k=10   # overrides anywhere
    equinets train --out runs/exp1 --resume          # continue an interrupted run
    equinets train --out runs/exp1 --resume --epochs 40   # extend it (never shrink it)
    equinets eval --checkpoint runs/exp1/best.pt test_rotation=SO3
    equinets collapse --checkpoint runs/exp1/best.pt --split test   # neural-collapse metrics + plots
    equinets bench --models pointnet dgcnn
    equinets data shapes
    torchrun --nproc_per_node=2 -m equinets train --out runs/ddp

Errors. A mistake in the user's input (:class:`equinets.errors.UserError`: a config key or value, a
command-line argument, a checkpoint, a run directory, a dataset or model argument rejected while a
run is set up) is printed as one line ``equinets <cmd>: error: ...`` on stderr, exit code 2, no
traceback (``EQUINETS_TRACEBACK=1`` adds it). Any other exception is an internal error and keeps its
traceback. Ctrl-C during ``train`` says how to resume and exits with 130.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from pathlib import Path

from ..errors import UserError

__all__ = ["main", "build_parser", "ArgumentError"]

#: config keys ``equinets eval`` may override (the rest is the checkpoint's)
EVAL_OVERRIDES = ("test_rotation", "up_axis", "eval_split", "eval_batch_size", "data_root", "device", "seed",
                  "num_workers")


class ArgumentError(UserError):
    """A command-line argument equinets does not accept (argparse's errors, raised instead of exiting)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block: the message names the argument
        raise ArgumentError(self.prog, f"{message} (see {self.prog} --help)")


def _int_type(minimum: int):
    """An argparse ``type`` for integers ``>= minimum`` whose message says what was expected."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
        return v

    return parse


_positive_int, _nonneg_int = _int_type(1), _int_type(0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; ``key=value`` overrides are collected by :func:`main` from anywhere on the line."""
    p = _Parser(prog="equinets", description="Equivariant point networks: train, evaluate, benchmark.",
                epilog="train and eval take config overrides key=value anywhere on the command line")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a config", usage="%(prog)s [options] [key=value ...]")
    t.add_argument("--config", default=None, help="built-in config name or YAML path (default: shapes-fa-pointnet)")
    t.add_argument("--out", default=None, help="run directory (default: runs/<config name>, made unique)")
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="number of epochs (overrides the config; with --resume: the new total, never fewer than done)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: on a terminal only)")

    e = sub.add_parser("eval", help="evaluate a checkpoint", usage="%(prog)s --checkpoint PATH [key=value ...]")
    e.add_argument("--checkpoint", required=True, help="path to last.pt / best.pt")
    e.epilog = f"overrides allowed: {', '.join(EVAL_OVERRIDES)}"

    c = sub.add_parser("collapse", help="neural-collapse analysis of a checkpoint (metrics CSV and plots)")
    c.add_argument("--checkpoint", required=True, help="path to RUN/best.pt or RUN/last.pt")
    c.add_argument("--split", default="train", choices=("train", "val", "test"),
                   help="the data the features are measured on (default: train)")
    c.add_argument("--out", default=None, help="output folder (default: the run directory)")
    c.add_argument("--force", action="store_true", help="replace an earlier analysis of the same checkpoint and split")
    c.add_argument("--batch-size", type=_positive_int, default=None, help="default: the run's eval_batch_size")
    c.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"), help="default: the run's device")
    c.add_argument("--data-root", default=None, help="default: the run's data_root")
    c.add_argument("--global-mean", default="class", choices=("class", "sample"),
                   help="centre the class means on the mean of class means (default) or the sample mean")

    b = sub.add_parser("bench", help="training throughput and peak memory of backbones")
    b.add_argument("--models", nargs="+", default=["pointnet", "dgcnn"])
    b.add_argument("--batch-size", type=_positive_int, default=32)
    b.add_argument("--num-points", type=_positive_int, default=1024)
    b.add_argument("--steps", type=_positive_int, default=5)
    b.add_argument("--warmup", type=_nonneg_int, default=2)
    b.add_argument("--threads", type=_positive_int, default=None)
    b.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    b.add_argument("--csv", default=None, help="write the results to this CSV file")
    # --- bench gaunt (the Gaunt tensor-product suite: equinets.train.bench.bench_gaunt) ---
    bg = b.add_subparsers(dest="bench_target", metavar="{gaunt}", title="suites (instead of training throughput)")
    g = bg.add_parser("gaunt", help="Gaunt tensor products: routes, e3nn / cuEquivariance baselines, sweeps, bandwidth",
                      description="Gaunt products (L, L) -> 2L in float32: every route over L = 1..--lmax, e3nn's "
                      "Gaunt-path TensorProduct and FullTensorProduct (and cuEquivariance / OpenEquivariance on CUDA "
                      "when installed), forward and forward+backward, batch and channel sweeps; CSVs, plots, the fitted "
                      "exponent in L and the achieved bandwidth.")
    g.add_argument("--lmax", dest="g_lmax", metavar="L", type=_nonneg_int, default=16, help="routes over L = 1..L (0: skip)")
    g.add_argument("--e3nn-lmax", dest="g_e3nn_lmax", metavar="L", type=_nonneg_int, default=12,
                   help="e3nn's Gaunt-path TensorProduct up to this L (0: skip)")
    g.add_argument("--full-lmax", dest="g_full_lmax", metavar="L", type=_nonneg_int, default=8,
                   help="e3nn's FullTensorProduct up to this L (0: skip)")
    g.add_argument("--device", dest="g_device", default="cpu", choices=("auto", "cpu", "cuda"))
    g.add_argument("--batch", dest="g_batch", metavar="B", type=_positive_int, default=256)
    g.add_argument("--sweep-l", dest="g_sweep_L", metavar="L", type=_nonneg_int, default=6,
                   help="L of the batch/channel sweeps (0: skip)")
    g.add_argument("--batches", dest="g_batches", metavar="B", type=_positive_int, nargs="+", default=[16, 64, 256, 1024])
    g.add_argument("--channels", dest="g_channels", metavar="C", type=_positive_int, nargs="+", default=[1, 4, 16, 64])
    g.add_argument("--repeats", dest="g_repeats", metavar="N", type=_positive_int, default=15)
    g.add_argument("--warmup", dest="g_warmup", metavar="N", type=_nonneg_int, default=2)
    g.add_argument("--threads", dest="g_threads", metavar="N", type=_positive_int, default=1,
                   help="torch threads (default 1)")
    g.add_argument("--out", dest="g_out", metavar="DIR", default=None,
                   help="output directory (default: bench-gaunt, made unique; never one holding earlier results)")
    g.add_argument("--no-plots", dest="g_plots", action="store_false", help="CSVs only")
    g.add_argument("--clock", dest="g_clock", default="wall", choices=("wall", "cpu"),
                   help="wall clock (default), or the timing thread's CPU clock on a machine shared with other jobs")
    # --- end bench gaunt ---

    d = sub.add_parser("data", help="generate (or check) a dataset and print its statistics")
    d.add_argument("name", help="dataset name: shapes, parts, modelnet40, shapenetpart, scanobjectnn, nbody")
    d.add_argument("--root", default="datasets")
    d.add_argument("--split", default="train")
    d.add_argument("--num-points", type=_positive_int, default=1024)

    sub.add_parser("configs", help="list the built-in configs")
    return p


def _dumps(obj) -> str:
    from .._json import dumps

    return dumps(obj)


def _default_out(name: str) -> Path:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ArgumentError("equinets train", "under torchrun, pass --out DIR so that every rank uses the same directory")
    base = Path("runs") / name
    out, i = base, 1
    while out.exists():
        i += 1
        out = base.with_name(f"{name}-{i}")
    return out


def _interrupted(out: Path) -> int:
    if int(os.environ.get("RANK", "0")) != 0:
        return 130
    last = out / "last.pt"
    if last.is_file():
        from .checkpoint import CheckpointError, load_checkpoint

        try:
            st = load_checkpoint(last)
            held = f"{last} holds epoch {st['epoch']} of {st['config'].get('epochs')}"
        except CheckpointError:
            held = f"{last} holds the last finished epoch"
        print(f"equinets train: interrupted; {held}; continue with: equinets train --out {shlex.quote(str(out))} "
              f"--resume", file=sys.stderr)
    else:
        print("equinets train: interrupted before the first epoch finished; nothing was saved", file=sys.stderr)
    return 130


def _cmd_train(args) -> int:
    from .config import resolve_config
    from .loop import train

    if args.resume:
        if args.out is None:
            raise ArgumentError("equinets train", "--resume needs --out DIR, the run to continue")
        if args.overrides or args.config:
            given = " ".join(([f"--config {args.config}"] if args.config else []) + args.overrides)
            raise ArgumentError("equinets train", f"--resume continues with the checkpoint's config; only --epochs "
                                f"may change it (got {given})")
        out = Path(args.out)
        try:
            metrics = train(None, out, resume=True, epochs=args.epochs, progress=args.progress)
        except KeyboardInterrupt:
            return _interrupted(out)
    else:
        overrides = list(args.overrides) + ([f"epochs={args.epochs}"] if args.epochs is not None else [])
        cfg = resolve_config(args.config, overrides)
        if args.config is not None and cfg["name"] == "run":
            cfg["name"] = Path(str(args.config)).stem
        out = Path(args.out) if args.out else _default_out(cfg["name"])
        try:
            metrics = train(cfg, out, progress=args.progress)
        except KeyboardInterrupt:
            return _interrupted(out)
    if int(os.environ.get("RANK", "0")) == 0:
        print(_dumps({"out": str(out), **metrics}))
    return 0


def _cmd_eval(args) -> int:
    import torch

    from .checkpoint import CheckpointError, load_checkpoint, load_model_state
    from .config import ConfigError, parse_override, validate_config
    from .loop import build_datasets, build_model, evaluate, model_args

    state = load_checkpoint(args.checkpoint)
    try:
        cfg = validate_config(state["config"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {args.checkpoint!r} holds a config equinets does not accept: {e}") from None
    for item in args.overrides:
        key, value = parse_override(item)
        if key not in EVAL_OVERRIDES:
            raise ConfigError(f"override {key!r} is not allowed in eval, which evaluates the checkpoint's model as "
                              f"trained; allowed: {list(EVAL_OVERRIDES)}")
        cfg[key] = value
    cfg = validate_config(cfg)
    model = None
    if "model_args" in state:  # weights checked before any dataset is read
        model = build_model(cfg, args=dict(state["model_args"]))
        load_model_state(model, state["model"], f"checkpoint {args.checkpoint!r}")
    (eval_ds,) = build_datasets(cfg, splits=("eval",))
    if model is None:
        model = build_model(cfg, eval_ds)
        load_model_state(model, state["model"], f"checkpoint {args.checkpoint!r}")
    else:
        now = model_args(cfg, eval_ds)
        if (now["in_channels"], now["out_channels"]) != (state["model_args"].get("in_channels"),
                                                         state["model_args"].get("out_channels")):
            raise CheckpointError(f"checkpoint {args.checkpoint!r} has in/out channels "
                                  f"{state['model_args'].get('in_channels')}/{state['model_args'].get('out_channels')} "
                                  f"but the {cfg['eval_split']} data give {now['in_channels']}/{now['out_channels']}")
    device = torch.device("cuda" if cfg["device"] != "cpu" and torch.cuda.is_available() else "cpu")
    metrics = evaluate(model.to(device), eval_ds, cfg, device=device, per_class=True)
    print(_dumps({"checkpoint": str(args.checkpoint), "epoch": state["epoch"],
                  "test_rotation": cfg["test_rotation"], **metrics}))
    return 0


def _cmd_bench_gaunt(args) -> int:
    from .bench import GAUNT_FILES, bench_gaunt

    if args.g_out is None:
        base = Path("bench-gaunt")
        out, i = base, 1
        while out.exists():
            i += 1
            out = base.with_name(f"bench-gaunt-{i}")
    else:
        out = Path(args.g_out)
        held = [f for f in GAUNT_FILES if (out / f).exists()]
        if held:
            raise ArgumentError("equinets bench gaunt", f"argument --out: {out} already holds results ({held[0]}); "
                                "choose a new directory")
    try:
        bench_gaunt(lmax=args.g_lmax, e3nn_lmax=args.g_e3nn_lmax, full_lmax=args.g_full_lmax, device=args.g_device,
                    batch=args.g_batch, sweep_L=args.g_sweep_L, batches=args.g_batches, channels=args.g_channels,
                    repeats=args.g_repeats, warmup=args.g_warmup, threads=args.g_threads, out=out, plots=args.g_plots,
                    clock=args.g_clock)
    except UserError as e:  # its argument checks, reported as this subcommand's
        raise ArgumentError("equinets bench gaunt", str(e)) from e
    print(f"wrote {out}")
    return 0


def _cmd_collapse(args) -> int:
    from ..collapse.analysis import analyse_checkpoint

    res = analyse_checkpoint(args.checkpoint, split=args.split, out=args.out, overwrite=args.force,
                             device=args.device, batch_size=args.batch_size, data_root=args.data_root,
                             global_mean=args.global_mean)
    print(_dumps({"checkpoint": str(args.checkpoint), "split": args.split, "csv": res["csv"], "png": res["png"],
                  **res["metrics"]}))
    return 0


def _cmd_bench(args) -> int:
    if getattr(args, "bench_target", None) == "gaunt":
        return _cmd_bench_gaunt(args)
    from ..nn import list_models
    from .bench import bench_training, write_csv

    unknown = [m for m in args.models if m.lower() not in list_models()]
    if unknown:
        raise ArgumentError("equinets bench", f"argument --models: unknown model {unknown[0]!r}; known: "
                            f"{', '.join(list_models())}")
    rows = bench_training(args.models, batch_size=args.batch_size, num_points=args.num_points, steps=args.steps,
                          warmup=args.warmup, threads=args.threads, device=args.device)
    for r in rows:
        print(_dumps(r))
    if args.csv:
        write_csv(rows, args.csv)
    return 0


def _cmd_data(args) -> int:
    from .._json import dumps
    from ..data import create_dataset, takes_num_points

    kw = {"num_points": args.num_points} if takes_num_points(args.name) else {}
    ds = create_dataset(args.name, root=args.root, split=args.split, **kw)  # an empty split is an error there
    info = {"dataset": args.name, "split": args.split, "size": len(ds), "task": getattr(ds, "task", "cls")}
    if hasattr(ds, "num_classes"):
        info["num_classes"] = int(ds.num_classes)
    print(dumps(info))  # strict JSON: a non-finite number would print as null, never as a bare NaN
    return 0


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``equinets`` console script; returns the exit code (0, 2 for user errors, 130 on Ctrl-C).

    ``key=value`` overrides may stand anywhere after the command (before, between or after options).
    ``equinets data`` only builds a dataset, so the ``ValueError``/``FileNotFoundError`` of the dataset's
    argument checks are reported as user errors there, as during a run's set-up (:mod:`equinets.errors`).
    """
    from .loop import _ARGUMENT_ERRORS

    parser = build_parser()
    cmd = "equinets"
    try:
        args, extra = parser.parse_known_args(argv)
        cmd = f"equinets {args.command}"
        overrides = [a for a in extra if "=" in a and not a.startswith("-")]
        bad = [a for a in extra if a not in overrides]
        if bad:
            hint = "; config overrides are key=value" if args.command in ("train", "eval") else ""
            raise ArgumentError(cmd, f"unrecognized arguments: {' '.join(bad)}{hint} (see {cmd} --help)")
        if overrides and args.command not in ("train", "eval"):
            raise ArgumentError(cmd, f"{args.command} takes no key=value overrides, got {' '.join(overrides)}")
        args.overrides = overrides
        if args.command == "train":
            return _cmd_train(args)
        if args.command == "eval":
            return _cmd_eval(args)
        if args.command == "collapse":
            return _cmd_collapse(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "data":
            try:
                return _cmd_data(args)
            except _ARGUMENT_ERRORS as e:
                if isinstance(e, UserError):
                    raise
                from ..errors import SetupError

                raise SetupError(f"dataset {args.name!r}: {_one_line(e)}") from e
        if args.command == "configs":
            from .config import list_configs

            print("\n".join(list_configs()))
            return 0
    except UserError as e:
        prog = e.prog if isinstance(e, ArgumentError) else cmd
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        if os.environ.get("EQUINETS_TRACEBACK"):
            traceback.print_exception(e)
        return 2
    except KeyboardInterrupt:
        print(f"{cmd}: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
