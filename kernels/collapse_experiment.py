"""Neural collapse and calibration of point-cloud classifiers: CE vs mixup vs fixed ETF vs EBV heads, plain and FA.

The grid (issue #10, item 7): four training recipes on one backbone, with and without frame averaging,

* ``ce``    -- cross-entropy with the backbone's own linear classifier;
* ``mixup`` -- the same with input mixup (``mixup_alpha``, lambda ~ Beta(alpha, alpha); Zhang et al. 2018);
* ``etf``   -- a fixed simplex-ETF classifier (:class:`equinets.collapse.heads.SimplexETFHead`);
* ``ebv``   -- fixed equiangular basis vectors (:class:`equinets.collapse.heads.EBVHead`, cosine logits / 0.07),

each trained by the library trainer (:func:`equinets.train.train` on a :func:`~equinets.train.resolve_config`
of ``shapes-pointnet`` / ``shapes-fa-pointnet`` with overrides), which logs the collapse metrics of the training
set every ``--collapse-every`` epochs (``collapse_every``: NC1, NC2, NC3, NC4 in ``metrics.csv``). After training
the script reads each run's last checkpoint and measures, on the test split (the config's test rotation),
accuracy, expected calibration error (15 bins, :func:`equinets.collapse.calibration.expected_calibration_error`)
and a reliability diagram; and, on mixed training pairs (lambda drawn uniformly, the trainer's
:func:`~equinets.train.loop.mixup_batch`), the logit gap between the two mixed classes against the log-odds
log(lambda / (1 - lambda)) (:func:`equinets.collapse.mixup.mixup_geometry`).

Any dataset reader works by name (``--dataset modelnet40 --set data_root=...``); ``--set key=value`` passes
any other config override. The default budget is a CPU one (fewer points, a narrower embedding, few epochs;
the table says so); runs go to ``--out`` (one run directory per cell; a finished cell is reused, never
overwritten) and the results to ``kernels/results/collapse_experiment.{csv,md,png}`` plus one reliability
diagram per cell (``collapse_experiment_reliability.png``) and the mixup-geometry figure.

Usage::

    OMP_NUM_THREADS=1 nice -n 10 python kernels/collapse_experiment.py            # the whole grid
    python kernels/collapse_experiment.py --report-only                           # tables/plots from the runs

The recorded results came from the defaults (20 epochs, 128 points, emb_dims 128, 600/300 clouds, collapse every
4 epochs) with ``--out /tmp/h2runs/e20``: 20 min 48 s in all on one thread at nice 10 on a shared, loaded 2-core
machine (PointNet cells 99-115 s, frame-averaged cells 165-192 s of training, then about a minute of analysis).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from equinets._atomic import atomic_open, write_csv

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {
    "ce": {},
    "mixup": {"mixup_alpha": 1.0},
    "etf": {"head": "simplex_etf"},
    "ebv": {"head": "ebv"},
}
BACKBONES = {"pointnet": "shapes-pointnet", "fa-pointnet": "shapes-fa-pointnet"}
NC_KEYS = ("nc1", "nc1_quotient", "etf_distance_means", "nc3", "nc4")


def overrides(args, method: str) -> list[str]:
    o = [f"dataset={args.dataset}", f"epochs={args.epochs}", f"num_points={args.num_points}",
         f"model_kwargs.emb_dims={args.emb_dims}", f"collapse_every={args.collapse_every}", f"seed={args.seed}",
         "eval_every=1000000", "num_workers=0"]
    if args.dataset == "shapes":
        o += [f"dataset_kwargs.num_train={args.num_train}", f"dataset_kwargs.num_test={args.num_test}"]
    o += [f"{k}={v}" for k, v in METHODS[method].items()]
    return o + list(args.set)


def run_cell(args, backbone: str, method: str) -> Path:
    from equinets.train import resolve_config, train

    run_dir = Path(args.out) / f"{backbone}-{method}"
    if (run_dir / "last.pt").exists():
        print(f"[{backbone}/{method}] reusing the finished run {run_dir}", flush=True)
        return run_dir
    cfg = resolve_config(BACKBONES[backbone], overrides(args, method))
    t = time.perf_counter()
    train(cfg, run_dir, progress=False)
    print(f"[{backbone}/{method}] trained in {time.perf_counter() - t:.0f} s", flush=True)
    return run_dir


def _load(run_dir: Path):
    from equinets.train import load_checkpoint
    from equinets.train.checkpoint import load_model_state
    from equinets.train.loop import build_model

    state = load_checkpoint(run_dir / "last.pt")
    model = build_model(state["config"], args=dict(state["model_args"]))
    load_model_state(model, state["model"], str(run_dir / "last.pt"))
    return model.eval(), state["config"], state["history"]


@torch.no_grad()
def mixed_features(model, cfg, ds, *, num_batches: int, seed: int):
    """Features, logits, (y_a, y_b) and lambda of mixed training pairs, lambda ~ U(0, 1) per batch."""
    import numpy as np

    from equinets.collapse import FeatureCapture
    from equinets.train.loop import _forward, collapse_loader, mixup_batch

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    feats, logits, ya, yb, lams = [], [], [], [], []
    with FeatureCapture(model) as cap:
        for i, batch in enumerate(collapse_loader(cfg, ds, cfg["train_rotation"])):
            if i >= num_batches:
                break
            mixed, y_a, y_b, lam = mixup_batch(batch, 1.0, rng, gen)
            logits.append(_forward(model, mixed, cfg).double())
            feats.append(cap.pop().double())
            ya.append(y_a)
            yb.append(y_b)
            lams.append(torch.full((y_a.shape[0],), lam, dtype=torch.float64))
    return torch.cat(feats), torch.cat(logits), torch.cat(ya), torch.cat(yb), torch.cat(lams)


def analyse_cell(args, backbone: str, method: str, run_dir: Path) -> tuple[dict, dict]:
    from equinets.collapse import capture_features, nc_metrics
    from equinets.collapse.calibration import expected_calibration_error, reliability_diagram
    from equinets.collapse.mixup import mixup_geometry
    from equinets.train.loop import _forward, build_datasets, collapse_loader

    model, cfg, history = _load(run_dir)
    train_ds, test_ds = build_datasets(cfg, ("train", "test"))
    feats, labels, logits = capture_features(model, collapse_loader(cfg, test_ds, cfg["test_rotation"]),
                                             forward=lambda m, b: _forward(m, b, cfg))
    probs = torch.softmax(logits.double(), 1)
    head = _classifier(model)
    last = history[-1]
    row = {"backbone": backbone, "method": method, "epochs": cfg["epochs"], "num_points": cfg["num_points"],
           "emb_dims": cfg["model_kwargs"].get("emb_dims"), "train_clouds": len(train_ds), "test_clouds": len(test_ds),
           "test_acc": float((logits.argmax(1) == labels).double().mean()),
           "test_ece": expected_calibration_error(probs, labels),
           "test_confidence": float(probs.max(1).values.mean()),
           "train_time_s": last.get("time_s")}
    for k in NC_KEYS:
        row[f"train_{k}"] = last.get(f"train_{k}", float("nan"))
    test_nc = nc_metrics(feats, labels, head.weight, getattr(head, "bias", None), num_classes=probs.shape[1])
    row["test_nc1"] = test_nc["nc1"]
    reliability_diagram(probs, labels, RESULTS / f"collapse_experiment_reliability_{backbone}-{method}.png",
                        title=f"{backbone} / {method}")
    h, z, ya, yb, lam = mixed_features(model, cfg, train_ds, num_batches=args.mix_batches, seed=args.seed)
    geo = mixup_geometry(h, ya, yb, lam, weight=head.weight, bias=getattr(head, "bias", None), logits=z,
                         num_bins=10)
    diff = [r for r in geo if r["c"] != r["c2"] and r["count"] > 0]
    w = torch.tensor([r["count"] for r in diff], dtype=torch.float64)
    err = torch.tensor([r["gap_minus_log_odds"] for r in diff], dtype=torch.float64)
    ok = torch.isfinite(err)
    row["mix_gap_err"] = float((w[ok] * err[ok].abs()).sum() / w[ok].sum()) if bool(ok.any()) else float("nan")
    return row, {"geometry": geo, "history": history}


def _classifier(model):
    from equinets.collapse import find_classifier

    parent, name = find_classifier(model)
    return getattr(parent, name)


def _fmt(v, digits=3):
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.{digits}g}" if abs(v) < 1e-2 or abs(v) >= 1e3 else f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return str(v)


def write_table(rows: list[dict], args) -> str:
    head = ["backbone", "method", "test acc", "ECE (15 bins)", "mean conf", "train NC1", "train NC2 (ETF dist.)",
            "train NC3", "train NC4", "test NC1", "mixup |gap - log-odds|"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["backbone"], r["method"], f"{100 * r['test_acc']:.1f} %", _fmt(r["test_ece"]),
                 _fmt(r["test_confidence"]), _fmt(r["train_nc1"]), _fmt(r["train_etf_distance_means"]),
                 _fmt(r["train_nc3"]), _fmt(r["train_nc4"]), _fmt(r["test_nc1"]), _fmt(r["mix_gap_err"])]
        lines.append("| " + " | ".join(cells) + " |")
    r0 = rows[0]
    note = (f"\nBudget (CPU, one core): {r0['epochs']} epochs, {r0['num_points']} points per cloud, emb_dims "
            f"{r0['emb_dims']}, {r0['train_clouds']} training / {r0['test_clouds']} test clouds of `{args.dataset}`, "
            f"seed {args.seed}; fewer epochs and points than the `shapes-*` configs, so the collapse is early-phase. "
            f"NC metrics of the training set at the last epoch (trainer's `collapse_every`), ECE and test NC1 on the "
            f"test split; mixup gap error = mean over (class pair, lambda bin) of |z_c - z_c' - log(lambda/(1-lambda))| "
            f"on mixed training pairs (lambda ~ U(0,1)).\n")
    text = "\n".join(lines) + "\n" + note
    with atomic_open(RESULTS / "collapse_experiment.md", "w") as f:
        f.write(text)
    return text


def plot(rows: list[dict], extras: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for (backbone, method), ex in extras.items():
        hist = [h for h in ex["history"] if "train_nc1" in h]
        ls = "-" if backbone == "pointnet" else "--"
        ep = [h["epoch"] for h in hist]
        for ax, key in zip(axes[:3], ("train_nc1", "train_etf_distance_means", "train_nc3")):
            ax.plot(ep, [h[key] for h in hist], ls, marker="o", ms=3, label=f"{backbone}/{method}")
        geo = [g for g in ex["geometry"] if g["c"] != g["c2"] and g["count"] > 0]
        if geo:
            bins = sorted({g["lambda_bin"] for g in geo})
            lam = [sum(g["lambda_mean"] * g["count"] for g in geo if g["lambda_bin"] == b)
                   / sum(g["count"] for g in geo if g["lambda_bin"] == b) for b in bins]
            gap = [sum(g["gap_mean"] * g["count"] for g in geo if g["lambda_bin"] == b)
                   / sum(g["count"] for g in geo if g["lambda_bin"] == b) for b in bins]
            axes[3].plot(lam, gap, ls, marker="o", ms=3, label=f"{backbone}/{method}")
    xs = torch.linspace(0.02, 0.98, 99)
    axes[3].plot(xs, torch.log(xs / (1 - xs)), "k:", label="log(λ/(1-λ))")
    for ax, t in zip(axes, ("train NC1", "train NC2 (ETF distance of means)", "train NC3", "mixed pairs: logit gap")):
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("epoch" if "gap" not in t else "λ (weight of class c)")
    for ax in axes[:2]:
        ax.set_yscale("log")
    axes[3].legend(fontsize=6)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    with atomic_open(RESULTS / "collapse_experiment.png", "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="shapes")
    ap.add_argument("--methods", default="ce,mixup,etf,ebv")
    ap.add_argument("--backbones", default="pointnet,fa-pointnet")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--num-points", type=int, default=128)
    ap.add_argument("--emb-dims", type=int, default=128)
    ap.add_argument("--num-train", type=int, default=600, help="shapes only: training clouds (40 per class)")
    ap.add_argument("--num-test", type=int, default=300, help="shapes only: test clouds")
    ap.add_argument("--collapse-every", type=int, default=4)
    ap.add_argument("--mix-batches", type=int, default=6, help="batches of mixed training pairs for the gap analysis")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/collapse_experiment")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config override")
    ap.add_argument("--report-only", action="store_true", help="only analyse the finished runs in --out")
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    backbones = [b for b in args.backbones.split(",") if b]
    for m in methods:
        if m not in METHODS:
            ap.error(f"--methods: unknown method {m!r}; choose from {', '.join(METHODS)}")
    for b in backbones:
        if b not in BACKBONES:
            ap.error(f"--backbones: unknown backbone {b!r}; choose from {', '.join(BACKBONES)}")
    torch.set_num_threads(args.threads)
    from equinets.train import resolve_config

    for b in backbones:  # every cell's config checked before any training
        for m in methods:
            resolve_config(BACKBONES[b], overrides(args, m))
    if not args.report_only:  # train the whole grid first, then analyse
        for b in backbones:
            for m in methods:
                run_cell(args, b, m)
    rows, extras = [], {}
    for b in backbones:
        for m in methods:
            run_dir = Path(args.out) / f"{b}-{m}"
            if not (run_dir / "last.pt").exists():
                print(f"[{b}/{m}] no finished run in {run_dir}: skipped", flush=True)
                continue
            row, ex = analyse_cell(args, b, m, run_dir)
            rows.append(row)
            extras[(b, m)] = ex
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    if rows:
        write_csv(rows, RESULTS / "collapse_experiment.csv")
        print(write_table(rows, args))
        plot(rows, extras)
    return rows


if __name__ == "__main__":
    main()
