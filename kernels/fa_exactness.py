"""Worst equivariance error of frame-averaged models on generic clouds, per dtype, level and output irreps.

The exactness bar of frame averaging (Puny et al., ICLR 2022): for random O(3) elements (half of
them improper) and translations with standard deviation 10, the relative error
``|f(gX) - rho(g) f(X)| / |f(X)|`` (:func:`equinets.testing.assert_equivariant`) stays below 1e-9 in
float64 and 1e-4 in float32. Models: ``FrameAveraging`` around PointNet at cloud level (``cls``) and
point level (``seg``), with each of the output irreps 0e, 0o, 1o, 1e, 2e alone and all together, with
and without a vector input feature (``1o`` normals); SE(3) frames checked on rotations only; and
FA-GNN on 5-particle systems. Clouds are anisotropic Gaussians (relative eigen-gaps far above the
degenerate band), randomly rotated, 256 points, 4 per batch; every model is checked on ``--seeds``
fresh clouds and weights with 4 group elements each.

Writes ``kernels/results/fa_exactness.csv`` (model, group, level, irreps_in, irreps_out, dtype,
worst_rel_error, bar, pass).

Usage::

    python kernels/fa_exactness.py [--seeds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from e3nn import o3

from equinets.frames import FAGNN, FrameAveraging
from equinets.nn import PointNet
from equinets.testing import assert_equivariant
from equinets.train.bench import write_csv

BAR = {torch.float64: 1e-9, torch.float32: 1e-4}
OUTS = ["0e", "0o", "1o", "1e", "2e", "0e + 0o + 1o + 1e + 2e"]


def _clouds(b: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    pos = torch.randn(b, n, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.5], dtype=torch.float64)
    return (pos @ o3.rand_matrix(b, dtype=torch.float64).mT).to(dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []

    def record(model, group, level, irreps_in, irreps_out, dtype, errs):
        worst = max(errs)
        rows.append({"model": model, "group": group, "level": level, "irreps_in": irreps_in or "-",
                     "irreps_out": irreps_out, "dtype": str(dtype).replace("torch.", ""),
                     "worst_rel_error": f"{worst:.2e}", "bar": f"{BAR[dtype]:.0e}", "pass": worst <= BAR[dtype]})
        print(" ".join(f"{v}" for v in rows[-1].values()), flush=True)

    for dtype in (torch.float64, torch.float32):
        for group in ("E3", "SE3"):
            for level in ("cls", "seg"):
                for irreps_in in (None, "1o"):
                    for irreps_out in OUTS if group == "E3" else OUTS[-1:]:
                        errs = []
                        for seed in range(args.seeds):
                            torch.manual_seed(seed)
                            dim = o3.Irreps(irreps_out).dim
                            net = PointNet(3 if irreps_in else 0, dim, level, emb_dims=128).to(dtype)
                            fa = FrameAveraging(net, group, irreps_in=irreps_in, irreps_out=irreps_out).eval()
                            pos = _clouds(4, 256, dtype)
                            x = torch.nn.functional.normalize(torch.randn_like(pos), dim=-1) if irreps_in else None
                            errs.append(assert_equivariant(fa, pos, x, group=group, irreps_in=irreps_in,
                                                           irreps_out=irreps_out, n_trials=4, rtol=1.0))
                        record("FA-PointNet", group, level, irreps_in, irreps_out, dtype, errs)
        errs = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = FAGNN(4, 3, hidden_channels=60, num_layers=4).to(dtype)
            pos = torch.randn(40, 3, dtype=dtype) * 1.7
            x = torch.cat([torch.randn(40, 3, dtype=dtype), torch.randint(0, 2, (40, 1)).to(dtype) * 2 - 1], 1)
            batch = torch.arange(8).repeat_interleave(5)
            errs.append(assert_equivariant(model, pos, x, batch, irreps_in="1o + 0e", irreps_out="1o",
                                           position_output=True, n_trials=4, rtol=1.0))
        record("FA-GNN", "E3", "seg", "1o + 0e", "1o (positions)", dtype, errs)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "fa_exactness.csv"
    write_csv(rows, path)
    print(f"{sum(r['pass'] for r in rows)}/{len(rows)} within the bar; wrote {path}")


if __name__ == "__main__":
    main()
