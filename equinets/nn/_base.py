"""Shared plumbing of the point backbones: argument checks, input layout, category one-hot, heads."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import PointInput, as_points, check_labels, restore_layout

__all__ = ["PointBackbone", "mlp_layers"]

TASKS = ("cls", "seg")


def mlp_layers(
    channels: list[int] | tuple[int, ...],
    *,
    act: type[nn.Module] | None = None,
    dropout: float = 0.0,
    bias: bool = False,
) -> list[nn.Module]:
    """``[Linear, BatchNorm1d, act, (Dropout)]`` for each consecutive pair of ``channels``.

    The linear layers have no bias by default (the batch norm that follows has one).
    """
    act = act or nn.ReLU
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Linear(c_in, c_out, bias=bias), nn.BatchNorm1d(c_out), act()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


def _positive_int(v, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return v


class PointBackbone(nn.Module):
    """Base class of the point backbones: validates the common constructor arguments and inputs.

    Subclasses build their layers after ``super().__init__`` and implement ``_forward(inp, h, onehot)``
    on flat tensors, where ``h = [pos, x]`` is ``(N, 3 + in_channels)`` and ``onehot`` is the
    ``(B, num_categories)`` category one-hot or ``None``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, task: str, num_categories: int, dropout: float
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels", 0)
        self.out_channels = _positive_int(out_channels, "out_channels", 1)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.num_categories = _positive_int(num_categories, "num_categories", 0)
        if self.num_categories and task != "seg":
            raise ValueError(
                f"num_categories is used by task='seg' only (category one-hot of part segmentation), "
                f"got num_categories={num_categories} with task={task!r}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)

    # -- inputs -------------------------------------------------------------------------------
    def _prepare(self, pos, x, batch, category) -> tuple[PointInput, Tensor, Tensor | None]:
        inp = as_points(pos, x, batch)
        x = inp.x
        if self.in_channels == 0 and x is not None:
            raise ValueError(
                f"x must be None for a model built with in_channels=0, got x with {x.shape[1]} columns "
                f"(build the model with in_channels={x.shape[1]} to use it)"
            )
        if self.in_channels > 0:
            if x is None:
                raise ValueError(f"x is required: the model was built with in_channels={self.in_channels}")
            if x.shape[1] != self.in_channels:
                raise ValueError(
                    f"x must have in_channels = {self.in_channels} columns, got {x.shape[1]} "
                    f"(x of shape {tuple(x.shape)})"
                )
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
