"""Shared plumbing of the point backbones: argument checks, input layout, category one-hot, heads."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import (
    PointInput,
    as_points,
    check_batchnorm_batch,
    check_channels,
    check_choice,
    check_dtype,
    check_int,
    check_labels,
    check_real,
    restore_layout,
)

__all__ = ["PointBackbone", "mlp_layers", "check_widths", "check_particle_model", "TASKS"]

#: the task vocabulary of every model of equinets: one row per cloud (graph), or one row per point (node)
TASKS = ("cls", "seg")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DDP / DataParallel / ``torch.compile`` wrappers (any nesting).

    >>> lin = nn.Linear(2, 2)
    >>> unwrap_model(nn.DataParallel(lin)) is lin
    True
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def mlp_layers(
    channels: list[int] | tuple[int, ...],
    *,
    act: type[nn.Module] | None = None,
    dropout: float = 0.0,
) -> list[nn.Module]:
    """``[Linear, BatchNorm1d, act, (Dropout)]`` for each consecutive pair of ``channels``.

    The linear layers have no bias (the batch norm that follows has one).

    >>> [type(m).__name__ for m in mlp_layers([3, 8, 4], dropout=0.5)]
    ['Linear', 'BatchNorm1d', 'ReLU', 'Dropout', 'Linear', 'BatchNorm1d', 'ReLU', 'Dropout']
    """
    act = act or nn.ReLU
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Linear(c_in, c_out, bias=False), nn.BatchNorm1d(c_out), act()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


def check_particle_model(model: str, in_channels, out_channels, task, num_vectors) -> tuple[int, int, int]:
    """The contract of the particle (n-body) models ``FAGNN`` and ``SEGNN``: validated ``(in_channels,
    out_channels, num_vectors)``.

    ``x`` holds ``num_vectors`` 3-vectors (velocities...) then scalars (charges...); ``num_vectors=None`` means
    one vector when ``in_channels >= 3``. Outputs are per particle (``task="seg"``) and are 3-vectors.

    >>> check_particle_model("FAGNN", 4, 3, "seg", None)
    (4, 3, 1)
    >>> check_particle_model("FAGNN", 4, 4, "seg", None)
    Traceback (most recent call last):
    ...
    ValueError: out_channels must be a multiple of 3 (vector outputs, 1o), got 4
    """
    in_channels = check_int(in_channels, "in_channels", 0)
    out_channels = check_int(out_channels, "out_channels", 1)
    if task != "seg":
        raise ValueError(f"{model} predicts one output per particle: task must be 'seg', got {task!r}")
    if out_channels % 3:
        raise ValueError(f"out_channels must be a multiple of 3 (vector outputs, 1o), got {out_channels}")
    if num_vectors is None:
        num_vectors = 1 if in_channels >= 3 else 0
    if check_int(num_vectors, "num_vectors", 0) * 3 > in_channels:
        raise ValueError(f"num_vectors must be an integer with 0 <= 3 * num_vectors <= in_channels = {in_channels}, "
                         f"got {num_vectors!r}")
    return in_channels, out_channels, num_vectors


def check_widths(value, name: str) -> tuple[int, ...]:
    """Layer widths given as a sequence of positive integers, as a tuple; else an error naming ``name``.

    >>> check_widths([64, 128], "hidden_channels")
    (64, 128)
    >>> check_widths(64, "hidden_channels")
    Traceback (most recent call last):
    ...
    TypeError: hidden_channels must be a sequence of layer widths such as (64, 128), got int 64
    """
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of layer widths such as (64, 128), got "
                        f"{type(value).__name__} {value!r}")
    return tuple(check_int(c, f"every entry of {name}", 1) for c in value)


class PointBackbone(nn.Module):
    """Base class of the point backbones: validates the common constructor arguments and inputs.

    Subclasses build their layers after ``super().__init__`` and implement ``_forward(inp, h, onehot)``
    on flat tensors, where ``h = [pos, x]`` is ``(N, 3 + in_channels)`` and ``onehot`` is the
    ``(B, num_categories)`` category one-hot or ``None``. Subclasses whose BatchNorm layers act on one
    row per cloud list those modules in ``_cloud_level_modules``, so that a batch of one cloud in
    training mode is refused at entry.
    """

    def __init__(
        self, in_channels: int, out_channels: int, task: str, num_categories: int, dropout: float
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 0)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self.task = check_choice(task, "task", TASKS)
        self.num_categories = check_int(num_categories, "num_categories", 0)
        if self.num_categories and task != "seg":
            raise ValueError(
                f"num_categories is used by task='seg' only (category one-hot of part segmentation), "
                f"got num_categories={num_categories} with task={task!r}"
            )
        if not check_real(dropout, "dropout", 0.0) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)

    # -- inputs -------------------------------------------------------------------------------
    def _cloud_level_modules(self) -> list[nn.Module]:
        """Modules that see one row per cloud (their BatchNorm needs >= 2 clouds in training)."""
        return []

    def _prepare(self, pos, x, batch, category) -> tuple[PointInput, Tensor, Tensor | None]:
        """Validate every input before any work: layout, values, widths, dtypes, batch-norm batch size."""
        inp = as_points(pos, x, batch)
        x = inp.x
        check_channels(x, self.in_channels)
        check_dtype(inp.pos, self, "pos")
        if x is not None and x.is_floating_point():
            check_dtype(x, self, "x")
        check_batchnorm_batch(self, inp.pos.shape[0], "points")
        for m in self._cloud_level_modules():
            check_batchnorm_batch(m, inp.num_graphs, "clouds")
        h = inp.pos if x is None else torch.cat([inp.pos, x.to(inp.pos.dtype)], dim=1)
        onehot = None
        if self.num_categories:
            if category is None:
                raise ValueError(
                    f"category is required: the model was built with num_categories={self.num_categories}"
                )
            if not isinstance(category, Tensor) or category.dim() != 1 or category.shape[0] != inp.num_graphs:
                raise ValueError(
                    f"category must be a long tensor of shape (B,) = ({inp.num_graphs},), "
                    f"got "
                    f"{tuple(category.shape) if isinstance(category, Tensor) else type(category).__name__}"
                )
            check_labels(category, self.num_categories, "category")
            onehot = torch.nn.functional.one_hot(category.long(), self.num_categories).to(h.dtype)
        elif category is not None:
            raise ValueError("category was given but the model was built with num_categories=0")
        return inp, h, onehot

    @staticmethod
    def _equal_size(inp: PointInput) -> int | None:
        """Points per cloud when all clouds of the batch have the same size, else ``None``."""
        if inp.dense is not None:
            return inp.dense[1]
        n = inp.pos.shape[0]
        if n % inp.num_graphs:
            return None
        counts = torch.bincount(inp.batch, minlength=inp.num_graphs)
        return n // inp.num_graphs if bool((counts == counts[0]).all()) else None

    # -- forward ------------------------------------------------------------------------------
    def forward(self, pos, x: Tensor | None = None, batch: Tensor | None = None, *, category=None) -> Tensor:
        inp, h, onehot = self._prepare(pos, x, batch, category)
        out = self._forward(inp, h, onehot)
        return restore_layout(out, inp, per_point=self.task == "seg")

    def _forward(self, inp: PointInput, h: Tensor, onehot: Tensor | None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- housekeeping -------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Re-initialise every learnable layer (and batch-norm statistics)."""
        for m in self.modules():  # leaves first (torch layers), then custom initialisations
            if m is not self and not any(True for _ in m.children()) and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        for m in self.modules():
            if hasattr(m, "_post_reset"):
                m._post_reset()

    def _repr_extra(self) -> str:
        return ""

    def __repr__(self) -> str:
        s = f"in_channels={self.in_channels}, out_channels={self.out_channels}, task={self.task!r}"
        if self.num_categories:
            s += f", num_categories={self.num_categories}"
        extra = self._repr_extra()
        return f"{type(self).__name__}({s}{', ' + extra if extra else ''})"
