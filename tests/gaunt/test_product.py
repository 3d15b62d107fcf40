"""gaunt_product against the independent reference c(l1, l2, l3) * o3.wigner_3j, e3nn's rotations and itself."""

import contextlib
import math
from functools import partial

import pytest
import torch
from e3nn import o3

from equinets.gaunt import _thresholds, gaunt_product, gaunt_product_all_parities, sh_irreps
from equinets.gaunt import functional as F
from equinets.gaunt.tables import gaunt_c

# every implementation: the two public torch routes and both grid methods (dense GEMMs, separable transforms)
IMPLS = {
    "grid": partial(gaunt_product, route="grid"),
    "fourier": partial(gaunt_product, route="fourier"),
    "grid_dense": lambda a, b, lo=None, normalization="component": _internal(F._grid_dense, a, b, lo, normalization),
    "grid_sep": lambda a, b, lo=None, normalization="component": _internal(F._grid_sep, a, b, lo, normalization),
    "grid_sep_fft": lambda a, b, lo=None, normalization="component": _internal(
        partial(F._grid_sep, azimuth="fft"), a, b, lo, normalization),
}


def _internal(fn, a, b, lo, normalization):
    L1, L2 = math.isqrt(a.shape[-1]) - 1, math.isqrt(b.shape[-1]) - 1
    lo = L1 + L2 if lo is None else lo
    return fn(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]), L1, L2, lo, normalization)


def reference(x1, x2, lmax_out):
    """Integral-normalised Gaunt product from c(l1, l2, l3) * o3.wigner_3j, path by path (float64)."""
    L1, L2 = math.isqrt(x1.shape[-1]) - 1, math.isqrt(x2.shape[-1]) - 1
    out = x1.new_zeros(x1.shape[0], (lmax_out + 1) ** 2)
    for l1 in range(L1 + 1):
        for l2 in range(L2 + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax_out) + 1):
                if (l1 + l2 + l3) % 2:
                    continue
                w = gaunt_c(l1, l2, l3) * o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
                out[:, l3**2:(l3 + 1) ** 2] += torch.einsum("ijk,bi,bj->bk", w, x1[:, l1**2:(l1 + 1) ** 2],
                                                            x2[:, l2**2:(l2 + 1) ** 2])
    return out


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("L1,L2,lo", [(1, 1, 2), (2, 3, 5), (4, 2, 3), (3, 8, 8), (8, 5, 4), (8, 8, 16), (6, 6, 0)])
def test_exact_against_c_times_wigner_3j(impl, L1, L2, lo):
    g = torch.Generator().manual_seed(L1 * 100 + L2 * 10 + lo)
    x1 = torch.randn(4, (L1 + 1) ** 2, dtype=torch.float64, generator=g)
    x2 = torch.randn(4, (L2 + 1) ** 2, dtype=torch.float64, generator=g)
    out = IMPLS[impl](x1, x2, lo, normalization="integral")
    assert out.shape == (4, (lo + 1) ** 2) and out.dtype == torch.float64
    assert (out - reference(x1, x2, lo)).abs().max() < 1e-10


def test_float32_agrees_with_float64():
    x1, x2 = torch.randn(8, 49, dtype=torch.float64), torch.randn(8, 49, dtype=torch.float64)
    for impl in IMPLS.values():
        o64 = impl(x1, x2)
        o32 = impl(x1.float(), x2.float())
        assert o32.dtype == torch.float32
        assert ((o32.double() - o64).norm() / o64.norm()) < 1e-5


def _rand_o3(det):
    R = o3.rand_matrix(dtype=torch.float64)
    return R if det > 0 else -R


@contextlib.contextmanager
def float64_default():
    """e3nn builds its constants (Wigner D generators, Clebsch-Gordan tables) in the default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def D_of(irreps, R):
    """e3nn's Wigner D of ``irreps`` at ``R``, exact in float64."""
    with float64_default():
        return o3.Irreps(irreps).D_from_matrix(R)


@pytest.mark.parametrize("route", ["grid", "fourier"])
@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("p1,p2", [(1, 1), (1, -1), (-1, -1)])
def test_equivariant_to_rotations_and_inversion_with_the_stated_parities(route, det, p1, p2):
    L1, L2, lo = 3, 2, 4
    ir1, ir2, iro = o3.Irreps(sh_irreps(L1, p1)), o3.Irreps(sh_irreps(L2, p2)), o3.Irreps(sh_irreps(lo, p1 * p2))
    R = _rand_o3(det)
    x1, x2 = torch.randn(5, ir1.dim, dtype=torch.float64), torch.randn(5, ir2.dim, dtype=torch.float64)
    D1, D2, Do = D_of(ir1, R), D_of(ir2, R), D_of(iro, R)
    lhs = gaunt_product(x1 @ D1.T, x2 @ D2.T, lo, route=route)
    rhs = gaunt_product(x1, x2, lo, route=route) @ Do.T
    assert (lhs - rhs).abs().max() < 1e-10
    # float32: relative error
    lhs32 = gaunt_product((x1 @ D1.T).float(), (x2 @ D2.T).float(), lo, route=route)
    assert ((lhs32.double() - rhs).norm() / rhs.norm()) < 1e-5


