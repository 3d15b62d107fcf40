r"""The ``"triton"`` route of the Gaunt product: one fused Triton kernel per product, forward and backward.

Luo, Chen, Krishnapriyan, "Enabling Efficient Equivariant Operations in the Fourier Basis via Gaunt
Tensor Products", ICLR 2024: the Gaunt product is the projection of the pointwise product of two
spherical functions. Here it is computed on the minimal exact Gauss-Legendre x uniform grid of
:func:`equinets.gaunt.tables.grid_tables` (``D = L1 + L2 + lmax_out``), with the dense tables of the
torch grid route (:func:`equinets.gaunt.functional._grid_dense_tensors`: the same float64 tables with
the normalisation folded in, cast to the inputs' dtype), in one kernel:

.. math::

    \text{out} = \big((x_1 Y_1) \odot (x_2 Y_2)\big)\, W, \qquad
    Y_i = \big[Y_{lm}(s_g)\big] \in \mathbb R^{(L_i + 1)^2 \times G}, \quad
    W = \big[w_g Y_{lm}(s_g)\big] \in \mathbb R^{G \times (L_{out} + 1)^2},

``G = n_beta * n_alpha`` grid points, ``w_g`` the quadrature weights. A program takes ``BLOCK_B`` rows
(batch x channels flattened) and one tile of output columns; it loads the rows' coefficients of both
inputs once, then walks the grid in chunks of ``BLOCK_G`` points: values on the chunk by two ``tl.dot``
(to-grid), the pointwise product in registers, and its quadrature ``tl.dot`` accumulated into the
output tile. No grid-sized intermediate reaches global memory. The coefficient and grid axes are
padded to powers of two ``>= 16`` (``tl.dot``'s minimum), the tails masked to zero on load.

The kernel computes the trilinear map :math:`T(a, b; P, Q, R) = ((a P) \odot (b Q)) R`, and its
derivatives are the same map with other tables (all transposes are strides, nothing is copied):

.. math::

    \partial_a = T(g, b; R^\top, Q, P^\top), \qquad \partial_b = T(g, a; R^\top, P, Q^\top)

for an output gradient ``g``. **Backward** runs one fused kernel (``backward_kernel`` in
:func:`_kernels`) that computes both gradients at once: per grid chunk, ``g R^T`` (summed over output
chunks), the values of both inputs, and the two back-projections accumulated into
``(BLOCK_B, pad(N))`` tiles; above 128 input coefficients (L > 10) the two gradients are two
forward-kernel products instead. **Double backward**: when the backward itself is recorded
(``create_graph=True``, as for forces), the two gradients are built from the forward kernel through
the same :class:`torch.autograd.Function` (the identities above), so every order of derivative runs
on the Triton kernels and ``gradgradcheck`` passes; first-order backward keeps the fused kernel.

Precision: float32 with float32 accumulation (``tl.dot`` with ``input_precision="ieee"``, not TF32:
on NVIDIA GPUs this is an FMA dot, not a tensor-core one) and float64 (``tl.dot`` on float64 tiles,
accumulated in float64; the interpreter supports it, and compiled ahead of time for sm_80 / sm_90 it
lowers to the ``mma.sync ... f64`` double-precision MMA, so no fallback is needed). float16 and
bfloat16 are refused (the tables are exact to float64; half precision would lose them).

Shapes: ``x1 (B, (L1+1)**2)``, ``x2 (B, (L2+1)**2)`` rows (leading axes broadcast and flattened by
:func:`route`), tables ``Y1 ((L1+1)**2, G)``, ``Y2``, ``W (G, (L_out+1)**2)``, output ``(B, (L_out+1)**2)``.
The dense tables grow as ``L^4``: this route is for the small and moderate degrees of networks
(the bar is L = 6); the separable O(L^3) transforms are the torch grid route's.

Devices: CUDA tensors on a machine with triton; CPU tensors only under the Triton interpreter
(``TRITON_INTERPRET=1``), which is how the tests run. **GPU timings are pending**: this module was
written and tested in a session without a GPU: the interpreter ran the kernels, and Triton's
bundled ptxas compiled them ahead of time for sm_80 and sm_90 (no register spills, at most 84 KB of
shared memory at L = 6 with the tile sizes of :func:`_config`), but nothing was run or timed on a device.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["gaunt_product_triton", "grid_product", "route", "check_supported"]

_EXTRA_HINT = "install equinets with the 'gpu' extra: pip install 'equinets[gpu]'"


def _import_triton():
    try:
        import triton
        import triton.language as tl
    except ImportError:
        raise ImportError(f"route='triton' needs the triton package, which is not installed; {_EXTRA_HINT}") from None
    return triton, tl


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def check_supported(x1: Tensor, x2: Tensor | None = None) -> None:
    """Raise before any work if the triton route cannot run on these tensors.

    triton missing: ``ImportError`` naming the extra. Compiled kernels (no interpreter) need CUDA
    tensors; CPU tensors need ``TRITON_INTERPRET=1``. Only float32 and float64 are supported, and inputs of
    degree at most 15 (``_KERNEL_MAX_PAD``: a row tile holds a whole input).
    """
    _import_triton()
    for name, x in (("x1", x1), ("x2", x2)):
        if x is None:
            continue
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be float32 or float64 for route='triton', got dtype {x.dtype}")
        if x.device.type != "cuda" and not _interpreting():
            raise RuntimeError(f"route='triton' runs compiled Triton kernels on CUDA tensors, but {name} is on "
                               f"{x.device}; move the inputs to a CUDA device, use route='grid' or 'fourier' on "
                               f"{x.device.type}, or set TRITON_INTERPRET=1 (before the first call) to run the "
                               f"kernels in Triton's interpreter (slow; for tests)")
        if x.dim() and _pad(x.shape[-1]) > _KERNEL_MAX_PAD:
            raise ValueError(f"route='triton' supports inputs of degree L <= 15 ((L+1)**2 <= {_KERNEL_MAX_PAD} "
                             f"coefficients: one row tile holds them whole), but {name} has {x.shape[-1]} coefficients "
                             f"on its last axis; use route='grid' or 'fourier' for larger degrees")
    if x2 is not None and x1.device != x2.device:
        raise ValueError(f"x1 and x2 must be on the same device, got x1 on {x1.device} and x2 on {x2.device}")


# -------------------------------------------------------------------------------------------- kernels


@lru_cache(maxsize=2)
def _kernels(interpret: bool):
    """The jitted kernels, built on first use (triton is optional), once per interpreter setting.

    ``triton.jit`` reads ``TRITON_INTERPRET`` when it decorates, so the kernels are defined here and
    cached per setting rather than at import.
    """
    triton, tl = _import_triton()

    @triton.jit
    def forward_kernel(a_ptr, b_ptr, p_ptr, q_ptr, r_ptr, out_ptr, n_rows, NA, NB, G, NO,
                       s_ab, s_ak, s_bb, s_bk, s_pk, s_pg, s_qk, s_qg, s_rg, s_ro, s_ob, s_oo,
                       BLOCK_B: tl.constexpr, NA_P: tl.constexpr, NB_P: tl.constexpr, BLOCK_G: tl.constexpr,
                       BLOCK_O: tl.constexpr):
        # out[rows, o-tile] = sum over grid chunks of ((a P) * (b Q)) R
        rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
        ocol = tl.program_id(1) * BLOCK_O + tl.arange(0, BLOCK_O)
        ka = tl.arange(0, NA_P)
        kb = tl.arange(0, NB_P)
        rmask = rows < n_rows
        omask = ocol < NO
        a = tl.load(a_ptr + rows[:, None] * s_ab + ka[None, :] * s_ak, mask=rmask[:, None] & (ka < NA)[None, :],
                    other=0.0)
        b = tl.load(b_ptr + rows[:, None] * s_bb + kb[None, :] * s_bk, mask=rmask[:, None] & (kb < NB)[None, :],
                    other=0.0)
        acc = tl.full((BLOCK_B, BLOCK_O), 0.0, out_ptr.dtype.element_ty)
        for g0 in range(0, G, BLOCK_G):
            gs = g0 + tl.arange(0, BLOCK_G)
            gmask = gs < G
            p = tl.load(p_ptr + ka[:, None] * s_pk + gs[None, :] * s_pg, mask=(ka < NA)[:, None] & gmask[None, :],
                        other=0.0)
            q = tl.load(q_ptr + kb[:, None] * s_qk + gs[None, :] * s_qg, mask=(kb < NB)[:, None] & gmask[None, :],
                        other=0.0)
            r = tl.load(r_ptr + gs[:, None] * s_rg + ocol[None, :] * s_ro, mask=gmask[:, None] & omask[None, :],
                        other=0.0)
            fa = tl.dot(a, p, input_precision="ieee")  # (BLOCK_B, BLOCK_G): values on the chunk
            fb = tl.dot(b, q, input_precision="ieee")
            acc = tl.dot(fa * fb, r, acc, input_precision="ieee")  # quadrature of the product
        tl.store(out_ptr + rows[:, None] * s_ob + ocol[None, :] * s_oo, acc, mask=rmask[:, None] & omask[None, :])

    @triton.jit
    def backward_kernel(g_ptr, a_ptr, b_ptr, p_ptr, q_ptr, r_ptr, ga_ptr, gb_ptr, n_rows, NA, NB, G, NO,
                        s_gb, s_go, s_ab, s_ak, s_bb, s_bk, s_pk, s_pg, s_qk, s_qg, s_rg, s_ro,
                        s_gab, s_gak, s_gbb, s_gbk,
                        BLOCK_B: tl.constexpr, NA_P: tl.constexpr, NB_P: tl.constexpr, BLOCK_G: tl.constexpr,
                        BLOCK_K: tl.constexpr, NEED_A: tl.constexpr, NEED_B: tl.constexpr):
        # h = g R^T on a chunk (summed over output chunks of BLOCK_K); ga += (h * (b Q)) P^T, gb += (h * (a P)) Q^T
        rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
        ka = tl.arange(0, NA_P)
        kb = tl.arange(0, NB_P)
        rmask = rows < n_rows
        amask = ka < NA
        bmask = kb < NB
        a = tl.load(a_ptr + rows[:, None] * s_ab + ka[None, :] * s_ak, mask=rmask[:, None] & amask[None, :],
                    other=0.0)
        b = tl.load(b_ptr + rows[:, None] * s_bb + kb[None, :] * s_bk, mask=rmask[:, None] & bmask[None, :],
                    other=0.0)
        acc_a = tl.full((BLOCK_B, NA_P), 0.0, ga_ptr.dtype.element_ty)
        acc_b = tl.full((BLOCK_B, NB_P), 0.0, gb_ptr.dtype.element_ty)
        for g0 in range(0, G, BLOCK_G):
            gs = g0 + tl.arange(0, BLOCK_G)
            gmask = gs < G
            p = tl.load(p_ptr + ka[:, None] * s_pk + gs[None, :] * s_pg, mask=amask[:, None] & gmask[None, :],
                        other=0.0)
            q = tl.load(q_ptr + kb[:, None] * s_qk + gs[None, :] * s_qg, mask=bmask[:, None] & gmask[None, :],
                        other=0.0)
            h = tl.full((BLOCK_B, BLOCK_G), 0.0, ga_ptr.dtype.element_ty)  # the gradient on the grid chunk
            for o0 in range(0, NO, BLOCK_K):
                ko = o0 + tl.arange(0, BLOCK_K)
                omask = ko < NO
                go = tl.load(g_ptr + rows[:, None] * s_gb + ko[None, :] * s_go, mask=rmask[:, None] & omask[None, :],
                             other=0.0)
                rt = tl.load(r_ptr + gs[None, :] * s_rg + ko[:, None] * s_ro, mask=omask[:, None] & gmask[None, :],
                             other=0.0)  # (BLOCK_K, BLOCK_G): R^T on the chunk
                h = tl.dot(go, rt, h, input_precision="ieee")
            if NEED_A:
                fb = tl.dot(b, q, input_precision="ieee")
                acc_a = tl.dot(h * fb, tl.trans(p), acc_a, input_precision="ieee")
            if NEED_B:
                fa = tl.dot(a, p, input_precision="ieee")
                acc_b = tl.dot(h * fa, tl.trans(q), acc_b, input_precision="ieee")
        if NEED_A:
            tl.store(ga_ptr + rows[:, None] * s_gab + ka[None, :] * s_gak, acc_a, mask=rmask[:, None] & amask[None, :])
        if NEED_B:
            tl.store(gb_ptr + rows[:, None] * s_gbb + kb[None, :] * s_gbk, acc_b, mask=rmask[:, None] & bmask[None, :])

    return triton, forward_kernel, backward_kernel


def _pad(n: int) -> int:
    """The next power of two ``>= max(n, 16)`` (``tl.dot`` needs every tile dimension ``>= 16``)."""
    return max(16, 1 << max(0, n - 1).bit_length())


# Tile sizes: not tuned on a GPU (none was available when this was written), but checked by compiling
# ahead of time for NVIDIA sm_80 / sm_90 with Triton's bundled ptxas and reading the cubin's resource
# usage (cuobjdump): at L = 6 -> 12, no register spills and at most 84 KB of shared memory for either
# kernel and dtype on both (forward 58 / 84 KB, 114-122 / 176-182 registers in float32 / float64;
# backward 26 / 24 KB, 228-237 / 210-230 registers). The forward holds the whole output row up to
# 256 columns (L_out <= 15), so the values on the grid are computed once per row tile. The fused
# backward keeps both input gradients as (BLOCK_B, pad(N)) accumulators, so above 128 input
# coefficients (L > 10) it is replaced by two forward-kernel products (the create_graph composition
# of _Trilinear.backward). Float64 inputs padded to 256 columns (L = 10..15) take 16-row tiles and one
# pipeline stage: at L = 12 -> 24 the 32-row, two-stage tiles needed 233 KB of shared memory on sm_90 (limit
# 227 KB), the smaller ones 164 KB (tests/gaunt/test_triton.py compiles these sizes ahead of time).
_FUSED_BACKWARD_MAX = 128
#: Widest padded input of the forward kernel (degree 15: 256 coefficients): each row tile holds its inputs
#: whole, and wider inputs do not fit in shared memory (float64 at 1024 padded columns: 528 KB on sm_90, whose
#: limit is 227 KB; checked ahead of time, ``tests/gaunt/test_triton.py``). Inputs above it are refused
#: (:func:`check_supported`); the gradient compositions whose output-gradient input is wider (``L_out >= 16``)
#: run as the same three products in torch (cuBLAS GEMMs on a GPU), differentiable to any order.
_KERNEL_MAX_PAD = 256


def _config(kind: str, dtype: torch.dtype, NA: int, NB: int, NO: int) -> dict:
    """Tile sizes (powers of two, all ``>= 16``) and launch options of the ``"forward"`` or ``"backward"`` kernel."""
    f64 = dtype == torch.float64
    c = dict(NA_P=_pad(NA), NB_P=_pad(NB), num_warps=8, num_stages=2)
    if kind == "forward":
        big = f64 and max(c["NA_P"], c["NB_P"]) >= 256  # float64 from L = 10 on: 16 rows per tile, one stage
        if big:
            c["num_stages"] = 1
        return dict(c, BLOCK_B=16 if big else 32 if f64 else 16, BLOCK_G=16 if f64 else 32, BLOCK_O=min(_pad(NO), 256))
    return dict(c, BLOCK_B=16 if f64 else 32, BLOCK_G=16, BLOCK_K=min(_pad(NO), 32))


def _trilinear(a: Tensor, b: Tensor, P: Tensor, Q: Tensor, R: Tensor) -> Tensor:
    """``((a @ P) * (b @ Q)) @ R`` by the fused forward kernel; ``a (B, NA)``, ``b (B, NB)``, any strides."""
    triton, fwd, _ = _kernels(_interpreting())
    n_rows, NA = a.shape
    NB, G, NO = b.shape[1], P.shape[1], R.shape[1]
    out = torch.empty(n_rows, NO, device=a.device, dtype=a.dtype)
    if n_rows == 0:
        return out
    c = _config("forward", a.dtype, NA, NB, NO)
    grid = (triton.cdiv(n_rows, c["BLOCK_B"]), triton.cdiv(NO, c["BLOCK_O"]))
    fwd[grid](a, b, P, Q, R, out, n_rows, NA, NB, G, NO, *a.stride(), *b.stride(), *P.stride(), *Q.stride(),
              *R.stride(), *out.stride(), **c)
    return out


def _trilinear_grads(g: Tensor, a: Tensor, b: Tensor, P: Tensor, Q: Tensor, R: Tensor, need_a: bool, need_b: bool):
    """Both gradients of :func:`_trilinear` from one launch of the fused backward kernel."""
    triton, _, bwd = _kernels(_interpreting())
    n_rows, NA = a.shape
    NB, G, NO = b.shape[1], P.shape[1], R.shape[1]
    ga = torch.empty_like(a, memory_format=torch.contiguous_format) if need_a else a.new_empty(1, 1)
    gb = torch.empty_like(b, memory_format=torch.contiguous_format) if need_b else b.new_empty(1, 1)
    if n_rows:
        c = _config("backward", a.dtype, NA, NB, NO)
        grid = (triton.cdiv(n_rows, c["BLOCK_B"]),)
        bwd[grid](g, a, b, P, Q, R, ga, gb, n_rows, NA, NB, G, NO, *g.stride(), *a.stride(), *b.stride(),
                  *P.stride(), *Q.stride(), *R.stride(), *ga.stride(), *gb.stride(), NEED_A=need_a, NEED_B=need_b, **c)
    return (ga if need_a else None), (gb if need_b else None)


def _torch_trilinear(a: Tensor, b: Tensor, P: Tensor, Q: Tensor, R: Tensor) -> Tensor:
    """:func:`_trilinear` in torch operations (autograd to any order): for inputs wider than the kernel's tiles."""
    return ((a @ P) * (b @ Q)) @ R


