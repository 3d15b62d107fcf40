r"""``articulated``: generated articulated bodies (kinematic trees of rigid primitive parts), no download needed.

The data of the piecewise-equivariance experiments of APEN (Atzmon et al., ICLR 2024, Tables 1 and 3) in a
form that needs no licence: humanoid figures of several body shapes ("subjects", as the ten people of
DFAUST), desk lamps and robot arms. Every part is a rigid solid in its own frame; a pose is one angle per
degree of freedom (DOF) of each joint, inside the joint's limits, and forward kinematics places each part by
the rigid motion

.. math::
    R_k = R_{p(k)} \, J_k(\theta_k), \qquad t_k = R_{p(k)} a_k + t_{p(k)}, \qquad x^{\mathrm{world}} = R_k x + t_k,

where :math:`p(k)` is the parent part, :math:`a_k` the joint's anchor in the parent's frame (the child's
frame has its origin at the joint) and :math:`J_k(\theta) = \prod_d \mathrm{Rot}(e_{\mathrm{axis}_d},
\theta_d)` the joint rotation, in DOF order. So a part's points in two poses are related by an exact rigid
motion, which is what a piecewise-E(3)-equivariant model may exploit.

**Unseen articulations.** Every DOF has limits ``lo <= 0 <= hi`` (0 is the rest pose). A pose has an
*articulation level* ``s`` in ``[0, 1]`` per DOF: the angle is ``s * hi`` or ``s * lo`` (the side drawn with
probability 1/2 where both are non-zero). Training poses draw ``s ~ U(0, a)``, test poses ``s ~ U(a, 1)``
with ``a = train_articulation`` (0.35 by default): every joint of every test pose lies outside the range of
angles seen in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .._checks import check_int, check_real
from . import _surfaces as S
from ._base import PointCloudDataset, SegmentationMixin
from ._generated import check_split, item_rng
from ._io import as_root, cache_key, load_cached

_VERSION = 1
_SALT = 3

__all__ = ["ArticulatedBody", "ArticulatedDataset", "ARTICULATED_CATEGORIES", "articulated_body", "generate_articulated",
           "subject_names"]


def _rot(axis: int, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


@dataclass(frozen=True)
class Dof:
    """One rotational degree of freedom: about local axis ``axis`` (0 x, 1 y, 2 z), angle in ``[lo, hi]`` (radians)."""

    axis: int
    lo: float
    hi: float


@dataclass(frozen=True)
class Joint:
    """How part ``k`` hangs on its ``parent`` (-1: the root): at ``anchor`` (parent frame), with ``dofs``."""

    parent: int
    anchor: tuple
    dofs: tuple


class ArticulatedBody:
    """A kinematic tree of rigid parts: part names, surface patches in each part's frame, joints with limits.

    Parts are in topological order (a parent before its children). ``patches`` carry the part index in
    ``Patch.part``. Use :func:`articulated_body` to build the bodies of the dataset.

    Example:
        >>> body = articulated_body("robot_arm", 0)
        >>> body.num_parts, body.num_dofs, body.part_names[:3]
        (7, 7, ['base', 'turret', 'upper_arm'])
        >>> R, t = body.transforms(np.zeros(body.num_dofs))
        >>> bool(np.allclose(R, np.eye(3))), t.shape
        (True, (7, 3))
    """

    def __init__(self, category: str, subject: int, part_names: list[str], patches: list, joints: list[Joint]):
        if len(joints) != len(part_names):
            raise ValueError(f"{category}: {len(joints)} joints for {len(part_names)} parts")
        for k, j in enumerate(joints):
            if not (j.parent < k) or (k == 0) != (j.parent == -1):
                raise ValueError(f"{category}: part {k} has parent {j.parent}; parts must be in topological order")
            for d in j.dofs:
                if not d.lo <= 0.0 <= d.hi or d.lo == d.hi:
                    raise ValueError(f"{category}: joint {k} has limits [{d.lo}, {d.hi}], which must contain 0")
        self.category, self.subject = category, int(subject)
        self.part_names, self.patches, self.joints = list(part_names), list(patches), list(joints)
        self.lower = np.array([d.lo for j in joints for d in j.dofs], dtype=float)
        self.upper = np.array([d.hi for j in joints for d in j.dofs], dtype=float)

    @property
    def num_parts(self) -> int:
        return len(self.part_names)

    @property
    def num_dofs(self) -> int:
        return int(self.lower.shape[0])

    def random_angles(self, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
        """Joint angles ``(num_dofs,)`` at articulation levels ``s ~ U(low, high)`` per DOF (module docstring)."""
        s = rng.uniform(low, high, self.num_dofs)
        both = (self.lower < 0) & (self.upper > 0)
        up = np.where(both, rng.random(self.num_dofs) < 0.5, self.upper > 0)
        return np.where(up, s * self.upper, s * self.lower)

    def articulation(self, angles: np.ndarray) -> np.ndarray:
        """The articulation level ``s`` of each DOF of ``angles`` (the inverse of :meth:`random_angles`)."""
        a = np.asarray(angles, dtype=float)
        return np.where(a >= 0, a / np.where(self.upper > 0, self.upper, 1.0), a / np.where(self.lower < 0, self.lower, 1.0))

    def transforms(self, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics: per part ``R`` ``(P, 3, 3)`` and ``t`` ``(P, 3)``, world point ``R @ x + t``."""
        angles = np.asarray(angles, dtype=float).reshape(-1)
        if angles.shape[0] != self.num_dofs:
            raise ValueError(f"angles must hold {self.num_dofs} joint angles for a {self.category}, got {angles.shape[0]}")
        R = np.empty((self.num_parts, 3, 3))
        t = np.empty((self.num_parts, 3))
        d = 0
        for k, j in enumerate(self.joints):
            J = np.eye(3)
            for dof in j.dofs:
                J = J @ _rot(dof.axis, angles[d])
                d += 1
            if j.parent < 0:
                R[k], t[k] = J, np.asarray(j.anchor, dtype=float)
            else:
                R[k] = R[j.parent] @ J
                t[k] = R[j.parent] @ np.asarray(j.anchor, dtype=float) + t[j.parent]
        return R, t

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` area-uniform surface points in the parts' own frames: ``(local points, normals, part index)``."""
        return S.sample_patches(rng, self.patches, n)

    def pose(self, angles, points: np.ndarray, normals: np.ndarray, part: np.ndarray):
        """Points and normals sampled by :meth:`sample`, moved into the pose ``angles`` (world frame)."""
        R, t = self.transforms(angles)
        p = np.einsum("nij,nj->ni", R[part], points) + t[part]
        q = np.einsum("nij,nj->ni", R[part], normals)
        return p, q


def _limb(r_top: float, r_bottom: float, length: float, down: bool = True) -> list:
    """A tapered capsule from the joint (origin) along -z (``down``) or +z, of ``length`` between cap centres."""
    z1 = -length if down else length
    lo, hi = (z1, 0.0) if down else (0.0, z1)
    r_lo, r_hi = (r_bottom, r_top) if down else (r_top, r_bottom)
    mantle = S.frustum(r_lo, r_hi, lo, hi)
    top = S.Patch("ellipsoid", (r_hi, r_hi, r_hi, True)).moved(t=(0.0, 0.0, hi))
    bottom = S.Patch("ellipsoid", (r_lo, r_lo, r_lo, True)).moved(S.rot_x(math.pi), (0.0, 0.0, lo))
    return [mantle, top, bottom]


def _ellipsoid_at(a, b, c, z):
    return [S.ellipsoid(a, b, c).moved(t=(0.0, 0.0, z))]


# --- humanoids: x left, y forward, z up; (height, width, girth, arm, leg) scales per subject -----------------------

_HUMAN_SUBJECTS = [
    (1.00, 1.00, 1.00, 1.00, 1.00),
    (0.93, 0.88, 0.82, 1.02, 1.08),
    (1.05, 1.18, 1.28, 0.94, 0.94),
    (0.86, 0.96, 1.10, 0.88, 0.90),
    (1.10, 1.00, 0.90, 1.14, 1.06),
    (0.97, 1.10, 1.04, 1.08, 0.90),
]
_HUMAN_PARTS = ["pelvis", "torso", "head", "upper_arm_l", "forearm_l", "upper_arm_r", "forearm_r",
                "thigh_l", "shin_l", "thigh_r", "shin_r"]


def _humanoid(subject: int):
    h, w, g, arm, leg = _HUMAN_SUBJECTS[subject]
    La, Lf, Lt, Ls = 0.30 * arm * h, 0.28 * arm * h, 0.44 * leg * h, 0.42 * leg * h
    H = lambda *v: tuple(h * x for x in v)  # noqa: E731
    parts = [
        _ellipsoid_at(0.16 * w * h, 0.11 * g * h, 0.10 * h, 0.0),
        _ellipsoid_at(0.18 * w * h, 0.12 * g * h, 0.27 * h, 0.27 * h),
        _ellipsoid_at(0.085 * h, 0.10 * h, 0.12 * h, 0.15 * h),
        _limb(0.05 * g * h, 0.04 * g * h, La), _limb(0.04 * g * h, 0.03 * g * h, Lf),
        _limb(0.05 * g * h, 0.04 * g * h, La), _limb(0.04 * g * h, 0.03 * g * h, Lf),
        _limb(0.08 * g * h, 0.06 * g * h, Lt), _limb(0.055 * g * h, 0.04 * g * h, Ls),
        _limb(0.08 * g * h, 0.06 * g * h, Lt), _limb(0.055 * g * h, 0.04 * g * h, Ls),
    ]
    sx = 0.20 * w * h + 0.05 * g * h  # shoulder offset from the spine
    hx = 0.09 * w * h
    joints = [
        Joint(-1, (0.0, 0.0, Lt + Ls + 0.10 * h), ()),
        Joint(0, H(0.0, 0.0, 0.06), (Dof(0, -0.4, 1.0), Dof(1, -0.4, 0.4), Dof(2, -0.7, 0.7))),
        Joint(1, H(0.0, 0.0, 0.55), (Dof(0, -0.7, 0.6), Dof(1, -0.4, 0.4), Dof(2, -1.2, 1.2))),
        Joint(1, (sx, 0.0, 0.48 * h), (Dof(0, -1.0, 2.6), Dof(1, -2.4, 0.2), Dof(2, -0.8, 0.8))),
        Joint(3, (0.0, 0.0, -La), (Dof(0, 0.0, 2.4),)),
        Joint(1, (-sx, 0.0, 0.48 * h), (Dof(0, -1.0, 2.6), Dof(1, -0.2, 2.4), Dof(2, -0.8, 0.8))),
        Joint(5, (0.0, 0.0, -La), (Dof(0, 0.0, 2.4),)),
        Joint(0, (hx, 0.0, -0.05 * h), (Dof(0, -0.5, 1.8), Dof(1, -0.9, 0.2), Dof(2, -0.6, 0.6))),
        Joint(7, (0.0, 0.0, -Lt), (Dof(0, -2.3, 0.0),)),
        Joint(0, (-hx, 0.0, -0.05 * h), (Dof(0, -0.5, 1.8), Dof(1, -0.2, 0.9), Dof(2, -0.6, 0.6))),
        Joint(9, (0.0, 0.0, -Lt), (Dof(0, -2.3, 0.0),)),
    ]
    return _HUMAN_PARTS, parts, joints


# --- desk lamps: (lower arm, upper arm, base radius, shade scale) -------------------------------------------------

_LAMP_SUBJECTS = [(0.45, 0.40, 0.15, 1.0), (0.62, 0.34, 0.21, 1.35)]
_LAMP_PARTS = ["base", "lower_arm", "upper_arm", "shade"]


def _lamp(subject: int):
    L1, L2, rb, sh = _LAMP_SUBJECTS[subject]
    hb = 0.05
    parts = [
        S.cylinder(rb, 0.0, hb),
        _limb(0.02, 0.02, L1, down=False),
        _limb(0.018, 0.018, L2, down=False),
        [S.frustum(0.03 * sh, 0.12 * sh, 0.0, 0.16 * sh), S.disk(0.03 * sh, 0.0, False)],
    ]
    joints = [
        Joint(-1, (0.0, 0.0, 0.0), ()),
        Joint(0, (0.0, 0.0, hb), (Dof(2, -3.0, 3.0), Dof(0, -1.0, 1.0))),
        Joint(1, (0.0, 0.0, L1), (Dof(0, -2.2, 0.4),)),
        Joint(2, (0.0, 0.0, L2), (Dof(0, -1.4, 1.4), Dof(2, -1.5, 1.5))),
    ]
    return _LAMP_PARTS, parts, joints


# --- robot arms: (upper arm, forearm) lengths ----------------------------------------------------------------------

_ROBOT_SUBJECTS = [(0.50, 0.40), (0.38, 0.56)]
_ROBOT_PARTS = ["base", "turret", "upper_arm", "forearm", "wrist", "finger_a", "finger_b"]


def _robot_arm(subject: int):
    L1, L2 = _ROBOT_SUBJECTS[subject]
    parts = [
        S.cylinder(0.16, 0.0, 0.10),
        S.box(0.10, 0.10, 0.08, center=(0.0, 0.0, 0.08)),
        S.box(0.05, 0.05, L1 / 2, center=(0.0, 0.0, L1 / 2)),
        S.box(0.04, 0.04, L2 / 2, center=(0.0, 0.0, L2 / 2)),
        S.cylinder(0.035, 0.0, 0.08),
        S.box(0.015, 0.02, 0.06, center=(0.0, 0.0, 0.06)),
        S.box(0.015, 0.02, 0.06, center=(0.0, 0.0, 0.06)),
    ]
    joints = [
        Joint(-1, (0.0, 0.0, 0.0), ()),
        Joint(0, (0.0, 0.0, 0.10), (Dof(2, -3.0, 3.0),)),
        Joint(1, (0.0, 0.0, 0.16), (Dof(0, -1.6, 1.6),)),
        Joint(2, (0.0, 0.0, L1), (Dof(0, -2.4, 2.4),)),
        Joint(3, (0.0, 0.0, L2), (Dof(0, -1.6, 1.6), Dof(2, -3.0, 3.0))),
        Joint(4, (0.022, 0.0, 0.08), (Dof(1, 0.0, 0.8),)),
        Joint(4, (-0.022, 0.0, 0.08), (Dof(1, -0.8, 0.0),)),
    ]
    return _ROBOT_PARTS, parts, joints


_BUILDERS: dict[str, tuple[Callable, int]] = {
    "humanoid": (_humanoid, len(_HUMAN_SUBJECTS)),
    "lamp": (_lamp, len(_LAMP_SUBJECTS)),
    "robot_arm": (_robot_arm, len(_ROBOT_SUBJECTS)),
}

#: Categories of ``articulated``, in their default order.
ARTICULATED_CATEGORIES: list[str] = list(_BUILDERS)


def articulated_body(category: str, subject: int) -> ArticulatedBody:
    """The body of ``subject`` (an index within ``category``): its parts, patches and joints (fixed, not random)."""
    if category not in _BUILDERS:
        raise ValueError(f"category must be one of {', '.join(map(repr, _BUILDERS))}, got {category!r}")
    build, count = _BUILDERS[category]
    subject = check_int(subject, "subject", 0)
    if subject >= count:
        raise ValueError(f"subject must be in [0, {count}) for category {category!r}, got {subject}")
    names, parts, joints = build(subject)
    patches = [p for k, plist in enumerate(parts) for p in S.labelled(plist, k)]
    return ArticulatedBody(category, subject, names, patches, joints)


def subject_names(categories: Sequence[str] = tuple(ARTICULATED_CATEGORIES)) -> list[str]:
    """``"category/sK"`` names of every subject of ``categories``, index = subject label.

    >>> subject_names(["lamp", "robot_arm"])
    ['lamp/s0', 'lamp/s1', 'robot_arm/s0', 'robot_arm/s1']
    """
    return [f"{c}/s{k}" for c in categories for k in range(_BUILDERS[c][1])]


def _check_categories(categories) -> tuple[str, ...]:
    if isinstance(categories, str):
        categories = (categories,)
    if not isinstance(categories, (list, tuple)) or not categories:
        raise TypeError(f"categories must be a non-empty list of names from {ARTICULATED_CATEGORIES}, got {categories!r}")
    for c in categories:
        if c not in _BUILDERS:
            raise ValueError(f"categories entries must be among {ARTICULATED_CATEGORIES}, got {c!r}")
    if len(set(categories)) != len(categories):
        raise ValueError(f"categories must not repeat a name, got {list(categories)}")
    return tuple(categories)


def part_offsets(pos: np.ndarray, part: np.ndarray, num_parts: int) -> np.ndarray:
    """Per point: the centroid of its part's points minus the point, ``(N, 3)`` (APEN's vote target)."""
    count = np.bincount(part, minlength=num_parts).astype(float)
    sums = np.stack([np.bincount(part, weights=pos[:, c], minlength=num_parts) for c in range(3)], axis=1)
    centre = sums / np.maximum(count, 1.0)[:, None]
    return centre[part] - pos


def generate_articulated(
    count: int, num_points: int, *, seed: int = 0, split: str = "train", noise: float = 0.005,
    categories: Sequence[str] = tuple(ARTICULATED_CATEGORIES), train_articulation: float = 0.35,
) -> dict[str, torch.Tensor]:
    """Tensors of ``count`` posed bodies: ``pos``, ``normal``, ``part_offset`` ``(count, N, 3)``, ``part``
    ``(count, N)`` (global part ids over ``categories``), ``subject``, ``category`` ``(count,)``, ``angles``
    ``(count, D)`` (joint angles, zero-padded to the largest DOF count ``D``)."""
    cats = _check_categories(categories)
    bodies = [articulated_body(c, k) for c in cats for k in range(_BUILDERS[c][1])]
    cat_of = [cats.index(b.category) for b in bodies]
    first = np.cumsum([0] + [len(_BUILDERS[c][0](0)[0]) for c in cats])
    D = max(b.num_dofs for b in bodies)
    lo, hi = (0.0, train_articulation) if split == "train" else (train_articulation, 1.0)
    pos = np.empty((count, num_points, 3), np.float32)
    nrm = np.empty((count, num_points, 3), np.float32)
    off = np.empty((count, num_points, 3), np.float32)
    part = np.empty((count, num_points), np.int64)
    angles = np.zeros((count, D), np.float32)
    subj = np.arange(count) % len(bodies)
    for i in range(count):
        body = bodies[subj[i]]
        rng = item_rng(_SALT, seed, split, i)
        a = body.random_angles(rng, lo, hi)
        p, q, k = body.sample(rng, num_points)
        p, q = body.pose(a, p, q, k)
        perm = rng.permutation(num_points)
        p, q, k = p[perm], q[perm], k[perm]
        if noise > 0:
            p = p + noise * rng.standard_normal(p.shape)
        p = p - p.mean(0)
        pos[i], nrm[i], part[i] = p, q, k + first[cat_of[subj[i]]]
        off[i] = part_offsets(p, k, body.num_parts)
        angles[i, : body.num_dofs] = a
    return {
        "pos": torch.from_numpy(pos),
        "normal": torch.from_numpy(nrm),
        "part": torch.from_numpy(part),
        "part_offset": torch.from_numpy(off),
        "subject": torch.from_numpy(subj).long(),
        "category": torch.from_numpy(np.asarray(cat_of, dtype=np.int64)[subj]),
        "angles": torch.from_numpy(angles),
    }


class ArticulatedDataset(SegmentationMixin, PointCloudDataset):
    r"""Generated articulated bodies for part segmentation (``task="seg"``) or subject classification (``"cls"``).

    Categories (:data:`ARTICULATED_CATEGORIES`; choose with ``categories``), z up:

    ============  ========  ====  ================================================================
    category      subjects  DOFs  parts
    ============  ========  ====  ================================================================
    humanoid      6         22    pelvis, torso, head, upper arm / forearm (l, r), thigh / shin (l, r)
    lamp          2         5     base, lower arm, upper arm, shade
    robot_arm     2         7     base, turret, upper arm, forearm, wrist, two fingers
    ============  ========  ====  ================================================================

    A *subject* is one fixed body (humanoids differ in height, shoulder and hip width, limb girth, arm and
    leg length, by up to about 30 %; lamps and robot arms in their link lengths), the same in both splits,
    as the people of DFAUST. Parts are rigid primitives (ellipsoids, tapered capsules, boxes, cylinders,
    cones) sampled area-uniformly with outward unit normals; parts may touch or interpenetrate at the
    joints. Poses follow the module docstring: **training poses** have every DOF at an articulation level
    ``s < train_articulation`` of its limit, **test poses** (unseen articulations) every DOF at ``s >=
    train_articulation``. Points are posed, shuffled, noised (standard deviation ``noise``) and centred at
    their centroid; they are **not** rescaled, so body size stays a property of the subject (coordinates in
    metres-like units: humanoids about 1.5-1.9 tall, lamps and arms about 0.6-1.2).

    Item ``i`` has subject ``i % S`` (``S`` subjects over the chosen categories, in order) and depends only
    on ``(seed, split, i)`` and the arguments. Each item is a :class:`~torch_geometric.data.Data` with

    * ``pos`` ``(N, 3)``, ``x`` ``(N, 3)`` unit normals;
    * ``part`` ``(N,)`` long: global part ids (contiguous per category, in category order; see
      ``category_parts`` and ``classes`` for ``seg``), the ground-truth partition;
    * ``part_offset`` ``(N, 3)``: the centroid of the point's part minus the point (APEN's vote target),
      a geometric vector (declared in ``vector_keys``, so the rotation protocols rotate it);
    * ``y``: ``(N,)`` = ``part`` for ``task="seg"``, ``(1,)`` subject id for ``task="cls"``;
    * ``subject`` ``(1,)``, ``category`` ``(1,)``, ``angles`` ``(1, D)`` joint angles in radians
      (zero-padded to the largest DOF count of the chosen categories).

    On disk: ``root/articulated/n{N}_tr{train}_te{test}_s{seed}_z{noise}_..._v1/{train,test}.pt`` and a
    ``manifest.json`` with the parameters and a SHA-256 of each split (checked on load).

    **STATS** (defaults): train 1200 / test 300 bodies of 1024 points (120 / 30 per subject), 10 subjects,
    22 parts.

    Args:
        root: data root; the cache goes to ``root/articulated/``.
        split: ``"train"`` (poses near rest) or ``"test"`` (unseen, larger articulations).
        task: ``"seg"`` (``y`` = part) or ``"cls"`` (``y`` = subject).
        num_points: points per body.
        num_train, num_test: bodies per split.
        seed: base seed.
        noise: standard deviation of the positional noise.
        categories: the categories to include (default all three); ``["humanoid"]`` is the DFAUST-like set.
        train_articulation: the articulation level in ``(0, 1)`` that separates training from test poses.
        transform: applied to every item on access.
        force_reload: regenerate even if the cache exists.

    Example:
        >>> import tempfile
        >>> ds = ArticulatedDataset(tempfile.mkdtemp(), num_points=256, num_train=20, num_test=10)
        >>> ds.num_classes, ds.num_categories, len(ds.classes), ds.vector_keys
        (22, 3, 22, ('pos', 'x', 'part_offset'))
        >>> d = ds[0]
        >>> d.pos.shape, d.part_offset.shape, d.subject.tolist(), torch.equal(d.y, d.part)
        (torch.Size([256, 3]), torch.Size([256, 3]), [0], True)
        >>> c = ArticulatedDataset(ds.root, "test", task="cls", num_points=256, num_train=20, num_test=10)
        >>> c.classes[:2], c.classes[7], c[7].y.tolist()
        (['humanoid/s0', 'humanoid/s1'], 'lamp/s1', [7])
    """

    #: set per instance by the ``task`` argument ("seg" or "cls"); ``None`` on the class tells the config checks so
    task = None
    up_axis = "z"
    extra_vector_keys = ("part_offset",)

    def __init__(
        self,
        root: str | Path = "datasets",
        split: str = "train",
        *,
        task: str = "seg",
        num_points: int = 1024,
        num_train: int = 1200,
        num_test: int = 300,
        seed: int = 0,
        noise: float = 0.005,
        categories: Sequence[str] = tuple(ARTICULATED_CATEGORIES),
        train_articulation: float = 0.35,
        transform: Callable | None = None,
        force_reload: bool = False,
    ) -> None:
        super().__init__(transform)
        root = as_root(root)
        check_split(split)
        from .._checks import check_choice

        self.task = check_choice(task, "task", ("seg", "cls"))
        num_points = check_int(num_points, "num_points", 1)
        num_train = check_int(num_train, "num_train", 1)
        num_test = check_int(num_test, "num_test", 1)
        seed = check_int(seed, "seed", 0)
        noise = check_real(noise, "noise", 0.0)
        cats = _check_categories(categories)
        a = check_real(train_articulation, "train_articulation", 0.0)
        if not 0.0 < a < 1.0:
            raise ValueError(f"train_articulation must be in (0, 1), got {train_articulation!r}")
        count = num_train if split == "train" else num_test
        params = dict(num_points=num_points, num_train=num_train, num_test=num_test, seed=seed, noise=noise,
                      categories="+".join(cats), articulation=a, version=_VERSION)
        out = load_cached(root / "articulated" / cache_key(params), split,
                          lambda: {split: generate_articulated(count, num_points, seed=seed, split=split, noise=noise,
                                                               categories=cats, train_articulation=a)},
                          params={"dataset": "articulated", **params}, force_reload=force_reload, what="articulated")
        self.root, self.split, self.seed, self.noise = root, split, seed, float(noise)
        self.train_articulation = a
        self.categories = list(cats)
        bodies = {c: articulated_body(c, 0) for c in cats}
        self.category_parts, self.part_names, start = [], [], 0
        for c in cats:
            n = bodies[c].num_parts
            self.category_parts.append(list(range(start, start + n)))
            self.part_names += [f"{c}/{p}" for p in bodies[c].part_names]
            start += n
        self.subject_names = subject_names(cats)
        self.classes = self.part_names if self.task == "seg" else self.subject_names
        labels = out["part"] if self.task == "seg" else out["subject"]
        self._set(out["pos"], out["normal"], labels, part=out["part"], part_offset=out["part_offset"],
                  subject=out["subject"], category=out["category"], angles=out["angles"])
        self.per_point_extra = ("part", "part_offset")

    def body(self, idx: int) -> ArticulatedBody:
        """The :class:`ArticulatedBody` (subject) of item ``idx``."""
        s = int(self.extra["subject"][idx])
        name = self.subject_names[s]
        cat, k = name.split("/s")
        return articulated_body(cat, int(k))
