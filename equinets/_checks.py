"""Input validation and layout conversion shared by every module of equinets.

One place turns the three accepted point layouts into one:

* flat PyG-style ``pos`` ``(N, 3)`` with optional ``x`` ``(N, C)`` and ``batch`` ``(N,)``;
* dense ``pos`` ``(B, N, 3)`` with optional ``x`` ``(B, N, C)``;
* a :class:`torch_geometric.data.Data` / ``Batch`` in place of ``pos``.

Every error names the argument, what was expected and what came.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["PointInput", "as_points", "check_finite", "restore_layout", "check_labels", "check_int", "check_batch",
           "check_edge_index", "check_dtype", "check_batchnorm_batch", "check_channels", "GraphInput",
           "as_graph"]


class PointInput(NamedTuple):
    """Flat view of a (possibly batched, possibly dense) point cloud.

    Attributes:
        pos: ``(N, 3)`` positions.
        x: ``(N, C)`` features or ``None``.
        batch: ``(N,)`` long graph ids, sorted, every id in ``[0, num_graphs)`` present.
        num_graphs: number of clouds ``B``.
        dense: ``(B, N_per_cloud)`` when the input was dense, else ``None``.
    """

    pos: Tensor
    x: Tensor | None
    batch: Tensor
    num_graphs: int
    dense: tuple[int, int] | None


def check_finite(t: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``t`` holds NaN or Inf, saying how many and where the first is.

    >>> check_finite(torch.zeros(2, 3), "pos")
    >>> check_finite(torch.tensor([[0.0, float("nan"), 0.0]]), "pos")
    Traceback (most recent call last):
    ...
    ValueError: pos must be finite, but 1 entry is NaN or Inf (first at index (0, 1))
    """
    if t.is_floating_point() or t.is_complex():
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            n = int(bad.sum())
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"{name} must be finite, but {n} entr{'y is' if n == 1 else 'ies are'} NaN or Inf "
                f"(first at index {first})"
            )


def as_points(pos, x: Tensor | None = None, batch: Tensor | None = None, *, check: bool = True) -> PointInput:
    """Validate a point cloud and return its flat layout.

    Args:
        pos: ``(N, 3)``, ``(B, N, 3)`` float tensor, or a ``Data``/``Batch`` with ``pos``
            (then ``x`` and ``batch`` are read from it unless given).
        x: optional features ``(N, C)`` or ``(B, N, C)``.
        batch: optional ``(N,)`` sorted graph ids for flat input (absent = one cloud).
        check: also check that positions and features are finite (a device sync).

    Returns:
        :class:`PointInput` with flat tensors.

    Example:
        >>> p = as_points(torch.randn(2, 5, 3))
        >>> p.pos.shape, p.batch.tolist(), p.num_graphs, p.dense
        (torch.Size([10, 3]), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1], 2, (2, 5))
        >>> as_points(torch.randn(4, 2))
        Traceback (most recent call last):
        ...
        ValueError: pos must have shape (N, 3) or (B, N, 3), got (4, 2)
    """
    if hasattr(pos, "pos") and not isinstance(pos, Tensor):  # PyG Data / Batch
        data = pos
        pos = data.pos
        if x is None:
            x = getattr(data, "x", None)
        if batch is None:
            batch = getattr(data, "batch", None)
        if pos is None:
            raise ValueError("the Data object has no 'pos' attribute; equinets needs point positions")
    if not isinstance(pos, Tensor):
        raise TypeError(f"pos must be a torch.Tensor or a torch_geometric Data, got {type(pos).__name__}")
    if not pos.is_floating_point():
        raise TypeError(f"pos must be a floating-point tensor, got dtype {pos.dtype}")
    if pos.dim() not in (2, 3) or pos.shape[-1] != 3:
        raise ValueError(f"pos must have shape (N, 3) or (B, N, 3), got {tuple(pos.shape)}")
    dense = None
    if pos.dim() == 3:
        if batch is not None:
            raise ValueError("batch must be None for dense pos of shape (B, N, 3); the batch is the first axis")
        B, N, _ = pos.shape
        if B == 0 or N == 0:
            raise ValueError(f"pos is empty: got shape {tuple(pos.shape)}; every cloud needs at least one point")
        if x is not None:
            if x.dim() != 3 or x.shape[:2] != pos.shape[:2]:
                raise ValueError(
                    f"x must have shape (B, N, C) = ({B}, {N}, C) to match dense pos, got {tuple(x.shape)}"
                )
            x = x.reshape(B * N, x.shape[-1])
        pos = pos.reshape(B * N, 3)
        batch = torch.arange(B, device=pos.device).repeat_interleave(N)
        dense = (B, N)
        num_graphs = B
    else:
        N = pos.shape[0]
        if N == 0:
            raise ValueError("pos is empty: got shape (0, 3); a cloud needs at least one point")
        if x is not None:
            if x.dim() == 1:
                x = x.unsqueeze(-1)
            if x.dim() != 2 or x.shape[0] != N:
                raise ValueError(f"x must have shape (N, C) with N = {N} to match pos, got {tuple(x.shape)}")
        if batch is None:
            batch = torch.zeros(N, dtype=torch.long, device=pos.device)
            num_graphs = 1
        else:
            batch = check_batch(batch, N, of="pos", values=check)
            num_graphs = int(batch[-1]) + 1
            if check:
                counts = torch.bincount(batch, minlength=num_graphs)
                if bool((counts == 0).any()):
                    empty = int((counts == 0).nonzero()[0])
                    raise ValueError(f"cloud {empty} of the batch is empty (no point has batch == {empty})")
    if check:
        check_finite(pos, "pos")
        if x is not None:
            check_finite(x, "x")
    return PointInput(pos, x, batch, num_graphs, dense)


