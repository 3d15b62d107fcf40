import math

import pytest
import torch
from e3nn import o3
from torch_geometric.data import Batch, Data

from equinets.frames import FrameAveraging, pca_frames, rotate_irreps
from equinets.nn import PointNet
from equinets.testing import assert_equivariant

IRREPS = "0e + 0o + 1o + 1e + 2e"  # dim 13


def _net(out, task="cls", in_channels=0, dtype=torch.float64, **kw):
    kw = {"hidden_channels": (16,), "emb_dims": 32, "head_channels": (16,), "seg_channels": (16,), **kw}
    return PointNet(in_channels, out, task, **kw).to(dtype)


def _clouds(b=2, n=16, dtype=torch.float64):
    pos = torch.randn(b, n, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.5], dtype=torch.float64)
    return (pos @ o3.rand_matrix(b, dtype=torch.float64).mT).to(dtype)


@pytest.mark.parametrize("task", ["cls", "seg"])
def test_fa_equivariant_to_o3_and_translation(dtype, task):
    dim = o3.Irreps(IRREPS).dim
    fa = FrameAveraging(_net(dim, task, dtype=dtype), "E3", irreps_out=IRREPS).eval()
    pos = _clouds(dtype=dtype)
    out = fa(pos)
    assert out.shape == ((2, dim) if task == "cls" else (2, 16, dim)) and out.dtype == dtype
    err = assert_equivariant(fa, pos, group="E3", irreps_out=IRREPS, translation_scale=10)
    assert err < (1e-9 if dtype == torch.float64 else 1e-4)


def test_fa_ragged_flat_batch_and_data_input(dtype):
    dim = o3.Irreps(IRREPS).dim
    fa = FrameAveraging(_net(dim, "seg", dtype=dtype), "E3", irreps_out=IRREPS).eval()
    sizes = [5, 9, 12]
    pos = torch.cat([_clouds(1, n, dtype)[0] for n in sizes])
    batch = torch.arange(3).repeat_interleave(torch.tensor(sizes))
    assert_equivariant(fa, pos, None, batch, group="E3", irreps_out=IRREPS)
    data = Batch.from_data_list([Data(pos=p) for p in pos.split(sizes)])
    torch.testing.assert_close(fa(data), fa(pos, None, batch))
    dense = _clouds(2, 8, dtype)
    flat_batch = torch.arange(2).repeat_interleave(8)
    torch.testing.assert_close(fa(dense).reshape(16, dim), fa(dense.reshape(16, 3), None, flat_batch))


def test_fa_o3_group_is_about_the_origin():
    fa = FrameAveraging(_net(4), "O3", irreps_out="0e + 1o").eval()
    pos = _clouds() + 3.0
    assert_equivariant(fa, pos, group="O3", irreps_out="0e + 1o")
    with pytest.raises(AssertionError, match="worst relative error"):
        assert_equivariant(fa, pos, group="E3", irreps_out="0e + 1o")


def test_so3_frames_exact_for_rotations_not_reflections(dtype):
    fa = FrameAveraging(_net(4, dtype=dtype), "SE3", irreps_out="0e + 1o").eval()
    pos = _clouds(dtype=dtype)
    assert_equivariant(fa, pos, group="SE3", irreps_out="0e + 1o")
    with pytest.raises(AssertionError, match="improper"):
        assert_equivariant(fa, pos, group="E3", irreps_out="0e + 1o")
    assert pca_frames(pos, group="SE3").rotations.shape[1] == 4 * 12


def test_position_outputs_get_the_centroid_back(dtype):
    for task in ("cls", "seg"):
        fa = FrameAveraging(_net(6, task, dtype=dtype), "E3", irreps_out="2x1o", position_output=True).eval()
        assert_equivariant(fa, _clouds(dtype=dtype), group="E3", irreps_out="2x1o", position_output=True)
    # an identity backbone (framed positions in, framed positions out) returns the input exactly
    ident = FrameAveraging(lambda p, x, b: p, "E3", irreps_out="1o", position_output=True, task="seg")
    pos = _clouds(1, 10, dtype)[0] + 100
    torch.testing.assert_close(ident(pos), pos)
    with pytest.raises(ValueError, match="1o only"):
        FrameAveraging(_net(4), irreps_out="0e + 1o", position_output=True)


