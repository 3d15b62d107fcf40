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
:class:`RandomRotate`'s ``protocol``; ``"z"`` means *about the up axis* of the data (``up_axis``,
the z axis by default; ModelNet40, ShapeNetPart and ScanObjectNN are y-up). A rotation turns the
physical object, so it must turn every geometric vector of an item, not only ``pos``: each
dataset declares its ``up_axis`` and its ``vector_keys`` (see
:class:`~equinets.data._base.PointCloudDataset`), and :meth:`RandomRotate.for_dataset` builds the
rotation that rotates exactly those.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .._checks import check_int

__all__ = [
    "Transform",
    "Compose",
    "RandomRotate",
    "Jitter",
    "RandomScale",
    "RandomShift",
    "RandomSubsample",
    "NormalizeUnitSphere",
    "random_rotation_matrices",
    "parse_vector_keys",
    "PROTOCOLS",
]

_AXES = {"x": 0, "y": 1, "z": 2}
#: The rotation protocols: identity, about the up axis, Haar on SO(3), Haar on O(3).
PROTOCOLS = ("I", "z", "SO3", "O3")


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


def _three_column_keys(data, keys: Sequence[str]) -> list[str]:
    """The keys of ``keys`` that ``data`` holds as ``(num_points, 3)`` tensors (RandomScale's normals)."""
    n = data.pos.shape[0]
    return [k for k in keys if isinstance(getattr(data, k, None), Tensor) and data[k].shape == (n, 3)]


#: One declared geometric vector: an item key and its three columns (``None``: the whole ``(rows, 3)`` tensor).
VectorKey = Tuple[str, Optional[slice]]


def _check_up_axis(up_axis, name: str = "up_axis") -> str:
    if not isinstance(up_axis, str) or up_axis not in _AXES:
        raise ValueError(f"{name} must be 'x', 'y' or 'z', got {up_axis!r}")
    return up_axis


def _check_protocol(protocol, name: str = "protocol") -> str:
    if isinstance(protocol, str) and protocol in PROTOCOLS:
        return protocol
    hint = ""
    if protocol in ("x", "y", "up"):  # the literal-axis protocols of earlier versions
        axis = "the up axis" if protocol == "up" else f"the {protocol} axis"
        hint = f"; 'z' rotates about up_axis: for {axis} pass protocol='z' and up_axis"
    raise ValueError(f"{name} must be one of {PROTOCOLS}, got {protocol!r}{hint}")


def parse_vector_keys(vector_keys, name: str = "vector_keys") -> tuple[VectorKey, ...]:
    """Check a declaration of geometric vector keys and return it as ``((key, columns), ...)``.

    Each entry is a key (``"pos"``: the whole tensor, which must have 3 columns) or a pair
    ``(key, slice(a, a + 3))``: the three columns ``a, a+1, a+2`` of a wider tensor (n-body's
    velocities inside ``x = [vel, charge]``). Slices are normalised to ``slice(a, a + 3)``; no
    two entries may share a column.

    Raises:
        TypeError / ValueError naming ``name`` and the entry, before any data is touched.

    Example:
        >>> parse_vector_keys(["pos", ("x", slice(0, 3))])
        (('pos', None), ('x', slice(0, 3, None)))
        >>> parse_vector_keys([("x", slice(2, 4))])
        Traceback (most recent call last):
        ...
        ValueError: vector_keys entry ('x', slice(2, 4, None)): the slice must select exactly 3 columns, got 2
    """
    if isinstance(vector_keys, (str, bytes)) or not isinstance(vector_keys, (list, tuple)):
        raise TypeError(
            f"{name} must be a list or tuple of keys or (key, slice) pairs, got {type(vector_keys).__name__} "
            f"{vector_keys!r}" + (f" (write ({vector_keys!r},) for one key)" if isinstance(vector_keys, str) else "")
        )
    out: list[VectorKey] = []
    for entry in vector_keys:
        if isinstance(entry, str):
            key, cols = entry, None
        elif isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str):
            key, cols = entry[0], entry[1]
        else:
            raise TypeError(f"{name} entry {entry!r} must be a key (str) or a (key, slice) pair")
        if not key:
            raise ValueError(f"{name} entry {entry!r}: the key is empty")
        if cols is not None:
            if not isinstance(cols, slice):
                raise TypeError(f"{name} entry {entry!r}: columns must be a slice or None, got {type(cols).__name__}")
            start = 0 if cols.start is None else cols.start
            ok = all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (cols.start, cols.stop))
            if not ok or cols.stop is None or cols.step not in (None, 1) or start < 0:
                raise ValueError(f"{name} entry {entry!r}: the slice must be slice(a, a + 3) with integers a >= 0 "
                                 f"and step 1")
            if cols.stop - start != 3:
                raise ValueError(f"{name} entry {entry!r}: the slice must select exactly 3 columns, "
                                 f"got {cols.stop - start}")
            cols = slice(start, start + 3)
        for k, c in out:
            if k == key and (c is None or cols is None or (c.start < cols.stop and cols.start < c.stop)):
                raise ValueError(f"{name}: key {key!r} is declared more than once with shared columns "
                                 f"({c!r} and {cols!r}); it would be rotated twice")
        out.append((key, cols))
    return tuple(out)


