"""Separation of 1-WL-equivalent graphs: plain GIN against frame-averaged GIN with node identifiers.

Graph sets (all regular, so 1-WL / GIN with constant input cannot tell any two apart):

* ``csl41``: CSL(41, r), r in {2, 3, 4, 5, 6, 9, 11, 12, 13, 16} (Murphy et al. 2019's 10 classes; 45 pairs);
* ``csl11``: CSL(11, r), r in {2, 3, 4, 5}; 6 pairs of which 2 are *isomorphic* (r = 2 ~ 5 and 3 ~ 4, via
  the multiplier i -> r^-1 i mod 11), which an invariant model must NOT separate;
* ``hex_2tri``: hexagon vs two triangles (1 pair).

Isomorphism of CSL(n, r), CSL(n, r') with n prime is decided exactly by multipliers (Turner 1967:
circulants of prime order are isomorphic iff their connection sets are related by a unit multiplier).

Models (float64, random weights, ``--seeds`` initialisations, GIN: 3 layers, hidden 32, 16 outputs,
constant node input 1 plus ``id_dim = 64`` identifier channels):

* ``GIN``: identifiers all zero (a plain GIN);
* ``FA-GIN``: :class:`equinets.frames.GraphFrameAveraging`, default frames (spectral keys + 3 levels of
  individualisation), every frame enumerated -> exactly invariant;
* ``FA-GIN sort-only k``: the paper's sort-only frame (``individualize=0``). CSL graphs are
  vertex-transitive, so it is all of S_n and ``k`` orderings are sampled per graph (= group averaging with
  random IDs). Two independent k-sample estimates of the *same* graph differ, so a pair counts as
  separated only if some output channel differs by more than 5 standard errors.

A deterministic pair counts as separated when ``max|y_i - y_j| > 1e-6 max|y|``; the largest relative
change under a random node relabelling (``inv_err``) shows the noise floor.

Writes ``kernels/results/graph_separation.csv``.

Usage::

    python kernels/graph_separation.py [--seeds 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch
from torch import nn

from equinets.frames import GraphFrameAveraging
from equinets.nn import GIN
from equinets.train.bench import write_csv

ID_DIM = 64


def csl(n: int, r: int) -> torch.Tensor:
    i = torch.arange(n)
    e = torch.stack([torch.cat([i, i]), torch.cat([(i + 1) % n, (i + r) % n])])
    return torch.cat([e, e.flip(0)], 1)


def hexagon() -> torch.Tensor:
    i = torch.arange(6)
    e = torch.stack([i, (i + 1) % 6])
    return torch.cat([e, e.flip(0)], 1)


def two_triangles() -> torch.Tensor:
    e = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 0, 4, 5, 3]])
    return torch.cat([e, e.flip(0)], 1)


def csl_isomorphic(n: int, r: int, s: int) -> bool:
    """CSL(n, r) ~ CSL(n, s) for prime n: some unit m maps {+-1, +-r} onto {+-1, +-s}."""
    a, b = {1, n - 1, r % n, (-r) % n}, {1, n - 1, s % n, (-s) % n}
    return any({(m * x) % n for x in a} == b for m in range(1, n))


def graph_sets():
    c41 = [2, 3, 4, 5, 6, 9, 11, 12, 13, 16]
    c11 = [2, 3, 4, 5]
    return {
        "csl41": ([(f"CSL(41,{r})", csl(41, r), 41) for r in c41],
                  lambda i, j: csl_isomorphic(41, c41[i], c41[j])),
        "csl11": ([(f"CSL(11,{r})", csl(11, r), 11) for r in c11],
                  lambda i, j: csl_isomorphic(11, c11[i], c11[j])),
        "hex_2tri": ([("hexagon", hexagon(), 6), ("2 triangles", two_triangles(), 6)], lambda i, j: False),
    }


def batch_of(graphs):
    eis, batch, off = [], [], 0
    for b, (_, ei, n) in enumerate(graphs):
        eis.append(ei + off)
        batch.append(torch.full((n,), b))
        off += n
    return torch.cat(eis, 1), torch.cat(batch), off


class Capture(nn.Module):
    """Keeps the per-frame outputs of the wrapped GNN."""

    def __init__(self, gnn: nn.Module) -> None:
        super().__init__()
        self.gnn, self.task, self.last = gnn, gnn.task, None

    def forward(self, x, edge_index, batch):
        self.last = self.gnn(x, edge_index, batch)
        return self.last


def rel_pair_diffs(y: torch.Tensor, pairs) -> list[float]:
    scale = float(y.abs().max())
    return [float((y[i] - y[j]).abs().max()) / scale for i, j in pairs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, nargs="+", default=[16, 256])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for set_name, (graphs, iso) in graph_sets().items():
        ei, batch, N = batch_of(graphs)
        x = torch.ones(N, 1, dtype=torch.float64)
        pairs = list(itertools.combinations(range(len(graphs)), 2))
        noniso = [p for p in pairs if not iso(*p)]
        isop = [p for p in pairs if iso(*p)]
        gen = torch.Generator().manual_seed(123)  # relabel inside every graph: the batch stays sorted (PyG's order)
        perm = torch.cat([torch.randperm(n, generator=gen) + off for off, n in zip([0, *itertools.accumulate(
            g[2] for g in graphs)], [g[2] for g in graphs])])
        ei2, batch2, x2 = perm.argsort()[ei], batch[perm], x[perm]
        fa_ref = GraphFrameAveraging(GIN(1 + ID_DIM, 16, hidden_channels=32).double(), id_dim=ID_DIM, max_frames=4096)
        t0 = time.perf_counter()
        frames = fa_ref.frames(ei, N, batch)
        t_frames = time.perf_counter() - t0
        frames2 = fa_ref.frames(ei2, N, batch2)
        assert bool(frames.complete.all())
        methods = {"GIN": None, "FA-GIN": None} | {f"FA-GIN sort-only k={k}": k for k in args.samples}
        for method, k in methods.items():
            sep, iso_sep, diffs, inv_errs, secs = [], [], [], [], 0.0
            for seed in range(args.seeds):
                torch.manual_seed(seed)
                gin = GIN(1 + ID_DIM, 16, hidden_channels=32).double()
                t0 = time.perf_counter()
                with torch.no_grad():
                    if method == "GIN":
                        y = gin(torch.cat([x, x.new_zeros(N, ID_DIM)], 1), ei, batch)
                        y2 = gin(torch.cat([x2, x2.new_zeros(N, ID_DIM)], 1), ei2, batch2)
                    elif k is None:
                        fa = GraphFrameAveraging(gin, id_dim=ID_DIM, max_frames=4096)
                        y, y2 = fa(x, ei, batch, frames=frames), fa(x2, ei2, batch2, frames=frames2)
                    else:
                        cap = Capture(gin)
                        fa = GraphFrameAveraging(cap, id_dim=ID_DIM, max_frames=k, individualize=0)
                        gen = torch.Generator().manual_seed(1000 + seed)
                        fr = fa.frames(ei, N, batch, generator=gen)
                        y = fa(x, ei, batch, frames=fr)
                        per = cap.last.view(len(graphs), k, -1)
                        se = per.std(1) / k**0.5
                        y2 = fa(x2, ei2, batch2, generator=gen)
                secs += time.perf_counter() - t0
                d = rel_pair_diffs(y, pairs)
                if k is None:
                    is_sep = {p: dd > 1e-6 for p, dd in zip(pairs, d)}
                    inv_errs.append(float((y - y2).abs().max() / y.abs().max()))
                else:
                    z = {(i, j): float(((y[i] - y[j]).abs() / (se[i] ** 2 + se[j] ** 2).sqrt()).max()) for i, j in pairs}
                    is_sep = {p: z[p] > 5.0 for p in pairs}
                    inv_errs.append(float("nan"))
                sep.append(sum(is_sep[p] for p in noniso) / max(len(noniso), 1))
                iso_sep.append(sum(is_sep[p] for p in isop))
                diffs += [dd for p, dd in zip(pairs, d) if not iso(*p)]
            diffs_t = torch.tensor(diffs)
            rows.append({
                "graphs": set_name,
                "method": method,
                "frames_per_graph": "1" if method == "GIN" else (
                    "/".join(str(s) for s in sorted(set(frames.size))) if k is None else str(k)),
                "seeds": args.seeds,
                "noniso_pairs": len(noniso),
                "iso_pairs": len(isop),
                "separated_frac": f"{sum(sep) / len(sep):.3f}",
                "min_seed_separated_frac": f"{min(sep):.3f}",
                "iso_pairs_separated": f"{sum(iso_sep) / len(iso_sep):.2f}",
                "median_rel_diff": f"{float(diffs_t.median()):.2e}",
                "min_rel_diff": f"{float(diffs_t.min()):.2e}",
                "max_inv_err": f"{max(inv_errs):.1e}",
                "frames_s": f"{t_frames:.3f}" if k is None and method != "GIN" else "",
                "forward_s_per_seed": f"{secs / args.seeds:.4f}",
            })
            print(rows[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "graph_separation.csv"
    write_csv(rows, path)
    cols = ["graphs", "method", "frames_per_graph", "noniso_pairs", "iso_pairs", "separated_frac",
            "iso_pairs_separated", "min_rel_diff", "median_rel_diff", "max_inv_err"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("\n" + " | ".join(c.ljust(w) for c, w in zip(cols, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
