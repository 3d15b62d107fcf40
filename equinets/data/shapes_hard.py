"""``shapes-hard``: near-symmetric bodies told apart by small asymmetric details (generated, no download).

The difficulty of real CAD parts for frame averaging (equinets issue 11): cylindrical parts, square
packages and rows of identical pins have nearly tied covariance eigenvalues and nearly zero odd
moments, so their PCA frames are unstable, while the classes differ only by small details (a flat, a
notch, a few percent of aspect ratio, the number of pins, the handedness of a marking).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._checks import check_choice
from . import _surfaces as S
from ._base import PointCloudDataset
from ._generated import item_rng, load_generated

__all__ = ["ShapesHardDataset", "SHAPES_HARD_CLASSES", "MIRROR_PAIRS", "MIRROR_POLICIES", "generate_shapes_hard",
           "shapes_hard_classes"]

_VERSION = 1
_SALT = 5
_CIRCLE = 96  # polygon vertices of a full circle


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def _prism(poly, pieces, z0: float, z1: float, top: bool = True, bottom: bool = True) -> list[S.Patch]:
    """Side walls of the counter-clockwise polygon ``poly`` from ``z0`` to ``z1``, caps from convex ``pieces``."""
    poly = np.asarray(poly, dtype=float)
    zc, hz = 0.5 * (z0 + z1), 0.5 * (z1 - z0)
    out = []
    for p, q in zip(poly, np.roll(poly, -1, axis=0)):
        mid = ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2, zc)
        out.append(S.Patch("rect", (mid, ((q[0] - p[0]) / 2, (q[1] - p[1]) / 2, 0.0), (0.0, 0.0, hz))))
    for piece in pieces:
        pc = np.asarray(piece, dtype=float)
        for k in range(1, len(pc) - 1):
            a, b, c = pc[0], pc[k], pc[k + 1]
            if top:
                out.append(S.tri((*a, z1), (*b, z1), (*c, z1)))
            if bottom:
                out.append(S.tri((*a, z0), (*c, z0), (*b, z0)))
    return out


def _arc(r: float, a0: float, a1: float, n: int) -> list[tuple[float, float]]:
    """``n + 1`` points of the circle of radius ``r`` from angle ``a0`` to ``a1`` (counter-clockwise)."""
    return [(r * math.cos(a), r * math.sin(a)) for a in np.linspace(a0, a1, n + 1)]


def _cut_circle(r: float, flats: tuple[float, ...]) -> list[tuple[float, float]]:
    """Counter-clockwise circle of radius ``r`` cut by chords: a flat at +x of depth ``flats[0] r``, and at -x of
    depth ``flats[1] r`` if given."""
    half = {0.0: math.acos(1.0 - flats[0])}
    if len(flats) > 1:
        half[math.pi] = math.acos(1.0 - flats[1])
    pts = [(r * math.cos(a), r * math.sin(a)) for a in np.linspace(-math.pi, math.pi, _CIRCLE, endpoint=False)
           if all(abs(math.remainder(a - c, 2 * math.pi)) >= h for c, h in half.items())]
    for c, h in half.items():
        pts += [(r * math.cos(c - h), r * math.sin(c - h)), (r * math.cos(c + h), r * math.sin(c + h))]
    return sorted(pts, key=lambda p: math.atan2(p[1], p[0]))


def _cylinder(rng):
    return S.cylinder(1.0, -_u(rng, 1.3, 1.6), _u(rng, 1.3, 1.6))


def _cylinder_flat(rng):  # a D-shaft: one flat along the full height at +x
    poly = _cut_circle(1.0, (_u(rng, 0.15, 0.22),))
    h = _u(rng, 1.3, 1.6)
    return _prism(poly, [poly], -h, h)


def _cylinder_two_flats(rng):  # a double-D shaft: flats at +x and -x (mirror-symmetric)
    d = _u(rng, 0.15, 0.22)
    poly = _cut_circle(1.0, (d, d))
    h = _u(rng, 1.3, 1.6)
    return _prism(poly, [poly], -h, h)


def _cylinder_notch(rng):  # a slot cut into the top end at +x
    h = _u(rng, 1.3, 1.6)
    depth, w, zn = _u(rng, 0.3, 0.4), _u(rng, 0.35, 0.5), h - _u(rng, 0.45, 0.6)
    x0 = 1.0 - depth
    a_slot, a_chord = math.asin(w / 2), math.acos(x0)  # where the slot edges and the chord x = x0 meet the circle
    main = _arc(1.0, a_chord, 2 * math.pi - a_chord, 80)  # the part x <= x0 (convex pieces tile the section)
    lower = [(x0, -math.sin(a_chord))] + _arc(1.0, -a_chord, -a_slot, 4)[1:] + [(x0, -w / 2)]
    upper = [(x0, w / 2)] + _arc(1.0, a_slot, a_chord, 4)
    outline = _arc(1.0, a_slot, 2 * math.pi - a_slot, 90) + [(x0, -w / 2), (x0, w / 2)]
    section = _prism(outline, [main, lower, upper], zn, h, bottom=False)
    floor = [(x0, -w / 2)] + _arc(1.0, -a_slot, a_slot, 4) + [(x0, w / 2)]  # the slot's bottom, facing +z
    floor_tris = [S.tri((*floor[0], zn), (*floor[k], zn), (*floor[k + 1], zn)) for k in range(1, len(floor) - 1)]
    return S.cylinder(1.0, -h, zn, top=False) + section + floor_tris


def _package(hx: float, hy: float, hz: float) -> list[S.Patch]:
    return S.box(hx, hy, hz)


def _square_package(rng):
    return _package(_u(rng, 0.98, 1.02), _u(rng, 0.98, 1.02), _u(rng, 0.2, 0.26))


def _rect_package(rng):  # 10-16 % shorter along y
    hx = _u(rng, 0.98, 1.02)
    return _package(hx, hx * _u(rng, 0.84, 0.9), _u(rng, 0.2, 0.26))


def _dip(pins: int) -> Callable:
    def build(rng):  # a dual in-line package: body and `pins` gull-wing leads on each long side
        hx, hy, hz = _u(rng, 1.0, 1.04), _u(rng, 0.48, 0.52), _u(rng, 0.16, 0.2)
        out = S.box(hx, hy, hz)
        pitch = 2 * hx * 0.9 / pins
        wx = 0.3 * pitch
        for k in range(pins):
            x = -hx * 0.9 + pitch * (k + 0.5)
            for side in (1.0, -1.0):
                out += S.box(wx, 0.09, 0.035, center=(x, side * (hy + 0.09), -0.02))
                out += S.box(wx, 0.025, 0.16, center=(x, side * (hy + 0.155), -0.2))
        return out

    return build


def _marked(handed: float) -> Callable:
    def build(rng):  # square plate with three corner bosses of growing size, counter-clockwise (+1) or clockwise (-1)
        h, t = _u(rng, 0.98, 1.02), _u(rng, 0.18, 0.22)
        out = S.box(h, h, t)
        sizes = (0.1, 0.15, 0.2)
        corners = [(0.62, 0.62), (-0.62, 0.62), (-0.62, -0.62)]  # counter-clockwise seen from +z
        for (cx, cy), r in zip(corners, sizes):
            out += S.cylinder(r, t, t + 2 * r, bottom=False)
            out[-2:] = [p.moved(t=(cx, handed * cy, 0.0)) for p in out[-2:]]
        return out

    return build


_CLASSES: list[tuple[str, Callable]] = [
    ("cylinder", _cylinder),
    ("cylinder_flat", _cylinder_flat),
    ("cylinder_two_flats", _cylinder_two_flats),
    ("cylinder_notch", _cylinder_notch),
    ("square_package", _square_package),
    ("rect_package", _rect_package),
    ("dip_4", _dip(4)),
    ("dip_6", _dip(6)),
    ("dip_8", _dip(8)),
    ("marked_ccw", _marked(1.0)),
    ("marked_cw", _marked(-1.0)),
]

#: Names of all ``shapes-hard`` classes (``mirror_pairs="keep"``), index = label.
SHAPES_HARD_CLASSES: list[str] = [name for name, _ in _CLASSES]
#: Mirror-image class pairs: the same shape up to a reflection (an O(3)/E(3)-invariant model cannot separate them).
MIRROR_PAIRS: list[tuple[str, str]] = [("marked_ccw", "marked_cw")]
MIRROR_POLICIES = ("keep", "merge", "exclude")


def shapes_hard_classes(mirror_pairs: str = "keep") -> list[str]:
    """Class names under a mirror-pair policy.

    >>> shapes_hard_classes("merge")[-1], len(shapes_hard_classes("exclude"))
    ('marked', 9)
    """
    check_choice(mirror_pairs, "mirror_pairs", MIRROR_POLICIES)
    names = list(SHAPES_HARD_CLASSES)
    if mirror_pairs == "keep":
        return names
    drop = {b for _, b in MIRROR_PAIRS} | ({a for a, _ in MIRROR_PAIRS} if mirror_pairs == "exclude" else set())
    out = [n for n in names if n not in drop]
    if mirror_pairs == "merge":
        out = [n.removesuffix("_ccw") if any(n == a for a, _ in MIRROR_PAIRS) else n for n in out]
    return out


def sample_shape_hard(label: int, rng: np.random.Generator, num_points: int, noise: float = 0.0):
    """One cloud of class ``label`` (of :data:`SHAPES_HARD_CLASSES`): ``(pos, normal)`` float32 numpy arrays.

    ``pos`` ``(num_points, 3)`` is centred and scaled into the unit ball (largest norm 1 after the
    noise); ``normal`` holds the outward unit normals of the clean surface.
    """
    patches = _CLASSES[label][1](rng)
    p, n, _ = S.sample_patches(rng, patches, num_points)
    p, _ = S.normalize_unit_sphere(p)
    if noise > 0:
        p = p + noise * rng.standard_normal(p.shape)
    p, _ = S.normalize_unit_sphere(p)
    return p.astype(np.float32), n.astype(np.float32)


class ShapesHardDataset(PointCloudDataset):
    r"""Near-symmetric generated solids that differ by small asymmetric details, in a canonical pose, z up.

    The benchmark of equinets issue 11 (frame averaging on real near-symmetric CAD parts). Eleven
    classes (:data:`SHAPES_HARD_CLASSES`):

    * ``cylinder``, ``cylinder_flat`` (a D-shaft: one flat, 15-22 % of the radius deep),
      ``cylinder_two_flats`` (double-D), ``cylinder_notch`` (a slot cut into the top end): bodies of
      revolution whose covariance has a double eigenvalue, told apart by a detail of a few percent of
      the surface;
    * ``square_package`` and ``rect_package`` (10-16 % shorter along y): nearly tied in-plane eigenvalues;
    * ``dip_4``, ``dip_6``, ``dip_8``: a dual in-line package of fixed length with 4, 6 or 8 leads per
      side (only the lead pitch differs);
    * ``marked_ccw`` and ``marked_cw``: a square plate with three corner bosses of growing size, in
      counter-clockwise or clockwise order: **mirror images** (:data:`MIRROR_PAIRS`). A rotation
      cannot map one onto the other, a reflection does: an SO(3)-invariant model can separate them,
      an O(3)/E(3)-invariant one (E3 frame averaging, any reflection-invariant descriptor) provably
      cannot. ``mirror_pairs`` decides: ``"keep"`` (11 classes: the SO3 protocol),
      ``"merge"`` (10 classes, the pair labelled ``marked``: the E3/O3 protocol, used by the
      shipped configs) or ``"exclude"`` (9 classes, the pair dropped).

    Proportions are drawn per instance; points are area-uniform on the surface with outward unit
    normals (``x``), Gaussian noise of standard deviation ``noise`` is added, and each cloud is
    centred and scaled so its largest norm is 1. Item ``i`` of a split depends only on
    ``(seed, split, i)``; its class is ``i % 11`` (of the 11 source classes: classes stay balanced
    when the split size is a multiple of 11; ``exclude`` drops the pair's items, ``merge`` relabels).

    Each item is a :class:`~torch_geometric.data.Data` with ``pos`` ``(N, 3)``, ``x`` ``(N, 3)`` unit
    normals and ``y`` ``(1,)`` long.

    On disk: ``root/shapes-hard/<key>/{train,test}.pt`` plus a ``manifest.json`` with the parameters
    and a SHA-256 of each split (the ``load_cached`` machinery of ``shapes``); the mirror policy only
    relabels or filters on load, so the three policies share one cache.

    **STATS** (defaults):

    .. list-table::
        :header-rows: 1

        * - split
          - clouds
          - points
          - classes (keep / merge / exclude)
          - normals
        * - train
          - 2200 (200 per source class)
          - 1024
          - 11 / 10 / 9
          - yes
        * - test
          - 550 (50 per source class)
          - 1024
          - 11 / 10 / 9
          - yes

    Args:
        root: data root; the cache goes to ``root/shapes-hard/``.
        split: ``"train"`` or ``"test"``.
        num_points: points per cloud.
        num_train, num_test: clouds per split (before ``exclude``).
        seed: base seed.
        noise: standard deviation of the positional noise (unit-sphere units).
        mirror_pairs: ``"keep"``, ``"merge"`` or ``"exclude"`` (above).
        transform: applied to every item on access.
        force_reload: regenerate even if the cache exists.

    Example:
        >>> import tempfile
        >>> ds = ShapesHardDataset(tempfile.mkdtemp(), num_points=64, num_train=22, num_test=11)
        >>> len(ds), ds.num_classes, ds.classes[:2]
        (22, 11, ['cylinder', 'cylinder_flat'])
        >>> d = ds[3]
        >>> d.pos.shape, d.x.shape, d.y.tolist()
        (torch.Size([64, 3]), torch.Size([64, 3]), [3])
        >>> ShapesHardDataset(ds.root, num_points=64, num_train=22, num_test=11, mirror_pairs="merge").num_classes
        10
    """

    task = "cls"
    up_axis = "z"
    extra_vector_keys = ()
    classes = SHAPES_HARD_CLASSES

    def __init__(
        self,
        root: str | Path = "datasets",
        split: str = "train",
        *,
        num_points: int = 1024,
        num_train: int = 2200,
        num_test: int = 550,
        seed: int = 0,
        noise: float = 0.005,
        mirror_pairs: str = "keep",
        transform: Callable | None = None,
        force_reload: bool = False,
    ) -> None:
        check_choice(mirror_pairs, "mirror_pairs", MIRROR_POLICIES)
        super().__init__(transform)
        out = load_generated("shapes-hard", generate_shapes_hard, root, split, num_points=num_points,
                             num_train=num_train, num_test=num_test, seed=seed, noise=noise, version=_VERSION,
                             force_reload=force_reload)
        pos, nrm, y = out["pos"], out["normal"], out["y"]
        names = shapes_hard_classes(mirror_pairs)
        if mirror_pairs != "keep":
            new = torch.full((len(SHAPES_HARD_CLASSES),), -1, dtype=torch.long)
            for i, name in enumerate(SHAPES_HARD_CLASSES):
                for a, bb in MIRROR_PAIRS:
                    if name in (a, bb) and mirror_pairs == "merge":
                        name = a.removesuffix("_ccw")
                if name in names:
                    new[i] = names.index(name)
            y = new[y]
            keep = y >= 0
            pos, nrm, y = pos[keep], nrm[keep], y[keep]
        self.classes = names
        self.root, self.split, self.seed, self.noise, self.mirror_pairs = Path(root), split, seed, float(noise), mirror_pairs
        self._set(pos, nrm, y)


def generate_shapes_hard(count: int, num_points: int, *, seed: int = 0, split: str = "train", noise: float = 0.005):
    """Tensors of ``count`` clouds: ``pos``, ``normal`` ``(count, N, 3)``, ``y`` ``(count,)`` (all 11 classes)."""
    C = len(_CLASSES)
    pos = np.empty((count, num_points, 3), np.float32)
    nrm = np.empty((count, num_points, 3), np.float32)
    y = np.arange(count) % C
    for i in range(count):
        pos[i], nrm[i] = sample_shape_hard(int(y[i]), item_rng(_SALT, seed, split, i), num_points, noise)
    return {"pos": torch.from_numpy(pos), "normal": torch.from_numpy(nrm), "y": torch.from_numpy(y).long()}