def restore_layout(out: Tensor, inp: PointInput, *, per_point: bool) -> Tensor:
    """Give a flat output the input's layout: ``(N, C)`` -> ``(B, N, C)`` for dense point-level input.

    Cloud-level outputs ``(B, C)`` are the same in both layouts.
    """
    if per_point and inp.dense is not None:
        B, N = inp.dense
        return out.reshape(B, N, *out.shape[1:])
    return out


def check_labels(y: Tensor, num_classes: int, name: str = "y") -> None:
    """Raise ``ValueError`` unless every label is an integer in ``[0, num_classes)``.

    >>> check_labels(torch.tensor([0, 2]), 3)
    >>> check_labels(torch.tensor([0, 3]), 3)
    Traceback (most recent call last):
    ...
    ValueError: y must hold class ids in [0, 3), got values in [0, 3]
    """
    if y.is_floating_point():
        raise TypeError(f"{name} must be an integer tensor of class ids, got dtype {y.dtype}")
    if y.numel() == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{name} must hold class ids in [0, {num_classes}), got values in [{lo}, {hi}]")


def check_int(value, name: str, minimum: int | None = None, *, allow_none: bool = False):
    """Return ``value`` if it is a Python (or NumPy / 0-d tensor) integer ``>= minimum``, else raise.

    Booleans are refused (``True`` is not a count). ``allow_none`` lets ``None`` through unchanged.

    >>> check_int(3, "k", 1)
    3
    >>> check_int(0, "k", 1)
    Traceback (most recent call last):
    ...
    ValueError: k must be an integer >= 1, got 0
    >>> check_int(2.5, "num_points")
    Traceback (most recent call last):
    ...
    TypeError: num_points must be an integer, got float 2.5
    """
    import numbers

    if value is None and allow_none:
        return None
    if isinstance(value, Tensor) and value.dim() == 0 and not value.is_floating_point() and value.dtype != torch.bool:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "None or an integer" if allow_none else "an integer"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_batch(batch, n: int, name: str = "batch", *, of: str = "pos", values: bool = True) -> Tensor:
    """Validate a PyG ``batch`` vector of ``n`` sorted, non-negative graph ids; return it as ``long``.

    ``values=False`` skips the checks that read the values (negative ids, order): no device sync.

    >>> check_batch(torch.tensor([0, 0, 1]), 3).tolist()
    [0, 0, 1]
    >>> check_batch(torch.tensor([1, 0]), 2)
    Traceback (most recent call last):
    ...
    ValueError: batch must be sorted (non-decreasing graph ids), as PyG's collation makes it
    >>> check_batch(torch.tensor([0.0, 1.0]), 2)
    Traceback (most recent call last):
    ...
    TypeError: batch must be an integer tensor of graph ids, got torch.float32
    """
    if not isinstance(batch, Tensor) or batch.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        got = batch.dtype if isinstance(batch, Tensor) else type(batch).__name__
        raise TypeError(f"{name} must be an integer tensor of graph ids, got {got}")
    if batch.dim() != 1 or batch.shape[0] != n:
        raise ValueError(f"{name} must have shape (N,) = ({n},) to match {of}, got {tuple(batch.shape)}")
    batch = batch.long()
    if values and n > 0:
        if bool((batch < 0).any()):
            raise ValueError(f"{name} must hold graph ids >= 0, got a negative id")
        if n > 1 and bool((batch[1:] < batch[:-1]).any()):
            raise ValueError(f"{name} must be sorted (non-decreasing graph ids), as PyG's collation makes it")
    return batch


