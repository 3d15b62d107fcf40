"""Numerical equivariance checks for point-cloud models, public so users test their own models."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import Tensor

from .._checks import as_points, check_choice, check_int, check_real
from ..frames._wigner import rotate_irreps
from ..frames.averaging import check_irreps
from ..frames.pca import GROUPS

__all__ = ["assert_equivariant", "random_group_elements"]


def random_group_elements(
    num: int, group: str = "E3", *, improper: bool | None = None, translation_scale: float = 10.0
) -> tuple[Tensor, Tensor]:
    """``num`` random elements ``(Q, t)`` of ``group`` in float64.

    ``Q`` is Haar-random in SO(3) (``e3nn.o3.rand_matrix``), times ``-I`` for O3/E3 when
    ``improper`` is True (``None``: a fair coin per element); ``t ~ N(0, translation_scale^2 I)`` for
    E3/SE3, else 0. Uses the global torch generator (seed it with ``torch.manual_seed``).

    Shapes:
        ``Q`` ``(num, 3, 3)``, ``t`` ``(num, 3)``.
    """
    num = check_int(num, "num", 0)
    check_choice(group, "group", GROUPS)
    translation_scale = check_real(translation_scale, "translation_scale", 0.0)
    Q = o3.rand_matrix(num, dtype=torch.float64)
    if group in ("O3", "E3"):
        if improper is None:
            sign = torch.randint(0, 2, (num,)).to(torch.float64) * 2 - 1
        else:
            sign = torch.full((num,), -1.0 if improper else 1.0, dtype=torch.float64)
        Q = Q * sign[:, None, None]
    t = torch.randn(num, 3, dtype=torch.float64) * float(translation_scale)
    if group in ("O3", "SO3"):
        t = torch.zeros_like(t)
    return Q, t


def _flat(out: Tensor, dense: tuple[int, int] | None) -> Tensor:
    if out.dim() == 1:
        out = out.unsqueeze(1)
    if dense is not None and out.dim() == 3:
        out = out.reshape(-1, out.shape[-1])
    if out.dim() != 2:
        raise ValueError(f"fn must return (rows, C) (or (B, N, C) for dense input), got {tuple(out.shape)}")
    return out


def assert_equivariant(
    fn,
    pos,
    x: Tensor | None = None,
    batch: Tensor | None = None,
    *,
    group: str = "E3",
    irreps_in=None,
    irreps_out=None,
    position_output: bool = False,
    translation_scale: float = 10.0,
    n_trials: int = 3,
    atol: float | None = None,
    rtol: float | None = None,
    **kwargs,
) -> float:
    r"""Check :math:`f(g \cdot X) = \rho_{\mathrm{out}}(g)\, f(X)` for random :math:`g` in ``group``.

    Each cloud of the batch gets its own random element :math:`g = (Q, t)`
    (:func:`random_group_elements`): positions map to :math:`Q x_i + t`, features typed by
    ``irreps_in`` to :math:`D_{\mathrm{in}}(Q) x_i`, and the expected output is
    :math:`D_{\mathrm{out}}(Q) y` (plus :math:`t` for ``position_output``), with e3nn's irreps
    basis and parity convention (:func:`equinets.frames.irreps_D`). For O3/E3 the trials alternate
    proper rotations (even trials) and improper ones (odd trials), so ``n_trials >= 2`` always
    tests a reflection. Outputs with one row per cloud (``B``) or per point (``N``) are recognised
    by their row count; dense ``(B, N, C)`` outputs are flattened.

    A trial fails when :math:`\max|f(gX) - \rho(g)f(X)| > \mathrm{atol} + \mathrm{rtol}\,
    \max|\rho(g)f(X)|`. Defaults: ``rtol`` 1e-9 (float64) or 1e-4 (float32 and lower),
    ``atol`` 0. Run the model in ``eval()`` (dropout and batch statistics are random or batch-dependent).

    Args:
        fn: callable ``fn(pos, x, batch, **kwargs)`` (e.g. a :class:`~equinets.frames.FrameAveraging`).
        pos, x, batch: the input, in any layout :func:`equinets._checks.as_points` accepts
            (``fn`` is called with the same layout).
        group: ``"O3"``, ``"SO3"``, ``"E3"`` or ``"SE3"``.
        irreps_in, irreps_out: e3nn irreps of ``x`` and of the output (``None``: invariant scalars).
        position_output: the output is positions (irreps ``1o`` only) and moves with :math:`t`.
        translation_scale: standard deviation of the random translations (E3/SE3).
        n_trials: number of random elements per cloud.
        atol, rtol: tolerances (see above).
        **kwargs: passed to ``fn``.

    Returns:
        The worst relative error :math:`\max|f(gX) - \rho(g)f(X)| / \max|\rho(g)f(X)|` over the trials.

    Raises:
        AssertionError: naming the worst relative error, the trial and the tolerance.

    Example:
        >>> pos = torch.randn(10, 3, dtype=torch.float64)
        >>> centroid = lambda p, x, b: p.mean(0, keepdim=True)
        >>> assert_equivariant(centroid, pos, irreps_out="1o", position_output=True) < 1e-12
        True
        >>> assert_equivariant(lambda p, x, b: p[:, :1], pos, group="SO3")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        AssertionError: fn is not SO3-equivariant: worst relative error ...
    """
    check_choice(group, "group", GROUPS)
    check_int(n_trials, "n_trials", 1)
    irreps_in = check_irreps(irreps_in, "irreps_in")
    irreps_out = check_irreps(irreps_out, "irreps_out", position_output=position_output)
    atol = 0.0 if atol is None else check_real(atol, "atol", 0.0)
    rtol = None if rtol is None else check_real(rtol, "rtol", 0.0)
    inp = as_points(pos, x, batch)
    dtype = inp.pos.dtype
    if rtol is None:
        rtol = 1e-9 if dtype == torch.float64 else 1e-4
    if irreps_in is not None and inp.x is not None and inp.x.shape[1] != irreps_in.dim:
        raise ValueError(f"x must have irreps_in.dim = {irreps_in.dim} columns ({irreps_in}), got {inp.x.shape[1]}")
    B, N = inp.num_graphs, inp.pos.shape[0]
    dense = inp.dense

    def call(p: Tensor, xx: Tensor | None) -> Tensor:
        if dense is not None:
            p = p.reshape(*dense, 3)
            xx = None if xx is None else xx.reshape(*dense, -1)
            return _flat(fn(p, xx, None, **kwargs), dense)
        return _flat(fn(p, xx, None if batch is None and B == 1 else inp.batch, **kwargs), dense)

    with torch.no_grad():
        ref = call(inp.pos, inp.x)
        if ref.shape[0] == B:
            row_cloud = torch.arange(B, device=ref.device)
        elif ref.shape[0] == N:
            row_cloud = inp.batch
        else:
            raise ValueError(
                f"fn returned {ref.shape[0]} rows; expected B = {B} (per cloud) or N = {N} (per point)"
            )
        if irreps_out is not None and ref.shape[1] != irreps_out.dim:
            raise ValueError(
                f"fn returned {ref.shape[1]} columns, irreps_out {irreps_out} has dim {irreps_out.dim}"
            )
        worst, worst_trial, failed = 0.0, -1, False
        for trial in range(n_trials):
            Q, t = random_group_elements(
                B, group, improper=bool(trial % 2), translation_scale=translation_scale
            )
            Q, t = Q.to(inp.pos.device), t.to(inp.pos.device)
            p = (torch.einsum("nij,nj->ni", Q[inp.batch], inp.pos.to(torch.float64)) + t[inp.batch]).to(dtype)
            xx = inp.x
            if xx is not None and irreps_in is not None:
                xx = rotate_irreps(xx, irreps_in, Q, inp.batch)
            got = call(p, xx).to(torch.float64)
            want = ref.to(torch.float64)
            if irreps_out is not None:
                want = rotate_irreps(want, irreps_out, Q, row_cloud)
            if position_output:
                want = want + t[row_cloud].repeat(1, want.shape[1] // 3)
            err = float((got - want).abs().max()) if got.numel() else 0.0
            scale = float(want.abs().max()) if want.numel() else 0.0
            rel = err / scale if scale > 0 else err
            if rel != rel:  # NaN
                rel = float("inf")
            if rel >= worst:
                worst, worst_trial = rel, trial
            if not err <= atol + rtol * scale:  # also catches NaN
                failed = True
    if failed:
        raise AssertionError(
            f"fn is not {group}-equivariant: worst relative error {worst:.3e} (trial {worst_trial}, "
            f"{'improper' if worst_trial % 2 and group in ('O3', 'E3') else 'proper'} element) exceeds "
            f"rtol={rtol:g}, atol={atol:g} ({dtype})"
        )
    return worst
