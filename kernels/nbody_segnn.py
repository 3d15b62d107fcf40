"""SEGNN on Gaunt products against the same SEGNN on Clebsch-Gordan products, charged n-body task.

Luo, Chen, Krishnapriyan, "Enabling Efficient Equivariant Operations in the Fourier Basis via Gaunt Tensor
Products" (ICLR 2024), Fig. 1 "SEGNN N-body sanity check": SEGNN (Brandstetter et al., ICLR 2022) with its
Clebsch-Gordan products replaced by Gaunt products reaches test MSE about 4.8e-3 against 5.0e-3 (L_a = 1).
Issue #8's bar: the Gaunt network's test MSE within 10% of the CG network's, at no more than a third of its
step time, and at most 0.0050.

This script is a thin caller of the library trainer: for each product it trains the built-in config
``nbody-segnn-<product>`` (:class:`equinets.nn.segnn.SEGNN`, :class:`equinets.data.NBody`) through
:func:`equinets.train.train` with the same overrides (the two configs differ only in the model name, so the
networks differ only in the product), with ``eval_split=val`` and ``test_at_best=true``: the reported number
is the test MSE at the best validation epoch. Two step times are recorded:

* ``train_step_ms``: the median over the training steps of the time between consecutive steps inside the
  trainer (data loading and collation, forward, backward, optimiser step), the first step of every epoch
  left out;
* ``step_ms``: forward + backward + Adam step of both networks on one fixed training batch, interleaved and
  after warm-up (:func:`equinets._bench.compare`), median of ``--timing-repeats``: the cleaner comparison.

Defaults are SEGNN's n-body protocol (3000/2000/2000 systems, 1000 epochs, batch 100, Adam lr 5e-4, weight
decay 1e-8; hidden 32 x (0e + 1o), attributes Y_{<=1}, 4 layers), about 1-1.5 h per network on one CPU thread.
The configs build the network with the original SEGNN n-body code's choices (no norm layers, charges only on the
edges, integral attributes, ``nn.Linear``'s fan-in parametrisation, ...; see :class:`equinets.nn.segnn.SEGNN`). A run with
fewer epochs or systems is labelled ``smoke`` in the CSV: it checks that both variants train, it does not
decide the bar.

Measured first on an earlier 2-core Intel machine (one thread, float32, batch 100, hidden 32, 4 layers, 2026-12-02,
load ~2.4 from a concurrent job), smoke run only: ``--epochs 5 --num-train 300 --num-val 200 --num-test 200`` gave test MSE
1.55 (Gaunt) and 0.911 (CG) after 15 optimiser steps (both untrained: predicting the input positions scores ~0.32)
and an interleaved step-time ratio Gaunt/CG of 1.26 (466 vs 371 ms; 1.50 in the trainer). Interleaved step
times against the degree (``--lmax`` for features and attributes, 10 repeats): 491 vs 399 ms at lmax 1 (1.23),
940 vs 907 ms at 2 (1.04), 2029 vs 3068 ms at 3 (0.66): the Gaunt network overtakes the CG one from lmax 3 on CPU;
at lmax 1 the e3nn Linears around the channel-wise product and the small-L product itself cost more than
e3nn's fully connected product.

Re-measured 2026-12-02 on a 2-core AMD EPYC (one thread, interleaved, after the half-circle grid route),
``--epochs 1 --num-train 100 --num-val 100 --num-test 100 --lmax L``: Gaunt/CG step time 1.49 (L = 1; 1.28
after the batch-last dense GEMMs for D <= 4), 0.98
(2), 0.51 (3), 0.39 (4), 0.28 (5), 0.23 (6) (``kernels/results/nbody_segnn_steps_vs_lmax.csv``): a third of
the CG step only from L = 5 on. A tenth of the protocol (``--epochs 100 --eval-every 10``, all systems):
test MSE 0.0427 (Gaunt) against 0.0354 (CG), ``kernels/results/nbody_segnn_100ep.csv``.

Writes ``kernels/results/nbody_segnn.csv`` (one row per product: test MSE at the best validation epoch,
best epoch and validation MSE, both step times and their Gaunt/CG ratios, parameter count, the run's sizes,
``kind`` = full or smoke, machine info) and the trainer's run directories under ``--run-dir``.

Usage::

    python kernels/nbody_segnn.py                                   # the full protocol (GPU-sized)
    OMP_NUM_THREADS=1 python kernels/nbody_segnn.py --epochs 5 --num-train 300 --num-val 200 --num-test 200
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from equinets._bench import compare, machine_info, pin_threads, write_results
from equinets.train import resolve_config, train

PRODUCTS = ("gaunt", "cg")
FULL = {"epochs": 1000, "num_train": 3000, "num_val": 2000, "num_test": 2000}
PAPER = {"gaunt": 4.8e-3, "cg": 5.0e-3}
BAR = {"mse_ratio": 1.10, "step_ratio": 1 / 3, "mse": 0.0050}


def overrides_from_args(args) -> list[str]:
    """The ``key=value`` overrides shared by both configs (everything but the product)."""
    return [f"epochs={args.epochs}", f"eval_every={args.eval_every}", f"batch_size={args.batch_size}",
            f"eval_batch_size={args.batch_size}", f"lr={args.lr!r}", f"weight_decay={args.weight_decay!r}",
            f"model_kwargs.hidden_channels={args.hidden}", f"model_kwargs.num_layers={args.layers}",
            f"model_kwargs.lmax={args.lmax}", f"model_kwargs.lmax_attr={args.lmax}", f"seed={args.seed}",
            f"device={args.device}", f"data_root={args.root}", f"dataset_kwargs.num_train={args.num_train}",
            f"dataset_kwargs.num_val={args.num_val}", f"dataset_kwargs.num_test={args.num_test}",
            f"time_budget={args.time_budget}", "eval_split=val", "test_at_best=true"]


class StepClock:
    """The trainer's ``_after_step`` hook: times between consecutive steps of an epoch (first step left out)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last: tuple[int, float] | None = None

    def __call__(self, epoch: int, step: int) -> None:
        now = time.perf_counter()
        if self._last is not None and self._last[0] == epoch and step > 0:
            self.times.append(now - self._last[1])
        self._last = (epoch, now)

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.times) if self.times else float("nan")


