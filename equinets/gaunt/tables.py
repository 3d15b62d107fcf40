"""Exact float64 tables of the Gaunt tensor product: the one table builder of :mod:`equinets.gaunt`.

Everything here is computed once per size in float64 with NumPy (``functools.lru_cache`` on the
sizes) and moved to a device and dtype on use (:func:`on_device`, a small per-(device, dtype) cache).

**Basis.** e3nn's real spherical harmonics (``o3.spherical_harmonics``, ``normalization="integral"``):
the polar axis is ``y``; a unit vector is ``(sin b sin a, cos b, sin b cos a)`` and

.. math::

    Y_{l m}(a, b) = \\bar P_l^{|m|}(\\cos b)\\, h_m(a), \\qquad
    h_0 = 1,\\; h_{m>0} = \\sqrt2 \\cos(m a),\\; h_{m<0} = \\sqrt2 \\sin(|m| a),

with :math:`\\bar P_l^m` the associated Legendre functions without the Condon-Shortley phase,
normalised so that the :math:`Y_{lm}` are orthonormal on the sphere. :math:`\\bar P` comes from the
standard stable three-term recurrence on normalised functions (:func:`legendre_table`), accurate in
float64 at any degree used here (e3nn's own harmonics stop at l = 12 and lose float64 accuracy near
l = 16). Coefficients are stored in e3nn's layout: degree ``l`` occupies ``[l**2, (l+1)**2)`` with
``m = -l..l``.

**Grid** (:func:`grid_tables`): Gauss-Legendre nodes in ``cos b`` (``n_beta = D // 2 + 1``) times a
uniform azimuth (``n_alpha = D + 1``, raised to odd for the real FFT) integrates every polynomial of
degree ``D = L1 + L2 + L_out`` on the sphere exactly: the minimal exact grid of the product.

**2D Fourier basis** (Luo, Chen, Krishnapriyan, ICLR 2024, Sec. 3.2): on the torus
``(theta, phi) in [0, 2 pi)^2`` (``theta = b``, ``phi = a``, ``sin theta`` signed) each harmonic is a
finite trigonometric polynomial,

.. math::

    Y_{lm}(\\theta, \\phi) = \\sum_{u, v} y^{u, v}_{lm}\\, e^{i(u\\theta + v\\phi)},
    \\qquad |u| \\le l,\\; u \\equiv l \\pmod 2,\\; v = \\pm m,

(:func:`sh2f`, built by running the Legendre recurrence on Fourier coefficients, where ``cos theta``
and ``sin theta`` act as shifts: exact, no sampling), and the back-projection

.. math::

    z^{u, v}_{lm} = \\int_{S^2} e^{i(u\\theta + v\\phi)} Y_{lm}\\, d\\Omega

(:func:`f2sh`) is closed form from :math:`\\int_0^\\pi e^{ik\\theta}\\sin\\theta\\, d\\theta =
(1 + (-1)^k)/(1 - k^2)` for :math:`k \\ne \\pm 1` and :math:`\\pm i\\pi/2` for :math:`k = \\pm 1`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["gauss_legendre", "legendre_table", "real_spherical_harmonics", "grid_size", "grid_tables",
           "GridTables", "theta_fourier", "sh2f", "f2sh", "fourier_size", "fourier_tables", "FourierTables",
           "sh_index", "on_device", "three_j_000", "gaunt_c", "MAX_DEGREE"]

#: Largest input degree the tables are built for (the output goes to twice that).
MAX_DEGREE = 64


def _ro(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@lru_cache(maxsize=None)
def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes (ascending) and weights on ``[-1, 1]``, float64, read-only.

    ``numpy.polynomial.legendre.leggauss`` (Golub-Welsch plus one Newton step), refined by one more
    Newton step on the three-term recurrence; exact for polynomials of degree ``<= 2 n - 1``.

    >>> x, w = gauss_legendre(3)
    >>> bool(abs(w.sum() - 2) < 1e-15), bool(abs((w * x**4).sum() - 2 / 5) < 1e-15)
    (True, True)
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    x, _ = np.polynomial.legendre.leggauss(n)
    # one Newton step on P_n, and weights from P_n' (Abramowitz-Stegun 25.4.29)
    p0, p1 = np.ones_like(x), x.copy()
    for k in range(2, n + 1):
        p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
    dp = n * (x * p1 - p0) / (x * x - 1)
    x = x - p1 / dp
    p0, p1 = np.ones_like(x), x.copy()
    for k in range(2, n + 1):
        p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
    dp = n * (x * p1 - p0) / (x * x - 1)
    w = 2.0 / ((1 - x * x) * dp * dp)
    return _ro(x), _ro(w)


def legendre_table(lmax: int, cos_b: np.ndarray, sin_b: np.ndarray | None = None) -> np.ndarray:
    """Normalised associated Legendre functions :math:`\\bar P_l^m(\\cos b)`, ``m >= 0``, no Condon-Shortley phase.

    Returns ``P`` of shape ``(lmax + 1 [m], lmax + 1 [l], *cos_b.shape)``, zero for ``l < m``, with
    :math:`\\bar P_l^m(\\cos b)\\, h_m(a)` orthonormal on the sphere. ``sin_b`` defaults to
    ``sqrt(1 - cos_b**2)``; pass a signed one to continue onto the torus (``b`` in ``[pi, 2 pi)``).
    Recurrence (stable on normalised functions):

    .. math::

        \\bar P_0^0 = 1/\\sqrt{4\\pi},\\quad \\bar P_m^m = \\sqrt{(2m+1)/(2m)}\\, \\sin b\\, \\bar P_{m-1}^{m-1},\\quad
        \\bar P_l^m = a_{lm} (\\cos b\\, \\bar P_{l-1}^m - b_{lm} \\bar P_{l-2}^m),

    :math:`a_{lm} = \\sqrt{(4l^2-1)/(l^2-m^2)}`, :math:`b_{lm} = \\sqrt{((l-1)^2-m^2)/(4(l-1)^2-1)}`.

    >>> P = legendre_table(1, np.array([1.0]))
    >>> bool(abs(P[0, 1, 0] - math.sqrt(3 / (4 * math.pi))) < 1e-15)
    True
    """
    cos_b = np.asarray(cos_b, dtype=np.float64)
    sin_b = np.sqrt(np.clip(1.0 - cos_b * cos_b, 0.0, None)) if sin_b is None else np.asarray(sin_b, np.float64)
    P = np.zeros((lmax + 1, lmax + 1) + cos_b.shape)
    pmm = np.full(cos_b.shape, 1.0 / math.sqrt(4 * math.pi))
    for m in range(lmax + 1):
        if m > 0:
            pmm = math.sqrt((2 * m + 1) / (2 * m)) * sin_b * pmm
        P[m, m] = pmm
        if m + 1 <= lmax:
            P[m, m + 1] = math.sqrt(2 * m + 3) * cos_b * pmm
        for l in range(m + 2, lmax + 1):
            a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
            P[m, l] = a * (cos_b * P[m, l - 1] - b * P[m, l - 2])
    return P


def sh_index(lmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Degree ``l`` and order ``m`` of each of the ``(lmax + 1)**2`` coefficients in e3nn's layout.

    >>> [a.tolist() for a in sh_index(1)]
    [[0, 1, 1, 1], [0, -1, 0, 1]]
    """
    l = np.repeat(np.arange(lmax + 1), 2 * np.arange(lmax + 1) + 1)
    m = np.concatenate([np.arange(-k, k + 1) for k in range(lmax + 1)])
    return l, m


