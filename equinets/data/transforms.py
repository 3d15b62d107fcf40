r"""Composable point-cloud transforms for a single ``Data`` and for a collated ``Batch``.

Every transform is called as ``t(data, generator=None)`` and returns a new object; the input and
its tensors are never modified. On a ``Batch`` the random draws are made per cloud (using
``data.batch``) in one vectorised call, and in the same order as applying the transform to the
clouds one after another with the same ``generator``: ``t(batch, g)`` equals the collation of
``t(cloud_0, g), t(cloud_1, g), ...`` for every single transform here (not for a
:class:`Compose`, which draws transform by transform over the whole batch). All random numbers
are drawn as float64 uniforms on the generator's device (normals by Box-Muller) to make that
ordering exact.

The rotation protocols of the rotation-robustness literature (I, z, SO3, O3; e.g. "z/SO3" =
train with ``RandomRotate("z")``, test with ``RandomRotate("SO3")``) are
:class:`RandomRotate`'s ``protocol``.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "Transform",
    "Compose",
    "RandomRotate",
    "Jitter",
    "RandomScale",
    "RandomShift",
    "RandomSubsample",
    "SamplePoints",
    "NormalizeUnitSphere",
    "random_rotation_matrices",
]

_AXES = {"x": 0, "y": 1, "z": 2}
_PROTOCOLS = ("I", "x", "y", "z", "up", "SO3", "O3")


def _uniform(shape, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Float64 uniforms in [0, 1) drawn on the generator's device, returned on ``like``'s device."""
    dev = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=dev).to(like.device)