def interleaved_step_times(cfgs: dict, repeats: int) -> tuple[dict[str, float], dict[str, int]]:
    """Median forward + backward + Adam step (ms) of each product's network on one fixed training batch,
    interleaved after warm-up, and each network's parameter count; the networks are built as the trainer
    builds them."""
    from torch_geometric.loader import DataLoader

    from equinets.train.loop import build_datasets, build_model

    any_cfg = next(iter(cfgs.values()))
    (ds,) = build_datasets(any_cfg, ("train",))
    batch = next(iter(DataLoader(ds, batch_size=any_cfg["batch_size"])))
    kind = any_cfg["device"]
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if kind == "auto" else kind)
    batch = batch.to(device)
    fns, params = {}, {}
    for product, cfg in cfgs.items():
        torch.manual_seed(cfg["seed"])
        model = build_model(cfg, ds).to(device)
        params[product] = sum(p.numel() for p in model.parameters())
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])

        def step(model=model, opt=opt):
            loss = torch.nn.functional.mse_loss(model(batch.pos, batch.x, batch.batch), batch.y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        fns[product] = step
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    times = compare(fns, repeats=repeats, warmup=min(3, repeats), sync=sync)
    return {k: t.median_ms for k, t in times.items()}, params


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=FULL["epochs"])
    ap.add_argument("--num-train", type=int, default=FULL["num_train"])
    ap.add_argument("--num-val", type=int, default=FULL["num_val"])
    ap.add_argument("--num-test", type=int, default=FULL["num_test"])
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--weight-decay", type=float, default=1e-8)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--lmax", type=int, default=1, help="degree of the hidden features and the attributes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--time-budget", type=float, default=0.0, help="seconds per product (0: none)")
    ap.add_argument("--timing-repeats", type=int, default=20)
    ap.add_argument("--products", nargs="+", choices=PRODUCTS, default=list(PRODUCTS))
    ap.add_argument("--root", default="datasets")
    ap.add_argument("--run-dir", default=None, help="default: runs/nbody-segnn/<UTC time>")
    ap.add_argument("--out", default="kernels/results/nbody_segnn.csv")
    args = ap.parse_args(argv)
    pin_threads(args.threads)
    run_dir = Path(args.run_dir or f"runs/nbody-segnn/{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}")
    kind = "full" if all(getattr(args, k) >= v for k, v in FULL.items()) else "smoke"
    over = overrides_from_args(args)
    cfgs = {p: resolve_config(f"nbody-segnn-{p}", over) for p in args.products}
    rows = []
    for product, cfg in cfgs.items():
        clock = StepClock()
        t0 = time.perf_counter()
        metrics = train(cfg, run_dir / product, progress=False, _after_step=clock)
        rows.append({"product": product, "model": cfg["model"], "kind": kind, "test_mse": metrics.get("test_mse"),
                     "best_epoch": metrics.get("best_epoch"), "best_val_mse": metrics.get("best_mse"),
                     "train_step_ms": round(clock.median_ms, 2), "epochs": args.epochs,
                     "num_train": args.num_train, "num_val": args.num_val, "num_test": args.num_test,
                     "batch_size": args.batch_size, "hidden": args.hidden, "layers": args.layers, "lmax": args.lmax,
                     "wall_s": round(time.perf_counter() - t0, 1), "paper_test_mse": PAPER[product]})
        print(f"{product}: test MSE {metrics.get('test_mse')} at epoch {metrics.get('best_epoch')}, "
              f"median train step {clock.median_ms:.1f} ms", flush=True)
    steps, params = interleaved_step_times(cfgs, args.timing_repeats)
    by = {r["product"]: r for r in rows}
    for r in rows:
        r["step_ms"], r["params"] = round(steps[r["product"]], 2), params[r["product"]]
    if set(by) == set(PRODUCTS):
        g, c = by["gaunt"], by["cg"]
        for r in rows:
            r["mse_ratio_gaunt_cg"] = round(g["test_mse"] / c["test_mse"], 4)
            r["step_ratio_gaunt_cg"] = round(g["step_ms"] / c["step_ms"], 4)
            r["train_step_ratio_gaunt_cg"] = round(g["train_step_ms"] / c["train_step_ms"], 4)
        met = (g["test_mse"] <= BAR["mse_ratio"] * c["test_mse"] and g["step_ms"] <= BAR["step_ratio"] * c["step_ms"]
               and g["test_mse"] <= BAR["mse"])
        verdict = f"bar {'met' if met else 'not met'}" if kind == "full" else "smoke run: the bar is not decided"
        print(f"Gaunt/CG: test MSE ratio {g['test_mse'] / c['test_mse']:.3f}, step-time ratio "
              f"{g['step_ms'] / c['step_ms']:.3f} (interleaved; {g['train_step_ms'] / c['train_step_ms']:.3f} in the "
              f"trainer); {verdict}", flush=True)
    write_results(rows, args.out, machine_info(args.device))
    return rows


if __name__ == "__main__":
    main()
