r"""The APEN bound, measured: piecewise-equivariance error against lambda and delta, sweeping K and the variance.

Atzmon et al. (ICLR 2024), Thm. 1: for a predicted distribution :math:`Q` over partitions,

.. math::
    \mathbb{E}_{Z \sim Q} \lVert \phi(g \cdot (X, Z)) - g \cdot (\phi(X), Z) \rVert \le (\lambda(Q) + \delta(Q))\, M,

with :math:`\lambda` the probability that :math:`Z \sim Q` is *not* a refinement of the true partition
:math:`Z^*`, :math:`\delta` the assignment uncertainty and :math:`M` a bound on the output. This script measures
every term on generated articulated clouds: ``P`` box-shaped parts along a chain, ``0.1`` apart at the joints
(so a candidate cell that straddles a joint cuts across two true parts), each moved by its own random rotation
about its centroid and a small translation (``g``). For every number of candidate parts ``K`` and first-partition variance
:math:`\sigma^2` (the mixture of :func:`equinets.piecewise.fit_mixture` on the points, the model's first
partition, :math:`Q_{\mathrm{simple}}`):

* ``lambda``: the fraction of sampled partitions :math:`Z \sim Q` (Gumbel-max draws of the hard assignment,
  ``--samples`` per cloud) with a part that holds points of two true parts; ``lambda_argmax``: the same for the
  deterministic argmax partition APEN uses in eval;
* ``delta``: :math:`\mathbb{E}_i [1 - \max_j Q_{ij}]`, the probability that a draw differs from the argmax at a
  point (0 exactly when :math:`Q` sits at the simplex vertices);
* ``err_sampled``: :math:`\mathbb{E}_{Z\sim Q}` of the mean per-point change of APEN's logits when the parts move,
  the partition :math:`Z` carried along with the points (the left side of Thm. 1), divided by :math:`M` (the
  largest logit magnitude seen); ``err_argmax``: the same for the argmax partition;
* ``err_model``: the change of the full APEN forward in eval, partitions predicted separately on :math:`X` and on
  :math:`g X` (what a user sees), divided by :math:`M`.

The model is an untrained APEN (one block, random weights, eval, float64): the bound concerns the partition, and
the weights only set :math:`M`. Writes ``kernels/results/apen_bound.csv`` and ``apen_bound.png``.

``--exactness`` measures the exact end of the bound instead (``apen_exactness.csv``): for every group and
dtype, APEN's logits and votes under independent motions (reflections for O3/E3) of the parts of these clouds with
the true partition, a random refinement of it and two true parts merged, beside a globally frame-averaged PointNet.

Usage::

    python kernels/apen_bound.py [--parts 2 4 8 16 32 64 128 256] [--variances 0.003 0.01 0.03 0.1 0.3] [--quick]
    python kernels/apen_bound.py --exactness
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from e3nn import o3

from equinets._bench import machine_info, pin_threads, write_results
from equinets.piecewise import APEN, assign, fit_mixture, init_mixture

RESULTS = Path(__file__).resolve().parent / "results"
F64 = torch.float64
_NUMERIC = ("K", "variance", "lambda", "lambda_argmax", "delta", "bound", "M", "err_sampled", "err_argmax", "err_model",
            "err_given_refinement_max", "err_given_bad_mean", "parts_per_cloud")


def articulated(B: int, P: int, n: int, seed: int = 0, gap: float = 0.1):
    """``B`` clouds of ``P`` box-shaped parts (``n`` uniform points each, 0.5 x 0.16 x 0.1) along a bent chain,
    ``gap`` apart at the joints; per-part labels. Parts do not overlap, so fine partitions can refine them."""
    g = torch.Generator().manual_seed(seed)
    size = torch.tensor([0.5, 0.16, 0.1], dtype=F64)
    pos, lab, bt = [], [], []
    for b in range(B):
        for p in range(P):
            blob = (torch.rand(n, 3, dtype=F64, generator=g) - 0.5) * size
            ang = 0.6 * (torch.rand(1, generator=g, dtype=F64) - 0.5)  # a small bend of every part
            c, s = torch.cos(ang), torch.sin(ang)
            R = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
            pos.append(blob @ R.T + torch.tensor([(0.5 + gap) * p, 0.0, 0.0], dtype=F64))
            lab.append(torch.full((n,), p))
            bt.append(torch.full((n,), b))
    return torch.cat(pos), torch.cat(lab), torch.cat(bt)


def part_motion(pos, lab, bt, P: int, shift: float = 0.1):
    """Each (cloud, part) rotated by its own Haar rotation about its centroid, then shifted by ``N(0, shift^2)``."""
    gid = bt * P + lab
    G = int(gid.max()) + 1
    cnt = torch.bincount(gid, minlength=G).to(F64)
    cen = torch.zeros(G, 3, dtype=F64).index_add_(0, gid, pos) / cnt[:, None]
    Q = o3.rand_matrix(G, dtype=F64)
    t = torch.randn(G, 3, dtype=F64) * shift
    return torch.einsum("nij,nj->ni", Q[gid], pos - cen[gid]) + cen[gid] + t[gid]


def is_refinement(part_of_point: torch.Tensor, true: torch.Tensor, bt: torch.Tensor, B: int) -> torch.Tensor:
    """``(B,)`` bool: every part of the cloud holds points of one true part only."""
    key = torch.unique(torch.stack([part_of_point, true]), dim=1)  # distinct (part, true part) pairs
    per_part = torch.bincount(key[0])
    bad_part = per_part > 1
    bad_cloud = torch.zeros(B, dtype=torch.bool)
    bad_pts = bad_part[part_of_point]
    bad_cloud.index_put_((bt[bad_pts],), torch.ones(int(bad_pts.sum()), dtype=torch.bool))
    return ~bad_cloud


def per_cloud_change(a: torch.Tensor, b: torch.Tensor, bt: torch.Tensor, B: int) -> torch.Tensor:
    """``(B,)`` mean over the points of each cloud of ``|a_i - b_i|`` (Euclidean over the channels)."""
    d = (a - b).norm(dim=1)
    return torch.zeros(B, dtype=F64).index_add_(0, bt, d) / torch.bincount(bt, minlength=B).to(F64)


@torch.no_grad()
def measure(K: int, var: float, pos, lab, bt, moved, P: int, samples: int, seed: int) -> dict:
    B = int(bt[-1]) + 1
    torch.manual_seed(seed)
    model = APEN(out_channels=8, task="seg", group="SE3", num_parts=K, num_blocks=1, variances=(var,),
                 channels=(32, 64), num_scalars=16, num_vectors=2, k=6, head_channels=(32,)).double().eval()
    mix = fit_mixture(pos, bt, init_mixture(pos, bt, K, var), var, num_iters=model.em_iters,
                      merge_radius=model.merge_radius, min_weight=model.min_weight)
    q = mix.log_resp.exp()
    delta = float((1 - q.max(1).values).mean())
    slot_argmax = mix.log_resp.argmax(1)
    res = model.forward_all(pos, None, bt)
    assert torch.equal(res.partitions[0].label, assign(mix, bt).label)  # the model's own first partition
    out_x = res.out
    out_gx = model(moved, None, bt)
    outs = [out_x, out_gx]
    ref_x = model(pos, None, bt, slot_argmax)
    ref_gx = model(moved, None, bt, slot_argmax)
    outs += [ref_x, ref_gx]
    err_argmax = per_cloud_change(ref_gx, ref_x, bt, B)
    lam_argmax = (~is_refinement(bt * K + slot_argmax, bt * P + lab, bt, B)).to(F64)
    g = torch.Generator().manual_seed(seed + 1)
    errs, bad = [], []
    for _ in range(samples):
        z = assign(mix, bt, sample=True, generator=g)
        slot = z.label  # compact part ids over the batch; the model only needs ids per point < num_parts per cloud
        slot = _local_ids(slot, bt, K)
        a, b = model(pos, None, bt, slot), model(moved, None, bt, slot)
        outs += [a, b]
        errs.append(per_cloud_change(b, a, bt, B))
        bad.append((~is_refinement(bt * K + slot, bt * P + lab, bt, B)).to(F64))
    M = max(float(o.norm(dim=1).max()) for o in outs)
    err_s = torch.stack(errs)  # (S, B)
    bad_s = torch.stack(bad)
    good = bad_s == 0
    return {"K": K, "variance": var, "lambda": round(float(bad_s.mean()), 4),
            "lambda_argmax": round(float(lam_argmax.mean()), 4), "delta": round(delta, 5),
            "bound": round(float(bad_s.mean()) + delta, 5), "M": round(M, 4),
            "err_sampled": float(err_s.mean()) / M, "err_argmax": float(err_argmax.mean()) / M,
            "err_model": float(per_cloud_change(out_gx, out_x, bt, B).mean()) / M,
            "err_given_refinement_max": float(err_s[good].max()) / M if bool(good.any()) else float("nan"),
            "err_given_bad_mean": float(err_s[~good].mean()) / M if bool((~good).any()) else float("nan"),
            "parts_per_cloud": round(float(mix.alive.sum()) / B, 2)}


def _local_ids(label: torch.Tensor, bt: torch.Tensor, K: int) -> torch.Tensor:
    """Compact per-batch part ids -> per-cloud ids ``0, 1, ...`` (< K: a cloud has at most K parts)."""
    B = int(bt[-1]) + 1
    first = torch.full((B,), label.shape[0] * 0 + int(label.max()) + 1, dtype=torch.long).scatter_reduce(
        0, bt, label, "amin")
    loc = label - first[bt]
    assert int(loc.max()) < K
    return loc


@torch.no_grad()
def exactness(out: Path, n: int = 64, clouds: int = 4, P: int = 6) -> list[dict]:
    """Per group and dtype, the relative change (max abs / max abs) of APEN's logits and votes under independent
    part motions with the true partition, a random refinement (each part cut in up to 4 pieces), two true parts
    merged, and of a globally frame-averaged PointNet; writes ``apen_exactness.csv``."""
    from equinets.frames import FrameAveraging
    from equinets.nn import PointNet

    pos, lab, bt = articulated(clouds, P, n, seed=3)
    g = torch.Generator().manual_seed(5)
    fine = 4 * lab + torch.randint(0, 4, lab.shape, generator=g)
    merged = torch.where(lab == 1, torch.zeros_like(lab), lab)
    rows = []
    for group in ("SE3", "E3", "SO3", "O3"):
        torch.manual_seed(0)
        gid = bt * P + lab
        G = int(gid.max()) + 1
        Q = o3.rand_matrix(G, dtype=F64)
        if group in ("E3", "O3"):
            Q[1::2] = -Q[1::2]  # every other part reflected
        t = torch.randn(G, 3, dtype=F64) * 5 if group in ("E3", "SE3") else torch.zeros(G, 3, dtype=F64)
        moved = torch.einsum("nij,nj->ni", Q[gid], pos) + t[gid]
        for dtype in (F64, torch.float32):
            torch.manual_seed(0)
            m = APEN(out_channels=8, group=group, num_parts=4 * P, num_blocks=2, channels=(32, 64), num_scalars=16,
                     num_vectors=4, k=6, head_channels=(32,)).to(dtype).eval()
            fa = FrameAveraging(PointNet(0, 8, "seg", hidden_channels=(32,), emb_dims=64, seg_channels=(32,)),
                                group).to(dtype).eval()
            x, y = pos.to(dtype), moved.to(dtype)

            def rel(a, b):
                return float((a - b).abs().max() / b.abs().max())

            r1, r2 = m.forward_all(x, None, bt, lab), m.forward_all(y, None, bt, lab)
            votes = max(rel(v2, torch.einsum("nij,nj->ni", Q[gid].to(dtype), v1)) for v1, v2 in zip(r1.votes, r2.votes))
            rows.append({"group": group, "dtype": str(dtype).replace("torch.", ""), "true_partition": rel(r2.out, r1.out),
                         "true_partition_votes": votes,
                         "refinement": rel(m(y, None, bt, fine), m(x, None, bt, fine)),
                         "two_parts_merged": rel(m(y, None, bt, merged), m(x, None, bt, merged)),
                         "global_fa_pointnet": rel(fa(y, None, bt), fa(x, None, bt))})
            print(" ".join(f"{k}={v:.1e}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
                  flush=True)
    out.mkdir(parents=True, exist_ok=True)
    write_results(rows, out / "apen_exactness.csv", {k: v for k, v in machine_info().items() if k != "threads"})
    return rows


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64, 128, 256])
    p.add_argument("--variances", type=float, nargs="+", default=[0.003, 0.01, 0.03, 0.1, 0.3])
    p.add_argument("--true-parts", type=int, default=6)
    p.add_argument("--points-per-part", type=int, default=64)
    p.add_argument("--clouds", type=int, default=8)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sweep (a smoke test of the script)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--plot-only", action="store_true", help="redraw the figure from the CSV in --out")
    p.add_argument("--exactness", action="store_true", help="only the exactness table (apen_exactness.csv)")
    args = p.parse_args(argv)
    if args.exactness:
        pin_threads(args.threads)
        return exactness(args.out, n=16 if args.quick else 64, clouds=2 if args.quick else 4)
    if args.plot_only:
        import csv

        with open(args.out / "apen_bound.csv") as f:
            rows = [{k: (float(v) if k in _NUMERIC else v) for k, v in r.items()} for r in csv.DictReader(f)]
        plot(rows, args.out / "apen_bound.png")
        return rows
    if args.quick:
        args.parts, args.variances, args.clouds, args.samples, args.points_per_part = [2, 8], [0.01, 0.3], 2, 2, 24
    threads = pin_threads(args.threads)
    P = args.true_parts
    pos, lab, bt = articulated(args.clouds, P, args.points_per_part)
    torch.manual_seed(0)
    moved = part_motion(pos, lab, bt, P)
    rows = []
    for var in args.variances:
        for K in args.parts:
            r = measure(K, var, pos, lab, bt, moved, P, args.samples, seed=0)
            r.update(true_parts=P, clouds=args.clouds, points=pos.shape[0], samples=args.samples, threads=threads)
            rows.append(r)
            print(f"K={K:3d} var={var:<6} lambda={r['lambda']:.3f} (argmax {r['lambda_argmax']:.3f}) "
                  f"delta={r['delta']:.4f}  err/M: sampled {r['err_sampled']:.2e} argmax {r['err_argmax']:.2e} "
                  f"model {r['err_model']:.2e}  | refinements max {r['err_given_refinement_max']:.1e}  "
                  f"parts/cloud {r['parts_per_cloud']}", flush=True)
    info = {k: v for k, v in machine_info().items() if k != "threads"}
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(rows, args.out / "apen_bound.csv", info)
    plot(rows, args.out / "apen_bound.png")
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from equinets._atomic import atomic_open

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ks = sorted({r["K"] for r in rows})
    cmap = plt.get_cmap("viridis")
    ax = axes[0]
    floor = 1e-17
    for i, K in enumerate(ks):
        rs = [r for r in rows if r["K"] == K]
        c = cmap(i / max(1, len(ks) - 1))
        ax.scatter([r["bound"] for r in rs], [max(r["err_sampled"], floor) for r in rs], color=c, marker="o",
                   label=f"K={int(K)}")
        ax.scatter([max(r["lambda_argmax"], 1e-4) for r in rs], [max(r["err_argmax"], floor) for r in rs], color=c,
                   marker="^")
    ax.plot([1e-4, 2], [1e-4, 2], "k--", lw=1, label="err/M = lambda + delta")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("lambda + delta (o: Z ~ Q);  lambda of the argmax (^, 1e-4 = 0)")
    ax.set_ylabel("equivariance error / M")
    ax.set_title("Thm. 1: error against lambda + delta")
    ax.legend(fontsize=7, ncol=2)
    variances = sorted({r["variance"] for r in rows})
    for ax, key, title in ((axes[1], "lambda", "lambda: Z ~ Q (solid), argmax (dashed)"),
                           (axes[2], "delta", "delta (assignment uncertainty) vs K")):
        for j, v in enumerate(variances):
            c = plt.get_cmap("plasma")(j / max(1, len(variances) - 1))
            rs = sorted((r["K"], r[key], r["lambda_argmax"]) for r in rows if r["variance"] == v)
            ax.plot([a for a, _, _ in rs], [max(b, 1e-6) for _, b, _ in rs], "o-", color=c, label=f"sigma^2={v}")
            if key == "lambda":
                ax.plot([a for a, _, _ in rs], [la for _, _, la in rs], "s--", color=c, alpha=0.7)
        ax.set_xscale("log", base=2)
        if key == "delta":
            ax.set_yscale("log")
        ax.set_xlabel("candidate parts K")
        ax.set_title(title)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