def check_edge_index(edge_index, num_nodes: int, name: str = "edge_index") -> Tensor:
    """Validate a PyG ``edge_index`` ``(2, E)`` of integer node ids in ``[0, num_nodes)``; return it as ``long``.

    Row 0 holds the sources ``j``, row 1 the targets ``i`` (PyG's order; not checked, only the ids are).

    >>> check_edge_index(torch.tensor([[0, 1], [1, 0]]), 2).shape
    torch.Size([2, 2])
    >>> check_edge_index(torch.tensor([[0, 2], [1, 0]]), 2)
    Traceback (most recent call last):
    ...
    ValueError: edge_index must hold node ids in [0, 2), got values in [0, 2]
    >>> check_edge_index(torch.zeros(3, 4, dtype=torch.long), 2)
    Traceback (most recent call last):
    ...
    ValueError: edge_index must have shape (2, E), got (3, 4)
    """
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (2, E), got {type(edge_index).__name__}")
    if edge_index.is_floating_point() or edge_index.is_complex() or edge_index.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of node ids, got dtype {edge_index.dtype}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"{name} must have shape (2, E), got {tuple(edge_index.shape)}")
    edge_index = edge_index.long()
    if edge_index.numel():
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"{name} must hold node ids in [0, {num_nodes}), got values in [{lo}, {hi}]")
    return edge_index


def check_dtype(t: Tensor, module, name: str) -> None:
    """Raise ``TypeError`` if floating tensor ``t`` and ``module``'s parameters differ in dtype, naming the fix.

    >>> check_dtype(torch.zeros(2, 3), torch.nn.Linear(3, 1), "pos")
    >>> check_dtype(torch.zeros(2, 3, dtype=torch.float64), torch.nn.Linear(3, 1), "pos")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: pos has dtype torch.float64 but the model's parameters are torch.float32; convert one of them ...
    """
    param = next((p for p in module.parameters() if p.is_floating_point()), None)
    if param is None or t is None or not t.is_floating_point() or t.dtype == param.dtype:
        return
    raise TypeError(
        f"{name} has dtype {t.dtype} but the model's parameters are {param.dtype}; convert one of them "
        f"({name}.to({param.dtype}) or model.to({t.dtype}))"
    )


def check_batchnorm_batch(module, num_rows: int, what: str = "clouds") -> None:
    """Raise ``ValueError`` when a module with BatchNorm in training mode gets a batch of one (cloud or node).

    BatchNorm cannot estimate a variance from a single value per channel; the cause is a batch with one
    cloud (cloud-level BatchNorm) in ``train()`` mode.

    >>> check_batchnorm_batch(torch.nn.BatchNorm1d(4), 2)
    >>> check_batchnorm_batch(torch.nn.BatchNorm1d(4), 1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the batch holds 1 cloud, but the model's BatchNorm layers are in training mode and need at least 2 ...
    """
    if num_rows >= 2 or not module.training:
        return
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training for m in module.modules()):
        one = what[:-1] if num_rows == 1 and what.endswith("s") else what
        raise ValueError(
            f"the batch holds {num_rows} {one}, but the model's BatchNorm layers are in training mode and need at "
            f"least 2 {what} to normalise over: use a batch of >= 2 {what}, or call model.eval() for inference"
        )


def check_bool(value, name: str) -> bool:
    """Return ``value`` if it is a ``bool``, else raise ``TypeError`` naming ``name`` (``"false"`` or 0 is not one).

    >>> check_bool(True, "norm")
    True
    >>> check_bool("false", "norm")
    Traceback (most recent call last):
    ...
    TypeError: norm must be a bool, got str 'false'
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_choice(value, name: str, choices):
    """Return ``value`` if it is one of the strings ``choices``, else raise naming them all.

    Non-strings raise ``TypeError`` (a list is not silently searched); unknown strings ``ValueError``.

    >>> check_choice("test", "split", ("train", "test"))
    'test'
    >>> check_choice("val", "split", ("train", "test"))
    Traceback (most recent call last):
    ...
    ValueError: split must be one of 'train', 'test', got 'val'
    """
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {', '.join(map(repr, choices))}, got {type(value).__name__} "
                        f"{value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_real(value, name: str, minimum: float | None = None) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number ``>= minimum``, else raise naming ``name``.

    Booleans and strings are refused (``TypeError``); NaN, Inf and values below ``minimum`` raise ``ValueError``.

    >>> check_real(0.5, "noise", 0.0)
    0.5
    >>> check_real(-1, "noise", 0.0)
    Traceback (most recent call last):
    ...
    ValueError: noise must be a finite number >= 0.0, got -1
    >>> check_real("0.1", "noise")
    Traceback (most recent call last):
    ...
    TypeError: noise must be a real number, got str '0.1'
    """
    import math
    import numbers

    if isinstance(value, Tensor) and value.dim() == 0 and value.dtype != torch.bool and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def check_channels(x, in_channels: int, name: str = "x") -> None:
    """Raise unless ``x`` fits a model built with ``in_channels`` feature columns (``None`` when 0).

    The one feature-width check of the point and graph models; ``x`` is ``(N, C)`` (flat layout).

    >>> check_channels(torch.zeros(5, 4), 4)
    >>> check_channels(torch.zeros(5, 3), 4)
    Traceback (most recent call last):
    ...
    ValueError: x must have in_channels = 4 columns, got 3 (x of shape (5, 3))
    >>> check_channels(None, 4)
    Traceback (most recent call last):
    ...
    ValueError: x is required: the model was built with in_channels=4
    """
    if in_channels == 0:
        if x is not None:
            c = x.shape[-1] if isinstance(x, Tensor) and x.dim() else 0
            raise ValueError(f"{name} must be None for a model built with in_channels=0, got {name} with {c} columns "
                             f"(build the model with in_channels={c} to use it)")
        return
    if x is None:
        raise ValueError(f"{name} is required: the model was built with in_channels={in_channels}")
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, {in_channels}), got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != in_channels:
        got = x.shape[1] if x.dim() == 2 else f"a {x.dim()}-d tensor"
        raise ValueError(f"{name} must have in_channels = {in_channels} columns, got {got} "
                         f"({name} of shape {tuple(x.shape)})")


