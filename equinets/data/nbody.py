"""``nbody``: the charged-particle N-body task of EGNN ("nbody_small"), regenerated offline.

Physics, integrator and sampling follow the NRI charged-particle simulator as called by EGNN's
``generate_dataset.py --num-train 10000 --seed 43 --sufix small`` (see ``datasets/README.md``);
the code here is an independent, trajectory-vectorised float64 re-implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch_geometric.data import Data

from .._checks import check_finite
from ._io import cache_key, load_cached

__all__ = ["NBody", "nbody_baselines", "generate_nbody", "simulate_charged", "draw_initial_states"]

_VERSION = 1
_SPLITS = ("train", "val", "test")

NUM_PARTICLES = 5
DT = 1e-3  #: integration step
MAX_FORCE = 0.1 / DT  #: each force component is clipped to +-MAX_FORCE (= 100)
SAMPLE_FREQ = 100  #: steps between stored frames; frame k is step SAMPLE_FREQ * (k + 1)
LENGTH = 5000  #: steps of an original trajectory -> 49 frames (0 ... 48)
NUM_FRAMES = LENGTH // SAMPLE_FREQ - 1
BOX_SIZE = 5.0  #: wall reflection, applied to the initial state only
LOC_STD = 1.0 * (NUM_PARTICLES / 5) ** (1 / 3)
VEL_NORM = 0.5
#: trajectories the original draws for its train split before val/test (only the first 3000 are used).
ORIGINAL_NUM_TRAIN = 10000


def draw_initial_states(
    rng: np.random.RandomState,
    num: int,
    num_particles: int = NUM_PARTICLES,
    loc_std: float = LOC_STD,
    vel_norm: float = VEL_NORM,
    box_size: float = BOX_SIZE,
    noise_frames: int = NUM_FRAMES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``num`` initial states ``(x0, v0, q)``: float64 ``(num, n, 3)``, ``(num, n, 3)``, ``(num, n, 1)``.

    Per trajectory, in the original generator's order of draws from the legacy numpy stream
    ``rng``: charges from {-1, 0, +1} with probabilities (1/2, 0, 1/2) (``rng.choice`` draws one
    uniform per particle, ``u < 1/2`` giving -1); positions ``N(0, loc_std^2)`` and velocity
    directions, each as a ``(3, n)`` normal draw; the velocities scaled to norm ``vel_norm`` per
    particle; reflection of the initial state at the walls ``+-box_size``; then the two
    (zero-variance) observation-noise draws of ``noise_frames * 3 * n`` normals each, which only
    advance the stream. Consecutive normal draws are made as one call (the legacy stream yields
    the same numbers either way).
    """
    n = num_particles
    x0 = np.empty((num, n, 3))
    v0 = np.empty((num, n, 3))
    q = np.empty((num, n, 1))
    for m in range(num):
        u = rng.random_sample((n, 1))
        g = rng.randn(6 * n + 2 * noise_frames * 3 * n)  # loc, vel, then the two noise draws
        q[m] = np.where(u < 0.5, -1.0, 1.0)
        x0[m] = g[: 3 * n].reshape(3, n).T * loc_std  # the original's (dim, n) layout
        v0[m] = g[3 * n : 6 * n].reshape(3, n).T
    v0 *= vel_norm / np.sqrt((v0**2).sum(axis=-1, keepdims=True))
    over = x0 > box_size
    x0[over] = 2 * box_size - x0[over]
    v0[over] = -np.abs(v0[over])
    under = x0 < -box_size
    x0[under] = -2 * box_size - x0[under]
    v0[under] = np.abs(v0[under])
    return x0, v0, q


def _forces(x: np.ndarray, qq: np.ndarray, eye: np.ndarray, max_force: float) -> np.ndarray:
    """Clipped Coulomb forces ``sum_j q_i q_j (x_i - x_j) / |x_i - x_j|^3``, trajectories last.

    ``x`` ``(n, 3, M)``, ``qq`` ``(n, n, M)``, ``eye`` ``(n, n, 1)``; returns ``(n, 3, M)``.
    """
    diff = x[:, None] - x[None, :]  # (n, n, 3, M): x_i - x_j
    r2 = (diff * diff).sum(2) + eye  # the diagonal (diff = 0) gets 1 instead of 0: no inf * 0
    coef = qq / (r2 * np.sqrt(r2))
    f = (coef[:, :, None] * diff).sum(1)
    return np.clip(f, -max_force, max_force, out=f)


