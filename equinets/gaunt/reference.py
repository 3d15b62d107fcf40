r"""A slow, independent reference for the Gaunt tensor product, and the e3nn baseline on the same paths.

Nothing here uses the fast tables of :mod:`equinets.gaunt`: the Gaunt coefficients are built from
e3nn's Wigner 3j symbols and one exactly computed scalar per degree triple, so tests can hold the
fast routes against them.

**Gaunt coefficients** (Luo, Chen, Krishnapriyan, *Enabling Efficient Equivariant Operations in the
Fourier Basis via Gaunt Tensor Products*, ICLR 2024, Eq. 2-3). With orthonormal (``"integral"``)
real spherical harmonics in e3nn's basis,

.. math::
    G(l_1 m_1, l_2 m_2, l_3 m_3) = \int_{S^2} Y_{l_1 m_1} Y_{l_2 m_2} Y_{l_3 m_3}\, d\Omega
    = c(l_1, l_2, l_3)\; W^{l_1 l_2 l_3}_{m_1 m_2 m_3},
    \qquad
    c(l_1, l_2, l_3) = \sqrt{\tfrac{(2l_1+1)(2l_2+1)(2l_3+1)}{4\pi}}\,
    \left|\begin{pmatrix} l_1 & l_2 & l_3 \\ 0 & 0 & 0 \end{pmatrix}\right|,

where :math:`W` is ``e3nn.o3.wigner_3j(l1, l2, l3)`` (Frobenius norm 1, e3nn's sign convention
absorbs the sign of the 3j symbol). The 3j symbol with zero projections vanishes for odd
:math:`l_1+l_2+l_3` and otherwise has the closed form (:func:`wigner_3j_zero`)

.. math::
    \begin{pmatrix} l_1 & l_2 & l_3 \\ 0 & 0 & 0 \end{pmatrix}
    = (-1)^g \sqrt{\frac{(J-2l_1)!\,(J-2l_2)!\,(J-2l_3)!}{(J+1)!}}\;
      \frac{g!}{(g-l_1)!\,(g-l_2)!\,(g-l_3)!}, \qquad J = l_1+l_2+l_3 = 2g,

evaluated here with Python integers and :class:`fractions.Fraction` (exact), rounded once to float64.

**Normalisations.** Coefficients ``x`` of :math:`f = \sum_{lm} x_{lm} Y^{\mathrm{basis}}_{lm}` with
:math:`Y^{\mathrm{basis}}_l = s_l\, Y^{\mathrm{integral}}_l` as in ``o3.spherical_harmonics``:
:math:`s_l = 1` (``"integral"``), :math:`\sqrt{4\pi}` (``"component"``, :math:`\|Y_l\|^2 = 2l+1`),
:math:`\sqrt{4\pi/(2l+1)}` (``"norm"``, :math:`\|Y_l\| = 1`). The product of the two functions then
has coefficients

.. math::
    z_{l_3 m_3} = \frac{s_{l_1} s_{l_2}}{s_{l_3}} \sum G(l_1 m_1, l_2 m_2, l_3 m_3)\, x_{l_1 m_1} y_{l_2 m_2},

so in ``"component"`` normalisation the constant function 1 has coefficient 1 and multiplying by it
is the identity. :func:`gaunt_tensor` is this dense tensor; :func:`reference_gaunt_product` applies it
by ``einsum``; :func:`e3nn_gaunt_tensor_product` is the same map as an ``e3nn.o3.TensorProduct``
restricted to the Gaunt paths (the baseline of the benchmarks and of the paper's code).
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import torch
from e3nn import o3
from torch import Tensor

from .._checks import check_choice, check_int

__all__ = ["NORMALIZATIONS", "wigner_3j_zero", "gaunt_coefficient", "gaunt_tensor", "reference_gaunt_product",
           "e3nn_gaunt_tensor_product", "degree_of_size"]

#: the normalisations of ``o3.spherical_harmonics`` that the Gaunt product accepts
NORMALIZATIONS = ("component", "integral", "norm")


def _wigner_3j_zero_exact(l1: int, l2: int, l3: int) -> tuple[int, Fraction]:
    """Sign and exact square of (l1 l2 l3; 0 0 0)."""
    J = l1 + l2 + l3
    if J % 2 or l3 < abs(l1 - l2) or l3 > l1 + l2:
        return 0, Fraction(0)
    g = J // 2
    f = math.factorial
    square = Fraction(f(J - 2 * l1) * f(J - 2 * l2) * f(J - 2 * l3), f(J + 1))
    ratio = Fraction(f(g), f(g - l1) * f(g - l2) * f(g - l3))
    return (-1) ** g, square * ratio * ratio


def wigner_3j_zero(l1: int, l2: int, l3: int) -> float:
    r"""The Wigner 3j symbol :math:`(l_1\ l_2\ l_3;\ 0\ 0\ 0)` by its exact closed form, rounded once to float64.

    Zero for odd :math:`l_1+l_2+l_3` or when the triangle inequality fails.

    Args:
        l1, l2, l3: non-negative degrees.

    Returns:
        The symbol as a Python float.

    Example:
        >>> round(wigner_3j_zero(1, 1, 2), 12), wigner_3j_zero(1, 1, 1)
        (0.36514837167, 0.0)
    """
    for name, v in (("l1", l1), ("l2", l2), ("l3", l3)):
        check_int(v, name, 0)
    sign, square = _wigner_3j_zero_exact(l1, l2, l3)
    return sign * math.sqrt(square) if sign else 0.0


def gaunt_coefficient(l1: int, l2: int, l3: int) -> float:
    r"""The degree factor :math:`c(l_1,l_2,l_3)` with :math:`G = c\,` ``o3.wigner_3j(l1, l2, l3)`` (e3nn basis).

    .. math::
        c(l_1,l_2,l_3) = \sqrt{\tfrac{(2l_1+1)(2l_2+1)(2l_3+1)}{4\pi}}\,
        \left|\begin{pmatrix} l_1 & l_2 & l_3 \\ 0 & 0 & 0 \end{pmatrix}\right|

    computed from the exact square (one rounding to float64, one correctly rounded square root).

    Example:
        >>> round(gaunt_coefficient(0, 0, 0), 12), round(gaunt_coefficient(1, 1, 2), 5)
        (0.282094791774, 0.69099)
    """
    for name, v in (("l1", l1), ("l2", l2), ("l3", l3)):
        check_int(v, name, 0)
    _, square = _wigner_3j_zero_exact(l1, l2, l3)
    return math.sqrt(float(square * (2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1)) / (4 * math.pi))


def _scale(l: int, normalization: str) -> float:
    """s_l with Y^basis_l = s_l Y^integral_l."""
    if normalization == "integral":
        return 1.0
    if normalization == "component":
        return math.sqrt(4 * math.pi)
    return math.sqrt(4 * math.pi / (2 * l + 1))


def degree_of_size(n: int, name: str) -> int:
    """Return ``L`` for a last axis of size ``(L + 1)**2``, else raise ``ValueError`` naming ``name``.

    >>> degree_of_size(9, "x1")
    2
    >>> degree_of_size(5, "x1")
    Traceback (most recent call last):
    ...
    ValueError: x1 must have (L+1)**2 entries on its last axis (e3nn layout of 0..L), got 5
    """
    L = math.isqrt(n) - 1
    if n < 1 or (L + 1) ** 2 != n:
        raise ValueError(f"{name} must have (L+1)**2 entries on its last axis (e3nn layout of 0..L), got {n}")
    return L


@lru_cache(maxsize=64)
def _gaunt_tensor_f64(L1: int, L2: int, lmax_out: int, normalization: str) -> Tensor:
    T = torch.zeros((L1 + 1) ** 2, (L2 + 1) ** 2, (lmax_out + 1) ** 2, dtype=torch.float64)
    for l1 in range(L1 + 1):
        for l2 in range(L2 + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax_out) + 1):
                if (l1 + l2 + l3) % 2:
                    continue
                c = gaunt_coefficient(l1, l2, l3) * _scale(l1, normalization) * _scale(l2, normalization) \
                    / _scale(l3, normalization)
                T[l1 * l1:(l1 + 1) ** 2, l2 * l2:(l2 + 1) ** 2, l3 * l3:(l3 + 1) ** 2] = \
                    c * o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
    T.requires_grad_(False)
    return T


def gaunt_tensor(L1: int, L2: int, lmax_out: int | None = None, normalization: str = "component", *,
                 dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    r"""The dense Gaunt tensor of the product of two spherical functions, in e3nn's basis and layout.

    ``T[i, j, k]`` with ``i = l1**2 + l1 + m1`` (e3nn's layout of degrees ``0..L1``), likewise ``j``
    and ``k``; :math:`T = \frac{s_{l_1}s_{l_2}}{s_{l_3}}\, c(l_1,l_2,l_3)\, W^{l_1l_2l_3}` on every
    path with even :math:`l_1+l_2+l_3` and :math:`l_3 \le` ``lmax_out``, zero elsewhere (module
    docstring). Built in float64 from ``o3.wigner_3j`` and cached; cost :math:`O(L^6)`.

    Args:
        L1, L2: the largest degrees of the two inputs.
        lmax_out: the largest output degree kept (default ``L1 + L2``; larger values add zero rows).
        normalization: ``"component"`` (default), ``"integral"`` or ``"norm"``, as in ``o3.spherical_harmonics``.
        dtype, device: of the returned tensor (a copy of the float64 table).

    Returns:
        ``((L1+1)**2, (L2+1)**2, (lmax_out+1)**2)`` tensor.

    Example:
        >>> T = gaunt_tensor(1, 1, normalization="integral")
        >>> T.shape, round(float(T[0, 0, 0]), 6)   # int Y00^3 = 1 / sqrt(4 pi)
        (torch.Size([4, 4, 9]), 0.282095)
    """
    L1, L2 = check_int(L1, "L1", 0), check_int(L2, "L2", 0)
    lmax_out = L1 + L2 if lmax_out is None else check_int(lmax_out, "lmax_out", 0)
    check_choice(normalization, "normalization", NORMALIZATIONS)
    return _gaunt_tensor_f64(L1, L2, lmax_out, normalization).to(dtype=dtype, device=device, copy=True)


def reference_gaunt_product(x1: Tensor, x2: Tensor, lmax_out: int | None = None,
                            normalization: str = "component") -> Tensor:
    r"""Coefficients of the pointwise product of two spherical functions, by ``einsum`` with :func:`gaunt_tensor`.

    .. math::
        z_{k} = \sum_{i,j} T_{ijk}\, x_{1,i}\, x_{2,j}

    The slow reference for :func:`equinets.gaunt.gaunt_product` (same contract): e3nn layout and basis
    on the last axis, leading axes broadcast.

    Args:
        x1: ``(..., (L1+1)**2)`` coefficients of degrees ``0..L1``.
        x2: ``(..., (L2+1)**2)`` coefficients of degrees ``0..L2``.
        lmax_out: largest output degree (default ``L1 + L2``).
        normalization: ``"component"`` (default), ``"integral"`` or ``"norm"``.

    Returns:
        ``(broadcast(...), (lmax_out+1)**2)`` tensor, dtype of the inputs.

    Example:
        >>> x = torch.tensor([1.0, 0.0, 0.5, 0.0], dtype=torch.float64)   # 1 + 0.5 Y_1,0
        >>> one = torch.tensor([1.0], dtype=torch.float64)               # the constant 1 ("component")
        >>> [round(v, 12) for v in reference_gaunt_product(x, one).tolist()]
        [1.0, 0.0, 0.5, 0.0]
    """
    if not isinstance(x1, Tensor) or not isinstance(x2, Tensor):
        bad = "x1" if not isinstance(x1, Tensor) else "x2"
        raise TypeError(f"{bad} must be a torch.Tensor, got {type(x1 if bad == 'x1' else x2).__name__}")
    for name, t in (("x1", x1), ("x2", x2)):
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        if t.dim() == 0:
            raise ValueError(f"{name} must have at least one axis (the coefficients), got a 0-d tensor")
    if x1.dtype != x2.dtype:
        raise TypeError(f"x2 must have the dtype of x1 ({x1.dtype}), got {x2.dtype}")
    if x1.device != x2.device:
        raise ValueError(f"x2 must be on the device of x1 ({x1.device}), got {x2.device}")
    L1, L2 = degree_of_size(x1.shape[-1], "x1"), degree_of_size(x2.shape[-1], "x2")
    T = gaunt_tensor(L1, L2, lmax_out, normalization, dtype=x1.dtype, device=x1.device)
    return torch.einsum("...i,...j,ijk->...k", x1, x2, T)


def _sh_irreps(L: int, p_val: int, mul: int = 1) -> o3.Irreps:
    return o3.Irreps([(mul, (l, p_val * (-1) ** l)) for l in range(L + 1)])


def e3nn_gaunt_tensor_product(L1: int, L2: int, lmax_out: int | None = None, *, channels: int = 1,
                              p_val1: int = 1, p_val2: int = 1, normalization: str = "component",
                              learnable: bool = False, dtype: torch.dtype | None = None) -> o3.TensorProduct:
    r"""The e3nn ``o3.TensorProduct`` restricted to the Gaunt paths: the same map as :func:`reference_gaunt_product`.

    Inputs ``channels x (0..L1)`` and ``channels x (0..L2)``, output ``channels x (0..lmax_out)`` (e3nn
    ``mul_ir`` layout), parities :math:`p_{\mathrm{val}}(-1)^l` per input and
    :math:`p_{\mathrm{val},1}p_{\mathrm{val},2}(-1)^{l_3}` out; one ``"uuu"`` instruction per path
    :math:`(l_1, l_2 \to l_3)` with even :math:`l_1+l_2+l_3`, ``irrep_normalization="none"``,
    ``path_normalization="none"`` and ``path_weight`` :math:`= (c\, s_{l_1}s_{l_2}/s_{l_3})^2`
    (e3nn multiplies each path by the square root of its weight, so each path is exactly
    :func:`gaunt_tensor`'s block). This is the construction of the paper's code
    (``GauntFullyConnectedTensorProduct``, weights ``const_wigner2gaunt**2``) and the O(L^6)
    baseline of the benchmarks. With ``channels = 1`` and all multiplicities 1, the e3nn layout
    of ``0..L`` equals the spherical-harmonic layout.

    Args:
        L1, L2: largest input degrees; lmax_out: largest output degree (default ``L1 + L2``).
        channels: multiplicity ``u`` of every irrep (channel-wise, ``"uuu"``).
        p_val1, p_val2: parity convention of each input (+1: ``0e+1o+2e...``, -1: ``0o+1e+2o...``).
        normalization: ``"component"`` (default), ``"integral"`` or ``"norm"``.
        learnable: give every path a trainable per-channel weight (initialised to 1) as the paper's
            baseline does; ``False`` (default) builds the fixed map.
        dtype: dtype of the module (default: torch's default dtype). e3nn builds its 3j constants in the
            default dtype, so the module is built under ``dtype`` as default: a float64 product is float64
            throughout, not float32 constants cast up.

    Returns:
        ``o3.TensorProduct`` whose ``forward(x1, x2)`` maps ``(..., dim1)``, ``(..., dim2)`` to ``(..., dim_out)``.

    Example:
        >>> tp = e3nn_gaunt_tensor_product(1, 1, dtype=torch.float64)
        >>> x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
        >>> bool(torch.allclose(tp(x, y), reference_gaunt_product(x, y), atol=1e-13))
        True
    """
    L1, L2 = check_int(L1, "L1", 0), check_int(L2, "L2", 0)
    lmax_out = L1 + L2 if lmax_out is None else check_int(lmax_out, "lmax_out", 0)
    channels = check_int(channels, "channels", 1)
    for name, p in (("p_val1", p_val1), ("p_val2", p_val2)):
        if p not in (1, -1) or isinstance(p, bool):
            raise ValueError(f"{name} must be +1 or -1, got {p!r}")
    check_choice(normalization, "normalization", NORMALIZATIONS)
    irreps1, irreps2 = _sh_irreps(L1, p_val1, channels), _sh_irreps(L2, p_val2, channels)
    irreps_out = _sh_irreps(lmax_out, p_val1 * p_val2, channels)
    instructions = []
    for l1 in range(L1 + 1):
        for l2 in range(L2 + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax_out) + 1):
                if (l1 + l2 + l3) % 2 == 0:
                    w = gaunt_coefficient(l1, l2, l3) * _scale(l1, normalization) * _scale(l2, normalization) \
                        / _scale(l3, normalization)
                    instructions.append((l1, l2, l3, "uuu", bool(learnable), w * w))
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    old = torch.get_default_dtype()
    try:
        torch.set_default_dtype(dtype)
        tp = o3.TensorProduct(irreps1, irreps2, irreps_out, instructions, irrep_normalization="none",
                              path_normalization="none", internal_weights=True if learnable else None,
                              shared_weights=True if learnable else None)
    finally:
        torch.set_default_dtype(old)
    tp = tp.to(dtype)
    if learnable:
        with torch.no_grad():
            tp.weight.fill_(1.0)
    return tp