def test_input_features_typed_by_irreps(dtype):
    dim = o3.Irreps(IRREPS).dim
    fa = FrameAveraging(_net(4, "seg", in_channels=dim, dtype=dtype), "E3", IRREPS, "0e + 1o").eval()
    pos = _clouds(dtype=dtype)
    x = torch.randn(2, 16, dim, dtype=dtype)
    assert_equivariant(fa, pos, x, group="E3", irreps_in=IRREPS, irreps_out="0e + 1o")
    # declaring the features as invariant (not rotating them) breaks equivariance
    wrong = FrameAveraging(fa.backbone, "E3", None, "0e + 1o").eval()
    with pytest.raises(AssertionError):
        assert_equivariant(wrong, pos, x, group="E3", irreps_in=IRREPS, irreps_out="0e + 1o")


def test_frames_folded_into_one_backbone_call():
    net = _net(3, "seg").eval()
    calls = []

    def counting(pos, x=None, batch=None):
        calls.append(int(batch.max()) + 1)
        return net(pos, x, batch)

    fa = FrameAveraging(counting, "E3", irreps_out="1o", task="seg")
    fa(_clouds(3, 10))
    assert calls == [3 * 8]
    fa(torch.ones(4, 3, dtype=torch.float64), None, torch.tensor([0, 0, 1, 1]))  # degenerate: more frames
    assert len(calls) == 2


def _loop_reference(net, pos, x, group, irreps_in, irreps_out, task):
    """Slow reference: every cloud, every frame, one backbone call each."""
    fr = pca_frames(pos, group=group)
    out = []
    for b in range(pos.shape[0]):
        acc = 0
        for f in range(fr.rotations.shape[1]):
            w = float(fr.weights[b, f])
            if w == 0:
                continue
            R, t = fr.rotations[b, f], fr.translation[b]
            p = ((pos[b].double() - t) @ R).to(pos.dtype)
            xf = rotate_irreps(x[b], irreps_in, R.T) if x is not None else None
            y = net(p, xf)
            y = rotate_irreps(y, irreps_out, R)
            acc = acc + w * y.double()
        out.append(acc[0] if task == "cls" else acc)
    return torch.stack(out).to(pos.dtype)


@pytest.mark.parametrize("task", ["cls", "seg"])
def test_folded_equals_loop_reference(dtype, task):
    irr_in = "1o + 0e"
    net = _net(o3.Irreps(IRREPS).dim, task, in_channels=4, dtype=dtype).eval()
    fa = FrameAveraging(net, "E3", irr_in, IRREPS).eval()
    pos, x = _clouds(2, 12, dtype), torch.randn(2, 12, 4, dtype=dtype)
    pos[1] = pos[1, :1]  # cloud 1: one point repeated (degenerate, 96 frames with weights)
    ref = _loop_reference(net, pos, x, "E3", irr_in, IRREPS, task)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(fa(pos, x), ref, atol=tol, rtol=tol)


def _fib_sphere(n):
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    r, th = (1 - z * z).sqrt(), math.pi * (1 + 5**0.5) * i
    return torch.stack([r * th.cos(), r * th.sin(), z], 1)


DEGENERATE = {
    "one point": torch.tensor([[0.3, -1.0, 2.0]]),
    "two points": torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]),
    "duplicates": torch.tensor([[1.0, 2.0, 3.0]]).repeat(5, 1),
    "line": torch.linspace(-1, 1, 7)[:, None] * torch.tensor([1.0, -2.0, 0.5]),
    "square (plane)": torch.tensor([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]]),
    "generic plane": torch.randn(9, 2) @ torch.tensor([[1.0, 0, 0], [0, 2, 1]]),
    "cube": torch.cartesian_prod(*[torch.tensor([-1.0, 1.0])] * 3),
    "sphere": _fib_sphere(50),
}


@pytest.mark.parametrize("name", list(DEGENERATE))
@pytest.mark.parametrize("task", ["cls", "seg"])
def test_degenerate_clouds_give_finite_outputs_and_gradients(dtype, name, task):
    fa = FrameAveraging(_net(8, task, dtype=dtype), "E3", irreps_out="0e + 1o + 1e + 0o").eval()
    pos = (DEGENERATE[name].double() + 2.0).to(dtype).requires_grad_(True)
    out = fa(pos)
    assert torch.isfinite(out).all()
    (grad,) = torch.autograd.grad(out.square().sum(), pos)
    assert torch.isfinite(grad).all()
    # exactly invariant to translations even when degenerate (translations do not touch the frame)
    out_t = fa(pos.detach() + 5.0)
    torch.testing.assert_close(out_t, out.detach(), atol=1e-4 if dtype == torch.float32 else 1e-9, rtol=1e-4)