def test_spherical_harmonics_irreps_match_e3nn():
    assert o3.Irreps(sh_irreps(3)) == o3.Irreps.spherical_harmonics(3)
    assert o3.Irreps(sh_irreps(2, -1)) == o3.Irreps("0o + 1e + 2o")
    with pytest.raises(ValueError, match="p_val"):
        sh_irreps(2, 0)


def test_equivariant_at_degree_eight_with_e3nn_sh_irreps():
    L = 8
    irreps, iro = o3.Irreps.spherical_harmonics(L), o3.Irreps.spherical_harmonics(2 * L)
    R = o3.rand_matrix(dtype=torch.float64)
    x1, x2 = torch.randn(3, irreps.dim, dtype=torch.float64), torch.randn(3, irreps.dim, dtype=torch.float64)
    D, Do = D_of(irreps, R), D_of(iro, R)
    for route in ("grid", "fourier"):
        err = (gaunt_product(x1 @ D.T, x2 @ D.T, route=route) - gaunt_product(x1, x2, route=route) @ Do.T).abs().max()
        assert err < 1e-10


def test_product_of_functions_in_every_normalization():
    # sum_i out_i Y_i(s) == f1(s) f2(s) at random points, with e3nn's harmonics in the same normalization
    L1, L2 = 3, 4
    s = torch.randn(50, 3, dtype=torch.float64)
    x1, x2 = torch.randn(2, 16, dtype=torch.float64), torch.randn(2, 25, dtype=torch.float64)
    for norm in ("component", "integral", "norm"):
        Y = partial(o3.spherical_harmonics, normalize=True, normalization=norm)
        f1 = x1 @ Y(list(range(L1 + 1)), s).T
        f2 = x2 @ Y(list(range(L2 + 1)), s).T
        for impl in IMPLS.values():
            out = impl(x1, x2, normalization=norm)
            assert (out @ Y(list(range(L1 + L2 + 1)), s).T - f1 * f2).abs().max() < 1e-10


def test_sqrt_4pi_between_integral_and_component():
    x1, x2 = torch.randn(3, 9, dtype=torch.float64), torch.randn(3, 16, dtype=torch.float64)
    for route in ("grid", "fourier"):
        comp = gaunt_product(x1, x2, normalization="component", route=route)
        integ = gaunt_product(x1, x2, normalization="integral", route=route)
        assert (comp - math.sqrt(4 * math.pi) * integ).abs().max() < 1e-12


def test_constant_input_scales_integral_and_is_identity_in_component():
    x = torch.randn(4, 25, dtype=torch.float64)
    y0 = torch.randn(4, 1, dtype=torch.float64)
    for route in ("grid", "fourier"):
        integ = gaunt_product(x, y0, normalization="integral", route=route)
        assert (integ - y0 * x / math.sqrt(4 * math.pi)).abs().max() < 1e-12
        assert (gaunt_product(x, y0, normalization="component", route=route) - y0 * x).abs().max() < 1e-12


def test_symmetric_and_odd_paths_absent():
    x1, x2 = torch.randn(6, 16, dtype=torch.float64), torch.randn(6, 16, dtype=torch.float64)
    for route in ("grid", "fourier"):
        assert (gaunt_product(x1, x2, route=route) - gaunt_product(x2, x1, route=route)).abs().max() < 1e-12
    # 1o x 1o: only 0e and 2e, no 1 (the cross product is an odd-sum path)
    v1, v2 = torch.zeros(6, 4, dtype=torch.float64), torch.zeros(6, 4, dtype=torch.float64)
    v1[:, 1:], v2[:, 1:] = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    out = gaunt_product(v1, v2)
    assert out[:, 1:4].abs().max() < 1e-14 and out[:, 4:].abs().max() > 1e-3