def _normal(shape, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normals by Box-Muller from ``_uniform`` (order-stable across batch sizes)."""
    u = _uniform((*shape, 2), generator, like)
    return torch.sqrt(-2.0 * torch.log1p(-u[..., 0])) * torch.cos(2 * math.pi * u[..., 1])


def _graphs(data) -> tuple[Tensor, int]:
    """``batch`` vector and number of clouds of a ``Data`` (one cloud) or ``Batch``."""
    pos = data.pos
    batch = getattr(data, "batch", None)
    if batch is None:
        return torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device), 1
    num = getattr(data, "num_graphs", None)
    return batch, int(num) if num is not None else int(batch.max()) + 1 if batch.numel() else 0


def _vector_keys(data, keys: Sequence[str]) -> list[str]:
    n = data.pos.shape[0]
    return [k for k in keys if isinstance(getattr(data, k, None), Tensor) and data[k].shape == (n, 3)]


def random_rotation_matrices(
    num: int,
    protocol: str = "SO3",
    up_axis: str = "z",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""``num`` random ``(3, 3)`` matrices of a rotation protocol.

    * ``"I"``: identities (no random numbers drawn);
    * ``"z"`` (or ``"x"``, ``"y"``, or ``"up"`` = ``up_axis``): rotation by a uniform angle about that axis;
    * ``"SO3"``: Haar-uniform rotations, from uniform unit quaternions (Shoemake 1992):
      :math:`q = (\sqrt{1-u_1}\sin 2\pi u_2, \sqrt{1-u_1}\cos 2\pi u_2, \sqrt{u_1}\sin 2\pi u_3,
      \sqrt{u_1}\cos 2\pi u_3)`;
    * ``"O3"``: an SO3 draw times :math:`-I` with probability 1/2 (Haar on O(3)).

    Example:
        >>> R = random_rotation_matrices(4, "O3", generator=torch.Generator().manual_seed(0))
        >>> R.shape, torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(4, 3, 3), atol=1e-6)
        (torch.Size([4, 3, 3]), True)
    """
    like = torch.empty(0, device=device)
    if protocol == "I":
        return torch.eye(3, dtype=dtype, device=device).expand(num, 3, 3).clone()
    if protocol == "up":
        protocol = up_axis
    if protocol in _AXES:
        a = 2 * math.pi * _uniform((num,), generator, like)
        c, s = torch.cos(a), torch.sin(a)
        R = torch.zeros(num, 3, 3, dtype=torch.float64, device=like.device)
        i = _AXES[protocol]
        j, k = (i + 1) % 3, (i + 2) % 3
        R[:, i, i] = 1.0
        R[:, j, j], R[:, j, k], R[:, k, j], R[:, k, k] = c, -s, s, c
        return R.to(dtype)
    if protocol not in ("SO3", "O3"):
        raise ValueError(f"protocol must be one of 'I', 'x', 'y', 'z', 'up', 'SO3', 'O3', got {protocol!r}")
    u = _uniform((num, 4 if protocol == "O3" else 3), generator, like)
    r1, r2 = torch.sqrt(1 - u[:, 0]), torch.sqrt(u[:, 0])
    t1, t2 = 2 * math.pi * u[:, 1], 2 * math.pi * u[:, 2]
    x, y, z, w = r1 * torch.sin(t1), r1 * torch.cos(t1), r2 * torch.sin(t2), r2 * torch.cos(t2)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(num, 3, 3)  # fmt: skip
    if protocol == "O3":
        R = R * torch.where(u[:, 3] < 0.5, -1.0, 1.0).to(R)[:, None, None]
    return R.to(dtype)


class Transform:
    """Base class: ``__call__(data, generator=None)`` returns a transformed copy."""

    def __call__(self, data, generator: torch.Generator | None = None):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order, passing ``generator`` to the equinets ones.

    Example:
        >>> from torch_geometric.data import Data
        >>> t = Compose([RandomRotate("z"), Jitter(0.01)])
        >>> t(Data(pos=torch.randn(5, 3)), torch.Generator().manual_seed(0)).pos.shape
        torch.Size([5, 3])
    """

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, data, generator: torch.Generator | None = None):
        for t in self.transforms:
            data = t(data, generator) if isinstance(t, Transform) else t(data)
        return data

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"


class RandomRotate(Transform):
    r"""Rotate each cloud about the origin by a random matrix of a protocol (``I``, ``z``, ``SO3``, ``O3``).

    ``pos`` and the 3-column attributes named in ``vector_keys`` (normals ``x``, ``normal``) are
    multiplied by the same matrix: :math:`p \mapsto R p`. ``protocol`` ``"z"`` (also ``"x"``,
    ``"y"``) rotates about that axis; ``"up"`` about ``up_axis``. See
    :func:`random_rotation_matrices`; ``self.sample(num, generator)`` draws the very matrices a
    call with that generator uses.

    Example:
        >>> from torch_geometric.data import Data
        >>> d = Data(pos=torch.randn(6, 3))
        >>> out = RandomRotate("z")(d, torch.Generator().manual_seed(0))
        >>> torch.allclose(out.pos[:, 2], d.pos[:, 2])
        True
    """

    def __init__(
        self, protocol: str = "SO3", up_axis: str = "z", vector_keys: Sequence[str] = ("x", "normal")
    ) -> None:
        if protocol not in _PROTOCOLS:
            raise ValueError(f"protocol must be one of {_PROTOCOLS}, got {protocol!r}")
        if up_axis not in _AXES:
            raise ValueError(f"up_axis must be 'x', 'y' or 'z', got {up_axis!r}")
        self.protocol, self.up_axis, self.vector_keys = protocol, up_axis, tuple(vector_keys)

    def sample(
        self, num: int, generator: torch.Generator | None = None, dtype=torch.float32, device=None
    ) -> Tensor:
        return random_rotation_matrices(
            num, self.protocol, self.up_axis, generator=generator, dtype=dtype, device=device
        )

    def __call__(self, data, generator: torch.Generator | None = None):
        out = copy.copy(data)
        if self.protocol == "I":
            return out
        batch, num = _graphs(data)
        R = self.sample(num, generator, dtype=data.pos.dtype, device=data.pos.device)
        Rp = R[batch] if num > 1 else R[0]
        for key in ["pos", *_vector_keys(data, self.vector_keys)]:
            v = data[key]
            Rv = Rp.to(v.dtype)
            out[key] = torch.einsum("nij,nj->ni", Rv, v) if num > 1 else v @ Rv.T
        return out


class Jitter(Transform):
    """Add clipped Gaussian noise ``clamp(sigma * N(0, 1), -clip, clip)`` to every coordinate of ``pos``.

    Example:
        >>> from torch_geometric.data import Data
        >>> d = Data(pos=torch.zeros(4, 3))
        >>> bool(Jitter(0.01, 0.02)(d).pos.abs().max() <= 0.02)
        True
    """

    def __init__(self, sigma: float = 0.01, clip: float = 0.05) -> None:
        if sigma < 0 or clip < 0:
            raise ValueError(f"sigma and clip must be >= 0, got sigma={sigma}, clip={clip}")
        self.sigma, self.clip = sigma, clip

    def __call__(self, data, generator: torch.Generator | None = None):
        out = copy.copy(data)
        noise = (self.sigma * _normal(data.pos.shape, generator, data.pos)).clamp(-self.clip, self.clip)
        out.pos = data.pos + noise.to(data.pos.dtype)
        return out


class RandomScale(Transform):
    r"""Scale each cloud by a factor drawn uniformly from ``[low, high)``, per axis if ``anisotropic``.

    ``pos`` :math:`\mapsto S p` with :math:`S = \mathrm{diag}(s)`; the normals named in
    ``normal_keys`` transform with the inverse transpose :math:`S^{-1} n` and are renormalised,
    so they stay normal to the scaled surface.

    Example:
        >>> from torch_geometric.data import Data
        >>> d = Data(pos=torch.ones(3, 3))
        >>> s = RandomScale(2.0, 2.0)(d).pos
        >>> s[0].tolist()
        [2.0, 2.0, 2.0]
    """

    def __init__(
        self,
        low: float = 2 / 3,
        high: float = 3 / 2,
        anisotropic: bool = True,
        normal_keys: Sequence[str] = ("x", "normal"),
    ) -> None:
        if not 0 < low <= high:
            raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
        self.low, self.high, self.anisotropic, self.normal_keys = low, high, anisotropic, tuple(normal_keys)

    def __call__(self, data, generator: torch.Generator | None = None):
        out = copy.copy(data)
        batch, num = _graphs(data)
        u = _uniform((num, 3 if self.anisotropic else 1), generator, data.pos)
        s = (self.low + (self.high - self.low) * u).to(data.pos.dtype).expand(num, 3)[batch]
        out.pos = data.pos * s
        for key in _vector_keys(data, self.normal_keys):
            n = data[key] / s.to(data[key].dtype)
            out[key] = n / n.norm(dim=1, keepdim=True).clamp_min(torch.finfo(n.dtype).tiny)
        return out


class RandomShift(Transform):
    """Translate each cloud by a vector drawn uniformly from ``[-max_shift, max_shift)^3``.

    Example:
        >>> from torch_geometric.data import Data
        >>> d = Data(pos=torch.zeros(2, 3))
        >>> bool(RandomShift(0.2)(d).pos.abs().max() <= 0.2)
        True
    """

    def __init__(self, max_shift: float = 0.2) -> None:
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = max_shift

    def __call__(self, data, generator: torch.Generator | None = None):
        out = copy.copy(data)
        batch, num = _graphs(data)
        t = self.max_shift * (2 * _uniform((num, 3), generator, data.pos) - 1)
        out.pos = data.pos + t.to(data.pos.dtype)[batch]
        return out


class RandomSubsample(Transform):
    """Keep ``num_points`` random points of each cloud (a uniform random subset, in random order).

    A cloud with fewer points repeats a random permutation of its points cyclically. Every
    point-level attribute (``pos``, ``x``, per-point ``y``, ``batch``...) is indexed alike; for a
    ``Batch``, ``batch``, ``ptr`` and the slice bookkeeping are rebuilt, so ``to_data_list`` works.
    Edges (``edge_index``) are not supported.

    Example:
        >>> from torch_geometric.data import Data
        >>> d = Data(pos=torch.randn(10, 3), y=torch.arange(10))
        >>> out = RandomSubsample(4)(d, torch.Generator().manual_seed(0))
        >>> out.pos.shape, bool((d.pos[out.y] == out.pos).all())
        (torch.Size([4, 3]), True)
    """

    def __init__(self, num_points: int) -> None:
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        self.num_points = num_points

    def __call__(self, data, generator: torch.Generator | None = None):
        if getattr(data, "edge_index", None) is not None:
            raise ValueError(
                "RandomSubsample does not support graphs with edge_index; subsample before building edges"
            )
        out = copy.copy(data)
        batch, num = _graphs(data)
        k = self.num_points
        keys = _uniform((data.pos.shape[0],), generator, data.pos)
        order = torch.argsort(batch.to(torch.float64) + keys)  # by cloud, then by random key
        counts = torch.bincount(batch, minlength=num)
        if bool((counts == 0).any()):
            raise ValueError("RandomSubsample: a cloud of the batch has no points")
        start = torch.cumsum(counts, 0) - counts
        r = torch.arange(k, device=batch.device)
        idx = order[(start[:, None] + r[None, :] % counts[:, None]).reshape(-1)]
        node_keys = [key for key in data.keys() if key not in ("batch", "ptr") and data.is_node_attr(key)]
        for key in node_keys:
            out[key] = data[key][idx]
        if getattr(data, "batch", None) is not None:
            out.batch = torch.arange(num, device=batch.device).repeat_interleave(k)
            new_ptr = torch.arange(num + 1, device=batch.device) * k
            if getattr(data, "ptr", None) is not None:
                out.ptr = new_ptr
            slices = getattr(data, "_slice_dict", None)
            if slices is not None:
                slices = dict(slices)
                for key in node_keys:
                    if key in slices:
                        slices[key] = new_ptr.to(slices[key].device)
                out._slice_dict = slices
        return out


#: Alias of :class:`RandomSubsample` (sampling points from a cloud, not from a mesh).
SamplePoints = RandomSubsample


class NormalizeUnitSphere(Transform):
    """Centre each cloud at its centroid and scale it so its largest point norm is 1.

    A cloud whose points all coincide is only centred (no division by zero). Normals are unchanged.

    Example:
        >>> from torch_geometric.data import Data
        >>> out = NormalizeUnitSphere()(Data(pos=torch.tensor([[1.0, 0, 0], [3.0, 0, 0]])))
        >>> out.pos.tolist()
        [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    """

    def __call__(self, data, generator: torch.Generator | None = None):
        out = copy.copy(data)
        batch, num = _graphs(data)
        pos = data.pos
        counts = torch.bincount(batch, minlength=num).clamp_min(1).to(pos.dtype)
        centre = torch.zeros(num, 3, dtype=pos.dtype, device=pos.device).index_add_(0, batch, pos)
        centre = centre / counts[:, None]
        p = pos - centre[batch]
        r = torch.zeros(num, dtype=pos.dtype, device=pos.device).scatter_reduce_(
            0, batch, p.norm(dim=1), reduce="amax", include_self=True
        )
        r = torch.where(r > 0, r, torch.ones_like(r))
        out.pos = p / r[batch, None]
        return out