def _format_vector_key(key: str, cols: slice | None) -> str:
    return key if cols is None else f"{key}[:, {cols.start}:{cols.stop}]"


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
    * ``"z"``: rotation by a uniform angle about the up axis ``up_axis`` (``"x"``, ``"y"`` or
      ``"z"``), :math:`R e_{up} = e_{up}`;
    * ``"SO3"``: Haar-uniform rotations, from uniform unit quaternions (Shoemake 1992):
      :math:`q = (\sqrt{1-u_1}\sin 2\pi u_2, \sqrt{1-u_1}\cos 2\pi u_2, \sqrt{u_1}\sin 2\pi u_3,
      \sqrt{u_1}\cos 2\pi u_3)`;
    * ``"O3"``: an SO3 draw times :math:`-I` with probability 1/2 (Haar on O(3)).

    The matrices are computed in float64 and then cast to ``dtype``.

    Example:
        >>> R = random_rotation_matrices(4, "O3", generator=torch.Generator().manual_seed(0))
        >>> R.shape, torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(4, 3, 3), atol=1e-6)
        (torch.Size([4, 3, 3]), True)
        >>> R = random_rotation_matrices(2, "z", "y", dtype=torch.float64)
        >>> R[:, :, 1].tolist()  # the y axis is fixed
        [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
    """
    num = check_int(num, "num", 0)
    _check_protocol(protocol)
    _check_up_axis(up_axis)
    like = torch.empty(0, device=device)
    if protocol == "I":
        return torch.eye(3, dtype=dtype, device=device).expand(num, 3, 3).clone()
    if protocol == "z":
        a = 2 * math.pi * _uniform((num,), generator, like)
        c, s = torch.cos(a), torch.sin(a)
        R = torch.zeros(num, 3, 3, dtype=torch.float64, device=like.device)
        i = _AXES[up_axis]
        j, k = (i + 1) % 3, (i + 2) % 3
        R[:, i, i] = 1.0
        R[:, j, j], R[:, j, k], R[:, k, j], R[:, k, k] = c, -s, s, c
        return R.to(dtype)
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

    Every declared geometric vector :math:`v` of the item becomes :math:`R v`, with one matrix
    :math:`R` per cloud (:func:`random_rotation_matrices`): positions and position-type targets
    (rotation about the origin, :math:`p \mapsto R p`) and direction-type keys (normals,
    velocities) alike, so the result is the item of the rotated physical object; normals stay unit
    and stay on their rows. Nothing else is touched (scalars such as charges, labels, per-axis
    extents, ``edge_attr``...).

    Args:
        protocol: ``"I"`` (identity), ``"z"`` (a uniform angle about ``up_axis``), ``"SO3"``
            (Haar) or ``"O3"`` (Haar on O(3), reflections included).
        up_axis: the axis ``"z"`` rotates about: ``"x"``, ``"y"`` or ``"z"``. Use the dataset's
            (:meth:`for_dataset`): ModelNet40, ShapeNetPart and ScanObjectNN are y-up.
        vector_keys: the keys to rotate (:func:`parse_vector_keys`): a key whose tensor is
            ``(rows, 3)``, or ``(key, slice(a, a + 3))`` for three columns of a wider tensor.
            It must include ``"pos"`` (rotating an object moves its points). Every declared key
            must be present in each item; its rows may be per point or per cloud (in a ``Batch``
            the rows are assigned to clouds by the collation's slices). ``None`` (default): the
            point-cloud convention of the library, ``pos`` and, when the item has one, ``x`` read
            as unit normals, which must then be ``(N, 3)``: any other ``x`` is an error, not
            silently left alone. A dataset's own declaration: :meth:`for_dataset`.

    ``self.sample(num, generator)`` draws the very matrices a call with that generator uses. On a
    ``Batch`` the matrices are drawn in one call, in the order of the clouds.

    Shapes:
        declared tensors ``(rows, C)``, rotated in place of their columns; dtype and device kept.

    Example:
        >>> from torch_geometric.data import Data
        >>> d = Data(pos=torch.randn(6, 3), x=torch.nn.functional.normalize(torch.randn(6, 3), dim=1))
        >>> out = RandomRotate("z", up_axis="y", vector_keys=("pos", "x"))(d, torch.Generator().manual_seed(0))
        >>> torch.allclose(out.pos[:, 1], d.pos[:, 1]), torch.allclose(out.x.norm(dim=1), torch.ones(6))
        (True, True)
        >>> nb = Data(pos=torch.randn(5, 3), x=torch.randn(5, 4))  # x = [velocity, charge]
        >>> t = RandomRotate("SO3", vector_keys=("pos", ("x", slice(0, 3))))
        >>> R = t.sample(1, torch.Generator().manual_seed(1))[0]
        >>> out = t(nb, torch.Generator().manual_seed(1))
        >>> torch.allclose(out.x[:, :3], nb.x[:, :3] @ R.T), torch.equal(out.x[:, 3], nb.x[:, 3])
        (True, True)
    """

    def __init__(
        self, protocol: str = "SO3", up_axis: str = "z", vector_keys: Sequence | None = None
    ) -> None:
        self.protocol = _check_protocol(protocol)
        self.up_axis = _check_up_axis(up_axis)
        self.vector_keys = None if vector_keys is None else parse_vector_keys(vector_keys)
        if self.vector_keys is not None and all(key != "pos" for key, _ in self.vector_keys):
            raise ValueError(f"vector_keys must declare 'pos' (a rotation of the object moves its points), got "
                             f"{vector_keys!r}")

    @classmethod
    def for_dataset(cls, protocol: str, dataset, up_axis: str | None = None) -> RandomRotate:
        """The rotation of ``protocol`` for ``dataset``'s items: about its up axis, rotating its vector keys.

        ``up_axis`` overrides the dataset's ``up_axis`` (``None``: the dataset's), as the config
        key of the same name does.

        Example:
            >>> from equinets.data import NBody
            >>> t = RandomRotate.for_dataset("z", NBody, up_axis="y")
            >>> t.up_axis, [key for key, _ in t.vector_keys], t.vector_keys[2]
            ('y', ['pos', 'vel', 'x', 'y'], ('x', slice(0, 3, None)))
        """
        declared_up = getattr(dataset, "up_axis", None)
        keys = getattr(dataset, "vector_keys", None)
        name = getattr(dataset, "__name__", type(dataset).__name__)
        if isinstance(keys, property):
            raise TypeError(f"dataset {name}'s vector_keys depend on its files (normals present or not): pass a "
                            f"dataset instance, not the class, e.g. RandomRotate.for_dataset({protocol!r}, ds)")
        if keys is None:
            raise ValueError(f"dataset {name} declares no vector_keys (the item keys that are geometric vectors); "
                             "add the class attribute, e.g. vector_keys = ('pos',)")
        if up_axis is None:
            if declared_up is None:
                raise ValueError(f"dataset {name} declares no up_axis; add the class attribute or pass up_axis")
            _check_up_axis(declared_up, f"{name}.up_axis")
            up_axis = declared_up
        return cls(protocol, up_axis=up_axis, vector_keys=keys)

    def sample(
        self, num: int, generator: torch.Generator | None = None, dtype=torch.float32, device=None
    ) -> Tensor:
        """The ``(num, 3, 3)`` matrices a call with ``generator`` applies to ``num`` clouds."""
        return random_rotation_matrices(
            num, self.protocol, self.up_axis, generator=generator, dtype=dtype, device=device
        )

    def _declared(self, data) -> list[tuple[str, slice | None, Tensor]]:
        """The declared tensors of ``data``, each checked against its declaration."""
        out = []
        default = self.vector_keys is None
        keys = self.vector_keys
        if default:
            keys = (("pos", None),) + ((("x", None),) if isinstance(getattr(data, "x", None), Tensor) else ())
        for key, cols in keys:
            what = _format_vector_key(key, cols)
            v = data[key] if key in data else None
            if not isinstance(v, Tensor):
                have = sorted(k for k in data.keys() if isinstance(data[k], Tensor))
                raise ValueError(f"vector_keys: the item has no tensor {key!r} (declared {what}); its tensors are "
                                 f"{have}")
            if not v.is_floating_point():
                raise ValueError(f"vector_keys: {what} must be a floating-point tensor, got dtype {v.dtype}")
            if v.dim() != 2:
                raise ValueError(f"vector_keys: {what} must be a 2-D (rows, columns) tensor, got shape "
                                 f"{tuple(v.shape)}")
            if cols is None and v.shape[1] != 3:
                hint = (" (the default vector_keys=None reads x as (N, 3) normals; pass the item's vector keys, "
                        "e.g. RandomRotate.for_dataset(protocol, dataset))") if default else ""
                raise ValueError(f"vector_keys: {key!r} must have 3 columns to be rotated whole, got shape "
                                 f"{tuple(v.shape)}; declare its vector columns as ({key!r}, slice(a, a + 3))"
                                 f"{hint}")
            if cols is not None and cols.stop > v.shape[1]:
                raise ValueError(f"vector_keys: column slice {what} is out of range for {key!r} of shape "
                                 f"{tuple(v.shape)}")
            out.append((key, cols, v))
        return out

    @staticmethod
    def _row_clouds(data, key: str, rows: int, batch: Tensor | None, num: int) -> Tensor | None:
        """The cloud of each row of ``data[key]`` (``None``: one cloud)."""
        if batch is None or num == 1:
            return None
        slices = getattr(data, "_slice_dict", None)
        if slices is not None and key in slices:
            counts = slices[key].diff().to(batch.device)
            if int(counts.sum()) == rows and counts.numel() == num:
                return torch.arange(num, device=batch.device).repeat_interleave(counts)
        if rows == batch.numel():
            return batch
        if rows == num:
            return torch.arange(num, device=batch.device)
        raise ValueError(f"vector_keys: {key!r} has {rows} rows, neither one per point ({batch.numel()}) nor one "
                         f"per cloud ({num}), so its rows cannot be assigned to clouds")

    def __call__(self, data, generator: torch.Generator | None = None):
        declared = self._declared(data)
        out = copy.copy(data)
        if self.protocol == "I" or not declared:
            return out
        batch = getattr(data, "batch", None)
        if batch is None:
            num = 1
        else:
            num = getattr(data, "num_graphs", None)
            num = int(num) if num is not None else int(batch.max()) + 1 if batch.numel() else 0
        device = declared[0][2].device
        R = self.sample(num, generator, dtype=torch.float64, device=device)
        new: dict[str, Tensor] = {}
        for key, cols, v in declared:
            Rv = R.to(v.dtype)
            w = v if cols is None else v[:, cols]
            clouds = self._row_clouds(data, key, v.shape[0], batch, num)
            Rw = w @ Rv[0].T if clouds is None else torch.einsum("nij,nj->ni", Rv[clouds], w)
            if cols is None:
                new[key] = Rw
            else:
                t = new.get(key)
                if t is None:
                    t = new[key] = v.clone()
                t[:, cols] = Rw
        for key, t in new.items():
            out[key] = t
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
        for key in _three_column_keys(data, self.normal_keys):
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