class _Trilinear(torch.autograd.Function):
    """``T(a, b; P, Q, R) = ((a P) * (b Q)) R`` on the Triton kernels, differentiable to any order in ``a, b``.

    The tables ``P, Q, R`` are constants (no gradient). First-order backward: the fused backward
    kernel. Recorded backward (``create_graph=True``): ``T(g, b; R^T, Q, P^T)`` and ``T(g, a; R^T, P, Q^T)``
    through this same Function, so higher derivatives run on the forward kernel again.
    """

    @staticmethod
    def forward(ctx, a, b, P, Q, R):
        ctx.save_for_backward(a, b, P, Q, R)
        return _trilinear(a, b, P, Q, R)

    @staticmethod
    def backward(ctx, g):
        a, b, P, Q, R = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        fused = max(a.shape[1], b.shape[1]) <= _FUSED_BACKWARD_MAX
        if torch.is_grad_enabled() or not fused:  # create_graph: a differentiable composition of forward products
            T = _Trilinear.apply if _pad(g.shape[1]) <= _KERNEL_MAX_PAD else _torch_trilinear
            ga = T(g, b, R.T, Q, P.T) if need_a else None
            gb = T(g, a, R.T, P, Q.T) if need_b else None
        else:
            ga, gb = _trilinear_grads(g, a, b, P, Q, R, need_a, need_b)
        return ga, gb, None, None, None


