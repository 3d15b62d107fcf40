"""The exact float64 tables of equinets.gaunt against e3nn, sympy and mpmath."""

import math

import numpy as np
import pytest
import torch
from e3nn import o3

from equinets.gaunt import tables as T


@pytest.mark.parametrize("n", [1, 2, 5, 17, 33, 65])
def test_gauss_legendre_integrates_polynomials_of_degree_2n_minus_1_exactly(n):
    x, w = T.gauss_legendre(n)
    assert np.all(np.diff(x) > 0) and np.all(w > 0)
    for k in range(2 * n):
        exact = 2.0 / (k + 1) if k % 2 == 0 else 0.0
        assert abs((w * x**k).sum() - exact) < 1e-14
    x0, w0 = np.polynomial.legendre.leggauss(n)
    assert np.abs(x - x0).max() < 1e-14 and np.abs(w - w0).max() < 1e-14


def test_grid_size_is_the_minimal_exact_one():
    assert T.grid_size(12) == (7, 13)  # D = 12: floor(D/2)+1 rings, D+1 azimuths
    assert T.grid_size(13) == (7, 15)  # D + 1 = 14 raised to odd
    assert T.grid_size(0) == (1, 1)


def test_spherical_harmonics_equal_e3nn_up_to_l12():
    xyz = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = T.real_spherical_harmonics(12, xyz.numpy())
    theirs = o3.spherical_harmonics(list(range(13)), xyz, normalize=True, normalization="integral").numpy()
    assert np.abs(ours - theirs).max() < 1e-12


def test_spherical_harmonics_orthonormal_to_1e12_up_to_l32():
    L = 32
    n_beta, n_alpha = T.grid_size(2 * L)
    x, w = T.gauss_legendre(n_beta)
    a = 2 * math.pi * np.arange(n_alpha) / n_alpha
    s = np.sqrt(1 - x * x)
    pts = np.stack(np.broadcast_arrays(s[:, None] * np.sin(a), x[:, None], s[:, None] * np.cos(a)), -1).reshape(-1, 3)
    Y = T.real_spherical_harmonics(L, pts)  # (points, (L+1)^2)
    q = (w[:, None] * np.full(n_alpha, 2 * math.pi / n_alpha)).reshape(-1)
    gram = (Y * q[:, None]).T @ Y
    assert np.abs(gram - np.eye((L + 1) ** 2)).max() < 1e-12