def test_matches_e3nn_tensor_product_on_the_gaunt_paths():
    # e3nn TensorProduct, Gaunt paths only, path weights c^2 (e3nn takes the square root), 'none' normalisations
    L = 3
    irreps, iro = o3.Irreps.spherical_harmonics(L), o3.Irreps.spherical_harmonics(2 * L)
    instr = [(i1, i2, i3, "uuu", False, gaunt_c(l1, l2, l3) ** 2)
             for i1, (_, (l1, _)) in enumerate(irreps) for i2, (_, (l2, _)) in enumerate(irreps)
             for i3, (_, (l3, _)) in enumerate(iro) if abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0]
    with float64_default():
        tp = o3.TensorProduct(irreps, irreps, iro, instr, irrep_normalization="none", path_normalization="none")
    x1, x2 = torch.randn(5, 16, dtype=torch.float64), torch.randn(5, 16, dtype=torch.float64)
    ref = tp(x1, x2)
    assert (gaunt_product(x1, x2, normalization="integral") - ref).abs().max() < 1e-12


def test_broadcasts_leading_axes_and_handles_empty_batches():
    x1 = torch.randn(3, 1, 2, 9, dtype=torch.float64)
    x2 = torch.randn(4, 1, 16, dtype=torch.float64)
    for route in ("grid", "fourier"):
        out = gaunt_product(x1, x2, 3, route=route)
        assert out.shape == (3, 4, 2, 16)
        loop = gaunt_product(x1[1, 0, 1], x2[2, 0], 3, route=route)
        assert (out[1, 2, 1] - loop).abs().max() < 1e-13
        assert gaunt_product(torch.randn(0, 9), torch.randn(0, 4), route=route).shape == (0, 16)
    assert gaunt_product(torch.randn(9), torch.randn(4)).shape == (16,)


@pytest.mark.parametrize("impl,n1,n2", [("grid_dense", 9, 4), ("grid_sep", 9, 4), ("grid_sep", 9, 9),
                                        ("grid_sep_fft", 4, 4), ("fourier", 4, 4), ("fourier", 9, 1)])
def test_gradcheck_and_gradgradcheck(impl, n1, n2):
    fn = IMPLS[impl]
    x1 = torch.randn(1, n1, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(1, n2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, 2), (x1, x2))
    assert torch.autograd.gradgradcheck(lambda a, b: fn(a, b, 2), (x1, x2))


@pytest.mark.parametrize("n1,n2,lo", [(49, 49, 12), (49, 49, 5), (16, 36, 7)])
def test_separable_route_gradients_equal_the_dense_route_with_either_or_both_inputs(n1, n2, lo):
    """The analytic backward (one joint projection for equal degrees, one per input otherwise, only what is
    needed) against autograd through the dense-GEMM route; the no-grad path (the half-circle azimuthal transforms)
    gives the autograd forward (the full circle) to float64 round-off."""
    g = torch.Generator().manual_seed(n1 + n2 + lo)
    x1, x2 = torch.randn(5, n1, dtype=torch.float64, generator=g), torch.randn(5, n2, dtype=torch.float64, generator=g)
    go = torch.randn(5, (lo + 1) ** 2, dtype=torch.float64, generator=g)
    for need in ((True, True), (True, False), (False, True)):
        grads = []
        for impl in ("grid_sep", "grid_dense"):
            a, b = x1.clone().requires_grad_(need[0]), x2.clone().requires_grad_(need[1])
            out = IMPLS[impl](a, b, lo)
            out.backward(go)
            grads.append((out.detach(), a.grad, b.grad))
        (o1, a1, b1), (o2, a2, b2) = grads
        assert (o1 - o2).abs().max() < 1e-12
        for u, v, n in ((a1, a2, need[0]), (b1, b2, need[1])):
            assert (u is None and v is None) if not n else (u - v).abs().max() < 1e-12
    with torch.no_grad():
        assert (IMPLS["grid_sep"](x1, x2, lo) - o1).abs().max() < 1e-12


