r"""Representation matrices of O(3) on e3nn irreps, accurate to float64 rounding.

e3nn's ``Irreps.D_from_matrix`` goes through Euler angles (``acos``, ``atan2``) and builds its Lie
algebra generators in the *default* dtype, so with float32 defaults its float64 matrices are only
good to about 1e-6 (and near the identity the angle extraction loses more). That would swamp the
1e-9 equivariance checks of frame averaging, so here :math:`D^l(R)` is obtained directly from the
defining identity of the real spherical harmonics in e3nn's basis,

.. math::
    Y^l(R\,u) = D^l(R)\,Y^l(u) \quad\Longrightarrow\quad
    D^l(R)^\top = Y^l(U)^{+}\,Y^l(U R^\top),

with :math:`U` a fixed set of :math:`4(2l+1)` unit vectors (the least-squares system is exact and
well conditioned). Parity: :math:`D_{l,p}(R) = p^{k} D^l(\det(R)\,R)` with :math:`k = 1` when
:math:`\det R = -1`, as in e3nn. The result equals ``Irreps.D_from_matrix`` (same basis, same
parity convention) up to e3nn's own rounding.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import Tensor

__all__ = ["irreps_D", "rotate_irreps"]

_FIT: dict[tuple[int, str], tuple[Tensor, Tensor]] = {}


def _fit(l: int, device: torch.device) -> tuple[Tensor, Tensor]:
    key = (l, str(device))
    if key not in _FIT:
        g = torch.Generator().manual_seed(7919 + l)
        u = torch.randn(4 * (2 * l + 1), 3, generator=g, dtype=torch.float64)
        u = u / u.norm(dim=1, keepdim=True)
        y = o3.spherical_harmonics(l, u, normalize=False)
        _FIT[key] = (u.to(device), torch.linalg.pinv(y).to(device))
    return _FIT[key]


def _wigner_proper(l: int, R: Tensor) -> Tensor:
    """``D^l(R)`` for proper rotations ``R`` ``(..., 3, 3)`` in float64 -> ``(..., 2l+1, 2l+1)``."""
    if l == 0:
        return R.new_ones(*R.shape[:-2], 1, 1)
    if l == 1:  # e3nn's l = 1 basis is (x, y, z)
        return R
    u, pinv = _fit(l, R.device)
    y = o3.spherical_harmonics(l, u @ R.mT, normalize=False)  # (..., M, 2l+1)
    return (pinv @ y).mT


def _split(R: Tensor) -> tuple[Tensor, Tensor]:
    R = R.to(torch.float64)
    det = torch.linalg.det(R).sign()
    det = torch.where(det == 0, torch.ones_like(det), det)
    return R * det[..., None, None], det


def irreps_D(irreps, R: Tensor) -> Tensor:
    r"""Block-diagonal representation matrix :math:`D(R)` of ``irreps`` for ``R`` in O(3).

    Args:
        irreps: anything :class:`e3nn.o3.Irreps` accepts, e.g. ``"2x0e + 1o + 2e"``.
        R: ``(..., 3, 3)`` orthogonal matrices (any float dtype; computed in float64).

    Returns:
        ``(..., dim, dim)`` float64 tensor, the same matrix as ``Irreps(irreps).D_from_matrix(R)``.

    Example:
        >>> R = -torch.eye(3, dtype=torch.float64)  # the inversion
        >>> irreps_D("0e + 0o + 1o + 1e", R).diagonal().tolist()
        [1.0, -1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
    """
    irreps = o3.Irreps(irreps)
    Rp, det = _split(R)
    out = Rp.new_zeros(*Rp.shape[:-2], irreps.dim, irreps.dim)
    cache: dict[int, Tensor] = {}
    s = 0
    for mul, ir in irreps:
        if ir.l not in cache:
            cache[ir.l] = _wigner_proper(ir.l, Rp)
        d = 2 * ir.l + 1
        D = cache[ir.l] * torch.where(det < 0, float(ir.p), 1.0)[..., None, None]
        for _ in range(mul):
            out[..., s : s + d, s : s + d] = D
            s += d
    return out


def rotate_irreps(x: Tensor, irreps, R: Tensor, index: Tensor | None = None) -> Tensor:
    r"""Apply :math:`D(R)` to rows of features typed by ``irreps``: :math:`x_i \mapsto D(R_{k_i})\,x_i`.

    Works block by block (never forms the full ``dim x dim`` matrix per row) in float64 and returns
    ``x``'s dtype. Differentiable with respect to ``x`` (not ``R``).

    Args:
        x: ``(n, dim)`` features.
        irreps: the irreps of the columns of ``x``.
        R: ``(K, 3, 3)`` orthogonal matrices.
        index: ``(n,)`` long, row ``i`` uses ``R[index[i]]``; ``None`` means ``K == n`` (or ``K == 1``).

    Example:
        >>> Rz = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
        >>> rotate_irreps(torch.tensor([[5.0, 1.0, 0.0, 0.0]]), "0e + 1o", Rz).tolist()
        [[5.0, 0.0, 1.0, 0.0]]
    """
    irreps = o3.Irreps(irreps)
    if x.dim() != 2 or x.shape[1] != irreps.dim:
        raise ValueError(f"x must have shape (n, {irreps.dim}) for irreps {irreps}, got {tuple(x.shape)}")
    R = R.detach().reshape(-1, 3, 3)
    Rp, det = _split(R)
    if index is None:
        index = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if R.shape[0] == 1 else None
    elif index.shape != (x.shape[0],):
        raise ValueError(f"index must have shape ({x.shape[0]},), got {tuple(index.shape)}")
    if index is None and R.shape[0] != x.shape[0]:
        raise ValueError(
            f"R must have one matrix per row of x ({x.shape[0]}) or one in all, got {R.shape[0]}"
        )
    xd = x.to(torch.float64)
    det_rows = det if index is None else det[index]
    cache: dict[int, Tensor] = {}
    parts = []
    s = 0
    for mul, ir in irreps:
        d = 2 * ir.l + 1
        block = xd[:, s : s + mul * d].reshape(-1, mul, d)
        s += mul * d
        if ir.l > 0:
            if ir.l not in cache:
                D = _wigner_proper(ir.l, Rp)
                cache[ir.l] = D if index is None else D[index]
            block = torch.einsum("nij,nmj->nmi", cache[ir.l], block)
        if ir.p == -1:
            block = block * det_rows[:, None, None]
        parts.append(block.reshape(-1, mul * d))
    out = torch.cat(parts, dim=1) if parts else xd
    return out.to(x.dtype)