@pytest.mark.parametrize("l", [16, 24, 32])
def test_spherical_harmonics_equal_mpmath_at_high_degree(l):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    rng = np.random.default_rng(l)
    pts = rng.normal(size=(3, 3))
    Y = T.real_spherical_harmonics(l, pts)
    for p, row in zip(pts, Y):
        p = p / np.linalg.norm(p)
        beta = mpmath.acos(mpmath.mpf(p[1]))  # polar angle from e3nn's y axis
        alpha = mpmath.atan2(mpmath.mpf(p[0]), mpmath.mpf(p[2]))
        for m in (-l, -l // 2 - 1, -3, 0, 1, l // 2, l - 1, l):
            c = mpmath.spherharm(l, abs(m), beta, alpha)  # complex, Condon-Shortley phase
            if m == 0:
                ref = c.real
            elif m > 0:
                ref = mpmath.sqrt(2) * (-1) ** m * c.real
            else:
                ref = mpmath.sqrt(2) * (-1) ** m * c.imag
            assert abs(float(ref) - row[l * l + l + m]) < 1e-12


def test_theta_fourier_series_reproduces_the_legendre_functions_on_the_torus():
    L = 40
    G = T.theta_fourier(L)
    th = np.linspace(0, 2 * np.pi, 53, endpoint=False)
    P = T.legendre_table(L, np.cos(th), np.sin(th))
    u = np.arange(-L, L + 1)
    series = np.einsum("mlu,ut->mlt", G, np.exp(1j * u[:, None] * th[None]))
    assert np.abs(series - P).max() < 1e-12


@pytest.mark.parametrize("L", [1, 4, 8])
def test_sh2f_has_the_papers_sparsity_and_reproduces_the_harmonics(L):
    y = T.sh2f(L)
    l, m = T.sh_index(L)
    u = np.arange(-L, L + 1)
    nz = np.argwhere(y != 0)
    for i, ui, vi in nz:
        uu, vv = u[ui], u[vi]
        assert abs(uu) <= l[i] and (uu - l[i]) % 2 == 0 and abs(vv) == abs(m[i])
    per_row = (y != 0).reshape(len(l), -1).sum(1)
    assert np.all(per_row <= 2 * (l + 1))
    assert per_row.sum() <= sum((k + 1) * (4 * k + 1) for k in range(L + 1))  # O(L^3) of (L+1)^2 (2L+1)^2
    # on theta in [0, pi] the series is the spherical harmonic at (sin t sin p, cos t, sin t cos p)
    rng = np.random.default_rng(0)
    th, ph = rng.uniform(0, np.pi, 20), rng.uniform(0, 2 * np.pi, 20)
    E = np.exp(1j * (u[None, :, None] * th[:, None, None] + u[None, None, :] * ph[:, None, None]))
    series = np.einsum("iuv,puv->pi", y, E)
    pts = np.stack([np.sin(th) * np.sin(ph), np.cos(th), np.sin(th) * np.cos(ph)], -1)
    assert np.abs(series.imag).max() < 1e-13
    assert np.abs(series.real - T.real_spherical_harmonics(L, pts)).max() < 1e-13


@pytest.mark.parametrize("L", [2, 6])
def test_f2sh_is_the_closed_form_back_projection(L):
    U = 2 * L
    z = T.f2sh(L, U)
    l, m = T.sh_index(L)
    v = np.arange(-L, L + 1)
    off = np.broadcast_to(np.abs(v)[None, None, :] != np.abs(m)[:, None, None], z.shape)
    assert not np.any(z[off])  # only v = +-m
    # back-projecting a harmonic's own 2D Fourier series gives the identity
    y = T.sh2f(L)
    H = np.zeros((len(l), 2 * U + 1, 2 * L + 1), complex)
    H[:, U - L: U + L + 1, :] = y
    assert np.abs(np.einsum("juv,iuv->ji", H, z) - np.eye(len(l))).max() < 1e-13
    # against quadrature of e^{i(u t + v p)} Y sin t dt dp: Gauss-Legendre in t on [0, pi] (smooth integrand)
    x, w = T.gauss_legendre(60)
    t = np.pi * (x + 1) / 2
    w = w * np.pi / 2 * np.sin(t)
    ph = 2 * np.pi * np.arange(41) / 41
    st, ct = np.sin(t)[:, None], np.cos(t)[:, None]
    pts = np.stack(np.broadcast_arrays(st * np.sin(ph), ct, st * np.cos(ph)), -1)
    Y = T.real_spherical_harmonics(L, pts)  # (40, 41, n)
    for uu, vv in [(0, 0), (3, 1), (-2, -2), (U, 0), (1, L), (-U + 1, 1)]:
        e = np.exp(1j * (uu * t[:, None] + vv * ph[None, :]))
        quad = np.einsum("ab,abi->i", w[:, None] * e * (2 * np.pi / 41), Y)
        assert np.abs(quad - z[:, U + uu, L + vv]).max() < 1e-12


def test_three_j_000_equals_sympy():
    sympy = pytest.importorskip("sympy.physics.wigner")
    for l1 in range(6):
        for l2 in range(6):
            for l3 in range(12):
                ref = float(sympy.wigner_3j(l1, l2, l3, 0, 0, 0))
                assert abs(T.three_j_000(l1, l2, l3) - ref) < 1e-14


def test_gaunt_c_matches_the_research_note_and_the_quadrature_of_e3nn_harmonics():
    for (l1, l2, l3), c in {(0, 0, 0): 0.28209, (1, 1, 0): 0.48860, (1, 1, 2): 0.69099, (2, 2, 2): 0.75393,
                            (4, 4, 8): 1.56656}.items():
        assert abs(T.gaunt_c(l1, l2, l3) - c) < 1e-5
    # Gaunt = c w3j, with the integral computed independently by quadrature of e3nn's harmonics
    l1, l2, l3 = 3, 2, 3
    t = T.grid_tables(l1, l2, l3)
    n_beta, n_alpha = len(t.w), len(t.alpha)
    s = np.sqrt(1 - t.cos_b**2)
    pts = np.stack(np.broadcast_arrays(s[:, None] * np.sin(t.alpha), t.cos_b[:, None], s[:, None] * np.cos(t.alpha)), -1)
    Y = o3.spherical_harmonics(list(range(4)), torch.as_tensor(pts.reshape(-1, 3)), True, normalization="integral")
    Y = Y.numpy()
    q = (t.w[:, None] * np.full(n_alpha, 2 * np.pi / n_alpha)).reshape(-1)
    G = np.einsum("p,pi,pj,pk->ijk", q, Y[:, 9:16], Y[:, 4:9], Y[:, 9:16])
    ref = T.gaunt_c(l1, l2, l3) * o3.wigner_3j(l1, l2, l3, dtype=torch.float64).numpy()
    assert np.abs(G - ref).max() < 1e-14 and n_beta == 5


def test_tables_are_cached_and_read_only():
    assert T.grid_tables(2, 3, 4) is T.grid_tables(2, 3, 4)
    assert T.sh2f(5) is T.sh2f(5)
    with pytest.raises(ValueError):
        T.sh2f(3)[0, 0, 0] = 1.0
    a = T.on_device(("test", 1), (np.ones(3),), torch.device("cpu"), torch.float32)
    b = T.on_device(("test", 1), (np.ones(3),), torch.device("cpu"), torch.float32)
    assert a[0] is b[0] and a[0].dtype == torch.float32
