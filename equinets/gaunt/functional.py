"""The Gaunt tensor product as a function: ``gaunt_product`` and its all-parities combination.

Luo, Chen, Krishnapriyan, "Enabling Efficient Equivariant Operations in the Fourier Basis via Gaunt
Tensor Products", ICLR 2024 (Eq. 2-3 and Sec. 3). All tables come from :mod:`equinets.gaunt.tables`.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_finite, check_int
from . import _thresholds
from .tables import MAX_DEGREE, fourier_size, fourier_tables, grid_size, grid_tables, on_device, theta_fourier

__all__ = ["gaunt_product", "gaunt_product_all_parities", "sh_irreps", "NORMALIZATIONS", "ROUTES"]

NORMALIZATIONS = ("component", "integral", "norm")
ROUTES = ("auto", "grid", "fourier", "triton")


def sh_irreps(lmax: int, p_val: int = 1) -> str:
    """The irreps string of a spherical signal of degrees ``0..lmax`` with parity value ``p_val``.

    Degree ``l`` has parity ``p_val * (-1)**l``: ``p_val = 1`` is the parity of the spherical harmonics
    (``0e + 1o + 2e + ...``), ``p_val = -1`` the pseudo-scalar one (``0o + 1e + 2o + ...``).

    >>> sh_irreps(2), sh_irreps(2, -1)
    ('1x0e+1x1o+1x2e', '1x0o+1x1e+1x2o')
    """
    lmax = check_int(lmax, "lmax", 0)
    if p_val not in (1, -1):
        raise ValueError(f"p_val must be 1 or -1, got {p_val!r}")
    return "+".join(f"1x{l}{'e' if p_val * (-1) ** l == 1 else 'o'}" for l in range(lmax + 1))


# ------------------------------------------------------------------------------------------- checks


def _degree(x, name: str) -> int:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of spherical-harmonic coefficients, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be a float32 or float64 tensor of real coefficients, got dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have shape (..., (L+1)**2), got a 0-d tensor")
    n = x.shape[-1]
    L = math.isqrt(n) - 1
    if n == 0 or (L + 1) ** 2 != n:
        raise ValueError(f"{name} must have (L+1)**2 coefficients (1, 4, 9, 16, ...) on its last axis, got {n} "
                         f"(shape {tuple(x.shape)})")
    if L > MAX_DEGREE:
        raise ValueError(f"{name} has degree L = {L}, beyond the supported maximum {MAX_DEGREE}")
    return L


def _check(x1, x2, lmax_out, normalization, route, finite: bool = True):
    """Every check of :func:`gaunt_product`'s arguments; ``finite=False`` leaves the NaN/Inf check to the caller
    (:func:`_check_finite`, which the separable route runs on the copy of the inputs it makes anyway)."""
    L1, L2 = _degree(x1, "x1"), _degree(x2, "x2")
    if x1.device != x2.device:
        raise ValueError(f"x1 and x2 must be on the same device, got x1 on {x1.device} and x2 on {x2.device}")
    if x1.dtype != x2.dtype:
        raise TypeError(f"x1 and x2 must have the same dtype, got x1 {x1.dtype} and x2 {x2.dtype}")
    try:
        batch = x1.shape[:-1] if x1.shape[:-1] == x2.shape[:-1] else torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    except RuntimeError:
        raise ValueError(f"the leading axes of x1 {tuple(x1.shape[:-1])} and x2 {tuple(x2.shape[:-1])} must "
                         f"broadcast (the last axis holds the coefficients)") from None
    lmax_out = check_int(lmax_out, "lmax_out", 0, allow_none=True)
    if lmax_out is None:
        lmax_out = L1 + L2
    elif lmax_out > L1 + L2:
        raise ValueError(f"lmax_out must be <= L1 + L2 = {L1 + L2} (the product has no higher degree), got {lmax_out}")
    check_choice(normalization, "normalization", NORMALIZATIONS)
    check_choice(route, "route", ROUTES)
    if finite:
        _check_finite(x1, x2)
    return L1, L2, lmax_out, batch


def _check_finite(x1: Tensor, x2: Tensor, both: Tensor | None = None) -> None:
    """Refuse NaN or Inf coefficients, naming the input (skipped under ``torch.compile``).

    One reduction (of ``both``, a tensor holding exactly the entries of ``x1`` and ``x2``, when the caller
    has one) or one each; a NaN or Inf makes a sum non-finite (an overflowing sum of finite values too:
    then the exact check decides and names the entry). Python floats: ``torch.isfinite`` and the addition
    of 0-d tensors cost more than the reductions themselves at these sizes.
    """
    if torch.compiler.is_compiling():
        return
    total = both.sum().item() if both is not None else x1.sum().item() + x2.sum().item()
    if not math.isfinite(total):
        check_finite(x1, "x1")
        check_finite(x2, "x2")


# ------------------------------------------------------------------------------------- normalisation


def _scales(normalization: str, L1: int, L2: int, Lo: int):
    """Per-degree factors taking the inputs to the integral basis and the integral product to the output basis."""
    if normalization == "integral":
        return np.ones(L1 + 1), np.ones(L2 + 1), np.ones(Lo + 1)
    if normalization == "component":  # Y_comp = sqrt(4 pi) Y_int: inputs x sqrt(4 pi) each, output / sqrt(4 pi)
        r = math.sqrt(4 * math.pi)
        return np.ones(L1 + 1), np.ones(L2 + 1), np.full(Lo + 1, r)
    # norm: Y_norm^l = sqrt(4 pi / (2l+1)) Y_int^l
    f = [np.sqrt(4 * math.pi / (2 * np.arange(L + 1) + 1)) for L in (L1, L2, Lo)]
    return f[0], f[1], 1.0 / f[2]


def _in_index(L: int) -> np.ndarray:
    """Flat e3nn indices in the order ``(sign [+m, -m], |m|, l)``; 0 where there is no coefficient (tables are 0 there)."""
    idx = np.zeros((2, L + 1, L + 1), dtype=np.int64)
    for m in range(L + 1):
        for l in range(m, L + 1):
            idx[0, m, l] = l * l + l + m
            if m > 0:
                idx[1, m, l] = l * l + l - m
    return idx.reshape(-1)


def _out_index(L: int) -> np.ndarray:
    """For each flat e3nn index of degree ``<= L``, its row in the ``(sign, |m|, l)`` order of :func:`_in_index`."""
    rows = []
    for l in range(L + 1):
        for m in range(-l, l + 1):
            rows.append(((m < 0) * (L + 1) + abs(m)) * (L + 1) + l)
    return np.array(rows, dtype=np.int64)


def _index_tensors(L1: int, L2: int, Lo: int, device) -> tuple[Tensor, ...]:
    return _cached(("index", L1, L2, Lo), lambda: (_in_index(L1), _in_index(L2), _out_index(Lo)), device, torch.int64)


# ---------------------------------------------------------------------------------------------- grid


def _grid_dense_tensors(L1, L2, Lo, normalization, device, dtype):
    def build():
        t = grid_tables(L1, L2, Lo)
        s1, s2, so = _scales(normalization, L1, L2, Lo)
        d1 = np.repeat(s1, 2 * np.arange(L1 + 1) + 1)
        d2 = np.repeat(s2, 2 * np.arange(L2 + 1) + 1)
        do = np.repeat(so, 2 * np.arange(Lo + 1) + 1)
        return t.Y1 * d1[:, None], t.Y2 * d2[:, None], t.Wout * do[None, :]

    return _cached(("grid_dense", L1, L2, Lo, normalization), build, device, dtype)


def _signs(P: np.ndarray) -> np.ndarray:
    """``(M, a, b)`` -> ``(2 M, a, b)``: the same block for ``+m`` and ``-m``, zero for the empty ``-0``."""
    P2 = np.stack([P, P])
    P2[1, 0] = 0.0
    return np.ascontiguousarray(P2.reshape(-1, *P.shape[1:]))


def _azimuth_factors(alpha: np.ndarray, L: int) -> np.ndarray:
    r"""``(n_alpha, 2 (L + 1))``: :math:`h_{+m}(a_k)` in columns ``m``, :math:`h_{-m}(a_k)` in columns ``L + 1 + m``.

    :math:`h_0 = 1`, :math:`h_{+m} = \sqrt2 \cos(m a)`, :math:`h_{-m} = \sqrt2 \sin(m a)`; the empty ``-0``
    column is zero. The ``(sign, |m|)`` column order is that of :func:`_in_index` and :func:`_signs`.
    """
    am = alpha[:, None] * np.arange(L + 1)[None, :]
    C, S = math.sqrt(2) * np.cos(am), math.sqrt(2) * np.sin(am)
    C[:, 0], S[:, 0] = 1.0, 0.0
    return np.ascontiguousarray(np.concatenate([C, S], axis=1))


def _to_grid_tables(t, L: int, s: np.ndarray):
    """To the grid from degree ``L`` (coefficients scaled by ``s`` each): ``P (2M, n_beta, l)``, ``H (n_alpha, 2M)``."""
    P = _signs(np.transpose(t.P[: L + 1, : L + 1] * s[None, :, None], (0, 2, 1)))
    return P, _azimuth_factors(t.alpha, L)


def _from_grid_tables(t, L: int, s: np.ndarray):
    """Quadrature to degree ``L`` (scaled by ``s``): azimuthal ``Q (2M, n_alpha)``, Gauss-Legendre ``W (2M, l, n_beta)``."""
    Q = np.ascontiguousarray(_azimuth_factors(t.alpha, L).T * (2 * math.pi / len(t.alpha)))
    W = _signs(t.P[: L + 1, : L + 1] * t.w[None, None, :] * s[None, :, None])
    return Q, W


def _half_tables(H: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Split the azimuthal synthesis ``H (n_alpha, 2M)`` by the mirror :math:`\alpha_k \to \alpha_{n-k} = -\alpha_k`.

    On the odd uniform circle the cosine part :math:`C_k = \sum_m a_m h_{+m}(\alpha_k)` is even in ``k`` and
    the sine part :math:`S_k = \sum_{m>0} b_m h_{-m}(\alpha_k)` odd, so both are needed on the half circle
    only: ``Hc ((n+1)/2, M)`` (``k = 0..(n-1)/2``, the ``+m`` columns) and ``Hs ((n-1)/2, M-1)`` (``k >= 1``,
    the ``-m`` columns without the empty ``-0``); the values are :math:`f(\pm\alpha_k) = C_k \pm S_k`.
    """
    M, nh = L + 1, (H.shape[0] + 1) // 2
    return np.ascontiguousarray(H[:nh, :M]), np.ascontiguousarray(H[1:nh, M + 1:])