def real_spherical_harmonics(lmax: int, xyz: np.ndarray) -> np.ndarray:
    """e3nn's real spherical harmonics (``normalization="integral"``) of every degree ``<= lmax``, float64.

    ``xyz``: ``(..., 3)`` non-zero vectors (normalised here). Returns ``(..., (lmax + 1)**2)`` in e3nn's
    layout; equal to ``o3.spherical_harmonics(range(lmax + 1), xyz, True, normalization="integral")``
    where e3nn has them (l <= 12), and accurate in float64 at any degree.

    >>> Y = real_spherical_harmonics(1, np.array([0.0, 1.0, 0.0]))
    >>> np.round(Y * math.sqrt(4 * math.pi / 3), 12).tolist()[1:]
    [0.0, 1.0, 0.0]
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    xyz = xyz / np.linalg.norm(xyz, axis=-1, keepdims=True)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    P = legendre_table(lmax, y, np.hypot(x, z))
    alpha = np.arctan2(x, z)
    l, m = sh_index(lmax)
    ang = np.abs(m)[(...,) + (None,) * alpha.ndim] * alpha
    h = np.where((m > 0)[(...,) + (None,) * alpha.ndim], math.sqrt(2) * np.cos(ang),
                 np.where((m < 0)[(...,) + (None,) * alpha.ndim], math.sqrt(2) * np.sin(ang), 1.0))
    Y = P[np.abs(m), l] * h
    return np.moveaxis(Y, 0, -1)


# ----------------------------------------------------------------------------------------------- grid


def grid_size(D: int) -> tuple[int, int]:
    """``(n_beta, n_alpha)`` of the minimal exact grid for spherical polynomials of degree ``D``.

    ``n_beta = D // 2 + 1`` Gauss-Legendre rings; ``n_alpha = D + 1`` azimuths, raised to the next odd
    number so that the real FFT over the azimuth has no Nyquist bin.

    >>> grid_size(12), grid_size(13)
    ((7, 13), (7, 15))
    """
    n_alpha = D + 1
    return D // 2 + 1, n_alpha + (1 - n_alpha % 2)


class GridTables(NamedTuple):
    """Tables of the grid route for inputs of degrees ``L1, L2`` and output degree ``L_out`` (float64 NumPy).

    Attributes:
        cos_b, w: Gauss-Legendre nodes in ``cos b`` and weights, ``(n_beta,)``.
        alpha: azimuths ``2 pi k / n_alpha``, ``(n_alpha,)``.
        P: ``(Lmax + 1 [|m|], Lmax + 1 [l], n_beta)`` normalised Legendre values, ``Lmax = max(L1, L2, L_out)``.
        Y1, Y2: dense ``((L + 1)**2, n_beta * n_alpha)`` harmonics at the grid points (the dense-GEMM variant).
        Wout: dense ``(n_beta * n_alpha, (L_out + 1)**2)`` harmonics times the quadrature weights.
    """

    cos_b: np.ndarray
    w: np.ndarray
    alpha: np.ndarray
    P: np.ndarray
    Y1: np.ndarray
    Y2: np.ndarray
    Wout: np.ndarray


def _grid_harmonics(lmax: int, P: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    l, m = sh_index(lmax)
    am = np.abs(m)[:, None] * alpha[None, :]
    h = np.where((m > 0)[:, None], math.sqrt(2) * np.cos(am), np.where((m < 0)[:, None], math.sqrt(2) * np.sin(am), 1.0))
    return (P[np.abs(m), l][:, :, None] * h[:, None, :]).reshape(len(l), -1)  # ((lmax+1)^2, n_beta * n_alpha)


@lru_cache(maxsize=64)
def grid_tables(L1: int, L2: int, L_out: int) -> GridTables:
    """The Gauss-Legendre x uniform grid of the product of degrees ``L1`` and ``L2`` projected to ``L_out``.

    >>> t = grid_tables(2, 2, 4)
    >>> t.w.shape, t.alpha.shape, t.Y1.shape, t.Wout.shape
    ((5,), (9,), (9, 45), (45, 25))
    """
    n_beta, n_alpha = grid_size(L1 + L2 + L_out)
    x, w = gauss_legendre(n_beta)
    alpha = 2 * math.pi * np.arange(n_alpha) / n_alpha
    Lmax = max(L1, L2, L_out)
    P = legendre_table(Lmax, x)
    Y1 = _grid_harmonics(L1, P, alpha)
    Y2 = Y1 if L2 == L1 else _grid_harmonics(L2, P, alpha)
    Yo = _grid_harmonics(L_out, P, alpha)
    quad = (w[:, None] * np.full(n_alpha, 2 * math.pi / n_alpha)[None, :]).reshape(-1)
    Wout = (Yo * quad[None, :]).T.copy()
    return GridTables(*(_ro(a) for a in (x, w, alpha, P, Y1, Y2, Wout)))


# -------------------------------------------------------------------------------------------- fourier


@lru_cache(maxsize=None)
def theta_fourier(lmax: int) -> np.ndarray:
    """Fourier coefficients in ``theta`` of :math:`\\bar P_l^m(\\cos\\theta)` on the torus (``sin theta`` signed).

    Returns complex ``G`` of shape ``(lmax + 1 [m], lmax + 1 [l], 2 lmax + 1 [u = -lmax..lmax])`` with
    :math:`\\bar P_l^m(\\cos\\theta) = \\sum_u G[m, l, u] e^{iu\\theta}`. It is sampled with the
    stable recurrence of :func:`legendre_table` at ``2 lmax + 1`` equispaced ``theta`` and transformed
    by an FFT in float64: exact up to rounding, since the band limit ``lmax`` is below the Nyquist
    frequency (no aliasing). (Running the recurrence on the coefficients themselves, with ``cos`` and
    ``sin`` as shifts, is exact in exact arithmetic but amplifies rounding near the poles: 2e-9 at
    l = 40.) The support ``|u| <= l``, ``u = l (mod 2)`` and the phase (real for even ``m``, imaginary
    for odd ``m``) are asserted to 1e-13 and then enforced exactly.

    >>> G = theta_fourier(1)  # P_1^0 = sqrt(3 / 4 pi) cos(theta)
    >>> np.round(G[0, 1].real / math.sqrt(3 / (4 * math.pi)), 12).tolist()
    [0.5, 0.0, 0.5]
    """
    n = 2 * lmax + 1
    theta = 2 * math.pi * np.arange(n) / n
    P = legendre_table(lmax, np.cos(theta), np.sin(theta))  # (m, l, n): the stable pointwise recurrence
    G = np.fft.fftshift(np.fft.fft(P, axis=-1) / n, axes=-1)  # u = -lmax..lmax; exact: band limit lmax < n / 2
    u = np.arange(-lmax, lmax + 1)
    ms, ls = np.meshgrid(np.arange(lmax + 1), np.arange(lmax + 1), indexing="ij")
    support = (np.abs(u)[None, None] <= ls[..., None]) & ((u[None, None] - ls[..., None]) % 2 == 0) & (ls >= ms)[..., None]
    scale = max(1.0, float(np.abs(G).max()))
    assert np.abs(G[~support]).max(initial=0.0) < 1e-13 * scale, "theta_fourier: energy outside |u| <= l, u = l mod 2"
    odd = (ms % 2 == 1)[..., None] & np.ones(n, bool)
    assert np.abs(G.real[odd]).max(initial=0.0) < 1e-13 * scale and np.abs(G.imag[~odd]).max() < 1e-13 * scale
    G[~support] = 0  # enforce the exact sparsity and phase (rounding only was there)
    G = np.where(odd, 1j * G.imag, G.real + 0j)
    return _ro(G)


@lru_cache(maxsize=None)
def sh2f(lmax: int) -> np.ndarray:
    """The change of basis to the 2D Fourier basis: complex ``(lmax+1)**2 x (2lmax+1) [u] x (2lmax+1) [v]``.

    ``y[i, u + lmax, v + lmax]`` with :math:`Y_i(\\theta, \\phi) = \\sum_{u, v} y[i, u, v] e^{i(u\\theta + v\\phi)}`
    (``theta`` the polar angle from e3nn's ``y`` axis, ``phi`` the azimuth). The sparsity of the paper
    (``|u| <= l``, ``u = l mod 2``, ``v = +-m``) is asserted.

    >>> y = sh2f(4)
    >>> int((y != 0).sum()), y.shape
    (163, (25, 9, 9))
    """
    G = theta_fourier(lmax)
    l, m = sh_index(lmax)
    n = 2 * lmax + 1
    y = np.zeros((len(l), n, n), dtype=np.complex128)
    s = 1 / math.sqrt(2)
    for i, (li, mi) in enumerate(zip(l, m)):
        g = G[abs(mi), li]
        if mi == 0:
            y[i, :, lmax] = g
        elif mi > 0:  # sqrt2 cos(m phi) = (e^{im phi} + e^{-im phi}) / sqrt2
            y[i, :, lmax + mi] = s * g
            y[i, :, lmax - mi] = s * g
        else:  # sqrt2 sin(|m| phi) = (e^{i|m| phi} - e^{-i|m| phi}) / (i sqrt2)
            y[i, :, lmax - mi] = -1j * s * g
            y[i, :, lmax + mi] = 1j * s * g
    u = np.arange(-lmax, lmax + 1)
    allowed = ((np.abs(u)[None, :, None] <= l[:, None, None]) & ((u[None, :, None] - l[:, None, None]) % 2 == 0)
               & (np.abs(u)[None, None, :] == np.abs(m)[:, None, None]))
    assert not np.any(y[~allowed]), "sh2f: coefficient outside |u| <= l, u = l mod 2, v = +-m"
    return _ro(y)


def _sin_moment(k: np.ndarray) -> np.ndarray:
    """:math:`\\int_0^\\pi e^{ik\\theta} \\sin\\theta\\, d\\theta` for integer ``k`` (complex)."""
    k = np.asarray(k)
    kf = k.astype(np.float64)
    even = k % 2 == 0
    out = np.zeros(k.shape, dtype=np.complex128)
    out[even] = 2.0 / (1.0 - kf[even] ** 2)
    out[k == 1] = 1j * math.pi / 2
    out[k == -1] = -1j * math.pi / 2
    return out


@lru_cache(maxsize=None)
def theta_projection(lmax: int, umax: int) -> np.ndarray:
    """:math:`J[m, l, u] = \\int_0^\\pi e^{iu\\theta} \\bar P_l^m(\\cos\\theta) \\sin\\theta\\, d\\theta`, ``|u| <= umax``.

    Closed form: the coefficients of :func:`theta_fourier` against :func:`_sin_moment`. Shape
    ``(lmax + 1, lmax + 1, 2 umax + 1)``.
    """
    G = theta_fourier(lmax)
    u = np.arange(-umax, umax + 1)
    up = np.arange(-lmax, lmax + 1)
    M = _sin_moment(u[:, None] + up[None, :])  # (2umax+1, 2lmax+1)
    return _ro(np.einsum("mlp,up->mlu", G, M))


@lru_cache(maxsize=None)
def f2sh(lmax: int, umax: int | None = None) -> np.ndarray:
    """The back-projection from the 2D Fourier basis: complex ``(lmax+1)**2 x (2umax+1) [u] x (2lmax+1) [v]``.

    ``z[i, u + umax, v + lmax]`` :math:`= \\int_{S^2} e^{i(u\\theta + v\\phi)} Y_i\\, d\\Omega`, so that a function
    :math:`\\sum_{u,v} H_{uv} e^{i(u\\theta + v\\phi)}` has coefficients :math:`\\sum_{u,v} H_{uv} z[i, u, v]`.
    Nonzero only at ``v = +-m``; dense in ``u`` (the ``theta`` integral runs over half the torus), so
    ``umax`` (default ``lmax``) must cover every frequency of the function projected.

    >>> z = f2sh(2, 4)
    >>> y = sh2f(2)  # Y_i is exact in the basis: projecting it back gives the identity
    >>> H = np.zeros((9, 9, 5), complex); H[:, 2:7, :] = np.transpose(y, (0, 1, 2))
    >>> bool(np.allclose(np.einsum("juv,iuv->ij", H, z).real, np.eye(9), atol=1e-14))
    True
    """
    umax = lmax if umax is None else umax
    J = theta_projection(lmax, umax)
    l, m = sh_index(lmax)
    z = np.zeros((len(l), 2 * umax + 1, 2 * lmax + 1), dtype=np.complex128)
    r2 = math.sqrt(2)
    for i, (li, mi) in enumerate(zip(l, m)):
        j = J[abs(mi), li]
        if mi == 0:
            z[i, :, lmax] = 2 * math.pi * j
        elif mi > 0:  # int e^{iv phi} sqrt2 cos(m phi) = sqrt2 pi (d_{v,m} + d_{v,-m})
            z[i, :, lmax + mi] = r2 * math.pi * j
            z[i, :, lmax - mi] = r2 * math.pi * j
        else:  # int e^{iv phi} sqrt2 sin(|m| phi) = i sqrt2 pi (d_{v,|m|} - d_{v,-|m|})
            z[i, :, lmax - mi] = 1j * r2 * math.pi * j
            z[i, :, lmax + mi] = -1j * r2 * math.pi * j
    return _ro(z)


def fourier_size(L1: int, L2: int, L_out: int) -> tuple[int, int]:
    """``(n_theta, n_phi)`` of the torus grid of the Fourier route (both odd).

    The product has frequencies ``|u|, |v| <= L1 + L2``. The back-projection needs every ``u``
    (``n_theta >= 2 (L1 + L2) + 1``); in ``phi`` only ``|v| <= L_out`` is read, so ``n_phi >= L1 + L2 + L_out + 1``
    avoids aliasing there, and ``n_phi >= 2 max(L1, L2) + 1`` holds the inputs.

    >>> fourier_size(4, 4, 8), fourier_size(4, 4, 4)
    ((17, 17), (17, 13))
    """
    n_theta = 2 * (L1 + L2) + 1
    n_phi = max(L1 + L2 + L_out + 1, 2 * max(L1, L2) + 1)
    return n_theta, n_phi + (1 - n_phi % 2)


class FourierTables(NamedTuple):
    """Real per-``|m|`` tables of the Fourier route (float64 NumPy).

    Attributes:
        S1, S2: ``(L + 1 [|m|], L + 1 [l], n_theta)`` sh2f: the ``theta`` coefficients of :math:`\\bar P_l^{|m|}`
            divided by the phase ``i^{|m|}`` (so real), ``u`` wrapped for the FFT (``u < 0`` at the end).
        Zr, Zi: ``(L_out + 1, n_theta, L_out + 1)`` real and imaginary parts of the ``theta`` back-projection
            :math:`J[m, l, u]`, ``u`` wrapped, with the azimuthal factors of :func:`f2sh` folded in.
    """

    S1: np.ndarray
    S2: np.ndarray
    Zr: np.ndarray
    Zi: np.ndarray


@lru_cache(maxsize=64)
def fourier_tables(L1: int, L2: int, L_out: int) -> FourierTables:
    """The per-``|m|`` blocks of :func:`sh2f` and :func:`f2sh` for the Fourier route of ``(L1, L2) -> L_out``.

    >>> t = fourier_tables(2, 2, 4)
    >>> t.S1.shape, t.Zr.shape
    ((3, 3, 9), (5, 9, 5))
    """
    n_theta, _ = fourier_size(L1, L2, L_out)
    umax = L1 + L2

    def wrap_in(L):
        G = theta_fourier(L)  # (L+1, L+1, 2L+1), u = -L..L
        phase = (1j) ** np.arange(L + 1)
        R = G / phase[:, None, None]
        assert not np.any(R.imag)
        S = np.zeros((L + 1, L + 1, n_theta))
        u = np.arange(-L, L + 1)
        S[:, :, u % n_theta] = R.real
        return S

    S1 = wrap_in(L1)
    S2 = S1 if L2 == L1 else wrap_in(L2)
    J = theta_projection(L_out, umax)  # (Lo+1, Lo+1, 2umax+1)
    # out_{l,m} = c_m Re(S), out_{l,-m} = -c_m Im(S), S = sum_u H(u, m) J[m, l, u]; c_0 = 2 pi, c_m = 2 sqrt2 pi
    c = np.full(L_out + 1, 2 * math.sqrt(2) * math.pi)
    c[0] = 2 * math.pi
    Jc = J * c[:, None, None]
    Z = np.zeros((L_out + 1, L_out + 1, n_theta), dtype=np.complex128)
    u = np.arange(-umax, umax + 1)
    Z[:, :, u % n_theta] = Jc
    Z = np.transpose(Z, (0, 2, 1))  # (m, u, l)
    return FourierTables(*(_ro(np.ascontiguousarray(a)) for a in (S1, S2, Z.real, Z.imag)))


# ------------------------------------------------------------------------------------ exact constants


def three_j_000(l1: int, l2: int, l3: int) -> float:
    """The Wigner 3j symbol :math:`(l_1\\, l_2\\, l_3; 0\\, 0\\, 0)` from its closed form, in exact integers.

    Zero unless the triangle holds and ``J = l1 + l2 + l3`` is even; then, with ``g = J / 2``,
    :math:`(-1)^g \\sqrt{(J-2l_1)!(J-2l_2)!(J-2l_3)!/(J+1)!}\\; g!/((g-l_1)!(g-l_2)!(g-l_3)!)`.

    >>> round(three_j_000(1, 1, 2), 12), three_j_000(1, 1, 1)
    (0.36514837167, 0.0)
    """
    from fractions import Fraction

    J = l1 + l2 + l3
    if J % 2 or l3 > l1 + l2 or l3 < abs(l1 - l2):
        return 0.0
    g = J // 2
    f = math.factorial
    sq = Fraction(f(J - 2 * l1) * f(J - 2 * l2) * f(J - 2 * l3), f(J + 1))
    pre = Fraction(f(g), f(g - l1) * f(g - l2) * f(g - l3))
    val = math.sqrt(sq * pre * pre)
    return -val if g % 2 else val


def gaunt_c(l1: int, l2: int, l3: int) -> float:
    """The scalar :math:`c` with Gaunt :math:`= c \\cdot` ``o3.wigner_3j(l1, l2, l3)`` (e3nn basis, integral normalisation).

    :math:`c = \\sqrt{(2l_1+1)(2l_2+1)(2l_3+1)/(4\\pi)}\\; |(l_1\\, l_2\\, l_3; 0\\, 0\\, 0)|`.

    >>> round(gaunt_c(0, 0, 0), 5), round(gaunt_c(1, 1, 2), 5)
    (0.28209, 0.69099)
    """
    return math.sqrt((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1) / (4 * math.pi)) * abs(three_j_000(l1, l2, l3))


# ------------------------------------------------------------------------------------------ on device

_DEVICE_CACHE: dict = {}
_DEVICE_CACHE_SIZE = 64


def on_device(key: tuple, arrays, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
    """The NumPy ``arrays`` (one cached table set, named by ``key``) as tensors on ``device`` in ``dtype``.

    A small cache per ``(key, device, dtype)``, oldest entry dropped beyond 64, so that a table is
    copied to a device once, not at every call.
    """
    k = (key, str(device), dtype)
    hit = _DEVICE_CACHE.get(k)
    if hit is None:
        if len(_DEVICE_CACHE) >= _DEVICE_CACHE_SIZE:
            _DEVICE_CACHE.pop(next(iter(_DEVICE_CACHE)))
        hit = tuple(torch.as_tensor(np.ascontiguousarray(a)).to(device=device, dtype=dtype) for a in arrays)
        _DEVICE_CACHE[k] = hit
    return hit
