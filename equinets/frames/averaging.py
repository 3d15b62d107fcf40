"""Frame averaging: make any point backbone exactly O(3)/SO(3)/E(3)/SE(3) equivariant."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import Tensor, nn

from .._checks import as_points, check_batchnorm_batch, check_dtype, check_int, restore_layout
from ..nn._base import TASKS
from ..nn.graph_ops import repeat_segments
from ..nn.message_passing import aggregate
from ._wigner import rotate_irreps
from .pca import Frames, check_frame_options, frame_pairs, pca_frames

__all__ = ["FrameAveraging", "check_irreps"]


def check_irreps(irreps, name: str, *, position_output: bool = False):
    """``irreps`` as e3nn :class:`~e3nn.o3.Irreps` (``None`` stays ``None``), or an error naming ``name``.

    ``position_output=True`` also requires irreps made of ``1o`` only (positions move with the translation).

    >>> check_irreps("0e + 1o", "irreps_out")
    1x0e+1x1o
    >>> check_irreps("1x", "irreps_in")
    Traceback (most recent call last):
    ...
    ValueError: irreps_in must be e3nn irreps such as '0e + 1o', got '1x'
    """
    if irreps is not None:
        try:
            irreps = o3.Irreps(irreps)
        except (ValueError, TypeError, AssertionError):
            raise ValueError(f"{name} must be e3nn irreps such as '0e + 1o', got {irreps!r}") from None
    if position_output and (irreps is None or any(ir != o3.Irrep("1o") for _, ir in irreps)):
        raise ValueError(f"position_output=True needs {name} made of 1o only, got {irreps}")
    return irreps


class FrameAveraging(nn.Module):
    r"""Frame averaging (FA) of a backbone over PCA frames.

    From Puny et al., "Frame Averaging for Invariant and Equivariant Network Design" (ICLR 2022),
    Eq. (4)-(5) / Thm. 1: for a frame :math:`\mathcal{F}(X) \subset G` with
    :math:`\mathcal{F}(gX) = g\mathcal{F}(X)` (:func:`~equinets.frames.pca_frames`),

    .. math::
        \langle \Phi \rangle_{\mathcal{F}}(X) = \frac{1}{|\mathcal{F}(X)|}
        \sum_{g \in \mathcal{F}(X)} \rho_2(g)\, \Phi\big(\rho_1(g)^{-1} X\big)

    is exactly :math:`G`-equivariant for *any* backbone :math:`\Phi`. Here :math:`g = (R, t)`,
    :math:`\rho_1(g)^{-1}` maps positions to :math:`R^\top (x_i - t)` and features typed by
    ``irreps_in`` to :math:`D_{\mathrm{in}}(R^\top) x_i`; :math:`\rho_2(g)` maps outputs to
    :math:`D_{\mathrm{out}}(R)\, y` (plus :math:`t` for position outputs). :math:`t` is the centroid
    for E3/SE3 and 0 for O3/SO3. Frames carry weights (uniform for a simple spectrum; see
    :func:`~equinets.frames.pca_frames` for degenerate spectra), and the sum is weighted.

    All frames of all clouds are folded into one batch of :math:`\sum_b |\mathcal{F}(X_b)|` clouds,
    so the backbone runs **once** per forward. Frames (rotations) are detached, as in the paper's
    code: gradients with respect to ``pos`` are those of the average with the frames held fixed,
    which are themselves equivariant and finite (no :math:`1/(\lambda_i - \lambda_j)` terms).

    **Train mode.** BatchNorm: with full (deterministic) frames the multiset of framed inputs
    :math:`\{\rho_1(g)^{-1}X : g \in \mathcal{F}(X)\}` is the same for :math:`X` and :math:`hX`
    (:math:`\mathcal{F}(hX) = h\mathcal{F}(X)`), for every cloud independently, so batch statistics
    are identical and the output stays exactly equivariant in train mode too (tested); this no
    longer holds with ``num_samples`` (different frames are drawn) or inside the degenerate band.
    Dropout draws masks by row position, and the rows of :math:`X` and :math:`hX` hold the frames in a
    different order, so train-mode outputs are only equivariant in distribution; ``eval()`` is exact.

    Args:
        backbone: module with ``forward(pos, x=None, batch=None, **kwargs)`` returning ``(B', C)``
            (one row per cloud) or ``(N', C)`` (one row per point) for flat input.
        group: ``"O3"``, ``"SO3"``, ``"E3"`` or ``"SE3"``.
        irreps_in: e3nn irreps of ``x`` (``None``: invariant scalars, passed unchanged).
        irreps_out: e3nn irreps of the backbone output (``None``: invariant scalars).
        position_output: the outputs are positions (``irreps_out`` made of ``1o`` only): they get
            :math:`t` added back.
        task: ``"cls"`` or ``"seg"``; ``None`` reads ``backbone.task`` or, failing that, tells the
            two apart by the number of output rows.
        num_samples: a sample *count*: in training mode, average over this many frames per cloud
            drawn with replacement from the frame weights (stochastic FA, an unbiased estimate of
            the full average; :func:`frame_pairs`); ``None``, and ``eval()`` always, use the full
            frame. The same name and meaning in :class:`FAGNN` and :class:`GraphFrameAveraging`
            (whose ``max_frames`` is a different thing, a *cap* on enumeration).
        tol, degenerate, num_angles: degenerate-spectrum policy, see :func:`pca_frames`
            (``degenerate="harmonic"``: near-ties oriented by angular moments, with ``tie_tol``).
        signs, sign_tol: ``"all"`` (the paper: average over every sign flip), ``"shrink"`` (signs
            fixed by the skewness of the projections, only ambiguous axes averaged: usually a single
            frame, the cost of the plain backbone), ``"extent"`` (the range asymmetry first, then the
            skewness), ``"detail"`` (the range asymmetry, then the edge centroid, then the skewness: for
            near-symmetric solids told apart by small details) or ``"faces"`` (``"detail"`` with large flat
            faces between the edges and the skewness, and orienting near-ties: flats on round bodies), see
            :func:`pca_frames`.
        tie_tol: band of the ``"harmonic"`` tie policy, see :func:`pca_frames`.

    Shapes:
        - **input:** ``pos`` ``(N, 3)`` / ``(B, N, 3)`` / ``Data``; ``x`` ``(N, irreps_in.dim)`` or
          ``(B, N, irreps_in.dim)``; ``batch`` ``(N,)``; tensor keywords with leading size ``B``
          (e.g. ``category``) are repeated per frame, others are passed unchanged.
        - **output:** ``(B, irreps_out.dim)`` (cloud level) or ``(N, irreps_out.dim)`` /
          ``(B, N, irreps_out.dim)`` (point level).

    Example:
        >>> from equinets.nn import PointNet
        >>> from equinets.testing import assert_equivariant
        >>> net = PointNet(0, 4, hidden_channels=(8,), emb_dims=16, head_channels=(8,)).double()
        >>> fa = FrameAveraging(net, "E3", irreps_out="0e + 1o").eval()
        >>> fa
        FrameAveraging(group='E3', irreps_in=None, irreps_out=1x0e+1x1o, backbone=PointNet)
        >>> pos = torch.randn(2, 20, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0])
        >>> fa(pos).shape
        torch.Size([2, 4])
        >>> assert_equivariant(fa, pos, group="E3", irreps_out="0e + 1o") < 1e-9
        True
    """

    def __init__(
        self,
        backbone: nn.Module,
        group: str = "E3",
        irreps_in=None,
        irreps_out=None,
        *,
        position_output: bool = False,
        task: str | None = None,
        num_samples: int | None = None,
        tol: float | None = None,
        degenerate: str = "blend",
        num_angles: int = 4,
        signs: str = "all",
        sign_tol: float | None = None,
        tie_tol: float | None = None,
    ) -> None:
        super().__init__()
        check_frame_options(group, tol, degenerate, num_angles, signs, sign_tol, tie_tol)
        if task not in (None, *TASKS):
            raise ValueError(f"task must be None or one of {TASKS}, got {task!r}")
        self.backbone = backbone
        self.group = group
        self.irreps_in = check_irreps(irreps_in, "irreps_in")
        self.position_output = bool(position_output)
        self.irreps_out = check_irreps(irreps_out, "irreps_out", position_output=self.position_output)
        self.task = task if task is not None else getattr(backbone, "task", None)
        if self.task not in TASKS:
            self.task = None
        self.num_samples = check_int(num_samples, "num_samples", 1, allow_none=True)
        self.tol, self.degenerate, self.num_angles = tol, degenerate, num_angles
        self.signs, self.sign_tol, self.tie_tol = signs, sign_tol, tie_tol

    def frames(self, pos, batch: Tensor | None = None) -> Frames:
        """The frames this module averages over (see :func:`pca_frames`)."""
        return pca_frames(pos, batch, self.group, tol=self.tol, degenerate=self.degenerate,
                          num_angles=self.num_angles, signs=self.signs, sign_tol=self.sign_tol, tie_tol=self.tie_tol)

    def forward(self, pos, x: Tensor | None = None, batch: Tensor | None = None, **kwargs) -> Tensor:
        inp = as_points(pos, x, batch)
        B, N = inp.num_graphs, inp.pos.shape[0]
        if inp.x is not None and self.irreps_in is not None and inp.x.shape[1] != self.irreps_in.dim:
            raise ValueError(f"x must have irreps_in.dim = {self.irreps_in.dim} columns ({self.irreps_in}), "
                             f"got {inp.x.shape[1]}")
        k = self.num_samples if self.training else None
        if isinstance(self.backbone, nn.Module):
            check_dtype(inp.pos, self.backbone, "pos")
            check_dtype(inp.x, self.backbone, "x")
            if k is not None and self.task == "cls":  # the backbone sees B k framed clouds
                check_batchnorm_batch(self.backbone, B * k, "framed clouds (clouds x num_samples)")
        fr = self.frames(inp.pos, inp.batch)
        # -- which (cloud, frame) pairs run, with which weight ---------------------------------
        cloud_of, frame_of, w_pair = frame_pairs(fr, k)
        R = fr.rotations[cloud_of, frame_of]  # (K, 3, 3) float64, detached
        K = R.shape[0]
        # -- fold: the points of cloud b, once per pair (b, f) ------------------------------------
        src, pair, _ = repeat_segments(torch.bincount(inp.batch, minlength=B), cloud_of)  # (M,) each
        t = fr.translation[cloud_of]  # (K, 3) float64
        rel = inp.pos.to(torch.float64)[src] - t[pair]
        pos_f = torch.einsum("mi,mij->mj", rel, R[pair]).to(inp.pos.dtype)  # R^T (x - t)
        x_f = None
        if inp.x is not None:
            x_f = inp.x[src]
            if self.irreps_in is not None:
                x_f = rotate_irreps(x_f, self.irreps_in, R.mT, pair)
        kw = {
            key: v[cloud_of] if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == B else v
            for key, v in kwargs.items()
        }
        out = self.backbone(pos_f, x_f, pair, **kw)
        # -- unfold: rotate back, weight, sum -------------------------------------------------------
        if out.dim() == 1:
            out = out.unsqueeze(1)
        M = pair.shape[0]
        task = self.task
        if task is None:
            task = "cls" if out.shape[0] == K else "seg"
        if task == "cls" and out.shape[0] == K:
            row_pair, target, size = torch.arange(K, device=R.device), cloud_of, B
        elif task == "seg" and out.shape[0] == M:
            row_pair, target, size = pair, src, N
        else:
            raise ValueError(
                f"the backbone returned {out.shape[0]} rows for {K} framed clouds of {M} points in all; "
                f"expected {K} (cloud level) or {M} (point level), task={self.task!r}"
            )
        irreps_out = self.irreps_out
        if irreps_out is not None and out.shape[1] != irreps_out.dim:
            raise ValueError(f"the backbone output has {out.shape[1]} columns, irreps_out {irreps_out} has "
                             f"dim {irreps_out.dim}")
        y = out.to(torch.float64)
        if irreps_out is not None:
            y = rotate_irreps(y, irreps_out, R, row_pair)
        y = y * w_pair[row_pair, None]
        avg = aggregate(y, target, size, "sum")
        if self.position_output:
            tt = fr.translation if task == "cls" else fr.translation[inp.batch]
            avg = avg + tt.repeat(1, avg.shape[1] // 3)
        return restore_layout(avg.to(out.dtype), inp, per_point=task == "seg")

    def __repr__(self) -> str:
        s = f"group={self.group!r}, irreps_in={self.irreps_in}, irreps_out={self.irreps_out}"
        if self.position_output:
            s += ", position_output=True"
        if self.num_samples is not None:
            s += f", num_samples={self.num_samples}"
        if self.degenerate != "blend":
            s += f", degenerate={self.degenerate!r}"
        if self.signs != "all":
            s += f", signs={self.signs!r}"
        return f"{type(self).__name__}({s}, backbone={type(self.backbone).__name__})"