def test_no_grad_forward_with_reused_buffers_returns_independent_exact_outputs():
    """The CPU no-grad forward keeps its intermediates in per-thread buffers: outputs stay untouched by
    later calls (any size, dtype, thread) and equal the fresh-tensor forward bit for bit."""
    import threading

    g = torch.Generator().manual_seed(7)
    xs = [(torch.randn(B, (L + 1) ** 2, dtype=dt, generator=g), torch.randn(B, (L + 1) ** 2, dtype=dt, generator=g))
          for L, B, dt in ((6, 64, torch.float64), (6, 5, torch.float32), (8, 33, torch.float64))]
    th = _thresholds.THRESHOLDS["cpu"]["grid_dense_max_D"]
    assert all(4 * (math.isqrt(a.shape[1]) - 1) > th for a, _ in xs), "every case must take the separable route (D = 4L)"
    with torch.no_grad():
        outs = [gaunt_product(a, b, route="grid") for a, b in xs]
        for _ in range(2):  # later calls of other sizes must not write into earlier outputs
            [gaunt_product(b, a, route="grid") for a, b in xs]
        for (a, b), out in zip(xs, outs):
            L = math.isqrt(a.shape[1]) - 1
            p = F._sep_plan(L, L, 2 * L, "component", a.device, a.dtype)
            assert torch.equal(out, F._sep_forward_half(a, b, p))
            dense = IMPLS["grid_dense"](a.double(), b.double(), 2 * L).to(a.dtype)
            assert torch.allclose(out, dense, rtol=0, atol=1e-11 if a.dtype == torch.float64 else 1e-4)
        if xs[0][0].dtype == torch.float64:
            assert (outs[0] - reference(*xs[0], 12) * math.sqrt(4 * math.pi)).abs().max() < 1e-10
        res, errs = {}, []

        def work(i):
            try:
                a, b = xs[0][0] * (i + 1), xs[0][1]
                res[i] = [gaunt_product(a, b, route="grid") for _ in range(20)][-1]
            except Exception as e:  # pragma: no cover - reported below
                errs.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert not errs
        for i in range(3):
            assert (res[i] - (i + 1) * outs[0]).abs().max() < 1e-11


def test_backward_is_equivariant():
    irreps = o3.Irreps.spherical_harmonics(3)
    R = o3.rand_matrix(dtype=torch.float64)
    D = D_of(irreps, R)
    x1, x2 = torch.randn(4, 16, dtype=torch.float64), torch.randn(4, 16, dtype=torch.float64)

    def grad(a, b):
        a = a.clone().requires_grad_()
        (gaunt_product(a, b, route="grid") ** 2).sum().backward()  # an invariant loss
        return a.grad

    assert (grad(x1 @ D.T, x2 @ D.T) - grad(x1, x2) @ D.T).abs().max() < 1e-10


def test_all_parities_combines_the_four_couplings():
    L = 2
    x1p, x1m, x2p, x2m = (torch.randn(3, 9, dtype=torch.float64) for _ in range(4))
    out_p, out_m = gaunt_product_all_parities((x1p, x1m), (x2p, x2m))
    G = gaunt_product
    assert (out_p - G(x1p, x2p) - G(x1m, x2m)).abs().max() < 1e-12
    assert (out_m - G(x1p, x2m) - G(x1m, x2p)).abs().max() < 1e-12
    # O(3)-equivariant with the stated parities
    R = -o3.rand_matrix(dtype=torch.float64)
    Dp, Dm = D_of(sh_irreps(L, 1), R), D_of(sh_irreps(L, -1), R)
    Dop, Dom = D_of(sh_irreps(2 * L, 1), R), D_of(sh_irreps(2 * L, -1), R)
    rp, rm = gaunt_product_all_parities((x1p @ Dp.T, x1m @ Dm.T), (x2p @ Dp.T, x2m @ Dm.T))
    assert (rp - out_p @ Dop.T).abs().max() < 1e-10 and (rm - out_m @ Dom.T).abs().max() < 1e-10


def test_auto_route_equals_the_grid_route_and_triton_needs_cuda_or_the_interpreter():
    x1, x2 = torch.randn(3, 16), torch.randn(3, 16)
    assert torch.allclose(gaunt_product(x1, x2), gaunt_product(x1, x2, route="grid"), atol=1e-5)
    try:
        import triton  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="gpu"):
            gaunt_product(x1, x2, route="triton")
    else:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("TRITON_INTERPRET", raising=False)
            with pytest.raises(RuntimeError, match="x1 is on cpu.*TRITON_INTERPRET=1"):
                gaunt_product(x1, x2, route="triton")


def test_torch_compile_fullgraph_without_graph_breaks():
    x1, x2 = torch.randn(4, 9), torch.randn(4, 4)
    for route in ("grid", "fourier"):
        eager = gaunt_product(x1, x2, route=route)  # builds the tables; compiled code reads them from the cache
        torch._dynamo.reset()
        compiled = torch.compile(partial(gaunt_product, route=route), fullgraph=True)
        assert torch.allclose(compiled(x1, x2), eager, atol=1e-5)


