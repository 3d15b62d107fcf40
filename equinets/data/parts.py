"""``parts``: a generated part-segmentation set in ShapeNetPart's style (no download needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import _surfaces as S
from ._base import PointCloudDataset, SegmentationMixin
from ._generated import item_rng, load_generated

_VERSION = 1
_SALT = 2


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


# Each builder: rng -> list of patches labelled with LOCAL part ids 0..k-1 (global ids added later).


def _table(rng):  # top, legs
    hx, hy, th, H = _u(rng, 0.8, 1.2), _u(rng, 0.45, 0.8), _u(rng, 0.03, 0.06), _u(rng, 0.6, 0.9)
    top = S.box(hx, hy, th, center=(0, 0, H - th))
    r, inset = _u(rng, 0.03, 0.06), _u(rng, 0.05, 0.15)
    legs = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            leg = S.cylinder(r, 0.0, H - 2 * th, top=False)
            legs += S.moved(leg, t=(sx * (hx - inset), sy * (hy - inset), 0.0))
    return S.labelled(top, 0) + S.labelled(legs, 1)


def _chair(rng):  # seat, back, legs
    w, d, th, H = _u(rng, 0.4, 0.55), _u(rng, 0.4, 0.55), _u(rng, 0.04, 0.07), _u(rng, 0.45, 0.6)
    seat = S.box(w, d, th, center=(0, 0, H))
    bh, bt = _u(rng, 0.45, 0.8), _u(rng, 0.03, 0.06)
    back = S.box(w, bt, bh, center=(0, -d + bt, H + th + bh))
    lw = _u(rng, 0.03, 0.05)
    legs = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            legs += S.box(lw, lw, (H - th) / 2, center=(sx * (w - lw), sy * (d - lw), (H - th) / 2))
    return S.labelled(seat, 0) + S.labelled(back, 1) + S.labelled(legs, 2)


def _mug(rng):  # body, handle
    r, h = _u(rng, 0.35, 0.5), _u(rng, 0.7, 1.1)
    body = S.cylinder(r, 0.0, h)
    R, tube = _u(rng, 0.18, 0.3) * h / 0.9, _u(rng, 0.04, 0.07)
    handle = S.torus(R, tube, -math.pi / 2, math.pi / 2).moved(S.rot_x(math.pi / 2), (r, 0.0, h / 2))
    return S.labelled(body, 0) + S.labelled([handle], 1)


def _lamp(rng):  # base, stem, shade
    rb, hb = _u(rng, 0.3, 0.45), _u(rng, 0.04, 0.1)
    rs, H = _u(rng, 0.025, 0.045), _u(rng, 1.0, 1.5)
    r0, r1, hs = _u(rng, 0.3, 0.5), _u(rng, 0.12, 0.25), _u(rng, 0.3, 0.5)
    base = S.cylinder(rb, 0.0, hb)
    stem = S.cylinder(rs, hb, H, bottom=False)
    shade = [S.frustum(r0, r1, H - 0.6 * hs, H + 0.4 * hs)]
    return S.labelled(base, 0) + S.labelled(stem, 1) + S.labelled(shade, 2)


def _airplane(rng):  # fuselage, wings, tail; nose along +x
    L, r = _u(rng, 1.0, 1.4), _u(rng, 0.1, 0.17)
    fuselage = [S.ellipsoid(r, r, L).moved(np.array([[0, 0, 1.0], [0, 1.0, 0], [-1.0, 0, 0]]))]
    chord, span, wt = _u(rng, 0.15, 0.28), _u(rng, 0.8, 1.3), _u(rng, 0.015, 0.03)
    wings = S.box(chord, span, wt, center=(_u(rng, -0.1, 0.2) * L, 0.0, _u(rng, -0.5, 0.3) * r))
    fh, fc = _u(rng, 0.15, 0.3), _u(rng, 0.08, 0.14)
    xt = -0.8 * L
    fin = S.box(fc, 0.015, fh, center=(xt, 0.0, fh))
    stab = S.box(fc * 0.8, _u(rng, 0.25, 0.4), 0.015, center=(xt, 0.0, 0.3 * r))
    return S.labelled(fuselage, 0) + S.labelled(wings, 1) + S.labelled(fin + stab, 2)


def _rocket(rng):  # body, nose, fins
    r, h, hn = _u(rng, 0.12, 0.2), _u(rng, 1.2, 1.8), _u(rng, 0.3, 0.55)
    body = S.cylinder(r, 0.0, h, top=False)
    nose = [S.frustum(r, 0.0, h, h + hn)]
    k = int(rng.integers(3, 5))  # 3 or 4 fins
    fl, fh, ft = _u(rng, 0.12, 0.25), _u(rng, 0.15, 0.3), 0.015
    fin = S.box(fl / 2, ft, fh / 2, center=(r + fl / 2, 0.0, fh / 2))
    fins = [p for j in range(k) for p in S.moved(fin, S.rot_z(2 * math.pi * j / k))]
    return S.labelled(body, 0) + S.labelled(nose, 1) + S.labelled(fins, 2)


def _bottle(rng):  # body, neck, cap
    r, h = _u(rng, 0.28, 0.4), _u(rng, 0.8, 1.2)
    rn, hs, hn = _u(rng, 0.08, 0.13), _u(rng, 0.1, 0.25), _u(rng, 0.25, 0.45)
    body = S.cylinder(r, 0.0, h, top=False) + [S.frustum(r, rn, h, h + hs)]
    neck = S.cylinder(rn, h + hs, h + hs + hn, top=False, bottom=False)
    hc = _u(rng, 0.06, 0.12)
    z0 = h + hs + hn
    cap = S.cylinder(rn * 1.15, z0, z0 + hc, bottom=False) + [S.disk(rn * 1.15, z0, False, r_in=rn)]
    return S.labelled(body, 0) + S.labelled(neck, 1) + S.labelled(cap, 2)


def _hammer(rng):  # handle, head
    r, L = _u(rng, 0.04, 0.06), _u(rng, 1.2, 1.6)
    handle = S.cylinder(r, 0.0, L)
    hx, hy, hz = _u(rng, 0.28, 0.45), _u(rng, 0.07, 0.1), _u(rng, 0.08, 0.12)
    head = S.box(hx, hy, hz, center=(_u(rng, -0.1, 0.1), 0.0, L))
    return S.labelled(handle, 0) + S.labelled(head, 1)


_CATEGORIES: list[tuple[str, list[str], Callable]] = [
    ("table", ["top", "leg"], _table),
    ("chair", ["seat", "back", "leg"], _chair),
    ("mug", ["body", "handle"], _mug),
    ("lamp", ["base", "stem", "shade"], _lamp),
    ("airplane", ["fuselage", "wing", "tail"], _airplane),
    ("rocket", ["body", "nose", "fin"], _rocket),
    ("bottle", ["body", "neck", "cap"], _bottle),
    ("hammer", ["handle", "head"], _hammer),
]

#: Category names of ``parts``, index = category id.
PART_CATEGORIES: list[str] = [c for c, _, _ in _CATEGORIES]
#: Global part ids per category (contiguous, in category order).
PART_CATEGORY_PARTS: list[list[int]] = []
#: ``"category/part"`` name of every global part id.
PART_NAMES: list[str] = []
for _c, _names, _ in _CATEGORIES:
    PART_CATEGORY_PARTS.append(list(range(len(PART_NAMES), len(PART_NAMES) + len(_names))))
    PART_NAMES += [f"{_c}/{n}" for n in _names]


def sample_object(category: int, rng: np.random.Generator, num_points: int, noise: float = 0.0):
    """One object of ``category``: ``(pos, normal, part)`` numpy arrays; ``part`` holds GLOBAL ids.

    Points are shuffled, centred at the centroid and scaled so the largest norm is 1.
    """
    patches = _CATEGORIES[category][2](rng)
    p, n, part = S.sample_patches(rng, patches, num_points)
    perm = rng.permutation(num_points)
    p, n, part = p[perm], n[perm], part[perm] + PART_CATEGORY_PARTS[category][0]
    if noise > 0:
        p = p + noise * rng.standard_normal(p.shape) * S.normalize_unit_sphere(p)[1]
    p, _ = S.normalize_unit_sphere(p)
    return p.astype(np.float32), n.astype(np.float32), part


class PartsDataset(SegmentationMixin, PointCloudDataset):
    r"""Generated multi-part objects for part segmentation, ShapeNetPart style, z up.

    Eight categories built from primitives with random proportions; part ids are global and
    contiguous per category (:data:`PART_CATEGORY_PARTS`):

    ============  ===========================  ========
    category      parts                        ids
    ============  ===========================  ========
    table         top, leg                     0-1
    chair         seat, back, leg              2-4
    mug           body, handle                 5-6
    lamp          base, stem, shade            7-9
    airplane      fuselage, wing, tail         10-12
    rocket        body, nose, fin              13-15
    bottle        body, neck, cap              16-18
    hammer        handle, head                 19-20
    ============  ===========================  ========

    Each part is a closed (or, for the lamp shade, open) surface sampled area-uniformly with
    outward unit normals; parts may touch or interpenetrate, as in ShapeNet meshes. Points are
    shuffled, noised (standard deviation ``noise`` in unit-sphere units), centred at the centroid
    and scaled so the largest norm is 1. Item ``i`` has category ``i % 8`` and depends only on
    ``(seed, split, i)``.

    Each item: ``pos`` ``(N, 3)``, ``x`` ``(N, 3)`` unit normals, ``y`` ``(N,)`` long global part
    ids, ``category`` ``(1,)`` long.

    On disk: ``root/parts/n{N}_tr{train}_te{test}_s{seed}_z{noise}_v1/{train,test}.pt`` and
    ``manifest.json`` (the parameters and a SHA-256 of each split's tensors, checked on load); written
    atomically, reused when valid, regenerated when stale or corrupt.

    **STATS** (defaults):

    .. list-table::
        :header-rows: 1

        * - split
          - clouds
          - points
          - categories
          - parts
        * - train
          - 1600 (200 per category)
          - 1024
          - 8
          - 21
        * - test
          - 400 (50 per category)
          - 1024
          - 8
          - 21

    Args:
        root: data root; the cache goes to ``root/parts/``.
        split: ``"train"`` or ``"test"``.
        num_points: points per cloud.
        num_train, num_test: clouds per split.
        seed: base seed.
        noise: standard deviation of the positional noise.
        transform: applied to every item on access.
        force_reload: regenerate even if the cache exists.

    Example:
        >>> import tempfile
        >>> ds = PartsDataset(tempfile.mkdtemp(), num_points=128, num_train=16, num_test=8)
        >>> ds.num_categories, ds.num_classes, ds.category_parts[2]
        (8, 21, [5, 6])
        >>> d = ds[2]
        >>> d.category.tolist(), sorted(set(d.y.tolist())), d.pos.shape
        ([2], [5, 6], torch.Size([128, 3]))
    """

    task = "seg"
    up_axis = "z"
    classes = PART_NAMES
    categories = PART_CATEGORIES
    category_parts = PART_CATEGORY_PARTS

    def __init__(
        self,
        root: str | Path = "datasets",
        split: str = "train",
        *,
        num_points: int = 1024,
        num_train: int = 1600,
        num_test: int = 400,
        seed: int = 0,
        noise: float = 0.005,
        transform: Callable | None = None,
        force_reload: bool = False,
    ) -> None:
        super().__init__(transform)
        out = load_generated("parts", generate_parts, root, split, num_points=num_points, num_train=num_train,
                             num_test=num_test, seed=seed, noise=noise, version=_VERSION, force_reload=force_reload)
        self.root, self.split, self.seed, self.noise = Path(root), split, seed, float(noise)
        self._set(out["pos"], out["normal"], out["y"], category=out["category"])


def generate_parts(count: int, num_points: int, *, seed: int = 0, split: str = "train", noise: float = 0.005):
    """``count`` objects: ``pos``, ``normal`` ``(count, N, 3)``, ``y`` ``(count, N)``, ``category``."""
    C = len(_CATEGORIES)
    pos = np.empty((count, num_points, 3), np.float32)
    nrm = np.empty((count, num_points, 3), np.float32)
    y = np.empty((count, num_points), np.int64)
    cat = np.arange(count) % C
    for i in range(count):
        pos[i], nrm[i], y[i] = sample_object(int(cat[i]), item_rng(_SALT, seed, split, i), num_points, noise)
    return {
        "pos": torch.from_numpy(pos),
        "normal": torch.from_numpy(nrm),
        "y": torch.from_numpy(y),
        "category": torch.from_numpy(cat).long(),
    }