def _half_quadrature(Q: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The azimuthal quadrature ``Q (2M, n_alpha)`` folded onto the half circle.

    With :math:`f_i(\pm\alpha_k) = C_{i,k} \pm S_{i,k}`, the product's mirror sums are
    :math:`g_k + g_{n-k} = 2 (C_1 C_2 + S_1 S_2)_k = 2 E_k` and :math:`g_k - g_{n-k} = 2 (C_1 S_2 + S_1 C_2)_k
    = 2 O_k`; the cosine rows of ``Q`` integrate :math:`E` (``Qc (M, (n+1)/2)``, weight doubled for ``k >= 1``;
    ``k = 0`` is its own mirror, :math:`g_0 = E_0`) and the sine rows :math:`O` (``Qs (M, (n-1)/2)``, doubled;
    its ``-0`` row is zero).
    """
    M, nh = L + 1, (Q.shape[1] + 1) // 2
    Qc = Q[:M, :nh].copy()
    Qc[:, 1:] *= 2.0
    return np.ascontiguousarray(Qc), np.ascontiguousarray(2.0 * Q[M:, 1:nh])


class _SepPlan(NamedTuple):
    """Every table and index of the separable grid route for ``(L1, L2) -> L_out`` on one device and dtype.

    Forward: ``P1, H1`` (and ``P2, H2``) take degree ``L1`` (``L2``) to the grid, ``Q, W`` project onto
    ``L_out``; backward: ``Po, Ho`` take the output gradient to the grid, ``Q1, W1`` and ``Q2, W2``
    project onto ``L1`` and ``L2``. ``i*`` gather coefficients into the ``(sign, |m|, l)`` order
    (:func:`_in_index`), ``o*`` read them back into e3nn's layout (:func:`_out_index`). ``Hc*, Hs*, Qc*, Qs*``:
    the half-circle azimuthal tables (:func:`_half_tables`, :func:`_half_quadrature`) that the route runs on,
    ``H*`` and ``Q*`` the whole-circle ones they are cut from.
    """

    P1: Tensor
    H1: Tensor
    P2: Tensor
    H2: Tensor
    Q: Tensor
    W: Tensor
    Po: Tensor
    Ho: Tensor
    Q1: Tensor
    W1: Tensor
    Q2: Tensor
    W2: Tensor
    i1: Tensor
    i2: Tensor
    io: Tensor
    o: Tensor
    o1: Tensor
    o2: Tensor
    Hc1: Tensor
    Hs1: Tensor
    Hc2: Tensor
    Hs2: Tensor
    Qc: Tensor
    Qs: Tensor
    Hco: Tensor
    Hso: Tensor
    Qc1: Tensor
    Qs1: Tensor
    Qc2: Tensor
    Qs2: Tensor


_PLANS: dict = {}


def _sep_plan(L1: int, L2: int, Lo: int, normalization: str, device, dtype) -> _SepPlan:
    """The :class:`_SepPlan` of these sizes, built once in float64 and cached per ``(device, dtype)`` (64 entries)."""
    key = (L1, L2, Lo, normalization, device, dtype)
    plan = _PLANS.get(key)
    if plan is None:
        t = grid_tables(L1, L2, Lo)
        s1, s2, so = _scales(normalization, L1, L2, Lo)
        floats = (*_to_grid_tables(t, L1, s1), *_to_grid_tables(t, L2, s2), *_from_grid_tables(t, Lo, so),
                  *_to_grid_tables(t, Lo, so), *_from_grid_tables(t, L1, s1), *_from_grid_tables(t, L2, s2))
        ints = (_in_index(L1), _in_index(L2), _in_index(Lo), _out_index(Lo), _out_index(L1), _out_index(L2))
        half = (*_half_tables(floats[1], L1), *_half_tables(floats[3], L2), *_half_quadrature(floats[4], Lo),
                *_half_tables(floats[7], Lo), *_half_quadrature(floats[8], L1), *_half_quadrature(floats[10], L2))
        plan = _SepPlan(*(torch.as_tensor(a).to(device=device, dtype=dtype) for a in floats),
                        *(torch.as_tensor(a).to(device=device) for a in ints),
                        *(torch.as_tensor(a).to(device=device, dtype=dtype) for a in half))
        if len(_PLANS) >= 64:
            _PLANS.pop(next(iter(_PLANS)))
        _PLANS[key] = plan
    return plan


def _cached(key, build, device, dtype):
    from .tables import _DEVICE_CACHE

    k = (key, str(device), dtype)
    hit = _DEVICE_CACHE.get(k)
    if hit is None:
        hit = on_device(key, build(), device, dtype)
    return hit


def _gather_in(x: Tensor, idx: Tensor) -> Tensor:
    """``(B, (L+1)**2)`` -> ``(2 M, l, B)`` [``(sign, |m|)``, degree, batch] by :func:`_in_index`."""
    Lp = math.isqrt(x.shape[1])
    return torch.index_select(x.T, 0, idx).view(idx.shape[0] // Lp, Lp, x.shape[0])


def _scatter_out(t: Tensor, oidx: Tensor) -> Tensor:
    """``(2 M, l, B)`` [``(sign, |m|)``, degree, batch] -> ``(B, (L+1)**2)`` in e3nn's layout."""
    return torch.index_select(t.reshape(-1, t.shape[-1]), 0, oidx).T  # a transposed view: 5x cheaper than gathering columns


#: grid sizes up to which the dense route multiplies batch-last (``Y^T @ x^T``): BLAS is slow on row-major
#: products with 4-15 columns (measured 2.5-5x slower at D = 3-4, 16384 rows, one CPU thread)
_DENSE_BATCH_LAST_MAX_GRID = 16


def _grid_dense(x1, x2, L1, L2, Lo, normalization):
    Y1, Y2, W = _grid_dense_tensors(L1, L2, Lo, normalization, x1.device, x1.dtype)
    if Y1.shape[1] <= _DENSE_BATCH_LAST_MAX_GRID:  # tiny products (D <= 4): batch as the GEMMs' columns
        # one GEMM per input (no concatenation: its slices would cost two zero-filled grid-sized gradients)
        return (W.T @ ((Y1.T @ x1.T) * (Y2.T @ x2.T))).T
    if L1 == L2:
        f1, f2 = (torch.cat([x1, x2]) @ Y1).view(2, x1.shape[0], -1).unbind(0)
        g = f1 * f2
    else:
        g = (x1 @ Y1) * (x2 @ Y2)
    return g @ W


def _grid_sep(x1, x2, L1, L2, Lo, normalization, azimuth="dft", check: bool = False):
    r"""The separable grid route: a Legendre matmul per ``(sign, |m|)``, then the azimuthal transform.

    ``azimuth="dft"`` (the default, fastest on CPU): per input a batched Legendre matmul
    ``(2M, n_beta, l) @ (2M, l, B)`` to the Gauss-Legendre rings, then two azimuthal GEMMs on the half
    circle (the cosine part on ``(n+1)/2`` azimuths, the sine part on ``(n-1)/2``: the odd uniform grid is
    symmetric under :math:`\alpha \to -\alpha`, :func:`_half_tables`); the product is folded into its mirror
    sums (:func:`_fold`), and back come two azimuthal quadrature GEMMs and one batched Gauss-Legendre matmul:
    half the azimuthal work of the whole circle. Equal degrees share one pass for both inputs (concatenated
    along the batch). Its backward is analytic (:class:`_GridSepProduct`); without gradients the autograd
    function is skipped. ``azimuth="fft"``: ``torch.fft`` over the whole circle (slower on CPU at these
    sizes: torch's small batched real FFTs), differentiated by autograd. ``check=True`` refuses NaN/Inf
    inputs first (:func:`_check_finite`, on the concatenated inputs for equal degrees).
    """
    if azimuth == "dft":
        if torch.is_grad_enabled() and (x1.requires_grad or x2.requires_grad):
            return _GridSepProduct.apply(x1, x2, (L1, L2, Lo, normalization), check)
        p = _sep_plan(L1, L2, Lo, normalization, x1.device, x1.dtype)
        if L1 == L2 and x1.device.type == "cpu" and not torch.compiler.is_compiling():
            out = _sep_forward_scratch(x1, x2, p, check)
            if out is not None:
                return out
        return _sep_forward_half(x1, x2, p, check)
    if check:
        _check_finite(x1, x2)
    i1, i2, oidx = _index_tensors(L1, L2, Lo, x1.device)
    _, n_alpha = grid_size(L1 + L2 + Lo)
    B, M = x1.shape[0], Lo + 1
    P1, P2, W = _grid_sep_fft_tensors(L1, L2, Lo, normalization, x1.device, x1.dtype)

    def to_grid(x, idx, P):  # -> values (B', n_beta, n_alpha) at the azimuths -alpha
        A = torch.bmm(P, _gather_in(x, idx))  # (2M, n_beta, B')
        C = torch.view_as_complex(A.view(2, -1, *A.shape[1:]).permute(3, 2, 1, 0).contiguous())  # (B', nb, M)
        return torch.fft.irfft(C, n=n_alpha, dim=-1, norm="forward")

    if L1 == L2:
        f1, f2 = to_grid(torch.cat([x1, x2]), i1, P1).view(2, B, *P1.shape[1:2], n_alpha).unbind(0)
        g = f1 * f2
    else:
        g = to_grid(x1, i1, P1) * to_grid(x2, i2, P2)
    H = torch.fft.rfft(g, dim=-1, norm="forward")[..., :M]  # (B, n_beta, M): conj of the true spectrum
    Hh = torch.view_as_real(H).permute(3, 2, 1, 0).reshape(2 * M, -1, B)  # (Re, -Im) of the true spectrum
    return _scatter_out(torch.bmm(W, Hh), oidx)  # (2M, l, B): Gauss-Legendre quadrature per (sign, |m|)


def _grid_sep_fft_tensors(L1, L2, Lo, normalization, device, dtype):
    """Tables of ``_grid_sep(azimuth="fft")``: ``P1, P2 (2M, n_beta, l)`` with the irfft's factors, ``W (2M, l, n_beta)``."""

    def build():
        t = grid_tables(L1, L2, Lo)
        s1, s2, so = _scales(normalization, L1, L2, Lo)
        # the irfft doubles the m > 0 terms; the rfft's conjugate spectrum carries 2 pi (sqrt2 for m > 0)
        half = np.where(np.arange(max(L1, L2) + 1) > 0, 1 / math.sqrt(2), 1.0)
        P1 = _signs(np.transpose(t.P[: L1 + 1, : L1 + 1] * s1[None, :, None] * half[: L1 + 1, None, None], (0, 2, 1)))
        P2 = _signs(np.transpose(t.P[: L2 + 1, : L2 + 1] * s2[None, :, None] * half[: L2 + 1, None, None], (0, 2, 1)))
        c = np.where(np.arange(Lo + 1) > 0, 2 * math.sqrt(2) * math.pi, 2 * math.pi)
        W = _signs(t.P[: Lo + 1, : Lo + 1] * t.w[None, None, :] * c[:, None, None] * so[None, :, None])
        return P1, P2, W

    return _cached(("grid_sep_fft", L1, L2, Lo, normalization), build, device, dtype)


def _half_values(xt: Tensor, idx: Tensor, P: Tensor, Hc: Tensor, Hs: Tensor) -> tuple[Tensor, Tensor]:
    """Coefficients ``xt ((L+1)**2, B)`` (transposed) -> the half-circle parts of the values on the grid,
    ``C ((n+1)/2, n_beta, B)`` and ``S ((n-1)/2, n_beta, B)`` (:func:`_half_tables`): a Legendre matmul per
    ``(sign, |m|)``, then one azimuthal GEMM per part."""
    B = xt.shape[1]
    M = Hc.shape[1]
    X = torch.index_select(xt, 0, idx).view(P.shape[0], P.shape[2], B)  # (2M, l, B) in (sign, |m|, l) order
    A = torch.bmm(P, X)  # (2M, n_beta, B)
    nb = A.shape[1]
    C = torch.mm(Hc, A[:M].reshape(M, nb * B)).view(Hc.shape[0], nb, B)
    S = torch.mm(Hs, A[M + 1:].reshape(M - 1, nb * B)).view(Hs.shape[0], nb, B)
    return C, S


def _fold(C1: Tensor, S1: Tensor, C2: Tensor, S2: Tensor, E: Tensor | None = None,
          O: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The mirror sums of the product of two half-circle signals (:func:`_half_quadrature`):
    ``E = C1 C2 + S1 S2`` (``E_0 = C1_0 C2_0``) and ``O = C1 S2 + S1 C2`` on ``k >= 1``; written into ``E, O``
    when given. Out of place (differentiable) when autograd records."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (C1, S1, C2, S2)):
        return torch.cat([C1[:1] * C2[:1], C1[1:] * C2[1:] + S1 * S2]), C1[1:] * S2 + S1 * C2[1:]
    E = C1.new_empty(C1.shape) if E is None else E
    O = S1.new_empty(S1.shape) if O is None else O
    _fold_into(C1, S1, C2, S2, C1[1:], C2[1:], E, E[1:], O)
    return E, O


def _fold_into(C1: Tensor, S1: Tensor, C2: Tensor, S2: Tensor, C1r: Tensor, C2r: Tensor, E: Tensor, E1: Tensor,
               O: Tensor) -> None:
    """:func:`_fold` written into ``E`` and ``O``, given the slices ``C1r = C1[1:]``, ``C2r = C2[1:]``, ``E1 = E[1:]``
    (:func:`_sep_forward_scratch` keeps them built)."""
    torch.mul(C1, C2, out=E)
    E1.addcmul_(S1, S2)
    torch.mul(C1r, S2, out=O)
    O.addcmul_(S1, C2r)


def _half_project(E: Tensor, O: Tensor, Qc: Tensor, Qs: Tensor, W: Tensor, oidx: Tensor) -> Tensor:
    """Mirror sums ``E, O`` -> coefficients ``((L+1)**2, B)`` (e3nn's order on the rows): the azimuthal
    quadrature of each part, then a Gauss-Legendre matmul per ``(sign, |m|)``."""
    nh, nb, B = E.shape
    Mo = Qc.shape[0]
    if torch.is_grad_enabled() and (E.requires_grad or O.requires_grad):
        Hh = torch.cat([torch.mm(Qc, E.reshape(nh, nb * B)), torch.mm(Qs, O.reshape(nh - 1, nb * B))])
    else:
        Hh = E.new_empty(2 * Mo, nb * B)
        torch.mm(Qc, E.reshape(nh, nb * B), out=Hh[:Mo])
        torch.mm(Qs, O.reshape(nh - 1, nb * B), out=Hh[Mo:])
    return torch.index_select(torch.bmm(W, Hh.view(2 * Mo, nb, B)).view(-1, B), 0, oidx)


def _half_parts(x1: Tensor, x2: Tensor, p: _SepPlan, check: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``C1, S1, C2, S2``: both inputs on the half circle (equal degrees: one pass, concatenated along the
    batch). ``check=True`` refuses NaN/Inf first (:func:`_check_finite`, on the copied rows for equal degrees)."""
    if x1.shape[1] == x2.shape[1]:
        B = x1.shape[0]
        xt = torch.cat([x1.T, x2.T], 1)  # rows gathered from a contiguous copy
        if check:
            _check_finite(x1, x2, xt)
        C, S = _half_values(xt, p.i1, p.P1, p.Hc1, p.Hs1)
        return C[..., :B], S[..., :B], C[..., B:], S[..., B:]
    if check:
        _check_finite(x1, x2)
    return (*_half_values(x1.T, p.i1, p.P1, p.Hc1, p.Hs1), *_half_values(x2.T, p.i2, p.P2, p.Hc2, p.Hs2))


def _sep_forward_half(x1: Tensor, x2: Tensor, p: _SepPlan, check: bool = False) -> Tensor:
    """The separable grid forward on the half circle (:func:`_half_tables`): ``(B, (Lo+1)**2)``, a transposed view."""
    return _half_project(*_fold(*_half_parts(x1, x2, p, check)), p.Qc, p.Qs, p.W, p.o).T


_SCRATCH = threading.local()
_SCRATCH_MAX = 2**22  # floats (16 MB in float32): beyond it the intermediates leave the caches anyway


class _ScratchViews(NamedTuple):
    """Every view of :func:`_sep_forward_scratch`'s two buffers for one plan and batch (:func:`_scratch_views`)."""

    xt: Tensor
    X: Tensor
    X3: Tensor
    A: Tensor
    Ac: Tensor
    As: Tensor
    Cf: Tensor
    Sf: Tensor
    C1: Tensor
    C2: Tensor
    S1: Tensor
    S2: Tensor
    C1r: Tensor
    C2r: Tensor
    E: Tensor
    E1: Tensor
    O: Tensor
    Ef: Tensor
    Of: Tensor
    Hc: Tensor
    Hs: Tensor
    H3: Tensor
    R: Tensor
    Rf: Tensor


_SCRATCH_VIEWS_MAX = 16


def _scratch_views(x1: Tensor, p: _SepPlan) -> _ScratchViews | None:
    """The views of the calling thread's two scratch buffers for ``p`` at ``x1``'s batch (``None`` if too big).

    Building the ~25 slices and views costs about a fifth of the warm route at L = 6, batch 256 (a
    microsecond each; 209 -> 171 us once built), so they are built once per (plan, batch, dtype, inference
    mode) and kept, up to ``_SCRATCH_VIEWS_MAX`` sets; growing the buffers drops every kept set of theirs. Calls under
    ``torch.inference_mode`` have buffers of their own (an inference tensor cannot be written outside it).
    """
    B, n = x1.shape
    inference = torch.is_inference_mode_enabled()  # buffers made under inference mode cannot be written outside it
    key = (id(p), B, x1.dtype, inference)
    views = getattr(_SCRATCH, "views", None)
    if views is None:
        views = _SCRATCH.views = {}
    hit = views.get(key)  # (plan, views): the entry keeps the plan alive, so its id cannot be reused meanwhile
    if hit is not None:
        return hit[1]
    P, Hc, Qc, W = p.P1, p.Hc1, p.Qc, p.W
    M2, nb, lp = P.shape
    M, nh, Mo, lo = Hc.shape[1], Hc.shape[0], Qc.shape[0], W.shape[1]
    grid_c, grid_s = nh * nb * B, (nh - 1) * nb * B
    n0 = max(n * 2 * B, M2 * nb * 2 * B, 2 * (grid_c + grid_s), 2 * Mo * lo * B)
    n1 = max(M2 * lp * 2 * B, 2 * (grid_c + grid_s), 2 * Mo * nb * B)
    if n0 + n1 > _SCRATCH_MAX:
        return None
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    S_ = bufs.get((x1.dtype, inference))
    if S_ is None or S_[0].numel() < n0 or S_[1].numel() < n1:
        S_ = bufs[x1.dtype, inference] = (x1.new_empty(max(n0, S_[0].numel() if S_ else 0)),
                                          x1.new_empty(max(n1, S_[1].numel() if S_ else 0)))
        for k in [k for k in views if k[2:] == (x1.dtype, inference)]:  # views of the old buffers keep them alive
            del views[k]
    S0, S1 = S_
    X = S1[: M2 * lp * 2 * B].view(M2 * lp, 2 * B)
    A = S0[: M2 * nb * 2 * B].view(M2, nb, 2 * B)
    Cf = S1[: 2 * grid_c].view(nh, nb * 2 * B)
    Sf = S1[2 * grid_c: 2 * (grid_c + grid_s)].view(nh - 1, nb * 2 * B)
    C, S = Cf.view(nh, nb, 2 * B), Sf.view(nh - 1, nb, 2 * B)
    E, O = S0[:grid_c].view(nh, nb, B), S0[grid_c: grid_c + grid_s].view(nh - 1, nb, B)
    Hh = S1[: 2 * Mo * nb * B].view(2 * Mo, nb * B)
    R = S0[: 2 * Mo * lo * B].view(2 * Mo, lo, B)
    v = _ScratchViews(xt=S0[: n * 2 * B].view(n, 2 * B), X=X, X3=X.view(M2, lp, 2 * B), A=A,
                      Ac=A[:M].view(M, nb * 2 * B), As=A[M + 1:].view(M - 1, nb * 2 * B), Cf=Cf, Sf=Sf,
                      C1=C[..., :B], C2=C[..., B:], S1=S[..., :B], S2=S[..., B:], C1r=C[1:, :, :B], C2r=C[1:, :, B:],
                      E=E, E1=E[1:], O=O, Ef=E.view(nh, nb * B), Of=O.view(nh - 1, nb * B), Hc=Hh[:Mo], Hs=Hh[Mo:],
                      H3=Hh.view(2 * Mo, nb, B), R=R, Rf=R.view(-1, B))
    if len(views) >= _SCRATCH_VIEWS_MAX:
        views.pop(next(iter(views)))
    views[key] = (p, v)
    return v


def _sep_forward_scratch(x1: Tensor, x2: Tensor, p: _SepPlan, check: bool) -> Tensor | None:
    """The no-grad CPU forward of equal degrees (:func:`_sep_forward_half`) with every intermediate in two reused
    buffers (``None`` if too big).

    Each stage writes (``out=``) into the buffer the stage before it did not: the pipeline touches two
    buffers (at L = 6, batch 256: under 1 MB, inside a core's L2) instead of a fresh tensor per stage, so each
    stage reads what the previous one wrote from the cache (measured 10 % faster at L = 6 and 12 than
    fresh tensors, interleaved with e3nn), and the views into them are built once (:func:`_scratch_views`).
    The operations are those of :func:`_sep_forward_half`, in the same order: the two give bitwise the same
    output. The buffers belong to the calling thread; only the returned output is new.
    """
    v = _scratch_views(x1, p)
    if v is None:
        return None
    torch.cat([x1.T, x2.T], 1, out=v.xt)
    if check:
        _check_finite(x1, x2, v.xt)
    torch.index_select(v.xt, 0, p.i1, out=v.X)
    torch.bmm(p.P1, v.X3, out=v.A)
    torch.mm(p.Hc1, v.Ac, out=v.Cf)
    torch.mm(p.Hs1, v.As, out=v.Sf)
    _fold_into(v.C1, v.S1, v.C2, v.S2, v.C1r, v.C2r, v.E, v.E1, v.O)
    torch.mm(p.Qc, v.Ef, out=v.Hc)
    torch.mm(p.Qs, v.Of, out=v.Hs)
    torch.bmm(p.W, v.H3, out=v.R)
    return torch.index_select(v.Rf, 0, p.o).T  # a new tensor: nothing returned lives in the buffers


class _GridSepProduct(torch.autograd.Function):
    r"""The separable grid product with its analytic backward, on the half circle.

    With :math:`h = \sum_i s^{out}_i\, \bar g_i Y_i` (the output gradient as a function on the grid), the
    gradient with respect to ``x1`` is the projection of :math:`h f_2` onto degree ``L1`` (and the same for
    ``x2``): one more transform to the grid and one projection (both inputs' in one pass for equal degrees),
    on the grid of the forward, every function held as its cosine and sine parts on the half circle
    (:func:`_half_tables`) and every product folded into mirror sums (:func:`_fold`). The backward is written
    in differentiable operations, and under ``create_graph`` recomputes the grid values from the inputs, so
    double backward (forces) is exact too.
    """

    @staticmethod
    def forward(ctx, x1, x2, sizes, check):
        p = _sep_plan(*sizes, x1.device, x1.dtype)
        parts = _half_parts(x1, x2, p, check)
        ctx.save_for_backward(x1, x2, *parts)
        ctx.sizes = sizes
        return _half_project(*_fold(*parts), p.Qc, p.Qs, p.W, p.o).T

    @staticmethod
    def backward(ctx, go):
        x1, x2, C1, S1, C2, S2 = ctx.saved_tensors
        p = _sep_plan(*ctx.sizes, go.device, go.dtype)
        graph = torch.is_grad_enabled()
        if graph:  # double backward: grid values with their history
            C1, S1, C2, S2 = _half_parts(x1, x2, p)
        Ch, Sh = _half_values(go.T, p.io, p.Po, p.Hco, p.Hso)
        need1, need2 = ctx.needs_input_grad[:2]
        if need1 and need2 and x1.shape[1] == x2.shape[1]:  # one projection for both
            B = go.shape[0]
            if graph or torch.compiler.is_compiling():  # (dynamo refuses non-contiguous out= tensors)
                E, O = _fold(torch.cat([Ch, Ch], -1), torch.cat([Sh, Sh], -1), torch.cat([C2, C1], -1),
                             torch.cat([S2, S1], -1))
            else:  # no intermediate copies: both folds written into one buffer
                E, O = Ch.new_empty(*Ch.shape[:2], 2 * B), Sh.new_empty(*Sh.shape[:2], 2 * B)
                _fold(Ch, Sh, C2, S2, E[..., :B], O[..., :B])
                _fold(Ch, Sh, C1, S1, E[..., B:], O[..., B:])
            g = _half_project(E, O, p.Qc1, p.Qs1, p.W1, p.o1)
            return g[:, :B].T, g[:, B:].T, None, None
        g1 = _half_project(*_fold(Ch, Sh, C2, S2), p.Qc1, p.Qs1, p.W1, p.o1).T if need1 else None
        g2 = _half_project(*_fold(Ch, Sh, C1, S1), p.Qc2, p.Qs2, p.W2, p.o2).T if need2 else None
        return g1, g2, None, None


# ------------------------------------------------------------------------------------------- fourier


def _fourier_tensors(L1, L2, Lo, normalization, device, dtype):
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64

    def build():
        t = fourier_tables(L1, L2, Lo)
        s1, s2, so = _scales(normalization, L1, L2, Lo)
        n_theta, _ = fourier_size(L1, L2, Lo)

        def to_f(L, s):  # (M, n_theta [u wrapped], l): F'(u, m) = sum_l G[m, l, u] (x_m + i x_-m) / sqrt2
            G = theta_fourier(L) * s[None, :, None]
            G = G * np.where(np.arange(L + 1) > 0, 1 / math.sqrt(2), 1.0)[:, None, None]
            T = np.zeros((L + 1, L + 1, n_theta), dtype=np.complex128)
            u = np.arange(-L, L + 1)
            T[:, :, u % n_theta] = G
            return np.ascontiguousarray(np.transpose(T, (0, 2, 1)))

        Z = (t.Zr + 1j * t.Zi) * so[None, None, :]  # (M, u, l)
        return to_f(L1, s1), to_f(L2, s2), np.ascontiguousarray(np.transpose(Z, (0, 2, 1)))  # Z: (M, l, u)

    return _cached(("fourier", L1, L2, Lo, normalization), build, device, cdtype)


def _to_torus(x: Tensor, idx: Tensor, T: Tensor, n_theta: int, n_phi: int) -> Tensor:
    """Coefficients ``(B, (L+1)**2)`` -> values ``(n_phi, n_theta, B)`` on the torus (azimuth reversed)."""
    X = _gather_in(x, idx)  # (2M, l, B)
    X = X.view(2, -1, *X.shape[1:])
    Xc = torch.complex(X[0], X[1])  # (M, l, B): x_m + i x_-m
    F = torch.bmm(T, Xc)  # (M, n_theta, B): sh2f, the 2D Fourier coefficients (v = m >= 0 half)
    return torch.fft.irfftn(F, s=(n_theta, n_phi), dim=(1, 0), norm="forward")


def _fourier(x1, x2, L1, L2, Lo, normalization):
    T1, T2, Z = _fourier_tensors(L1, L2, Lo, normalization, x1.device, x1.dtype)
    i1, i2, oidx = _index_tensors(L1, L2, Lo, x1.device)
    n_theta, n_phi = fourier_size(L1, L2, Lo)
    B = x1.shape[0]
    if L1 == L2:
        f = _to_torus(torch.cat([x1, x2]), i1, T1, n_theta, n_phi)
        g = f[..., :B] * f[..., B:]
    else:
        g = _to_torus(x1, i1, T1, n_theta, n_phi) * _to_torus(x2, i2, T2, n_theta, n_phi)
    # the 2D convolution of the two spectra, read back on the half spectrum v = 0..Lo
    H = torch.fft.rfftn(g, dim=(1, 0), norm="forward")[: Lo + 1]  # (M, n_theta, B)
    out = torch.view_as_real(torch.bmm(Z, H))  # f2sh: (M, l, B, 2) = (Re, Im) -> (+m, -m)
    return _scatter_out(out.permute(3, 0, 1, 2), oidx)


# ---------------------------------------------------------------------------------------------- main


def _auto(device: torch.device, D: int) -> str:
    th = _thresholds.THRESHOLDS.get(device.type, _thresholds.THRESHOLDS["cpu"])
    for lo, hi in th["fourier_D"]:
        if lo <= D <= hi:
            return "fourier"
    return "grid"


def gaunt_product(x1: Tensor, x2: Tensor, lmax_out: int | None = None, *, normalization: str = "component",
                  route: str = "auto") -> Tensor:
    r"""The Gaunt tensor product: the coefficients of the pointwise product of two spherical functions.

    Luo, Chen, Krishnapriyan, ICLR 2024, Eq. (2)-(3): with :math:`f_x = \sum_{lm} x_{lm} Y_{lm}`,

    .. math::

        (x_1 \circledast x_2)_{l_3 m_3} = \sum_{l_1 m_1 l_2 m_2} G^{l_3 m_3}_{l_1 m_1, l_2 m_2}\,
        x_{1, l_1 m_1} x_{2, l_2 m_2} = \langle f_{x_1} f_{x_2}, Y_{l_3 m_3} \rangle, \qquad
        G = c(l_1, l_2, l_3)\, C^{l_3 m_3}_{l_1 m_1, l_2 m_2},

    every Clebsch-Gordan path ``(l1, l2) -> l3`` at once with one fixed weight per path
    (:func:`equinets.gaunt.tables.gaunt_c` times e3nn's ``o3.wigner_3j``, in the integral basis).
    Only paths with ``l1 + l2 + l3`` **even** exist: antisymmetric couplings such as the cross product
    ``1o x 1o -> 1e`` are absent for any choice of input parities, and the product is symmetric,
    ``gaunt_product(x1, x2) == gaunt_product(x2, x1)``.

    **Parity.** The numbers do not depend on the parity convention; the labels do. A signal with parity
    value ``p`` has irreps :func:`sh_irreps` ``(L, p)`` (``l`` of parity ``p (-1)^l``); the product of signals
    with ``p1`` and ``p2`` has ``p1 * p2``. So SH-parity inputs (``0e + 1o + 2e + ...``) give SH-parity
    outputs; two ``p = -1`` inputs (``0o + 1e + 2o + ...``) give SH parity too; mixed give ``p = -1``.
    :func:`gaunt_product_all_parities` combines the products of signals holding both.

    Routes (all exact to rounding, tables in float64 from :mod:`equinets.gaunt.tables`):

    * ``"grid"``: values on the minimal exact Gauss-Legendre x uniform grid (``D = L1 + L2 + lmax_out``;
      ``D // 2 + 1`` rings, ``D + 1`` azimuths made odd), pointwise product, quadrature back. Above the
      measured size ``D`` it is separable, O(L^3): per input a batched Legendre matmul per
      ``(sign, |m|)`` and one azimuthal GEMM over the whole circle, one multiplication, one azimuthal
      quadrature GEMM and a batched Gauss-Legendre matmul (on CPU these GEMMs beat ``torch.fft``'s small
      batched real FFTs, which the code keeps as a variant); below it, dense GEMMs with precomputed
      harmonics matrices;
    * ``"fourier"``: the paper's route: the sparse change of basis to the 2D Fourier basis (sh2f),
      the 2D convolution of the two spectra by ``torch.fft`` (zero-padded inverse real FFTs to the torus,
      product, real FFT), and the closed-form back-projection (f2sh);
    * ``"triton"``: one fused Triton kernel per product (to the grid by ``tl.dot``, product, quadrature back;
      :mod:`equinets.gaunt._triton`), CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``; needs the
      ``gpu`` extra (triton);
    * ``"auto"``: the faster torch route by the thresholds in :mod:`equinets.gaunt._thresholds`.

    Args:
        x1: ``(..., (L1 + 1)**2)`` coefficients in e3nn's layout and basis (``o3.spherical_harmonics``
            with the same ``normalization``), float32 or float64.
        x2: ``(..., (L2 + 1)**2)``, same device and dtype; the leading axes broadcast against ``x1``'s.
        lmax_out: the output's largest degree, ``0 <= lmax_out <= L1 + L2`` (default ``L1 + L2``,
            the whole product).
        normalization: ``"component"`` (default, e3nn's: :math:`\|Y^l\|^2 = 2l + 1`), ``"integral"``
            (:math:`\int Y^2 = 1`) or ``"norm"`` (:math:`\|Y^l\| = 1`); inputs and output use the same one.
            The component product is :math:`\sqrt{4\pi}` times the integral product of the same numbers.
        route: ``"auto"``, ``"grid"``, ``"fourier"`` or ``"triton"``.

    Returns:
        ``(*broadcast(x1.shape[:-1], x2.shape[:-1]), (lmax_out + 1)**2)``, dtype and device of the inputs.

    Autograd (double backward included) runs through every torch route. Under ``torch.compile``
    (``fullgraph=True`` works, no graph break) the tables are read from the cache: call the product
    once eagerly at the same sizes, device and dtype before compiling (the compiled graph cannot build
    them; NumPy's eigen-solver is not traceable), and compile with ``dynamic=False`` when several
    degrees are used (each degree has its own tables, hence its own graph).

    Example:
        >>> from e3nn import o3
        >>> a, b = torch.randn(3), torch.randn(3)  # two vectors
        >>> ya = o3.spherical_harmonics(1, a, normalize=False, normalization="component")  # sqrt(3) a
        >>> yb = o3.spherical_harmonics(1, b, normalize=False, normalization="component")
        >>> x1 = torch.cat([torch.zeros(1), ya]); x2 = torch.cat([torch.zeros(1), yb])
        >>> out = gaunt_product(x1, x2)  # f1 f2 = 9 (a.s)(b.s), whose mean over the sphere is 3 a.b
        >>> out.shape, bool(torch.allclose(out[0], 3 * a.dot(b), atol=1e-5))
        (torch.Size([9]), True)
        >>> float(out[1:4].abs().max()) < 1e-6  # 0e + 1o + 2e: no 1o (l1 + l2 + l3 = 3 is odd)
        True
    """
    L1, L2, Lo, batch = _check(x1, x2, lmax_out, normalization, route, finite=False)
    if route == "triton":
        from . import _triton

        _check_finite(x1, x2)
        return _triton.route(x1, x2, L1, L2, Lo, batch, normalization)
    D = L1 + L2 + Lo
    if route == "auto":
        route = _auto(x1.device, D)
    if math.prod(batch) == 0:  # empty batch: nothing to compute (keeps the graph to x1, x2 for autograd)
        _check_finite(x1, x2)
        return (x1.sum() * x2.sum()).expand(*batch, (Lo + 1) ** 2) * 0
    if x1.dim() != 2 or x1.shape[:-1] != batch or x2.shape[:-1] != batch:  # flat rows already: no views
        x1 = x1.expand(*batch, x1.shape[-1]).reshape(-1, x1.shape[-1])
        x2 = x2.expand(*batch, x2.shape[-1]).reshape(-1, x2.shape[-1])
    th = _thresholds.THRESHOLDS.get(x1.device.type, _thresholds.THRESHOLDS["cpu"])
    if route != "fourier" and D > th["grid_dense_max_D"]:  # the separable grid checks the inputs it copies
        out = _grid_sep(x1, x2, L1, L2, Lo, normalization, check=True)
    else:
        _check_finite(x1, x2)
        fn = _fourier if route == "fourier" else _grid_dense
        out = fn(x1, x2, L1, L2, Lo, normalization)
    return out if out.dim() == len(batch) + 1 and out.shape[:-1] == batch else out.reshape(*batch, (Lo + 1) ** 2)


def gaunt_product_all_parities(x1: tuple[Tensor, Tensor], x2: tuple[Tensor, Tensor], lmax_out: int | None = None,
                               *, normalization: str = "component", route: str = "auto") -> tuple[Tensor, Tensor]:
    r"""Gaunt products of signals holding both parity values: every even-sum coupling of ``0e, 0o, 1o, 1e, ...``.

    A signal with both parities is a pair ``(x_plus, x_minus)``: ``x_plus`` the SH-parity part
    (:func:`sh_irreps` ``(L, 1)``: ``0e + 1o + 2e + ...``) and ``x_minus`` the pseudo part (``0o + 1e + 2o + ...``),
    each ``(..., (L+1)**2)``. The product's ``p = +1`` part collects the ``(+, +)`` and ``(-, -)``
    couplings and its ``p = -1`` part the ``(+, -)`` and ``(-, +)`` ones. With the combinations
    :math:`x_\pm = x_+ \pm x_-` two products give all four,

    .. math::

        A = (x_{1+} + x_{1-}) \circledast (x_{2+} + x_{2-}), \quad
        B = (x_{1+} - x_{1-}) \circledast (x_{2+} - x_{2-}), \quad
        \text{out}_+ = (A + B)/2, \quad \text{out}_- = (A - B)/2.

    (The Price of Freedom's "AllParities" concatenates three products, ``(+, +)``, ``(+, -)`` and
    ``(-, +)``; that is ``out_+`` without the ``(-, -)`` term.) Odd-sum couplings stay absent.

    Args:
        x1, x2: ``(x_plus, x_minus)`` pairs; within a pair the two tensors have the same shape.
        lmax_out, normalization, route: as in :func:`gaunt_product`.

    Returns:
        ``(out_plus, out_minus)``: irreps ``sh_irreps(lmax_out, 1)`` and ``sh_irreps(lmax_out, -1)``.

    Example:
        >>> p, q = torch.randn(4), torch.randn(4)
        >>> zero = torch.zeros(4)
        >>> out_p, out_m = gaunt_product_all_parities((p, zero), (zero, q))  # (+) x (-) lands in p = -1
        >>> bool(out_p.abs().max() < 1e-6), bool(torch.allclose(out_m, gaunt_product(p, q), atol=1e-6))
        (True, True)
    """
    for name, pair in (("x1", x1), ("x2", x2)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{name} must be a pair (x_plus, x_minus) of tensors, got {type(pair).__name__}")
        if isinstance(pair[0], Tensor) and isinstance(pair[1], Tensor) and pair[0].shape != pair[1].shape:
            raise ValueError(f"{name}'s x_plus and x_minus must have the same shape, got {tuple(pair[0].shape)} "
                             f"and {tuple(pair[1].shape)}")
    kw = dict(normalization=normalization, route=route)
    A = gaunt_product(x1[0] + x1[1], x2[0] + x2[1], lmax_out, **kw)
    B = gaunt_product(x1[0] - x1[1], x2[0] - x2[1], lmax_out, **kw)
    return (A + B) / 2, (A - B) / 2
