"""``shapes``: a generated classification set of parametric solids (no download needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import _surfaces as S
from ._base import PointCloudDataset
from ._generated import item_rng, load_generated

_VERSION = 1
_SALT = 1


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


# Each builder: rng -> (patches, half extents of the solid along x, y, z in its canonical pose).


def _sphere(rng):
    return [S.ellipsoid(1.0, 1.0, 1.0)], (1.0, 1.0, 1.0)


def _ellipsoid(rng):  # three clearly different semi-axes, the longest along z
    b = _u(rng, 1.35, 1.7)
    c = b * _u(rng, 1.35, 1.7)
    return [S.ellipsoid(1.0, b, c)], (1.0, b, c)


def _cube(rng):
    h = [_u(rng, 0.95, 1.05) for _ in range(3)]
    return S.box(*h), tuple(h)


def _box(rng):  # clearly not a cube: consecutive side ratios >= 1.35
    hy = _u(rng, 1.35, 1.7)
    hz = hy * _u(rng, 1.35, 1.7)
    return S.box(1.0, hy, hz), (1.0, hy, hz)


def _cylinder(rng):
    h = _u(rng, 1.3, 2.2)
    return S.cylinder(1.0, -h, h), (1.0, 1.0, h)


def _cone(rng):
    h = _u(rng, 0.8, 1.5)
    return [S.frustum(1.0, 0.0, -h, h), S.disk(1.0, -h, False)], (1.0, 1.0, h)


def _torus(rng):
    r = _u(rng, 0.25, 0.45)
    return [S.torus(1.0, r)], (1.0 + r, 1.0 + r, r)


def _pyramid(rng):  # square base, apex on the z axis
    h = _u(rng, 0.6, 1.1)
    v = [(1, 1, -h), (-1, 1, -h), (-1, -1, -h), (1, -1, -h), (0, 0, h)]
    f = [(0, 1, 2, 3), (0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 0, 4)]
    return S.polyhedron(v, f), (1.0, 1.0, h)


def _capsule(rng):
    h = _u(rng, 0.8, 1.8)
    cap = S.ellipsoid(1.0, 1.0, 1.0, upper=True)
    patches = [S.frustum(1.0, 1.0, -h, h), cap.moved(t=(0, 0, h)), cap.moved(S.rot_x(math.pi), (0, 0, -h))]
    return patches, (1.0, 1.0, h + 1.0)


def _prism(rng):  # triangular prism along z
    h = _u(rng, 1.2, 2.0)
    tri = [(math.cos(a), math.sin(a)) for a in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6)]
    return S.extrusion(tri, [tri], h), (math.sqrt(3) / 2, 0.75, h)


def _octahedron(rng):
    h = _u(rng, 1.25, 1.6)
    v = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, h), (0, 0, -h)]
    f = [(a, b, c) for a in (0, 1) for b in (2, 3) for c in (4, 5)]
    return S.polyhedron(v, f), (1.0, 1.0, h)


def _tetrahedron(rng):
    s = np.array([_u(rng, 0.92, 1.08) for _ in range(3)])
    v = np.array([(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)], dtype=float) * s
    f = [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
    return S.polyhedron(v, f), tuple(s)


def _hemisphere(rng):  # dome and its flat base
    return [S.ellipsoid(1.0, 1.0, 1.0, upper=True), S.disk(1.0, 0.0, False)], (1.0, 1.0, 0.5)


def _cross(rng):  # plus-shaped plate
    w = _u(rng, 0.22, 0.38)
    t = _u(rng, 0.15, 0.3)
    poly = [(w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1),
            (-w, w), (-1, w), (-1, -w), (-w, -w), (-w, -1), (w, -1)]  # fmt: skip
    pieces = [
        [(-1, -w), (1, -w), (1, w), (-1, w)],
        [(-w, w), (w, w), (w, 1), (-w, 1)],
        [(-w, -1), (w, -1), (w, -w), (-w, -w)],
    ]
    return S.extrusion(poly, pieces, t), (1.0, 1.0, t)


def _lshape(rng):  # L-shaped plate in the xy plane, extruded along z
    a = _u(rng, 0.6, 0.8)  # short arm length relative to the long one
    w = _u(rng, 0.25, 0.4)
    t = _u(rng, 0.2, 0.35)
    poly = [(0, 0), (a * 2, 0), (a * 2, w), (w, w), (w, 2), (0, 2)]
    pieces = [[(0, 0), (a * 2, 0), (a * 2, w), (0, w)], [(0, w), (w, w), (w, 2), (0, 2)]]
    return S.extrusion(poly, pieces, t), (a, 1.0, t)


_CLASSES: list[tuple[str, Callable]] = [
    ("sphere", _sphere),
    ("ellipsoid", _ellipsoid),
    ("cube", _cube),
    ("box", _box),
    ("cylinder", _cylinder),
    ("cone", _cone),
    ("torus", _torus),
    ("pyramid", _pyramid),
    ("capsule", _capsule),
    ("triangular_prism", _prism),
    ("octahedron", _octahedron),
    ("tetrahedron", _tetrahedron),
    ("hemisphere", _hemisphere),
    ("cross", _cross),
    ("l_shape", _lshape),
]

#: Names of the ``shapes`` classes, index = label.
SHAPE_CLASSES: list[str] = [name for name, _ in _CLASSES]


def sample_shape(label: int, rng: np.random.Generator, num_points: int, noise: float = 0.0):
    """One cloud of class ``label``: ``(pos, normal, extent)`` float32 numpy arrays.

    ``pos`` ``(num_points, 3)`` is centred at its centroid and scaled into the unit ball (largest
    norm exactly 1 after the noise); ``normal`` holds the outward unit normals of the clean
    surface; ``extent`` ``(3,)`` the sorted half extents of the solid in the same units.
    """
    patches, half = _CLASSES[label][1](rng)
    p, n, _ = S.sample_patches(rng, patches, num_points)
    p, scale = S.normalize_unit_sphere(p)
    if noise > 0:
        p = p + noise * rng.standard_normal(p.shape)
    p, scale2 = S.normalize_unit_sphere(p)
    extent = np.sort(np.asarray(half, dtype=float)) / (scale * scale2)
    return p.astype(np.float32), n.astype(np.float32), extent.astype(np.float32)


class ShapesDataset(PointCloudDataset):
    r"""Generated parametric solids for classification, in a canonical (aligned) pose, z up.

    Fifteen classes (:data:`SHAPE_CLASSES`): sphere, ellipsoid (semi-axes with ratios 1.35-1.7),
    cube, box (side ratios 1.35-1.7), cylinder, cone, torus, square pyramid, capsule, triangular
    prism, octahedron, tetrahedron, hemisphere, plus-shaped plate, L-shaped plate; proportions
    drawn at random per instance. Points are area-uniform on the surface with outward unit
    normals (``x``), Gaussian noise of standard deviation ``noise`` is added, and each cloud is
    centred at its centroid and scaled so its largest norm is 1. The rotation protocols
    (I / z / SO3 / O3) are applied at training time by
    :class:`~equinets.data.transforms.RandomRotate`.

    Item ``i`` of a split depends only on ``(seed, split, i)``; its label is ``i % 15``, so the
    classes are balanced when the split size is a multiple of 15.

    Each item is a :class:`~torch_geometric.data.Data` with ``pos`` ``(N, 3)``, ``x`` ``(N, 3)``
    unit normals, ``y`` ``(1,)`` long, and ``extent`` ``(1, 3)``: the sorted principal half
    extents of the solid after normalisation (a regression target).

    On disk: ``root/shapes/n{N}_tr{train}_te{test}_s{seed}_z{noise}_v1/{train,test}.pt`` plus a
    ``manifest.json`` with the parameters and a SHA-256 of each split's tensors (checked on load);
    written atomically, reused when valid, regenerated when stale or corrupt.

    **STATS** (defaults):

    .. list-table::
        :header-rows: 1

        * - split
          - clouds
          - points
          - classes
          - normals
        * - train
          - 2400 (160 per class)
          - 1024
          - 15
          - yes
        * - test
          - 600 (40 per class)
          - 1024
          - 15
          - yes

    Args:
        root: data root; the cache goes to ``root/shapes/``.
        split: ``"train"`` or ``"test"``.
        num_points: points per cloud.
        num_train, num_test: clouds per split.
        seed: base seed.
        noise: standard deviation of the positional noise (unit-sphere units).
        transform: applied to every item on access.
        force_reload: regenerate even if the cache exists.

    Example:
        >>> import tempfile
        >>> ds = ShapesDataset(tempfile.mkdtemp(), num_points=64, num_train=30, num_test=15)
        >>> len(ds), ds.num_classes, ds.classes[:3]
        (30, 15, ['sphere', 'ellipsoid', 'cube'])
        >>> d = ds[1]
        >>> d.pos.shape, d.x.shape, d.y.tolist(), d.extent.shape
        (torch.Size([64, 3]), torch.Size([64, 3]), [1], torch.Size([1, 3]))
    """

    task = "cls"
    up_axis = "z"
    #: vectors: ``pos`` and the normals ``x`` only. ``extent`` (sorted principal half extents) belongs to the
    #: solid, not to its pose: rotation-invariant, so the rotation protocols leave it as it is.
    extra_vector_keys = ()
    classes = SHAPE_CLASSES

    def __init__(
        self,
        root: str | Path = "datasets",
        split: str = "train",
        *,
        num_points: int = 1024,
        num_train: int = 2400,
        num_test: int = 600,
        seed: int = 0,
        noise: float = 0.005,
        transform: Callable | None = None,
        force_reload: bool = False,
    ) -> None:
        super().__init__(transform)
        out = load_generated("shapes", generate_shapes, root, split, num_points=num_points, num_train=num_train,
                             num_test=num_test, seed=seed, noise=noise, version=_VERSION, force_reload=force_reload)
        self.root, self.split, self.seed, self.noise = Path(root), split, seed, float(noise)
        self._set(out["pos"], out["normal"], out["y"], extent=out["extent"])


def generate_shapes(
    count: int, num_points: int, *, seed: int = 0, split: str = "train", noise: float = 0.005
):
    """Tensors of ``count`` clouds: ``pos``, ``normal`` ``(count, N, 3)``, ``y`` ``(count,)``, ``extent``."""
    C = len(_CLASSES)
    pos = np.empty((count, num_points, 3), np.float32)
    nrm = np.empty((count, num_points, 3), np.float32)
    ext = np.empty((count, 3), np.float32)
    y = np.arange(count) % C
    for i in range(count):
        pos[i], nrm[i], ext[i] = sample_shape(int(y[i]), item_rng(_SALT, seed, split, i), num_points, noise)
    return {
        "pos": torch.from_numpy(pos),
        "normal": torch.from_numpy(nrm),
        "y": torch.from_numpy(y).long(),
        "extent": torch.from_numpy(ext),
    }
