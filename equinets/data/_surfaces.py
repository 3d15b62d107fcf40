"""Area-uniform surface sampling of simple solids, with outward unit normals.

A solid is a list of :class:`Patch` objects (planar triangles and rectangles, annuli, frustum
mantles, ellipsoids or their upper halves, torus sections), each with an exact or (for
ellipsoids) a closely approximated area. :func:`sample_patches` splits ``n`` points among the
patches multinomially by area and samples each patch uniformly by area, so the union is
area-uniform. Everything here is float64 numpy; callers convert to torch.

Private module: used by :mod:`equinets.data.shapes` and :mod:`equinets.data.parts`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

_I3 = np.eye(3)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.sqrt((v * v).sum(-1, keepdims=True))


def _cross(a, b) -> np.ndarray:
    """Cross product of 3-vectors along the last axis (``np.cross`` without its overhead)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Patch:
    """One piece of a surface: ``kind`` and its parameters, a rigid motion ``x -> R x + t``, a part id."""

    kind: str
    params: tuple
    R: np.ndarray = field(default_factory=lambda: _I3)
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    part: int = 0

    def moved(self, R: np.ndarray | None = None, t=None) -> Patch:
        """The patch after the rigid motion ``x -> R x + t`` (applied after its own)."""
        R = _I3 if R is None else np.asarray(R, dtype=float)
        t = np.zeros(3) if t is None else np.asarray(t, dtype=float)
        return replace(self, R=R @ self.R, t=R @ self.t + t)

    def with_part(self, part: int) -> Patch:
        return replace(self, part=part)

    @property
    def area(self) -> float:
        return _AREA[self.kind](*self.params)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` area-uniform points and their outward unit normals, each ``(n, 3)``."""
        p, nrm = _SAMPLE[self.kind](rng, n, *self.params)
        return p @ self.R.T + self.t, nrm @ self.R.T


# --- primitives: (area, sampler) per kind ------------------------------------------------------


def _tri_area(a, b, c):
    return 0.5 * float(np.linalg.norm(_cross(np.subtract(b, a), np.subtract(c, a))))


def _tri_sample(rng, n, a, b, c):
    a, b, c = (np.asarray(v, dtype=float) for v in (a, b, c))
    u = rng.random((n, 2))
    s = np.sqrt(u[:, :1])
    p = (1 - s) * a + s * (1 - u[:, 1:]) * b + s * u[:, 1:] * c
    nrm = np.broadcast_to(_unit(_cross(b - a, c - a)), (n, 3))
    return p, nrm.copy()


def _rect_area(c, u, v):  # centre c, half-axes u, v; normal along u x v
    return 4.0 * float(np.linalg.norm(_cross(u, v)))


def _rect_sample(rng, n, c, u, v):
    ab = rng.uniform(-1.0, 1.0, (n, 2))
    p = (
        np.asarray(c, dtype=float)
        + ab[:, :1] * np.asarray(u, dtype=float)
        + ab[:, 1:] * np.asarray(v, dtype=float)
    )
    nrm = np.broadcast_to(_unit(_cross(u, v)), (n, 3))
    return p, nrm.copy()


def _disk_area(r, z, up, r_in):
    return math.pi * (r * r - r_in * r_in)


def _disk_sample(rng, n, r, z, up, r_in):
    u = rng.random((n, 2))
    rad = np.sqrt(r_in * r_in + u[:, 0] * (r * r - r_in * r_in))
    th = 2 * math.pi * u[:, 1]
    p = np.stack([rad * np.cos(th), rad * np.sin(th), np.full(n, float(z))], axis=1)
    nrm = np.zeros((n, 3))
    nrm[:, 2] = 1.0 if up else -1.0
    return p, nrm


def _frustum_area(r0, r1, z0, z1):  # mantle between (r0 at z0) and (r1 at z1), z1 > z0
    return math.pi * (r0 + r1) * math.hypot(r1 - r0, z1 - z0)


def _frustum_sample(rng, n, r0, r1, z0, z1):
    u = rng.random((n, 2))
    if abs(r1 - r0) < 1e-12:
        t = u[:, 0]
    else:  # density of t proportional to the radius r(t): invert the CDF in r^2
        r = np.sqrt(r0 * r0 + u[:, 0] * (r1 * r1 - r0 * r0))
        t = (r - r0) / (r1 - r0)
    rad = r0 + (r1 - r0) * t
    th = 2 * math.pi * u[:, 1]
    c, s = np.cos(th), np.sin(th)
    p = np.stack([rad * c, rad * s, z0 + (z1 - z0) * t], axis=1)
    dz, dr = z1 - z0, r1 - r0
    nrm = _unit(np.stack([dz * c, dz * s, np.full(n, -dr)], axis=1))
    return p, nrm


def _ellipsoid_area(a, b, c, upper):
    pw = 1.6075  # Knud Thomsen's approximation, relative error < 1.1 %
    full = 4 * math.pi * (((a * b) ** pw + (a * c) ** pw + (b * c) ** pw) / 3) ** (1 / pw)
    return full / 2 if upper else full


def _ellipsoid_sample(rng, n, a, b, c, upper):
    # map the unit sphere by diag(a, b, c); the area element there is abc |diag(1/a,1/b,1/c) u|,
    # so accept sphere points with probability proportional to it (rejection sampling).
    inv = np.array([1 / a, 1 / b, 1 / c])
    wmax = inv.max()
    out: list[np.ndarray] = []
    got = 0
    while got < n:
        m = int(1.3 * (n - got) * wmax / inv.min()) + 16
        u = _unit(rng.standard_normal((m, 3)))
        if upper:
            u[:, 2] = np.abs(u[:, 2])
        w = np.linalg.norm(u * inv, axis=1)
        keep = u[rng.random(m) * wmax < w]
        out.append(keep)
        got += len(keep)
    u = np.concatenate(out)[:n]
    p = u * np.array([a, b, c])
    nrm = _unit(u * inv)
    return p, nrm


def _torus_area(R, r, th0, th1):  # tube radius r around a circle of radius R in the xy plane
    return 2 * math.pi * r * R * (th1 - th0)


def _torus_sample(rng, n, R, r, th0, th1):
    out: list[np.ndarray] = []
    got = 0
    while got < n:
        m = int(1.2 * (n - got) * (R + r) / R) + 16
        phi = rng.uniform(0.0, 2 * math.pi, m)
        keep = phi[rng.random(m) * (R + r) < R + r * np.cos(phi)]
        out.append(keep)
        got += len(keep)
    phi = np.concatenate(out)[:n]
    th = rng.uniform(th0, th1, n)
    nrm = np.stack([np.cos(phi) * np.cos(th), np.cos(phi) * np.sin(th), np.sin(phi)], axis=1)
    p = np.stack([R * np.cos(th), R * np.sin(th), np.zeros(n)], axis=1) + r * nrm
    return p, nrm


_AREA = {
    "tri": _tri_area,
    "rect": _rect_area,
    "disk": _disk_area,
    "frustum": _frustum_area,
    "ellipsoid": _ellipsoid_area,
    "torus": _torus_area,
}
_SAMPLE = {
    "tri": _tri_sample,
    "rect": _rect_sample,
    "disk": _disk_sample,
    "frustum": _frustum_sample,
    "ellipsoid": _ellipsoid_sample,
    "torus": _torus_sample,
}


# --- patch constructors ---------------------------------------------------------------------------


def tri(a, b, c) -> Patch:
    return Patch("tri", (tuple(a), tuple(b), tuple(c)))


def disk(r: float, z: float, up: bool, r_in: float = 0.0) -> Patch:
    return Patch("disk", (r, z, up, r_in))


def frustum(r0: float, r1: float, z0: float, z1: float) -> Patch:
    return Patch("frustum", (r0, r1, z0, z1))


def ellipsoid(a: float, b: float, c: float, upper: bool = False) -> Patch:
    return Patch("ellipsoid", (a, b, c, upper))


def torus(R: float, r: float, th0: float = 0.0, th1: float = 2 * math.pi) -> Patch:
    return Patch("torus", (R, r, th0, th1))


# --- closed solids (lists of patches) -------------------------------------------------------------


def box(hx: float, hy: float, hz: float, center=(0.0, 0.0, 0.0)) -> list[Patch]:
    """Axis-aligned box with half sizes ``hx, hy, hz``."""
    c = np.asarray(center, dtype=float)
    ex, ey, ez = np.array([hx, 0, 0.0]), np.array([0, hy, 0.0]), np.array([0, 0, hz])
    faces = [(ex, ey, ez), (-ex, ez, ey), (ey, ez, ex), (-ey, ex, ez), (ez, ex, ey), (-ez, ey, ex)]
    # face centre d, half axes (u, v) with u x v along +d
    return [Patch("rect", (tuple(c + d), tuple(u), tuple(v))) for d, u, v in faces]


def cylinder(r: float, z0: float, z1: float, top: bool = True, bottom: bool = True) -> list[Patch]:
    """Cylinder of radius ``r`` about the z axis from ``z0`` to ``z1``, with optional caps."""
    out = [frustum(r, r, z0, z1)]
    if top:
        out.append(disk(r, z1, True))
    if bottom:
        out.append(disk(r, z0, False))
    return out


def polyhedron(vertices, faces) -> list[Patch]:
    """Convex polyhedron: triangles fanned from each face, oriented away from the vertex centroid."""
    v = np.asarray(vertices, dtype=float)
    centre = v.mean(0)
    out = []
    for f in faces:
        for k in range(1, len(f) - 1):
            a, b, c = v[f[0]], v[f[k]], v[f[k + 1]]
            if np.dot(_cross(b - a, c - a), (a + b + c) / 3 - centre) < 0:
                b, c = c, b
            out.append(tri(a, b, c))
    return out


def extrusion(polygon, pieces, hz: float) -> list[Patch]:
    """Prism over a counter-clockwise simple ``polygon`` in the xy plane, from ``-hz`` to ``hz``.

    ``pieces`` are convex polygons (counter-clockwise) that tile ``polygon``; they make the caps.
    """
    poly = np.asarray(polygon, dtype=float)
    out = []
    for p, q in zip(poly, np.roll(poly, -1, axis=0)):
        mid = np.array([(p[0] + q[0]) / 2, (p[1] + q[1]) / 2, 0.0])
        u = np.array([(q[0] - p[0]) / 2, (q[1] - p[1]) / 2, 0.0])
        out.append(Patch("rect", (tuple(mid), tuple(u), (0.0, 0.0, hz))))  # u x e_z = outward for CCW
    for piece in pieces:
        pc = np.asarray(piece, dtype=float)
        for k in range(1, len(pc) - 1):
            a, b, c = pc[0], pc[k], pc[k + 1]
            out.append(tri((*a, hz), (*b, hz), (*c, hz)))
            out.append(tri((*a, -hz), (*c, -hz), (*b, -hz)))
    return out


def moved(patches: list[Patch], R=None, t=None) -> list[Patch]:
    return [p.moved(R, t) for p in patches]


def labelled(patches: list[Patch], part: int) -> list[Patch]:
    return [p.with_part(part) for p in patches]


def _planar_world(patch: Patch) -> np.ndarray:
    """Rect/tri parameters in world coordinates, ``(3, 3)``: (c, u, v) or (a, b, c) after the motion."""
    q = np.asarray(patch.params, dtype=float)
    if patch.kind == "rect":  # centre moves, half axes rotate
        return np.stack([patch.R @ q[0] + patch.t, patch.R @ q[1], patch.R @ q[2]])
    return q @ patch.R.T + patch.t


def _sample_planar(rng, kind: str, params: np.ndarray, counts: np.ndarray):
    """Sample many rects (or tris) at once: ``params`` ``(P, 3, 3)``, ``counts`` ``(P,)``."""
    q = np.repeat(params, counts, axis=0)
    n = len(q)
    if kind == "rect":
        ab = rng.uniform(-1.0, 1.0, (n, 2, 1))
        p = q[:, 0] + ab[:, 0] * q[:, 1] + ab[:, 1] * q[:, 2]
        nrm = _unit(_cross(q[:, 1], q[:, 2]))
    else:
        u = rng.random((n, 2, 1))
        s = np.sqrt(u[:, 0])
        p = (1 - s) * q[:, 0] + s * (1 - u[:, 1]) * q[:, 1] + s * u[:, 1] * q[:, 2]
        nrm = _unit(_cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]))
    return p, nrm


def sample_patches(
    rng: np.random.Generator, patches: list[Patch], n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample ``n`` points area-uniformly on the union of ``patches``.

    Returns ``(points (n, 3), normals (n, 3), part ids (n,))``, points grouped by patch kind.
    Planar patches (rects, triangles) are sampled in one vectorised call per kind.
    """
    areas = np.array([p.area for p in patches])
    counts = rng.multinomial(n, areas / areas.sum())
    pts, nrms, parts = [], [], []
    for kind in ("rect", "tri"):
        idx = [i for i, p in enumerate(patches) if p.kind == kind and counts[i] > 0]
        if idx:
            params = np.stack([_planar_world(patches[i]) for i in idx])
            p, q = _sample_planar(rng, kind, params, counts[idx])
            pts.append(p)
            nrms.append(q)
            parts.append(np.repeat(np.array([patches[i].part for i in idx], dtype=np.int64), counts[idx]))
    for patch, k in zip(patches, counts):
        if k == 0 or patch.kind in ("rect", "tri"):
            continue
        p, q = patch.sample(rng, int(k))
        pts.append(p)
        nrms.append(q)
        parts.append(np.full(int(k), patch.part, dtype=np.int64))
    return np.concatenate(pts), np.concatenate(nrms), np.concatenate(parts)


def normalize_unit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre at the centroid and scale so the largest norm is 1; returns the points and the scale used."""
    p = points - points.mean(0)
    scale = float(np.linalg.norm(p, axis=1).max())
    scale = scale if scale > 0 else 1.0
    return p / scale, scale