# ------------------------------------------------------------------------------------------ the route


def grid_product(x1: Tensor, x2: Tensor, L1: int, L2: int, Lo: int, normalization: str) -> Tensor:
    """The fused grid product of flat rows: ``x1 (B, (L1+1)**2)``, ``x2 (B, (L2+1)**2)`` -> ``(B, (Lo+1)**2)``.

    The tables are those of the torch grid route (:func:`equinets.gaunt.functional._grid_dense_tensors`),
    so every normalisation is handled there. Arguments are assumed checked (:func:`route`).
    """
    from .functional import _grid_dense_tensors

    Y1, Y2, W = _grid_dense_tensors(L1, L2, Lo, normalization, x1.device, x1.dtype)
    return _Trilinear.apply(x1, x2, Y1, Y2, W)


def route(x1: Tensor, x2: Tensor, L1: int, L2: int, Lo: int, batch, normalization: str) -> Tensor:
    """``gaunt_product(..., route="triton")`` after :func:`equinets.gaunt.functional._check`: broadcast, flatten, run.

    ``batch`` is the broadcast leading shape. The triton-specific checks (:func:`check_supported`) run first.
    """
    check_supported(x1, x2)
    n = (Lo + 1) ** 2
    if math.prod(batch) == 0:  # empty: keep the graph to x1, x2 (as the torch routes do)
        return (x1.sum() * x2.sum()).expand(*batch, n) * 0
    x1 = x1.expand(*batch, x1.shape[-1]).reshape(-1, x1.shape[-1])
    x2 = x2.expand(*batch, x2.shape[-1]).reshape(-1, x2.shape[-1])
    return grid_product(x1, x2, L1, L2, Lo, normalization).reshape(*batch, n)


