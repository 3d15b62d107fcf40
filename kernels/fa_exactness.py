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

Every frame policy (:func:`equinets.frames.pca_frames` ``signs`` x ``degenerate``): the paper's ``all``/``blend``
on the full grid above; ``shrink``/``blend``, ``shrink``/``harmonic``, ``all``/``harmonic``, ``shrink``/``none``,
``extent``/``harmonic``, ``detail``/``harmonic`` and ``faces``/``harmonic`` on both levels, both input types and all
output irreps together, on the Gaussian clouds and on skewed ones (exponential coordinates: the shrunk frame is a
single frame there).
Degenerate clouds (one point, duplicated points, a line, a square, a cube's corners, a sampled cylinder and sphere):
outputs and gradients finite, per policy.

Writes ``kernels/results/fa_exactness.csv`` (model, policy, clouds, group, level, irreps_in, irreps_out, dtype,
worst_rel_error, bar, pass) and ``kernels/results/fa_finite.csv`` (policy, group, dtype, cloud, finite).

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
POLICIES = {"all/blend": dict(signs="all", degenerate="blend"), "shrink/blend": dict(signs="shrink", degenerate="blend"),
            "shrink/harmonic": dict(signs="shrink", degenerate="harmonic"),
            "all/harmonic": dict(signs="all", degenerate="harmonic"), "shrink/none": dict(signs="shrink", degenerate="none"),
            "extent/harmonic": dict(signs="extent", degenerate="harmonic"),
            "detail/harmonic": dict(signs="detail", degenerate="harmonic"),
            "faces/harmonic": dict(signs="faces", degenerate="harmonic")}


def _clouds(b: int, n: int, dtype: torch.dtype, kind: str = "gaussian") -> torch.Tensor:
    scale = torch.tensor([1.0, 2.0, 3.5], dtype=torch.float64)
    if kind == "gaussian":
        pos = torch.randn(b, n, 3, dtype=torch.float64) * scale
    else:  # skewed projections: exponential coordinates
        pos = torch.empty(b, n, 3, dtype=torch.float64).exponential_() * scale
    return (pos @ o3.rand_matrix(b, dtype=torch.float64).mT).to(dtype)


def _degenerate_clouds() -> dict[str, torch.Tensor]:
    f64 = torch.float64
    ang = torch.arange(24, dtype=f64) * torch.pi / 12
    cyl = torch.cat([torch.stack([ang.cos(), ang.sin(), torch.full_like(ang, z)], 1) for z in (-1.5, -0.5, 0.5, 1.5)])
    sph = torch.nn.functional.normalize(torch.randn(200, 3, dtype=f64), dim=1)
    return {"one point": torch.ones(1, 3, dtype=f64), "duplicates": torch.full((8, 3), 2.0, dtype=f64),
            "line": torch.linspace(-1, 1, 9, dtype=f64)[:, None] * torch.tensor([1.0, 2.0, 3.0], dtype=f64),
            "square": torch.tensor([[1.0, 1, 0], [-1, 1, 0], [-1, -1, 0], [1, -1, 0]], dtype=f64),
            "cube": torch.cartesian_prod(*[torch.tensor([-1.0, 1.0], dtype=f64)] * 3), "cylinder": cyl, "sphere": sph}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []

    def record(model, group, level, irreps_in, irreps_out, dtype, errs, policy="all/blend", clouds="gaussian"):
        worst = max(errs)
        rows.append({"model": model, "policy": policy, "clouds": clouds, "group": group, "level": level,
                     "irreps_in": irreps_in or "-",
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
                        if irreps_out != OUTS[-1]:
                            continue
                        for policy, kw in list(POLICIES.items())[1:]:
                            for kind in ("gaussian", "skewed"):
                                errs = []
                                for seed in range(args.seeds):
                                    torch.manual_seed(seed)
                                    net = PointNet(3 if irreps_in else 0, dim, level, emb_dims=128).to(dtype)
                                    fa = FrameAveraging(net, group, irreps_in=irreps_in, irreps_out=irreps_out,
                                                        **kw).eval()
                                    pos = _clouds(4, 256, dtype, kind)
                                    x = torch.nn.functional.normalize(torch.randn_like(pos), dim=-1) if irreps_in else None
                                    errs.append(assert_equivariant(fa, pos, x, group=group, irreps_in=irreps_in,
                                                                   irreps_out=irreps_out, n_trials=4, rtol=1.0))
                                record("FA-PointNet", group, level, irreps_in, irreps_out, dtype, errs, policy, kind)
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

    finite = []
    for dtype in (torch.float64, torch.float32):
        for policy, kw in POLICIES.items():
            for group in ("E3", "SE3"):
                torch.manual_seed(0)
                net = PointNet(0, 4, "cls", emb_dims=64).to(dtype)
                fa = FrameAveraging(net, group, irreps_out="0e + 1o", **kw).eval()
                for name, pos in _degenerate_clouds().items():
                    p = pos.to(dtype).clone().requires_grad_(True)
                    out = fa(p)
                    out.square().sum().backward()
                    ok = bool(torch.isfinite(out).all() and torch.isfinite(p.grad).all())
                    finite.append({"policy": policy, "group": group, "dtype": str(dtype).replace("torch.", ""),
                                   "cloud": name, "finite": ok})
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "fa_exactness.csv"
    write_csv(rows, path)
    write_csv(finite, args.out / "fa_finite.csv")
    print(f"{sum(r['pass'] for r in rows)}/{len(rows)} within the bar; {sum(r['finite'] for r in finite)}/{len(finite)} "
          f"degenerate cases finite; wrote {path} and fa_finite.csv")


if __name__ == "__main__":
    main()