@pytest.mark.parametrize("n2", [36, 49])
def test_torch_compile_fullgraph_separable_route_with_gradients(n2):
    """The separable grid route (D = 6 + L2 + lmax_out > grid_dense_max_D) under torch.compile(fullgraph=True):
    the half-circle forward without gradients, and the autograd function with its analytic backward."""
    g = torch.Generator().manual_seed(n2)
    x1, x2 = torch.randn(4, 49, generator=g), torch.randn(4, n2, generator=g)
    assert 6 + 2 * (math.isqrt(n2) - 1) + 6 > _thresholds.THRESHOLDS["cpu"]["grid_dense_max_D"]
    a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()
    eager = gaunt_product(a, b, route="grid")
    eager.square().sum().backward()
    torch._dynamo.reset()
    compiled = torch.compile(partial(gaunt_product, route="grid"), fullgraph=True, dynamic=False)
    with torch.no_grad():
        assert torch.allclose(compiled(x1, x2), eager.detach(), atol=1e-5)
    c, d = x1.clone().requires_grad_(), x2.clone().requires_grad_()
    out = compiled(c, d)
    out.square().sum().backward()
    assert torch.allclose(out.detach(), eager.detach(), atol=1e-5)
    assert torch.allclose(c.grad, a.grad, atol=1e-4) and torch.allclose(d.grad, b.grad, atol=1e-4)


@pytest.mark.parametrize("L1, L2, lo", [(1, 1, 1), (1, 0, 1), (1, 1, 2), (0, 1, 1), (2, 1, 1), (2, 2, 0)])
def test_tiny_dense_products_batch_last_match_the_reference_with_gradients(L1, L2, lo):
    """D = L1 + L2 + lmax_out <= 4 (at most 15 grid points): the dense route multiplies batch-last; values
    against c x wigner_3j (float64, 1e-12) and gradcheck through the route."""
    g = torch.Generator().manual_seed(10 * L1 + L2 + lo)
    x1 = torch.randn(7, (L1 + 1) ** 2, dtype=torch.float64, generator=g)
    x2 = torch.randn(7, (L2 + 1) ** 2, dtype=torch.float64, generator=g)
    assert F._grid_dense_tensors(L1, L2, lo, "component", x1.device, x1.dtype)[0].shape[1] <= F._DENSE_BATCH_LAST_MAX_GRID
    out = IMPLS["grid_dense"](x1, x2, lo)
    assert (out - reference(x1, x2, lo) * math.sqrt(4 * math.pi)).abs().max() < 1e-12
    assert torch.autograd.gradcheck(lambda a, b: IMPLS["grid_dense"](a, b, lo),
                                    (x1.clone().requires_grad_(), x2.clone().requires_grad_()))


def test_no_grad_forward_keeps_a_bounded_set_of_buffer_views_and_stays_exact(monkeypatch):
    """The scratch forward's views are kept per (plan, batch, dtype, inference mode), at most ``_SCRATCH_VIEWS_MAX``
    sets; batches that grow the buffers drop the sets of the old ones; kept sets are reused (batches repeat, one
    from before a growth); calls under ``torch.inference_mode`` do not break later ones; every output equals the
    fresh-tensor forward bit for bit."""
    import threading

    monkeypatch.setattr(F, "_SCRATCH", threading.local())  # a fresh thread state, whatever ran before
    g = torch.Generator().manual_seed(11)
    p = F._sep_plan(6, 6, 12, "component", torch.device("cpu"), torch.float64)
    built = []
    real = F._ScratchViews
    monkeypatch.setattr(F, "_ScratchViews", lambda **kw: built.append(kw["xt"].shape[1] // 2) or real(**kw))
    batches = [40, 3, 3, 2, 40, *range(5, 5 + F._SCRATCH_VIEWS_MAX + 4), 97, 3, 97, 4]
    for i, B in enumerate(batches):
        a, b = (torch.randn(B, 49, dtype=torch.float64, generator=g) for _ in range(2))
        with torch.inference_mode() if i in (3, 25) else torch.no_grad():  # 25: batch 97 grows buffers in it
            out = F._sep_forward_scratch(a, b, p, check=True)
            assert torch.equal(out, F._sep_forward_half(a, b, p))
        assert len(F._SCRATCH.views) <= F._SCRATCH_VIEWS_MAX
    assert built[:3] == [40, 3, 2]  # 3 and 40 reused; 2 (under inference mode) in buffers of its own
    assert batches[25] == 97 and built.count(97) == 2  # once under inference mode, once without
    assert built.count(3) == 2  # 3 rebuilt: the bound evicted it
    for key, (_, v) in F._SCRATCH.views.items():  # every kept view lives in the current buffers of its kind
        S0, S1 = F._SCRATCH.bufs[key[2:]]
        assert v.xt.untyped_storage().data_ptr() == S0.untyped_storage().data_ptr()
        assert v.X.untyped_storage().data_ptr() == S1.untyped_storage().data_ptr()