def gaunt_product_triton(x1: Tensor, x2: Tensor, lmax_out: int | None = None, *,
                         normalization: str = "component") -> Tensor:
    r"""The Gaunt tensor product on the fused Triton kernels: ``gaunt_product(x1, x2, lmax_out, route="triton")``.

    Luo, Chen, Krishnapriyan, ICLR 2024: the coefficients of the pointwise product of the two spherical
    functions, :math:`\text{out} = ((x_1 Y_1) \odot (x_2 Y_2)) W` on the minimal exact grid, fused into one
    kernel (module docstring); autograd to any order. Arguments, shapes and the checks are those of
    :func:`equinets.gaunt.gaunt_product`; in addition the inputs must be CUDA tensors, or CPU tensors
    under ``TRITON_INTERPRET=1``, and triton must be installed (``pip install 'equinets[gpu]'``).
    Exact to rounding like the torch routes (tested under the interpreter: = the grid route to 1e-10 in
    float64, 1e-5 relative in float32). GPU timings are pending (written without a GPU; module docstring).

    Args:
        x1: ``(..., (L1 + 1)**2)`` coefficients in e3nn's layout and basis, float32 or float64.
        x2: ``(..., (L2 + 1)**2)``, same device and dtype; leading axes broadcast against ``x1``'s.
        lmax_out: output degree, ``0 <= lmax_out <= L1 + L2`` (default ``L1 + L2``).
        normalization: ``"component"``, ``"integral"`` or ``"norm"`` (as in :func:`~equinets.gaunt.gaunt_product`).

    Returns:
        ``(*broadcast(x1.shape[:-1], x2.shape[:-1]), (lmax_out + 1)**2)``.

    Example (CPU tensors, so the kernels run in Triton's interpreter):
        >>> from unittest import mock
        >>> from equinets.gaunt import gaunt_product
        >>> x1, x2 = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 9, dtype=torch.float64)
        >>> with mock.patch.dict(os.environ, TRITON_INTERPRET="1"):
        ...     out = gaunt_product_triton(x1, x2, 2)
        >>> out.shape, bool(torch.allclose(out, gaunt_product(x1, x2, 2, route="grid"), atol=1e-12))
        (torch.Size([3, 9]), True)
    """
    from .functional import _check

    L1, L2, Lo, batch = _check(x1, x2, lmax_out, normalization, "triton")
    return route(x1, x2, L1, L2, Lo, batch, normalization)