def simulate_charged(
    x0: np.ndarray,
    v0: np.ndarray,
    q: np.ndarray,
    record_steps: list[int] | tuple[int, ...],
    dt: float = DT,
    max_force: float = MAX_FORCE,
    chunk: int = 1024,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Integrate charged particles in float64, all trajectories at once; ``(x, v)`` at ``record_steps``.

    ``x0``, ``v0`` ``(M, n, 3)`` and charges ``q`` ``(M, n, 1)`` (any real values). The scheme is
    the original's semi-implicit Euler: ``v += dt F(x0)``; then for step ``i = 1, 2, ...``:
    ``x += dt v``; record ``(x, v)`` if ``i`` is in ``record_steps``; ``v += dt F(x)``. So the
    recorded ``v`` is the one that moved ``x`` into the recorded position. ``F`` is the pairwise
    Coulomb force (like charges repel, unit masses) with every component clipped to
    ``+-max_force``. Only the time loop is in Python; trajectories are processed ``chunk`` at a
    time along the last (contiguous) axis; results do not depend on ``chunk``.

    >>> x0 = np.array([[[0.0, 0.0, 0.0]]]); v0 = np.array([[[1.0, 0.0, 0.0]]])
    >>> [(x.round(6).tolist(), v.tolist()) for x, v in simulate_charged(x0, v0, np.ones((1, 1, 1)), [500])]
    [([[[0.5, 0.0, 0.0]]], [[[1.0, 0.0, 0.0]]])]
    """
    x0, v0, q = (np.asarray(a, dtype=np.float64) for a in (x0, v0, q))
    steps = sorted(set(int(s) for s in record_steps))
    if not steps or steps[0] < 1:
        raise ValueError(f"record_steps must be integers >= 1, got {record_steps}")
    M, n, _ = x0.shape
    out = [(np.empty((M, n, 3)), np.empty((M, n, 3))) for _ in steps]
    eye = np.eye(n)[:, :, None]
    for lo in range(0, M, chunk):
        sl = slice(lo, lo + chunk)
        x = x0[sl].transpose(1, 2, 0).copy()  # (n, 3, m), C-contiguous; never a view of x0
        v = v0[sl].transpose(1, 2, 0).copy()
        qm = q[sl, :, 0].T  # (n, m)
        qq = qm[:, None] * qm[None, :]
        v += dt * _forces(x, qq, eye, max_force)
        k = 0
        for i in range(1, steps[-1] + 1):
            x += dt * v
            if i == steps[k]:
                out[k][0][sl], out[k][1][sl] = x.transpose(2, 0, 1), v.transpose(2, 0, 1)
                k += 1
                if k == len(steps):
                    break
            v += dt * _forces(x, qq, eye, max_force)
    order = {s: j for j, s in enumerate(steps)}
    return [out[order[int(s)]] for s in record_steps]


def _frame_step(frame: int) -> int:
    return SAMPLE_FREQ * (frame + 1)


def _check_frames(frame_in: int, frame_out: int) -> None:
    if not 0 <= frame_in < frame_out < NUM_FRAMES:
        raise ValueError(f"need 0 <= frame_in < frame_out <= {NUM_FRAMES - 1}, got {frame_in}, {frame_out}")


def generate_nbody(
    num_train: int = 3000,
    num_val: int = 2000,
    num_test: int = 2000,
    seed: int = 43,
    frame_in: int = 30,
    frame_out: int = 40,
) -> dict[str, dict[str, Tensor]]:
    """All three splits from one seeded stream: ``{split: {pos, vel, charges, y}}`` float64 tensors.

    ``np.random.RandomState(seed)`` draws the initial states of train, then val, then test
    (:func:`draw_initial_states`), like the original generator; the train part of the stream is
    ``max(num_train, 10000)`` trajectories long (the original draws 10 000 and EGNN uses the
    first 3000), and only the first ``num_train`` are simulated. ``pos``/``vel``: frame
    ``frame_in``; ``y``: positions at frame ``frame_out``; ``charges`` ``(M, 5, 1)``.
    """
    _check_frames(frame_in, frame_out)
    for name, k in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        if k < 0:
            raise ValueError(f"{name} must be >= 0, got {k}")
    rng = np.random.RandomState(seed)
    sizes = dict(train=num_train, val=num_val, test=num_test)
    slots = dict(train=max(num_train, ORIGINAL_NUM_TRAIN), val=num_val, test=num_test)
    states = {}
    for split in _SPLITS:
        x0, v0, q = draw_initial_states(rng, slots[split])
        states[split] = (x0[: sizes[split]], v0[: sizes[split]], q[: sizes[split]])
    x0, v0, q = (np.concatenate([states[s][j] for s in _SPLITS]) for j in range(3))
    (x_in, v_in), (x_out, _) = simulate_charged(x0, v0, q, [_frame_step(frame_in), _frame_step(frame_out)])
    out, lo = {}, 0
    for split in _SPLITS:
        sl = slice(lo, lo + sizes[split])
        lo += sizes[split]
        out[split] = {k: torch.from_numpy(np.ascontiguousarray(a[sl])) for k, a in
                      (("pos", x_in), ("vel", v_in), ("charges", q), ("y", x_out))}  # fmt: skip
    return out


def _load_or_generate(root: str | Path, params: dict, split: str, force_reload: bool) -> dict[str, Tensor]:
    key = dict(tr=params["num_train"], va=params["num_val"], te=params["num_test"], s=params["seed"],
               f=f"{params['frame_in']}-{params['frame_out']}", v=_VERSION)  # fmt: skip
    meta = {
        "dataset": "nbody",
        "version": _VERSION,
        **params,
        "num_particles": NUM_PARTICLES,
        "dt": DT,
        "max_force": MAX_FORCE,
        "sample_freq": SAMPLE_FREQ,
        "box_size": BOX_SIZE,
        "loc_std": LOC_STD,
        "vel_norm": VEL_NORM,
        "step_in": _frame_step(params["frame_in"]),
        "step_out": _frame_step(params["frame_out"]),
        "rng": f"numpy.random.RandomState({params['seed']}): train ({max(params['num_train'], 10000)} "
        "trajectories drawn, the first num_train simulated), then val, then test",
    }
    # all three splits come from one random stream, so they are generated (and cached) together
    return load_cached(Path(root) / "nbody" / cache_key(key), split, lambda: generate_nbody(**params),
                       params=meta, force_reload=force_reload, what="nbody")


def _full_graph(n: int) -> Tensor:
    from ..nn.graph_ops import full_graph  # the one builder (FAGNN's too); lazy: equinets.nn imports data-free

    return full_graph(torch.zeros(n, dtype=torch.long))


class NBody(Dataset):
    r"""Charged-particle N-body regression (EGNN's "nbody_small"), generated offline and cached.

    Five unit-mass particles with charges :math:`\pm 1` (probability 1/2 each) interact by
    Coulomb forces :math:`F_i = \sum_j q_i q_j (x_i - x_j)/|x_i - x_j|^3` (components clipped to
    :math:`\pm 100`), integrated in float64 with ``dt = 1e-3`` (see :func:`simulate_charged`).
    Initial positions :math:`x_0 \sim N(0, I)`, initial speeds 0.5 with Gaussian directions, a
    wall reflection (box 5) on the initial state only. Frame ``k`` is step ``100 (k + 1)``; the
    task maps positions and velocities at ``frame_in`` (30) to positions at ``frame_out`` (40),
    i.e. :math:`\Delta t = 1.0`. Train, val and test come from one seeded stream
    (:func:`generate_nbody`); the set is statistically equivalent to, not a copy of, the
    original files.

    Each item is a :class:`~torch_geometric.data.Data` with float32 ``pos`` ``(5, 3)`` (frame
    ``frame_in``), ``vel`` ``(5, 3)``, ``charges`` ``(5, 1)``, ``y`` ``(5, 3)`` (positions at
    ``frame_out``), ``edge_index`` ``(2, 20)`` (fully connected, directed, row 0 = source) and
    ``edge_attr`` ``(20, 1)`` = :math:`q_i q_j`. Loss and metric: MSE over particles and
    coordinates.

    Geometric keys (``vector_keys``, the contract of
    :class:`~equinets.data._base.PointCloudDataset`): ``pos``, ``vel``, the velocity columns
    ``x[:, 0:3]`` (column 3 is the charge, a scalar) and the target positions ``y``; a rotation
    about the origin maps the item of a system to the item of the rotated system, so rotate with
    ``RandomRotate.for_dataset(protocol, ds)``, never ``pos`` alone. ``up_axis`` is nominal (z):
    the system is isotropic. (The force clipping acts per component, so the simulation is exactly
    rotation-equivariant only while it is inactive, as it is unless two particles come closer
    than about 0.1.)

    On disk: ``root/nbody/tr{train}_va{val}_te{test}_s{seed}_f{in}-{out}_v1/{train,val,test}.pt``
    (float64 tensors ``pos``, ``vel``, ``charges``, ``y``) and ``manifest.json`` (parameters and
    a SHA-256 of each split's tensors, checked on load); written atomically, reused when present.
    The first access generates all three splits (about 13 s for the defaults on one core).

    >>> import tempfile
    >>> ds = NBody(tempfile.mkdtemp(), "val", num_train=4, num_val=3, num_test=2, frame_in=1, frame_out=3)
    >>> d = ds[0]
    >>> len(ds), ds.task, [tuple(v.shape) for v in (d.pos, d.vel, d.charges, d.y, d.edge_index, d.edge_attr)]
    (3, 'reg', [(5, 3), (5, 3), (5, 1), (5, 3), (2, 20), (20, 1)])
    >>> from equinets.data.transforms import RandomRotate
    >>> t = RandomRotate.for_dataset("SO3", ds)
    >>> R, out = t.sample(1, torch.Generator().manual_seed(0))[0], t(d, torch.Generator().manual_seed(0))
    >>> all(torch.allclose(out[k], d[k] @ R.T) for k in ("pos", "vel", "y")), torch.equal(out.x[:, 3], d.x[:, 3])
    (True, True)
    """

    task: str = "reg"
    up_axis: str = "z"  # nominal: the system is isotropic
    #: geometric vectors of an item: positions, velocities (also inside ``x``) and target positions
    vector_keys: tuple = ("pos", "vel", ("x", slice(0, 3)), "y")
    num_particles: int = NUM_PARTICLES

    def __init__(
        self,
        root: str | Path = "datasets",
        split: str = "train",
        *,
        num_train: int = 3000,
        num_val: int = 2000,
        num_test: int = 2000,
        seed: int = 43,
        frame_in: int = 30,
        frame_out: int = 40,
        transform: Callable | None = None,
        force_reload: bool = False,
    ) -> None:
        super().__init__()
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        _check_frames(frame_in, frame_out)
        self.root, self.split, self.transform = Path(root), split, transform
        self.frame_in, self.frame_out, self.seed = frame_in, frame_out, seed
        params = dict(num_train=num_train, num_val=num_val, num_test=num_test, seed=seed,
                      frame_in=frame_in, frame_out=frame_out)  # fmt: skip
        data = _load_or_generate(root, params, split, force_reload)
        f32 = {k: v.to(torch.float32) for k, v in data.items()}
        self.pos, self.vel, self.charges, self.y = f32["pos"], f32["vel"], f32["charges"], f32["y"]
        for k in ("pos", "vel", "y"):
            check_finite(getattr(self, k), k)
        self.edge_index = _full_graph(NUM_PARTICLES)

    @property
    def delta_t(self) -> float:
        """Simulated time between input and target frames (1.0 by default)."""
        return (self.frame_out - self.frame_in) * SAMPLE_FREQ * DT

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    def get(self, idx: int) -> Data:
        """Item ``idx`` without the transform."""
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for a dataset of {n} systems")
        q = self.charges[idx]
        src, dst = self.edge_index
        return Data(pos=self.pos[idx], vel=self.vel[idx], charges=q, x=torch.cat([self.vel[idx], q], dim=1),
                    y=self.y[idx], edge_index=self.edge_index, edge_attr=q[src] * q[dst])  # fmt: skip

    def __getitem__(self, idx) -> Data:
        data = self.get(int(idx))
        return data if self.transform is None else self.transform(data)

    def __repr__(self) -> str:
        return f"NBody({len(self)}, split={self.split!r}, frames={self.frame_in}->{self.frame_out})"


def nbody_baselines(train_ds: NBody, test_ds: NBody) -> dict[str, float]:
    r"""Test MSE (over systems, particles, coordinates) of closed-form baselines, in float64.

    * ``zero_motion``: :math:`\hat x = x`;
    * ``constant_velocity``: :math:`\hat x = x + \Delta t\, v`;
    * ``linear_dynamics``: :math:`\hat x = x + c\, v` with the scalar ``c`` fitted on train by least
      squares (the optimum of EGNN's trained "Linear" model);
    * ``linear``: per coordinate ``d``, :math:`\hat x_d = a_d x_d + b_d v_d + c_d`, least squares on train.

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> kw = dict(num_train=8, num_val=1, num_test=8, frame_in=1, frame_out=3)
    >>> tr, te = NBody(root, "train", **kw), NBody(root, "test", **kw)
    >>> sorted(nbody_baselines(tr, te))
    ['constant_velocity', 'linear', 'linear_dynamics', 'zero_motion']
    """
    dt = test_ds.delta_t
    x, v, y = (getattr(test_ds, k).double() for k in ("pos", "vel", "y"))
    xt, vt, yt = (getattr(train_ds, k).double() for k in ("pos", "vel", "y"))
    c = float(((yt - xt) * vt).sum() / (vt * vt).sum())
    out = {
        "zero_motion": float(((y - x) ** 2).mean()),
        "constant_velocity": float(((y - x - dt * v) ** 2).mean()),
        "linear_dynamics": float(((y - x - c * v) ** 2).mean()),
    }
    pred = torch.empty_like(y)
    for d in range(3):
        A = torch.stack([xt[..., d].reshape(-1), vt[..., d].reshape(-1), torch.ones(xt[..., d].numel())], 1)
        w = torch.linalg.lstsq(A, yt[..., d].reshape(-1, 1)).solution[:, 0]
        pred[..., d] = w[0] * x[..., d] + w[1] * v[..., d] + w[2]
    out["linear"] = float(((y - pred) ** 2).mean())
    return out
