r"""PCA frames of point clouds for O(3), SO(3), E(3), SE(3), with a policy for degenerate spectra.

From Puny, Atzmon, Ben-Hamu, Misra, Grover, Smith, Lipman, "Frame Averaging for Invariant and
Equivariant Network Design" (ICLR 2022), Sec. 3.1 / App. B.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import as_points, check_choice, check_finite, check_int, check_real

__all__ = ["Frames", "pca_frames", "frame_pairs", "check_frame_options", "GROUPS", "DEGENERATE_POLICIES", "SIGN_POLICIES",
           "frame_sign_stats"]

GROUPS = ("O3", "SO3", "E3", "SE3")
DEGENERATE_POLICIES = ("blend", "none", "harmonic")
SIGN_POLICIES = ("all", "shrink", "extent", "detail", "faces")
#: default ``sign_tol``: skewness below which an axis counts as sign-ambiguous
DEFAULT_SIGN_TOL = 0.1
#: ``signs="extent"``: range asymmetry below which an axis counts as sign-ambiguous by its extremes (about 4x the
#: sampling noise of the asymmetry, set by the centroid's, on the mirror-symmetric ``shapes-hard`` bodies at 1024 points)
EXTENT_TOL = 0.08
#: ``signs="detail"``: offset of the edge-weighted centroid (in standard deviations of the axis) below which an axis
#: counts as sign-ambiguous by its edges (2-4x its sampling noise on the mirror-symmetric ``shapes-hard`` bodies)
EDGE_TOL = 0.05
#: ``signs="detail"``: Gaussian bandwidth of the local covariances, as a fraction of the cloud's RMS radius
EDGE_BANDWIDTH = 0.25
#: ``signs="faces"``: Gaussian bandwidth of the local covariances that give the normals of the face statistic, as a
#: fraction of the cloud's RMS radius (about one point spacing at 1024 points on ``shapes-hard``: sharp at face borders)
FACE_BANDWIDTH = 0.15
#: ``signs="faces"``: exponents of the face statistic: normal agreement :math:`(n_i^\top n_j)^{p}` and the power
#: :math:`q` of the face share :math:`c_i` (large ``q``: the largest faces speak, curved surfaces are silent)
FACE_POWERS = (128, 4)
assert FACE_POWERS[0] & (FACE_POWERS[0] - 1) == 0, "the normal-agreement power is a power of 2"
#: ``signs="faces"``: face statistic below which an axis counts as sign-ambiguous by its faces
FACE_TOL = 0.2
#: default ``tie_tol`` of ``degenerate="harmonic"``: relative eigen-gap band and angular-moment scale
DEFAULT_TIE_TOL = 0.1


class Frames(NamedTuple):
    """Frames of a batch of clouds (all float64).

    Attributes:
        rotations: ``(B, F, 3, 3)`` orthogonal matrices :math:`R_g`, columns = signed (and, for the
            degenerate sets, rotated) eigenvectors. The first ``F0`` (8 for O3/E3, 4 for SO3/SE3) are
            the paper's sign frames.
        weights: ``(B, F)`` non-negative frame weights, each row sums to 1; zero for unused frames.
        centroid: ``(B, 3)`` (weighted) centroid; differentiable with respect to ``pos``.
        translation: ``(B, 3)`` translation part :math:`t` of the frames: the centroid for E3/SE3,
            zeros for O3/SO3 (the action is about the origin).
        eigenvalues: ``(B, 3)`` ascending eigenvalues of the (weighted, normalised) covariance.
        rel_gaps: ``(B, 2)`` relative eigen-gaps :math:`((\\lambda_2-\\lambda_1)/\\lambda_3,
            (\\lambda_3-\\lambda_2)/\\lambda_3)` (0 when :math:`\\lambda_3 = 0`).
        degenerate: ``(B,)`` bool, some relative gap is below ``tol`` (the degenerate policy acts).
    """

    rotations: Tensor
    weights: Tensor
    centroid: Tensor
    translation: Tensor
    eigenvalues: Tensor
    rel_gaps: Tensor
    degenerate: Tensor


def _sign_mats(proper: bool) -> Tensor:
    signs = [s for s in itertools.product((1.0, -1.0), repeat=3) if not proper or s[0] * s[1] * s[2] > 0]
    return torch.diag_embed(torch.tensor(signs, dtype=torch.float64))


def _signed_perms(proper: bool) -> Tensor:
    """Signed permutation matrices without the diagonal ones: 40 (O3) or 20 (proper)."""
    mats = []
    for perm in itertools.permutations(range(3)):
        if perm == (0, 1, 2):
            continue
        P = torch.eye(3, dtype=torch.float64)[:, list(perm)]
        for s in itertools.product((1.0, -1.0), repeat=3):
            M = P * torch.tensor(s, dtype=torch.float64)
            if not proper or torch.linalg.det(M) > 0:
                mats.append(M)
    return torch.stack(mats)


def _plane_rots(i: int, j: int, m: int) -> Tensor:
    """Rotations by ``pi k / m``, ``k = 1..m-1``, in the (e_i, e_j) plane."""
    th = torch.arange(1, m, dtype=torch.float64) * torch.pi / m
    R = torch.eye(3, dtype=torch.float64).repeat(m - 1, 1, 1)
    R[:, i, i], R[:, j, j] = th.cos(), th.cos()
    R[:, i, j], R[:, j, i] = -th.sin(), th.sin()
    return R


def default_tol(dtype: torch.dtype) -> float:
    """Default relative eigen-gap tolerance: ``sqrt(eps)`` of the input dtype (3.5e-4 f32, 1.5e-8 f64)."""
    return float(torch.finfo(dtype).eps) ** 0.5


def pca_frames(
    pos,
    batch: Tensor | None = None,
    group: str = "E3",
    weights: Tensor | None = None,
    *,
    tol: float | None = None,
    degenerate: str = "blend",
    num_angles: int = 4,
    signs: str = "all",
    sign_tol: float | None = None,
    tie_tol: float | None = None,
) -> Frames:
    r"""PCA frames :math:`\mathcal{F}(X) \subset G` per cloud, with :math:`\mathcal{F}(gX) = g\mathcal{F}(X)`.

    Puny et al., ICLR 2022, Sec. 3.1. With (weighted) centroid :math:`t = \sum_i w_i x_i / \sum_i w_i`,
    covariance :math:`C = \sum_i w_i (x_i - t)(x_i - t)^\top / \sum_i w_i = V \Lambda V^\top`
    (``torch.linalg.eigh`` in float64, ascending :math:`\lambda_1 \le \lambda_2 \le \lambda_3`), the
    frame of a simple spectrum is

    .. math::
        \mathcal{F}(X) = \{\, (V \operatorname{diag}(\alpha),\ t) : \alpha \in \{\pm 1\}^3 \,\}

    (8 elements for O3/E3; for SO3/SE3, :math:`V` is made proper and only the 4 :math:`\alpha` with
    :math:`\alpha_1\alpha_2\alpha_3 = 1` are kept). For O3/SO3 the translation part is 0: the group
    acts about the origin, so positions are not centred (the covariance is still the centred one,
    which is equally equivariant). Frames are computed from detached positions; only ``centroid`` /
    ``translation`` carry gradients.

    **Degenerate spectra** (``degenerate="blend"``). With relative gaps
    :math:`g_{12} = (\lambda_2-\lambda_1)/\lambda_3`, :math:`g_{23} = (\lambda_3-\lambda_2)/\lambda_3`
    and :math:`d_{ij} = 1 - s(g_{ij}/\mathrm{tol})` (:math:`s(u) = 3u^2 - 2u^3` on ``[0, 1]``, so
    :math:`d = 1` at a double eigenvalue and 0 once the gap reaches ``tol``), the frame is a weighted
    mixture of four equivariantly-defined sets,

    * :math:`S_0`: the sign frames, weight :math:`(1-d_{12})(1-d_{23})`;
    * :math:`S_{12}`: :math:`V R_{12}(\pi k/m) \operatorname{diag}(\alpha)`, :math:`k < m`
      (``m = num_angles``), a uniform grid of the O(2) that the eigenspace of a double
      :math:`\lambda_1 = \lambda_2` leaves free, weight :math:`d_{12}(1-d_{23})`; likewise
      :math:`S_{23}`;
    * :math:`S_{123}`: :math:`V P` for the 48 (24 proper) signed permutation matrices :math:`P`
      (octahedral group), weight :math:`d_{12} d_{23}` (a triple eigenvalue: 1 point, duplicated
      points, cube vertices, sphere samples).

    The set weights are functions of the eigenvalues (invariants) and vary continuously, so the
    averaged output does not jump when a gap crosses ``tol``. Guarantee: with both gaps :math:`\ge`
    ``tol`` the frame is exactly the paper's (exact equivariance up to rounding, error about
    :math:`\epsilon/g`); below, the sets are equivariant up to the arbitrary basis ``eigh`` picks
    inside a degenerate eigenspace, so averaging is exact for transformations that map that basis to
    a grid point (rotations by multiples of :math:`\pi/m` about the distinct axis, the octahedral
    group for a triple) and otherwise approximate, the error being the variation of the average with
    the basis offset (it shrinks as ``num_angles`` grows and as the backbone gets smoother). Outputs
    and gradients stay finite for every cloud with at least one point. ``degenerate="none"`` keeps
    only :math:`S_0` (the paper's code; unstable near degeneracy).

    **Ties oriented by angular moments** (``degenerate="harmonic"``). Near-tied pairs at the scale of
    sampling noise (relative gap below ``tie_tol``, default 0.1, not only below ``tol``) get a frame
    that does not depend on the eigenvectors inside the pair: with in-plane coordinates
    :math:`\rho_i e^{i\phi_i}` of the plane of the pair, :math:`Z_m = \sum_i w_i \rho_i^8 e^{i m \phi_i}`
    for :math:`m = 3, 4` (order 1 vanishes for a centred cloud, order 2 is the covariance itself), the
    ``m`` directions :math:`\theta = (\arg Z_m + 2\pi j)/m` maximise :math:`\sum_i w_i \rho_i^8
    \cos m(\phi_i - \theta)` and are intrinsic to the plane, so these frames are exactly equivariant
    even at an exactly double eigenvalue. Order ``m`` weighs :math:`\mathrm{step}(\hat z_m /
    \mathrm{tie\_tol})` (concentration :math:`\hat z_m = |Z_m| / \sum_i w_i \rho_i^8 \in [0, 1]`)
    times a soft preference for the larger :math:`\hat z`; the remaining weight, and a triple
    eigenvalue, fall back to ``"blend"``. The pair's weight :math:`1 - \mathrm{step}(g/\mathrm{tie\_tol})`
    is continuous in the gap, so the output is continuous as a tie opens.

    **Shrunk signs** (``signs="shrink"``). The paper averages over every sign flip :math:`\alpha`. With
    ``"shrink"`` the sign of each frame axis :math:`u_k` is decided by the skewness
    :math:`s_k = \overline{(u_k^\top(x - t))^3} / (u_k^\top C u_k)^{3/2}` of the projections
    (:func:`frame_sign_stats`; odd in the sign of :math:`u_k`, invariant to rotation, reflection,
    translation and scale): :math:`\psi_k = \mathrm{sign}(s_k)\, \mathrm{step}(|s_k| / \mathrm{sign\_tol})`
    and, for O3/E3, :math:`w(\alpha) = \prod_k (1 + \alpha_k \psi_k)/2`. A generic cloud
    (:math:`|s_k| \ge` ``sign_tol`` on every axis) has a **single frame**; an axis with
    :math:`|s_k| <` ``sign_tol`` (default 0.1, about 1.5x the sampling noise of a skewness at 1024
    points) is averaged over both signs with weights that go continuously to 1/2 at :math:`s_k = 0`
    (never switching). For SO3/SE3 two signs fix the third (det = +1): the axis left to the
    determinant is the least decisive one (smallest :math:`|s_k|`), chosen softly over a margin of
    ``sign_tol``, so the weights stay continuous. The frame set stays exactly equivariant for every
    input: :math:`s_k` flips with :math:`u_k`, so :math:`\mathcal{F}(gX) = g\mathcal{F}(X)` with the
    same weights.

    **Signs by extremes first** (``signs="extent"``). Skewness weighs every point, so a small part that
    reaches far (the legs of a package, a boss on a plate) moves it little, often less than its sampling
    noise. ``"extent"`` first asks the *range asymmetry* of the projections,
    :math:`a_k = (\max_i z_{ik} + \min_i z_{ik}) / (\max_i z_{ik} - \min_i z_{ik})` with
    :math:`z_{ik} = u_k^\top(x_i - t)` (odd in the sign of :math:`u_k`, invariant like :math:`s_k`, in
    :math:`[-1, 1]`; :func:`frame_sign_stats` with ``statistic="extent"``), and falls back to the skewness
    where the extremes are balanced: :math:`\psi^a_k = \mathrm{sign}(a_k)\, \mathrm{step}(|a_k| / a_0)`
    (:data:`EXTENT_TOL` :math:`a_0 = 0.08`), :math:`\psi_k = \psi^a_k + (1 - |\psi^a_k|)\, \psi^s_k`, a
    continuous, odd combination (so the same equivariance and continuity arguments hold), and the
    decisiveness that picks the determinant's axis is :math:`\kappa_k = \mathrm{sign\_tol}\,(e^a_k + (1 -
    \min(e^a_k, 1))\, e^s_k)` with :math:`e^a_k = |a_k|/a_0`, :math:`e^s_k = |s_k|/\mathrm{sign\_tol}`.
    Extremes are continuous in the points but, unlike moments, sensitive to outliers: use it on clean
    surface samples (CAD, meshes), not on raw scans with stray points.

    **Signs and ties by sharp details** (``signs="detail"``). Like ``"extent"``, with the *edge centroid*
    in between the extremes and the skewness: :math:`g_k` (the offset of :math:`o`, the centroid weighted
    by each point's surface variation, along :math:`u_k` in standard deviations; :func:`frame_sign_stats`
    with ``statistic="edges"``) decides where the extremes balance,
    :math:`\psi_k = \psi^a_k + (1 - |\psi^a_k|)(\psi^g_k + (1 - |\psi^g_k|)\psi^s_k)` with
    :math:`\psi^g_k = \mathrm{sign}(g_k)\,\mathrm{step}(|g_k| / g_0)` (:data:`EDGE_TOL` :math:`g_0 = 0.05`), and
    with ``degenerate="harmonic"`` the in-plane component of :math:`o` orients a near-tied pair as an
    angular order 1 (one direction instead of 3 or 4). Edges and corners of small details (a notch, a
    flat, bosses, pins) weigh on :math:`o` far more than on moments: on the notched cylinder of
    ``shapes-hard`` it points at the notch at 2-5x its sampling noise. Cost: one dense Gaussian kernel per
    cloud (about 18 ms per 1024-point cloud on one CPU thread, 8x ``"extent"``).

    **Signs and ties by faces** (``signs="faces"``). Like ``"detail"``, with the *face statistic*
    :math:`f_k` between the edge centroid and the skewness, and as a second angular order 1 of a tie. Each
    point's normal :math:`n_i` comes from its local covariance (bandwidth :data:`FACE_BANDWIDTH`, about one
    point spacing) with planarity :math:`\pi_i`; its *face share* :math:`c_i = \overline{\pi_j (n_i^\top
    n_j)^{128}}` is the fraction of the cloud on faces parallel to its own, and :math:`f_k = \sum_i a_i u_k^\top
    m_i / \sum_i a_i |u_k^\top m_i|` with :math:`m_i = n_i n_i^\top (x_i - t)` (the tangent plane's offset) and
    :math:`a_i = \pi_i c_i^4` (:func:`frame_sign_stats` with ``statistic="faces"``, in :math:`[-1, 1]`;
    :data:`FACE_TOL` 0.2). Large flat faces speak, curved surfaces are silent: the flat of a D-shaft, which
    cuts the cylinder at a shallow angle (weak edges) and moves the moments by a few percent, gives
    :math:`f \approx 0.47 \pm 0.11` at 1024 points with the training jitter (the edge centroid
    :math:`0.04 \pm 0.03`), and its in-plane direction is within 6 degrees of the flat's normal. The
    order is extremes, edges, faces, skewness: :math:`\psi = \psi^a + (1-|\psi^a|)(\psi^g + (1-|\psi^g|)(\psi^f
    + (1-|\psi^f|)\psi^s))`. Cost: a second dense kernel per cloud (about 2.5x ``"detail"``'s frame time).

    Args:
        pos: ``(N, 3)``, ``(B, N, 3)`` or ``Data``.
        batch: ``(N,)`` sorted cloud ids for flat ``pos``.
        group: ``"O3"``, ``"SO3"``, ``"E3"`` or ``"SE3"``.
        weights: optional ``(N,)`` (or ``(B, N)``) non-negative point weights (e.g. soft part
            memberships); a cloud whose weights sum to 0 falls back to uniform weights.
        tol: relative eigen-gap below which the degenerate policy starts to act; default
            ``sqrt(finfo(pos.dtype).eps)``, where the float rounding error of a PCA frame
            (:math:`\approx \epsilon/g`) reaches :math:`\sqrt{\epsilon}`.
        degenerate: ``"blend"``, ``"none"`` or ``"harmonic"`` (above).
        num_angles: ``m``, grid points per half-turn in a degenerate plane (``>= 1``).
        signs: ``"all"`` (the paper's sign frames), ``"shrink"``, ``"extent"``, ``"detail"`` or ``"faces"``
            (above).
        sign_tol: skewness below which an axis sign counts as ambiguous (every policy but ``"all"``;
            default 0.1).
        tie_tol: relative gap below which ``"harmonic"`` orients a pair, and the scale of the angular
            concentrations (default 0.1).

    Shapes:
        ``rotations`` ``(B, F, 3, 3)`` with ``F = F0`` for ``"none"`` and ``F = F0 (2m + 4)`` for
        ``"blend"`` (``F0`` = 8 or 4; the new policies list ``F0`` frames per candidate basis: ``F0
        (2m + 7)`` for ``"shrink"`` with ``"blend"``, ``F0 (2m + 21)`` with ``"harmonic"``, most of
        them of weight 0; ``F0 (2m + 23)`` for ``"detail"`` and ``F0 (2m + 25)`` for ``"faces"`` with
        ``"harmonic"``); ``weights`` ``(B, F)``;
        ``centroid``, ``translation``, ``eigenvalues`` ``(B, 3)``; ``rel_gaps`` ``(B, 2)``; ``degenerate`` ``(B,)``.

    Example:
        >>> pos = torch.randn(2, 50, 3) * torch.tensor([1.0, 2.0, 3.0])
        >>> fr = pca_frames(pos, group="SO3", degenerate="none")
        >>> fr.rotations.shape, fr.weights[0].tolist()
        (torch.Size([2, 4, 3, 3]), [0.25, 0.25, 0.25, 0.25])
        >>> torch.linalg.det(fr.rotations).round().tolist()
        [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
        >>> fr = pca_frames(torch.ones(4, 3))  # four copies of one point: a triple eigenvalue
        >>> fr.rotations.shape, bool(fr.degenerate), round(float(fr.weights.sum()), 6)
        (torch.Size([1, 96, 3, 3]), True, 1.0)
        >>> skewed = torch.rand(2, 50, 3).pow(3) * torch.tensor([1.0, 2.0, 3.0])  # generic: one frame each
        >>> (pca_frames(skewed, signs="shrink").weights > 0).sum(1).tolist()
        [1, 1]
    """
    tol = check_frame_options(group, tol, degenerate, num_angles, signs, sign_tol, tie_tol)
    sign_tol = DEFAULT_SIGN_TOL if sign_tol is None else float(sign_tol)
    tie_tol = DEFAULT_TIE_TOL if tie_tol is None else float(tie_tol)
    inp = as_points(pos, None, batch)
    tol = default_tol(inp.pos.dtype) if tol is None else tol
    B, b = inp.num_graphs, inp.batch
    dev = inp.pos.device
    p = inp.pos.to(torch.float64)  # differentiable, for the centroid
    if weights is None:
        w = p.new_ones(p.shape[0])
    else:
        if not isinstance(weights, Tensor) or weights.numel() != p.shape[0]:
            got = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
            raise ValueError(f"weights must have one entry per point ({p.shape[0]}), got {got}")
        w = weights.detach().reshape(-1).to(torch.float64)
        check_finite(w, "weights")
        if bool((w < 0).any()):
            raise ValueError("weights must be non-negative, got a negative weight")
    wsum = p.new_zeros(B).index_add_(0, b, w)
    if bool((wsum <= 0).any()):
        w = torch.where((wsum <= 0)[b], torch.ones_like(w), w)
        wsum = p.new_zeros(B).index_add_(0, b, w)
    centroid = p.new_zeros(B, 3).index_add(0, b, w[:, None] * p) / wsum[:, None]
    d = (p - centroid[b]).detach()
    cov = p.new_zeros(B, 3, 3).index_add_(0, b, w[:, None, None] * d[:, :, None] * d[:, None, :])
    cov = cov / wsum[:, None, None]
    evals, V = torch.linalg.eigh(0.5 * (cov + cov.mT))
    evals = evals.clamp_min(0.0)
    proper = group in ("SO3", "SE3")
    if proper:
        V = V * torch.linalg.det(V).sign()[:, None, None]  # flips the first column where det = -1
    S = _sign_mats(proper).to(dev)  # (F0, 3, 3)
    F0 = S.shape[0]
    scale = evals[:, 2]
    gaps = torch.stack([evals[:, 1] - evals[:, 0], evals[:, 2] - evals[:, 1]], dim=1)
    rel = torch.where(scale[:, None] > 0, gaps / scale.clamp_min(torch.finfo(torch.float64).tiny)[:, None],
                      torch.zeros_like(gaps))
    translation = centroid if group in ("E3", "SE3") else torch.zeros_like(centroid)
    if signs != "all" or degenerate == "harmonic":
        return _general_frames(d, w, wsum, b, cov, evals, V, rel, proper, centroid, translation, tol=tol,
                               degenerate=degenerate, num_angles=num_angles, signs=signs, sign_tol=sign_tol,
                               tie_tol=tie_tol)
    if degenerate == "none":
        rot = V[:, None] @ S  # (B, F0, 3, 3)
        wts = p.new_full((B, F0), 1.0 / F0)
        return Frames(rot, wts, centroid, translation, evals, rel, rel.new_zeros(B, dtype=torch.bool))
    m = num_angles
    u = (rel / tol).clamp(0.0, 1.0)
    dg = 1.0 - u * u * (3.0 - 2.0 * u)  # (B, 2): 1 when degenerate, 0 when gap >= tol
    d12, d23 = dg[:, 0], dg[:, 1]
    w0, w12 = (1 - d12) * (1 - d23), d12 * (1 - d23)
    w23, w123 = (1 - d12) * d23, d12 * d23
    g12 = (_plane_rots(0, 1, m).to(dev)[:, None] @ S).reshape(-1, 3, 3)  # (F0 (m-1), 3, 3)
    g23 = (_plane_rots(1, 2, m).to(dev)[:, None] @ S).reshape(-1, 3, 3)
    g123 = _signed_perms(proper).to(dev)  # (5 F0, 3, 3)
    cand = torch.cat([S, g12, g23, g123])  # (F, 3, 3)
    F = cand.shape[0]  # V @ cand[f] for every f as one (B, 3, 3) x (3, 3F) product (10x faster than a batched 3x3 matmul)
    rot = (V @ cand.permute(1, 0, 2).reshape(3, 3 * F)).reshape(B, 3, F, 3).transpose(1, 2)
    n12, n123 = g12.shape[0], g123.shape[0]
    wts = torch.cat(
        [
            (w0 / F0 + (w12 + w23) / (m * F0) + w123 / (6 * F0))[:, None].expand(B, F0),
            (w12 / (m * F0))[:, None].expand(B, n12),
            (w23 / (m * F0))[:, None].expand(B, n12),
            (w123 / (6 * F0))[:, None].expand(B, n123),
        ],
        dim=1,
    )
    return Frames(rot, wts, centroid, translation, evals, rel, (rel < tol).any(dim=1))


def _step(u: Tensor) -> Tensor:
    """Smoothstep ``3u^2 - 2u^3`` of ``u`` clamped to ``[0, 1]`` (0 below, 1 above, C^1)."""
    u = u.clamp(0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _rank(u: Tensor) -> Tensor:
    """Soft ``u > 0``: 0 for ``u <= -1``, 1/2 at 0, 1 for ``u >= 1``; ``_rank(u) + _rank(-u) = 1``."""
    return _step(0.5 * (u + 1.0))


_FIXED = 1e6  # rank key of a column whose direction is already oriented (never the one left to the determinant)


def _sign_weights(psi: Tensor, kappa: Tensor, proper: bool, sign_tol: float) -> Tensor:
    r"""Weights ``(..., F0)`` of the sign patterns of :func:`_sign_mats` from per-column sign beliefs.

    ``psi`` ``(..., 3)`` in ``[-1, 1]``: belief that column k keeps its sign (+1), flips (-1) or is
    ambiguous (0); improper groups: :math:`w(\alpha) = \prod_k (1 + \alpha_k \psi_k)/2`. Proper groups:
    two signs fix the third (:math:`\alpha_1\alpha_2\alpha_3 = 1`); the column ``l`` left to the
    determinant is the least decisive one (smallest ``kappa``), softly: :math:`r_l \propto \prod_{m \ne l}
    \mathrm{rank}((\kappa_m - \kappa_l)/\mathrm{tol})`, :math:`w(\alpha) = \sum_l r_l \prod_{k \ne l}
    (1 + \alpha_k \psi_k)/2`. Both are continuous in ``psi`` and ``kappa`` and sum to 1.
    """
    alpha = _sign_mats(proper).diagonal(dim1=-2, dim2=-1).to(psi)  # (F0, 3)
    q = 0.5 * (1.0 + alpha * psi.unsqueeze(-2))  # (..., F0, 3)
    if not proper:
        return q.prod(-1)
    diff = (kappa.unsqueeze(-2) - kappa.unsqueeze(-1)) / sign_tol  # [..., l, m] = kappa_m - kappa_l
    eye = torch.eye(3, dtype=torch.bool, device=psi.device)
    r = torch.where(eye, torch.ones_like(diff), _rank(diff)).prod(-1)  # (..., 3)
    r = r / r.sum(-1, keepdim=True)
    pair = torch.stack([q[..., [1, 2]].prod(-1), q[..., [0, 2]].prod(-1), q[..., [0, 1]].prod(-1)], -1)  # drop l
    return (pair * r.unsqueeze(-2)).sum(-1)


def frame_sign_stats(pos, batch: Tensor | None = None, bases: Tensor | None = None, weights: Tensor | None = None,
                     statistic: str = "skewness"):
    r"""Sign statistics of a cloud along the columns of bases: what the ``signs`` policies of :func:`pca_frames` read.

    For a (weighted) cloud with centroid :math:`t`, an orthonormal basis :math:`U` and projections
    :math:`z_{ik} = u_k^\top (x_i - t)`,

    .. math::
        s_k = \frac{\sum_i w_i z_{ik}^3 / \sum_i w_i}{\big(u_k^\top C u_k\big)^{3/2}}
        \quad (\texttt{"skewness"}), \qquad
        a_k = \frac{\max_i z_{ik} + \min_i z_{ik}}{\max_i z_{ik} - \min_i z_{ik}}
        \quad (\texttt{"extent"}, \text{over points of positive weight}),
        \qquad g_k = \frac{u_k^\top o}{(u_k^\top C u_k)^{1/2}} \quad (\texttt{"edges"}),

    the skewness, the range asymmetry of the projections on column :math:`u_k`, and the offset along
    it of the *edge centroid* :math:`o = \sum_i w_i e_i (x_i - t) / \sum_i w_i e_i`, where
    :math:`e_i = \lambda_{\min}(C_i) / (\operatorname{tr} C_i + 0.05 r^2) \in [0, 1/3)` is the
    (regularised) surface variation (Pauly, Gross, Kobbelt 2002) of the local covariance :math:`C_i` with
    Gaussian weights :math:`\exp(-|x_j - x_i|^2 / r^2)`, :math:`r` = :data:`EDGE_BANDWIDTH` times the RMS
    radius: near 0 on faces and gently
    curved surfaces, large at edges and corners, so :math:`o` leans toward small sharp details (a
    notch, a boss, pins) that move moments little. ``"faces"`` gives the face statistic
    :math:`f_k = \sum_i a_i u_k^\top m_i / \sum_i a_i |u_k^\top m_i| \in [-1, 1]`, :math:`m_i = n_i n_i^\top
    (x_i - t)`, with each point's normal :math:`n_i` and face weight :math:`a_i` from :func:`_face_field`
    (large flat faces weigh most, curved surfaces almost nothing; see :func:`pca_frames`). All four are invariant to
    rotation, translation and scale, odd in the sign of :math:`u_k` (so the sign making the statistic
    positive is equivariant), 0 for a cloud with a mirror symmetry across the plane normal to
    :math:`u_k`, and 0 along a direction in which the cloud has no extent. ``bases=None`` uses the PCA
    eigenvectors (ascending eigenvalues).

    Shapes:
        ``pos`` ``(N, 3)`` / ``(B, N, 3)``; ``bases`` ``(B, C, 3, 3)`` or ``(B, 3, 3)`` -> ``(B, C, 3)``
        or ``(B, 3)``.

    Example:
        >>> pos = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [-1, 0, 0]])
        >>> s = frame_sign_stats(pos, bases=torch.eye(3)[None])
        >>> s.shape, bool(s[0, 0].abs() < 1e-6)  # mirror-symmetric in x: no sign along x
        (torch.Size([1, 3]), True)
        >>> line = torch.tensor([[-1.0, 0, 0], [0, 0, 0], [0, 0, 0], [3, 0, 0]])  # centroid 0.5
        >>> frame_sign_stats(line, bases=torch.eye(3)[None], statistic="extent")[0].tolist()  # (2.5 - 1.5) / 4
        [0.25, 0.0, 0.0]
    """
    check_choice(statistic, "statistic", ("skewness", "extent", "edges", "faces"))
    inp = as_points(pos, None, batch)
    B, b = inp.num_graphs, inp.batch
    p = inp.pos.detach().to(torch.float64)
    w = p.new_ones(p.shape[0]) if weights is None else weights.detach().reshape(-1).to(torch.float64)
    wsum = p.new_zeros(B).index_add_(0, b, w).clamp_min(torch.finfo(torch.float64).tiny)
    d = p - (p.new_zeros(B, 3).index_add_(0, b, w[:, None] * p) / wsum[:, None])[b]
    cov = p.new_zeros(B, 3, 3).index_add_(0, b, w[:, None, None] * d[:, :, None] * d[:, None, :]) / wsum[:, None, None]
    if bases is None:
        bases = torch.linalg.eigh(0.5 * (cov + cov.mT))[1]
    one = bases.dim() == 3
    U = (bases[:, None] if one else bases).to(torch.float64)
    if statistic == "extent":
        s = _range_asymmetry(d, w, b, B, U)
    elif statistic == "edges":
        s = _edge_offsets(_edge_centroid(d, w, b, B), cov, U)
    elif statistic == "faces":
        s = _face_offsets(*_face_field(d, w, b, B), b, B, U)
    else:
        s = _skewness(_third_moment(d, w, wsum, b, B), cov, U)
    return s[:, 0] if one else s


def _range_asymmetry(d: Tensor, w: Tensor, b: Tensor, B: int, U: Tensor) -> Tensor:
    """Range asymmetry ``(B, C, 3)`` of the centred points ``d`` along the columns of ``U`` ``(B, C, 3, 3)``.

    Points of zero weight are left out (a cloud whose weights are all 0 counts every point, as for its
    centroid); 0 along a direction in which the cloud has no extent.
    """
    C = U.shape[1]
    keep = w > 0
    cloud_has = d.new_zeros(B).index_add_(0, b, keep.to(d.dtype)) > 0
    keep = keep | ~cloud_has[b]
    idx = b[:, None].expand(-1, 3)
    hi, lo = d.new_empty(B, C, 3), d.new_empty(B, C, 3)
    for c in range(C):  # one candidate basis at a time: (N, 3) projections, not an (N, C, 3, 3) gather
        z = torch.einsum("ni,nik->nk", d, U[b, c])
        zh = torch.where(keep[:, None], z, torch.full_like(z, -torch.inf))
        zl = torch.where(keep[:, None], z, torch.full_like(z, torch.inf))
        hi[:, c] = d.new_full((B, 3), -torch.inf).scatter_reduce_(0, idx, zh, "amax")
        lo[:, c] = d.new_full((B, 3), torch.inf).scatter_reduce_(0, idx, zl, "amin")
    span = hi - lo
    scale = span.amax(-1, keepdim=True)  # the cloud's largest extent along the basis
    ok = span > 1e-12 * scale
    return torch.where(ok, (hi + lo) / span.clamp_min(1e-300), torch.zeros_like(span))


def _local_covariances(x: Tensor, wx: Tensor, bandwidth: float) -> tuple[Tensor, Tensor] | None:
    """Gaussian-weighted local covariances ``(n, 3, 3)`` (symmetrised) of one cloud, and the squared bandwidth ``r^2``.

    ``r`` = ``bandwidth`` times the (weighted) RMS radius; point ``j`` weighs ``wx_j exp(-|x_i - x_j|^2 / r^2)`` in
    the covariance of point ``i``. The ``(n, n)`` kernel is built in one buffer (memory-bound sizes). ``None`` for a
    cloud without extent (``r = 0``). Shared by the edge weights and the face field.
    """
    tiny = torch.finfo(x.dtype).tiny
    x = x - (wx[:, None] * x).sum(0) / wx.sum().clamp_min(tiny)
    r2 = (bandwidth ** 2) * (wx * x.square().sum(1)).sum() / wx.sum().clamp_min(tiny)
    if not r2 > 0:
        return None
    n, sq = x.shape[0], x.square().sum(1)
    K = x @ x.T
    K.mul_(-2.0).add_(sq[:, None]).add_(sq[None, :]).clamp_min_(0.0).mul_(-1.0 / r2).exp_().mul_(wx[None, :])
    ks = K.sum(1, keepdim=True).clamp_min(tiny)
    mu = K @ x / ks
    S = (K @ (x[:, :, None] * x[:, None, :]).reshape(n, 9)).reshape(n, 3, 3) / ks[:, :, None]
    C = S - mu[:, :, None] * mu[:, None, :]
    return 0.5 * (C + C.mT), r2


def _edge_weights(d: Tensor, w: Tensor, b: Tensor, B: int) -> Tensor:
    """Surface variation ``(N,)`` of each point's Gaussian-weighted local covariance (see :func:`frame_sign_stats`).

    Clouds are contiguous in ``b`` (sorted ids); one dense ``(n, n)`` kernel per cloud, float64, so the weights
    are invariant to rotation, translation and point order up to rounding (about 1e-15).
    """
    counts = torch.bincount(b, minlength=B).tolist()
    out = d.new_zeros(d.shape[0])
    start = 0
    for n in counts:
        x, wx = d[start:start + n], w[start:start + n]
        local = _local_covariances(x, wx, EDGE_BANDWIDTH) if n > 1 else None
        if local is not None:
            C, r2 = local
            ev = torch.linalg.eigvalsh(C).clamp_min(0.0)
            # regularised by 5 % of r^2 (a point on a face has tr C about r^2): an isolated point, whose
            # local covariance vanishes, is no edge, and the ratio stays well conditioned (rounding ~1e-14)
            out[start:start + n] = ev[:, 0] / (ev.sum(1) + 0.05 * r2)
        start += n
    return out


def _edge_centroid(d: Tensor, w: Tensor, b: Tensor, B: int) -> Tensor:
    """Offset ``(B, 3)`` of the edge-weighted centroid from the centroid (0 for a cloud without edges)."""
    e = w * _edge_weights(d, w, b, B)
    es = d.new_zeros(B).index_add_(0, b, e)
    o = d.new_zeros(B, 3).index_add_(0, b, e[:, None] * d)
    return torch.where(es[:, None] > 0, o / es.clamp_min(1e-300)[:, None], torch.zeros_like(o))


def _face_field(d: Tensor, w: Tensor, b: Tensor, B: int) -> tuple[Tensor, Tensor]:
    r"""Per-point face vectors ``m`` ``(N, 3)`` and face weights ``a`` ``(N,)`` (see :func:`frame_sign_stats`).

    Normal :math:`n_i` = the eigenvector of the smallest eigenvalue of the Gaussian-weighted local covariance
    (bandwidth :data:`FACE_BANDWIDTH` times the RMS radius), planarity :math:`\pi_i = (\lambda_2 - \lambda_1) /
    (\operatorname{tr} C_i + 0.05 r^2)` (0 where the normal is undefined, so every term below is continuous),
    face share :math:`c_i = \sum_j w_j \pi_j (n_i^\top n_j)^{p} / \sum_j w_j` (the fraction of the cloud on faces
    parallel to the one at :math:`x_i`), :math:`m_i = n_i n_i^\top (x_i - t)` (sign-free: the offset of the
    tangent plane from the centroid) and :math:`a_i = w_i \pi_i c_i^{q}` (``(p, q)`` = :data:`FACE_POWERS`).
    Invariant weights, equivariant vectors; one dense ``(n, n)`` kernel per cloud (clouds contiguous in ``b``).
    """
    counts = torch.bincount(b, minlength=B).tolist()
    m_out, a_out = d.new_zeros(d.shape[0], 3), d.new_zeros(d.shape[0])
    tiny = torch.finfo(d.dtype).tiny
    pw, qw = FACE_POWERS
    start = 0
    for n in counts:
        x, wx = d[start:start + n], w[start:start + n]
        local = _local_covariances(x, wx, FACE_BANDWIDTH) if n > 2 else None
        if local is not None:
            ev, vec = torch.linalg.eigh(local[0])
            ev = ev.clamp_min(0.0)
            nrm = vec[:, :, 0]
            pi = (ev[:, 1] - ev[:, 0]) / (ev.sum(1) + 0.05 * local[1])
            G = nrm @ nrm.T
            for _ in range(pw.bit_length() - 1):  # G^p by repeated squaring (p a power of 2), in place
                G.mul_(G)
            c = G @ (wx * pi) / wx.sum().clamp_min(tiny)
            xc = x - (wx[:, None] * x).sum(0) / wx.sum().clamp_min(tiny)
            m_out[start:start + n] = nrm * (nrm * xc).sum(1, keepdim=True)
            a_out[start:start + n] = wx * pi * c ** qw
        start += n
    return m_out, a_out


def _face_offsets(m: Tensor, a: Tensor, b: Tensor, B: int, U: Tensor) -> Tensor:
    r"""``(B, C, 3)``: face statistic :math:`f_k = \sum_i a_i u_k^\top m_i / \sum_i a_i |u_k^\top m_i|` along the
    columns of ``U`` ``(B, C, 3, 3)``, in ``[-1, 1]``; 0 where no face has extent along :math:`u_k`."""
    C = U.shape[1]
    num, den = m.new_zeros(B, C, 3), m.new_zeros(B, C, 3)
    for c in range(C):  # one candidate basis at a time, as in _range_asymmetry
        z = torch.einsum("ni,nik->nk", m, U[b, c])
        num[:, c] = m.new_zeros(B, 3).index_add_(0, b, a[:, None] * z)
        den[:, c] = m.new_zeros(B, 3).index_add_(0, b, a[:, None] * z.abs())
    ok = den > 1e-12 * den.amax(-1, keepdim=True).clamp_min(torch.finfo(den.dtype).tiny)
    return torch.where(ok & (den > 0), num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.zeros_like(num))


def _edge_offsets(o: Tensor, cov: Tensor, U: Tensor) -> Tensor:
    """``(B, C, 3)``: the edge centroid's offset along each column of ``U``, in standard deviations of the cloud."""
    proj = torch.einsum("bi,bcik->bck", o, U)
    var = torch.einsum("bij,bcia,bcja->bca", cov, U, U).clamp_min(0.0)
    scale = cov.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]
    ok = var > 1e-12 * scale
    return torch.where(ok, proj / var.clamp_min(1e-300).sqrt(), torch.zeros_like(proj))


def _third_moment(d: Tensor, w: Tensor, wsum: Tensor, b: Tensor, B: int) -> Tensor:
    """``(B, 3, 3, 3)`` weighted third-moment tensor of the centred points ``d``."""
    outer = (d[:, :, None, None] * d[:, None, :, None] * d[:, None, None, :]).reshape(-1, 27)
    return (d.new_zeros(B, 27).index_add_(0, b, w[:, None] * outer) / wsum[:, None]).reshape(B, 3, 3, 3)


def _skewness(T: Tensor, cov: Tensor, U: Tensor) -> Tensor:
    """Skewness ``(B, C, 3)`` along the columns of ``U`` ``(B, C, 3, 3)``; 0 along a direction of zero variance."""
    m3 = torch.einsum("bijk,bcia,bcja,bcka->bca", T, U, U, U)
    var = torch.einsum("bij,bcia,bcja->bca", cov, U, U).clamp_min(0.0)
    scale = cov.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]  # trace: the cloud's spread
    ok = var > 1e-12 * scale  # false for every direction of a cloud of one (repeated) point
    return torch.where(ok, m3 / var.clamp_min(1e-100) ** 1.5, torch.zeros_like(m3))


def _rot_in_plane(i: int, j: int, angles: Tensor) -> Tensor:
    """``(K, 3, 3)`` rotations by ``angles`` in the (e_i, e_j) plane."""
    R = torch.eye(3, dtype=torch.float64, device=angles.device).repeat(angles.shape[0], 1, 1)
    R[:, i, i], R[:, j, j] = angles.cos(), angles.cos()
    R[:, i, j], R[:, j, i] = -angles.sin(), angles.sin()
    return R


def _perms(proper: bool) -> Tensor:
    """The 6 permutation matrices, with the first column negated where that makes them proper."""
    out = []
    for perm in itertools.permutations(range(3)):
        P = torch.eye(3, dtype=torch.float64)[:, list(perm)]
        if proper and torch.linalg.det(P) < 0:
            P[:, 0] = -P[:, 0]
        out.append(P)
    return torch.stack(out)


#: angular moments that orient a degenerate plane: (harmonic order m, radial power k). Order 1 is useless (the
#: centred in-plane coordinates sum to 0) and order 2 is the covariance itself; the radial power 8 weights the outline,
#: where flats, notches and corners are (on shapes-hard it doubles the signal-to-noise ratio of k = m).
_HARMONICS = ((3, 8), (4, 8))


def _harmonic_bases(d: Tensor, w: Tensor, wsum: Tensor, b: Tensor, B: int, V: Tensor, plane: tuple[int, int, int],
                    tie_tol: float, edge_vec: Tensor | None = None, cov: Tensor | None = None,
                    face: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    r"""Bases ``(B, 7, 3, 3)`` (one more with ``edge_vec``, one more with ``face``) orienting the plane ``plane[:2]``.

    In-plane coordinates :math:`\rho_i e^{i\phi_i}`; for each ``(m, k)`` of :data:`_HARMONICS`,
    :math:`Z_m = \sum_i w_i \rho_i^k e^{i m \phi_i}`, concentration :math:`\hat z_m = |Z_m| / \sum_i w_i
    \rho_i^k \in [0, 1]`, and the ``m`` directions :math:`\theta = (\arg Z_m + 2\pi j)/m` (those maximising
    :math:`\sum_i w_i \rho_i^k \cos m(\phi_i - \theta)`: intrinsic to the plane, whatever basis ``eigh``
    returned in it, hence exactly equivariant). With ``edge_vec`` (the edge centroid :math:`o`, ``(B, 3)``,
    ``signs="detail"``) an order 1 comes first: :math:`Z_1` = the in-plane components of :math:`o`, one
    direction :math:`\arg Z_1`, concentration :math:`|Z_1| / \sigma_{\mathrm{plane}}` scaled by
    ``tie_tol / EDGE_TOL`` (decisive from an offset of :data:`EDGE_TOL` standard deviations). With ``face``
    (``(m, a)`` of :func:`_face_field`, ``signs="faces"``) a second order 1: :math:`Z = \sum_i a_i (m_i^{(u)} + i\,
    m_i^{(v)})`, concentration :math:`|Z| / \sum_i a_i |m_i^{\mathrm{plane}}|` scaled by ``tie_tol / FACE_TOL``.
    Weight of order
    ``m``: confidence :math:`\mathrm{step}(\hat z_m/\mathrm{tie\_tol})` times a soft preference for the most
    concentrated order, split evenly over its ``m`` directions. Columns: (oriented direction, third axis x
    it, third axis) for the plane (1, 2), (first axis, oriented direction, first axis x it) for (2, 3); the
    oriented column is the first, resp. second.
    """
    i, j, k = plane
    Vb = V[b]
    a, c = (d * Vb[:, :, i]).sum(-1), (d * Vb[:, :, j]).sum(-1)
    rho, phi = torch.sqrt(a * a + c * c), torch.atan2(c, a)
    conc, theta0, orders = [], [], []
    if edge_vec is not None:
        re, im = (edge_vec * V[:, :, i]).sum(-1), (edge_vec * V[:, :, j]).sum(-1)
        var = 0.5 * (torch.einsum("bx,bxy,by->b", V[:, :, i], cov, V[:, :, i])
                     + torch.einsum("bx,bxy,by->b", V[:, :, j], cov, V[:, :, j])).clamp_min(0.0)
        scale = cov.diagonal(dim1=-2, dim2=-1).sum(-1)
        ok = var > 1e-12 * scale
        conc.append(torch.where(ok, torch.sqrt(re * re + im * im) / var.clamp_min(1e-300).sqrt(), torch.zeros_like(re))
                    * (tie_tol / EDGE_TOL))
        theta0.append(torch.atan2(im, re))
        orders.append(1)
    if face is not None:  # "faces": the face statistic's in-plane direction, a second order 1
        fm, fa = face
        fu, fv = (fm * Vb[:, :, i]).sum(-1), (fm * Vb[:, :, j]).sum(-1)
        re, im = d.new_zeros(B).index_add_(0, b, fa * fu), d.new_zeros(B).index_add_(0, b, fa * fv)
        den = d.new_zeros(B).index_add_(0, b, fa * torch.sqrt(fu * fu + fv * fv))
        conc.append(torch.where(den > 0, torch.sqrt(re * re + im * im) / den.clamp_min(torch.finfo(d.dtype).tiny),
                                torch.zeros_like(den)) * (tie_tol / FACE_TOL))
        theta0.append(torch.atan2(im, re))
        orders.append(1)
    for m, kpow in _HARMONICS:
        rk = w * rho**kpow
        re = d.new_zeros(B).index_add_(0, b, rk * torch.cos(m * phi))
        im = d.new_zeros(B).index_add_(0, b, rk * torch.sin(m * phi))
        den = d.new_zeros(B).index_add_(0, b, rk)
        conc.append(torch.where(den > 0, torch.sqrt(re * re + im * im) / den.clamp_min(torch.finfo(d.dtype).tiny),
                                torch.zeros_like(den)))
        theta0.append(torch.atan2(im, re) / m)
        orders.append(m)
    z = torch.stack(conc, 1)  # (B, orders)
    diff = (z[:, :, None] - z[:, None, :]) / tie_tol  # [b, m, m'] = z_m - z_m'
    eye = torch.eye(len(orders), dtype=torch.bool, device=d.device)
    pref = torch.where(eye, torch.ones_like(diff), _rank(diff)).prod(-1)
    pref = pref / pref.sum(-1, keepdim=True)
    pm = _step(z / tie_tol) * pref  # (B, orders), sum <= 1
    bases, weights = [], []
    u, v, n = V[:, :, i], V[:, :, j], V[:, :, k]
    for h, m in enumerate(orders):
        for jj in range(m):
            th = theta0[h] + 2 * torch.pi * jj / m
            e = th.cos()[:, None] * u + th.sin()[:, None] * v
            if plane[2] == 2:
                cols = [e, torch.linalg.cross(n, e), n]
            else:
                cols = [n, e, torch.linalg.cross(n, e)]
            bases.append(torch.stack(cols, -1))
            weights.append(pm[:, h] / m)
    return torch.stack(bases, 1), torch.stack(weights, 1)


def _blend_bases(V: Tensor, rel: Tensor, tol: float, m: int, proper: bool) -> tuple[Tensor, Tensor]:
    """The unsigned bases ``(B, 2m + 7, 3, 3)`` of the ``"blend"`` policy and their weights ``(B, 2m + 7)``."""
    B, dev = V.shape[0], V.device
    dg = 1.0 - _step(rel / tol)
    d12, d23 = dg[:, 0], dg[:, 1]
    w0, w12, w23, w123 = (1 - d12) * (1 - d23), d12 * (1 - d23), (1 - d12) * d23, d12 * d23
    ang = torch.arange(m, dtype=torch.float64, device=dev) * torch.pi / m
    cand = torch.cat([torch.eye(3, dtype=torch.float64, device=dev)[None], _rot_in_plane(0, 1, ang),
                      _rot_in_plane(1, 2, ang), _perms(proper).to(dev)])  # (2m + 7, 3, 3)
    bases = V[:, None] @ cand
    wts = torch.cat([w0[:, None], (w12 / m)[:, None].expand(B, m), (w23 / m)[:, None].expand(B, m),
                     (w123 / 6)[:, None].expand(B, 6)], 1)
    return bases, wts


def _chain_signs(stats: list[tuple[Tensor, float]], sign_tol: float) -> tuple[Tensor, Tensor]:
    r"""Sign beliefs ``psi`` and decisiveness ``kappa`` (each ``(B, C, 3)``) from statistics in priority order.

    ``stats`` = ``[(s, tau), ...]``, lowest priority first. Each statistic has decisiveness :math:`e = |s|/\tau`
    and belief :math:`\psi_s = \mathrm{sign}(s)\, \mathrm{step}(e)`; a higher-priority statistic decides where it
    is decisive and hands over continuously where it is balanced: :math:`\psi \leftarrow \psi_s + (1 -
    |\psi_s|)\, \psi`, :math:`\kappa \leftarrow \mathrm{sign\_tol}\,(e + (1 - \min(e, 1))\, \kappa /
    \mathrm{sign\_tol})`, starting from :math:`\psi_{s_1}`, :math:`\kappa = \mathrm{sign\_tol}\, e_1`. Odd in
    the axis sign (every :math:`\psi_s` is) and continuous in the statistics.
    """
    (s0, t0), rest = stats[0], stats[1:]
    psi = s0.sign() * _step(s0.abs() / t0)
    kappa = sign_tol * s0.abs() / t0
    for st, tol in rest:
        e = st.abs() / tol
        ps = st.sign() * _step(e)
        psi = ps + (1.0 - ps.abs()) * psi
        kappa = sign_tol * (e + (1.0 - e.clamp_max(1.0)) * kappa / sign_tol)
    return psi, kappa


def _general_frames(d, w, wsum, b, cov, evals, V, rel, proper, centroid, translation, *, tol, degenerate, num_angles,
                    signs, sign_tol, tie_tol) -> Frames:
    """Frames of the shrunk-sign and harmonic-tie policies: weighted unsigned bases, then weighted sign patterns."""
    B = V.shape[0]
    edge_vec = _edge_centroid(d, w, b, B) if signs in ("detail", "faces") else None
    face = _face_field(d, w, b, B) if signs == "faces" else None
    if degenerate == "none":
        bases, omega = V[:, None], V.new_ones(B, 1)
        fixed = torch.zeros(1, 3, dtype=torch.bool, device=V.device)
    else:
        bases, omega = _blend_bases(V, rel, tol, num_angles, proper)
        fixed = torch.zeros(bases.shape[1], 3, dtype=torch.bool, device=V.device)
    if degenerate == "harmonic":
        band = 1.0 - _step(rel / tie_tol)
        b12, b23 = band[:, 0], band[:, 1]
        h12, p12 = _harmonic_bases(d, w, wsum, b, B, V, (0, 1, 2), tie_tol, edge_vec, cov, face)
        h23, p23 = _harmonic_bases(d, w, wsum, b, B, V, (1, 2, 0), tie_tol, edge_vec, cov, face)
        w12, w23 = b12 * (1 - b23), (1 - b12) * b23
        rest = 1.0 - w12 * p12.sum(1) - w23 * p23.sum(1)
        bases = torch.cat([bases, h12, h23], 1)
        omega = torch.cat([omega * rest[:, None], w12[:, None] * p12, w23[:, None] * p23], 1)
        nh = h12.shape[1]
        fx = torch.zeros(2 * nh, 3, dtype=torch.bool, device=V.device)
        fx[:nh, 0], fx[nh:, 1] = True, True
        fixed = torch.cat([fixed, fx])
    C = bases.shape[1]
    if signs != "all":
        stats = [(_skewness(_third_moment(d, w, wsum, b, B), cov, bases), sign_tol)]  # lowest priority first
        if face is not None:  # "faces": the large faces before the skewness
            stats.append((_face_offsets(*face, b, B, bases), FACE_TOL))
        if edge_vec is not None:  # "detail", "faces": the edge centroid before the faces and the skewness
            stats.append((_edge_offsets(edge_vec, cov, bases), EDGE_TOL))
        if signs in ("extent", "detail", "faces"):  # the extremes decide first; the rest where they are balanced
            stats.append((_range_asymmetry(d, w, b, B, bases), EXTENT_TOL))
        psi, kappa = _chain_signs(stats, sign_tol)
    else:
        psi = bases.new_zeros(B, C, 3)
        kappa = bases.new_zeros(B, C, 3)
    psi = torch.where(fixed, torch.ones_like(psi), psi)
    kappa = torch.where(fixed, torch.full_like(kappa, _FIXED), kappa)
    sw = _sign_weights(psi, kappa, proper, sign_tol)  # (B, C, F0)
    S = _sign_mats(proper).to(V.device)
    F0 = S.shape[0]
    rot = (bases[:, :, None] @ S).reshape(B, C * F0, 3, 3)
    wts = (omega[:, :, None] * sw).reshape(B, C * F0)
    wts = wts / wts.sum(1, keepdim=True)
    return Frames(rot, wts, centroid, translation, evals, rel, (rel < tol).any(dim=1))


def check_frame_options(group: str, tol: float | None, degenerate: str, num_angles: int, signs: str = "all",
                        sign_tol: float | None = None, tie_tol: float | None = None) -> float | None:
    """Validate the frame options shared by :func:`pca_frames` and the wrappers; return ``tol`` as a float.

    >>> check_frame_options("E3", None, "blend", 4) is None
    True
    >>> check_frame_options("E2", None, "blend", 4)
    Traceback (most recent call last):
    ...
    ValueError: group must be one of 'O3', 'SO3', 'E3', 'SE3', got 'E2'
    """
    check_choice(group, "group", GROUPS)
    check_choice(degenerate, "degenerate", DEGENERATE_POLICIES)
    check_int(num_angles, "num_angles", 1)
    check_choice(signs, "signs", SIGN_POLICIES)
    if sign_tol is not None:
        check_tol(sign_tol, "sign_tol")
    if tie_tol is not None:
        check_tol(tie_tol, "tie_tol")
    return None if tol is None else check_tol(tol)


def check_tol(tol, name: str = "tol") -> float:
    """``tol`` as a float if it is a real number ``> 0``, else an error naming ``name``.

    >>> check_tol(0)
    Traceback (most recent call last):
    ...
    ValueError: tol must be > 0, got 0.0
    """
    tol = check_real(tol, name)
    if not tol > 0:
        raise ValueError(f"{name} must be > 0, got {tol}")
    return tol


def frame_pairs(fr: Frames, num_samples: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    r"""The (cloud, frame) pairs a frame average runs, with their weights.

    ``num_samples=None``: every frame with positive weight, weighted by :attr:`Frames.weights` (the
    exact average :math:`\sum_g w_g\, g \cdot \phi(g^{-1} X)`). ``num_samples=k``: ``k`` frames per
    cloud drawn with replacement from the frame weights, each weighted ``1/k`` (stochastic frame
    averaging: an unbiased estimate of the exact average, Puny et al., ICLR 2022, Sec. 3.2).

    Shapes:
        ``fr`` of ``B`` clouds -> ``cloud_of`` ``(K,)``, ``frame_of`` ``(K,)``, ``weight`` ``(K,)``
        (float64); ``K = B k`` when sampling.

    Example:
        >>> fr = pca_frames(torch.randn(2, 20, 3) * torch.tensor([1.0, 2.0, 3.0]), degenerate="none")
        >>> cloud, frame, w = frame_pairs(fr)
        >>> cloud.tolist(), float(w.sum())
        ([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1], 2.0)
        >>> cloud, frame, w = frame_pairs(fr, num_samples=3)
        >>> cloud.tolist(), (w * 3).tolist(), bool((fr.weights[cloud, frame] > 0).all())
        ([0, 0, 0, 1, 1, 1], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0], True)
    """
    if check_int(num_samples, "num_samples", 1, allow_none=True) is None:
        cloud_of, frame_of = (fr.weights > 0).nonzero(as_tuple=True)
        return cloud_of, frame_of, fr.weights[cloud_of, frame_of]
    B = fr.weights.shape[0]
    frame_of = torch.multinomial(fr.weights, num_samples, replacement=True).reshape(-1)
    cloud_of = torch.arange(B, device=frame_of.device).repeat_interleave(num_samples)
    return cloud_of, frame_of, fr.weights.new_full((B * num_samples,), 1.0 / num_samples)