def test_degenerate_policy_is_approximately_equivariant():
    """A square (double eigenvalue): the blend is approximately equivariant, closer than sign frames alone."""
    pos = DEGENERATE["square (plane)"].double()
    net = _net(4).eval()
    blend = FrameAveraging(net, "E3", irreps_out="0e + 1o").eval()
    signs = FrameAveraging(net, "E3", irreps_out="0e + 1o", degenerate="none").eval()
    errs = {"blend": [], "none": []}
    with torch.no_grad():
        for _ in range(10):
            Q = o3.rand_matrix(dtype=torch.float64)
            for key, fa in (("blend", blend), ("none", signs)):
                ref = rotate_irreps(fa(pos), "0e + 1o", Q[None])
                errs[key].append(float((fa(pos @ Q.T) - ref).abs().max() / ref.abs().max()))
    assert max(errs["blend"]) < 0.1 and max(errs["blend"]) < max(errs["none"])


def test_train_mode_batchnorm_still_exact(dtype):
    net = _net(4, dropout=0.0, dtype=dtype)
    fa = FrameAveraging(net, "E3", irreps_out="0e + 1o").train()
    err = assert_equivariant(fa, _clouds(3, 12, dtype), group="E3", irreps_out="0e + 1o")
    assert err < (1e-9 if dtype == torch.float64 else 1e-4)


def test_train_mode_dropout_breaks_exactness_eval_restores_it():
    fa = FrameAveraging(_net(4, dropout=0.5), "E3", irreps_out="0e + 1o").train()
    pos = _clouds(2, 12)
    with pytest.raises(AssertionError):
        assert_equivariant(fa, pos, group="E3", irreps_out="0e + 1o")
    assert_equivariant(fa.eval(), pos, group="E3", irreps_out="0e + 1o")


class _Mlp(torch.nn.Module):
    """Per-point MLP with mean pooling (no batch statistics): a smooth non-equivariant backbone."""

    def __init__(self):
        super().__init__()
        layers = [torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)]
        self.mlp = torch.nn.Sequential(*layers).double()

    def forward(self, pos, x=None, batch=None):
        h = self.mlp(pos)
        n = batch.max() + 1
        return h.new_zeros(n, 4).index_add(0, batch, h) / torch.bincount(batch, minlength=n)[:, None]


def test_stochastic_frames_mean_converges_to_full_average():
    net = _Mlp()
    pos = _clouds(1, 20)[0]
    fa = FrameAveraging(net, "E3", irreps_out="0e + 1o", num_samples=1).eval()
    full = fa(pos)[0]
    reps = 4000  # one batch with the cloud repeated: one independent draw per copy
    many = pos.repeat(reps, 1)
    batch = torch.arange(reps).repeat_interleave(20)
    with torch.no_grad():
        samples = fa.train()(many, None, batch)
    assert fa.training and (samples - samples[0]).abs().max() > 1e-3  # the draws differ
    mean, std = samples.mean(0), samples.std(0)
    assert ((mean - full).abs() <= 5 * std / reps**0.5 + 1e-12).all()
    assert ((samples[:200].mean(0) - full).abs() > (mean - full).abs()).any()
    k4 = FrameAveraging(net, "E3", irreps_out="0e + 1o", num_samples=4).train()
    assert k4(many[:40], None, batch[:40]).shape == (2, 4)


def test_per_cloud_keywords_are_repeated_per_frame():
    net = _net(3, "seg", num_categories=2).eval()
    fa = FrameAveraging(net, "E3", irreps_out="1o").eval()
    pos = _clouds(2, 10)
    out = fa(pos, category=torch.tensor([0, 1]))
    assert out.shape == (2, 10, 3)
    assert_equivariant(fa, pos, group="E3", irreps_out="1o", category=torch.tensor([0, 1]))


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="group"):
        FrameAveraging(_net(1), "E2")
    with pytest.raises(ValueError, match="columns"):
        FrameAveraging(_net(4), irreps_out="1o").eval()(_clouds())
    with pytest.raises(ValueError, match="num_samples"):
        FrameAveraging(_net(1), num_samples=0)
