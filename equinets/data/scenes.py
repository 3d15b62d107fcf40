r"""``scenes``: generated multi-object scenes, each object under its own rigid motion (no download needed).

The "rooms of furniture" setting of APEN (Atzmon et al., ICLR 2024): a scene is a few objects of the
generated ``shapes`` solids and ``parts`` objects, each rotated about its own centroid and placed on the
floor plane, labelled per point by object class (semantic segmentation) and by instance (the ground-truth
partition, with each point's offset to its instance centroid, APEN's vote target).

**Placement rule (no overlaps).** Object ``k`` is sampled in its canonical pose, centred at its centroid
and scaled so that its largest norm is ``r_k ~ U(radius)``: it lies inside the ball of radius ``r_k``
about its centroid, and stays inside it under any rotation about that point. Centres ``c_k`` are drawn
uniformly in the disk of radius ``scene_radius`` in the plane ``z = 0`` and rejected until every pair
satisfies ``|c_i - c_j| >= r_i + r_j + gap`` (the disk grows by 10 % after 200 rejected draws), so the
bounding balls are disjoint and points of two objects are at least ``gap`` apart (before noise).
A point of object ``k`` is ``R_k x + c_k`` with ``x`` its canonical position; ``R_k`` is the identity
(``motion "I"``), a rotation about z (``"z"``) or a uniform rotation (``"SO3"``), drawn independently per
object; the training and test splits may use different motions (by default upright objects turned about
z in training, independent SO(3) rotations in test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .._checks import check_choice, check_int, check_real
from ._base import PointCloudDataset, SegmentationMixin
from ._generated import check_split, item_rng
from ._io import as_root, cache_key, load_cached
from .articulated import part_offsets
from .parts import PART_CATEGORIES, sample_object
from .shapes import SHAPE_CLASSES, sample_shape

_VERSION = 1
_SALT = 4
_MOTIONS = ("I", "z", "SO3")
_FAMILIES = ("shapes", "parts")

__all__ = ["ScenesDataset", "generate_scenes", "sample_scene", "scene_classes"]


def scene_classes(families: Sequence[str] = _FAMILIES) -> list[str]:
    """``"family/name"`` of every object class of ``families``, index = class label.

    >>> scene_classes(["parts"])[:3]
    ['parts/table', 'parts/chair', 'parts/mug']
    """
    names = {"shapes": SHAPE_CLASSES, "parts": PART_CATEGORIES}
    return [f"{f}/{n}" for f in families for n in names[f]]


def _rotation(rng: np.random.Generator, motion: str) -> np.ndarray:
    if motion == "I":
        return np.eye(3)
    if motion == "z":
        a = rng.uniform(0.0, 2 * np.pi)
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))  # Haar: QR of a Gaussian with the signs of diag(r) fixed
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _place(rng: np.random.Generator, radii: np.ndarray, scene_radius: float, gap: float) -> np.ndarray:
    """Centres ``(K, 3)`` on the plane z = 0 with disjoint bounding balls (module docstring)."""
    K = len(radii)
    R = scene_radius
    while True:
        centres = np.zeros((K, 3))
        ok = True
        for k in range(K):
            for _ in range(200):
                rho, th = R * np.sqrt(rng.random()), rng.uniform(0.0, 2 * np.pi)
                c = np.array([rho * np.cos(th), rho * np.sin(th), 0.0])
                if all(np.linalg.norm(c - centres[j]) >= radii[k] + radii[j] + gap for j in range(k)):
                    centres[k] = c
                    break
            else:
                ok = False
                break
        if ok:
            return centres
        R *= 1.1


def sample_scene(
    rng: np.random.Generator, num_points: int, *, num_objects: tuple[int, int] = (2, 4),
    families: Sequence[str] = _FAMILIES, motion: str = "SO3", radius: tuple[float, float] = (0.35, 0.6),
    scene_radius: float = 1.2, gap: float = 0.05,
) -> dict[str, np.ndarray]:
    """One scene without noise: ``pos``, ``normal`` ``(N, 3)``, ``y`` (class) and ``part`` (instance) ``(N,)``,
    and per object ``classes`` ``(K,)``, ``R`` ``(K, 3, 3)``, ``centre`` ``(K, 3)``, ``radius`` ``(K,)`` and
    ``local`` ``(N, 3)`` (each point's canonical position, scaled: ``pos = R[part] @ local + centre[part]``).

    Objects get ``N // K`` points each (the first ``N % K`` one more), so every instance has points when
    ``N >= K``.
    """
    K = int(rng.integers(num_objects[0], num_objects[1] + 1))
    if num_points < K:
        raise ValueError(f"num_points ({num_points}) must be at least the number of objects per scene ({K})")
    names = {"shapes": len(SHAPE_CLASSES), "parts": len(PART_CATEGORIES)}
    offsets = np.cumsum([0] + [names[f] for f in families])
    total = int(offsets[-1])
    classes = rng.integers(0, total, K)
    radii = rng.uniform(radius[0], radius[1], K)
    counts = np.full(K, num_points // K) + (np.arange(K) < num_points % K)
    locs, nrms, Rs = [], [], []
    for k in range(K):
        fam = int(np.searchsorted(offsets, classes[k], side="right") - 1)
        label = int(classes[k] - offsets[fam])
        if families[fam] == "shapes":
            p, n, _ = sample_shape(label, rng, int(counts[k]))
        else:
            p, n, _ = sample_object(label, rng, int(counts[k]))
        locs.append(p.astype(float) * radii[k])
        nrms.append(n.astype(float))
        Rs.append(_rotation(rng, motion))
    R = np.stack(Rs)
    centres = _place(rng, radii, scene_radius, gap)
    part = np.repeat(np.arange(K), counts)
    local = np.concatenate(locs)
    pos = np.einsum("nij,nj->ni", R[part], local) + centres[part]
    normal = np.einsum("nij,nj->ni", R[part], np.concatenate(nrms))
    return {"pos": pos, "normal": normal, "y": classes[part], "part": part, "classes": classes, "R": R,
            "centre": centres, "radius": radii, "local": local}


def generate_scenes(
    count: int, num_points: int, *, seed: int = 0, split: str = "train", noise: float = 0.005,
    num_objects: tuple[int, int] = (2, 4), families: Sequence[str] = _FAMILIES, motion: str = "SO3",
) -> dict[str, torch.Tensor]:
    """Tensors of ``count`` scenes: ``pos``, ``normal``, ``part_offset`` ``(count, N, 3)``, ``y`` (class) and
    ``part`` (instance) ``(count, N)``, ``num_objects`` ``(count,)``; item ``i`` uses :func:`sample_scene`
    with the generator of ``(seed, split, i)``, then shuffles the points and adds the noise."""
    pos = np.empty((count, num_points, 3), np.float32)
    nrm = np.empty((count, num_points, 3), np.float32)
    off = np.empty((count, num_points, 3), np.float32)
    y = np.empty((count, num_points), np.int64)
    part = np.empty((count, num_points), np.int64)
    nobj = np.empty(count, np.int64)
    for i in range(count):
        rng = item_rng(_SALT, seed, split, i)
        s = sample_scene(rng, num_points, num_objects=num_objects, families=families, motion=motion)
        perm = rng.permutation(num_points)
        p = s["pos"][perm]
        if noise > 0:
            p = p + noise * rng.standard_normal(p.shape)
        k = s["part"][perm]
        pos[i], nrm[i], y[i], part[i] = p, s["normal"][perm], s["y"][perm], k
        off[i] = part_offsets(p, k, len(s["classes"]))
        nobj[i] = len(s["classes"])
    return {"pos": torch.from_numpy(pos), "normal": torch.from_numpy(nrm), "y": torch.from_numpy(y),
            "part": torch.from_numpy(part), "part_offset": torch.from_numpy(off),
            "num_objects": torch.from_numpy(nobj)}


def _check_families(families) -> tuple[str, ...]:
    if isinstance(families, str):
        families = (families,)
    if not isinstance(families, (list, tuple)) or not families:
        raise TypeError(f"families must be a non-empty list of names from {list(_FAMILIES)}, got {families!r}")
    for f in families:
        check_choice(f, "families entries", _FAMILIES)
    if len(set(families)) != len(families):
        raise ValueError(f"families must not repeat a name, got {list(families)}")
    return tuple(families)


def _check_num_objects(num_objects) -> tuple[int, int]:
    if isinstance(num_objects, int) and not isinstance(num_objects, bool):
        num_objects = (num_objects, num_objects)
    if not isinstance(num_objects, (list, tuple)) or len(num_objects) != 2:
        raise TypeError(f"num_objects must be an int or a (min, max) pair of ints, got {num_objects!r}")
    lo = check_int(num_objects[0], "num_objects[0]", 1)
    hi = check_int(num_objects[1], "num_objects[1]", 1)
    if lo > hi:
        raise ValueError(f"num_objects must be (min, max) with min <= max, got {tuple(num_objects)}")
    return lo, hi


class ScenesDataset(SegmentationMixin, PointCloudDataset):
    r"""Generated scenes of independently moved objects, for per-point object-class segmentation.

    Each scene holds ``num_objects`` (a ``(min, max)`` range, uniform) objects of random classes from
    ``families``: the 15 ``shapes`` solids and the 8 ``parts`` categories (23 classes, named
    ``"shapes/sphere"``, ..., ``"parts/hammer"``; :func:`scene_classes`), each with its own scale, rotation
    and place (the placement rule and the motions are in the module docstring: bounding balls never
    overlap). Training scenes use ``train_motion`` (default ``"z"``: upright objects, each turned about the
    vertical), test scenes ``test_motion`` (default ``"SO3"``: every object under its own uniform rotation),
    which a model equivariant per object handles and a globally equivariant one does not. Points are split
    evenly among the objects, shuffled and noised (``noise``); the scene is not recentred or rescaled (the
    disk centre is the origin; scenes span about 3 units).

    Each item: ``pos`` ``(N, 3)``, ``x`` ``(N, 3)`` unit normals, ``y`` ``(N,)`` object class, ``part``
    ``(N,)`` instance id in ``[0, K)`` (the ground-truth partition), ``part_offset`` ``(N, 3)`` (instance
    centroid minus the point; a declared vector key), ``num_objects`` ``(1,)`` and ``category`` ``(1,)``
    (always 0: one "scene" category holding every class, for the segmentation metrics; note that
    ShapeNetPart's instance mIoU counts a class absent from both prediction and truth as IoU 1, so
    ``class_miou`` and ``point_acc`` are the informative figures here).

    On disk: ``root/scenes/n{N}_tr{train}_te{test}_s{seed}_z{noise}_..._v1/{train,test}.pt`` with its
    ``manifest.json`` (parameters and SHA-256, checked on load).

    **STATS** (defaults): train 1000 / test 250 scenes of 2048 points, 2-4 objects, 23 classes.

    Args:
        root: data root; the cache goes to ``root/scenes/``.
        split: ``"train"`` or ``"test"``.
        num_points: points per scene.
        num_train, num_test: scenes per split.
        seed: base seed.
        noise: standard deviation of the positional noise.
        num_objects: objects per scene, an int or a ``(min, max)`` pair.
        families: object families, ``"shapes"`` and / or ``"parts"``.
        train_motion, test_motion: the per-object rotation of each split: ``"I"``, ``"z"`` or ``"SO3"``.
        transform: applied to every item on access.
        force_reload: regenerate even if the cache exists.

    Example:
        >>> import tempfile
        >>> ds = ScenesDataset(tempfile.mkdtemp(), num_points=256, num_train=4, num_test=4)
        >>> ds.num_classes, ds.categories, ds.vector_keys
        (23, ['scene'], ('pos', 'x', 'part_offset'))
        >>> d = ds[0]
        >>> d.y.shape, int(d.part.max()) + 1 == int(d.num_objects), d.part_offset.shape
        (torch.Size([256]), True, torch.Size([256, 3]))
    """

    task = "seg"
    up_axis = "z"
    extra_vector_keys = ("part_offset",)
    categories = ["scene"]

    def __init__(
        self,
        root: str | Path = "datasets",
        split: str = "train",
        *,
        num_points: int = 2048,
        num_train: int = 1000,
        num_test: int = 250,
        seed: int = 0,
        noise: float = 0.005,
        num_objects: int | Sequence[int] = (2, 4),
        families: Sequence[str] = _FAMILIES,
        train_motion: str = "z",
        test_motion: str = "SO3",
        transform: Callable | None = None,
        force_reload: bool = False,
    ) -> None:
        super().__init__(transform)
        root = as_root(root)
        check_split(split)
        num_points = check_int(num_points, "num_points", 1)
        num_train = check_int(num_train, "num_train", 1)
        num_test = check_int(num_test, "num_test", 1)
        seed = check_int(seed, "seed", 0)
        noise = check_real(noise, "noise", 0.0)
        nobj = _check_num_objects(num_objects)
        fams = _check_families(families)
        train_motion = check_choice(train_motion, "train_motion", _MOTIONS)
        test_motion = check_choice(test_motion, "test_motion", _MOTIONS)
        if num_points < nobj[1]:
            raise ValueError(f"num_points ({num_points}) must be at least the largest num_objects ({nobj[1]}), so "
                             f"that every object has points")
        motion = train_motion if split == "train" else test_motion
        count = num_train if split == "train" else num_test
        params = dict(num_points=num_points, num_train=num_train, num_test=num_test, seed=seed, noise=noise,
                      objects=f"{nobj[0]}-{nobj[1]}", families="+".join(fams), motion=motion, version=_VERSION)
        out = load_cached(root / "scenes" / cache_key(params), split,
                          lambda: {split: generate_scenes(count, num_points, seed=seed, split=split, noise=noise,
                                                          num_objects=nobj, families=fams, motion=motion)},
                          params={"dataset": "scenes", **params}, force_reload=force_reload, what="scenes")
        self.root, self.split, self.seed, self.noise, self.motion = root, split, seed, float(noise), motion
        self.families = list(fams)
        self.classes = scene_classes(fams)
        self.category_parts = [list(range(len(self.classes)))]
        M = out["pos"].shape[0]
        self._set(out["pos"], out["normal"], out["y"], part=out["part"], part_offset=out["part_offset"],
                  num_objects=out["num_objects"], category=torch.zeros(M, dtype=torch.long))
        self.per_point_extra = ("part", "part_offset")