class GraphInput(NamedTuple):
    """A validated PyG graph batch (see :func:`as_graph`).

    Attributes:
        x: ``(N, C)`` node features or ``None``.
        edge_index: ``(2, E)`` long, row 0 source ``j``, row 1 target ``i``, ids in ``[0, N)``.
        batch: ``(N,)`` long sorted graph ids.
        num_nodes: ``N``.
        num_graphs: ``B = batch[-1] + 1`` (1 without ``batch``).
    """

    x: Tensor | None
    edge_index: Tensor
    batch: Tensor
    num_nodes: int
    num_graphs: int


def as_graph(x, edge_index, batch: Tensor | None = None, *, num_nodes: int | None = None) -> GraphInput:
    """Validate a PyG graph batch ``(x, edge_index, batch)``, the graph counterpart of :func:`as_points`.

    ``x`` ``(N, C)`` floating and finite (or ``None``, then ``N`` comes from ``batch`` or ``num_nodes``);
    ``edge_index`` ``(2, E)`` integer ids in ``[0, N)`` (:func:`check_edge_index`); ``batch`` ``(N,)``
    sorted (:func:`check_batch`); no edge between two graphs.

    >>> g = as_graph(torch.ones(3, 1), torch.tensor([[0, 1], [1, 0]]), torch.tensor([0, 0, 1]))
    >>> g.num_nodes, g.num_graphs
    (3, 2)
    >>> as_graph(torch.ones(3, 1), torch.tensor([[0, 2], [2, 0]]), torch.tensor([0, 0, 1]))
    Traceback (most recent call last):
    ...
    ValueError: edge_index must connect nodes of the same graph, got edge 0 from node 0 (graph 0) to node 2 (graph 1)
    """
    if x is not None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape (N, C) or None, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor of node features, got dtype {x.dtype}")
        if x.dim() != 2:
            raise ValueError(f"x must have shape (N, C), got {tuple(x.shape)}")
        n, of = x.shape[0], "x"
        if num_nodes is not None and check_int(num_nodes, "num_nodes", 0) != n:
            raise ValueError(f"num_nodes must equal the rows of x ({n}), got {num_nodes}")
    elif num_nodes is not None:
        n, of = check_int(num_nodes, "num_nodes", 0), "num_nodes"
    elif batch is not None:
        n, of = (batch.shape[0] if isinstance(batch, Tensor) and batch.dim() else 0), "batch"
    else:
        raise ValueError("pass x, batch or num_nodes so that the number of nodes is known")
    if batch is None:
        dev = x.device if x is not None else (edge_index.device if isinstance(edge_index, Tensor) else None)
        batch = torch.zeros(n, dtype=torch.long, device=dev)
        num_graphs = 1
    else:
        batch = check_batch(batch, n, of=of)
        num_graphs = int(batch[-1]) + 1 if n else 0
    edge_index = check_edge_index(edge_index, n)
    if edge_index.numel() and num_graphs > 1:
        cross = batch[edge_index[0]] != batch[edge_index[1]]
        if bool(cross.any()):
            e = int(cross.nonzero()[0])
            j, i = int(edge_index[0, e]), int(edge_index[1, e])
            raise ValueError(f"edge_index must connect nodes of the same graph, got edge {e} from node {j} "
                             f"(graph {int(batch[j])}) to node {i} (graph {int(batch[i])})")
    if x is not None:
        check_finite(x, "x")
    return GraphInput(x, edge_index, batch, n, num_graphs)
