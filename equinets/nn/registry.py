"""Build backbones by name (timm's ``create_model`` habit)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

__all__ = ["register_model", "create_model", "list_models"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}

#: models defined outside ``equinets.nn`` (whose packages import ``equinets.nn``): name -> (module, attribute),
#: imported on first use so that importing ``equinets.nn`` stays free of cycles
_LAZY: dict[str, tuple[str, str]] = {
    "fa_gnn": ("equinets.frames.fagnn", "FAGNN"),
    "gin": ("equinets.nn.gin", "GIN"),
    "segnn_gaunt": ("equinets.nn.segnn", "SEGNN"), "segnn_cg": ("equinets.nn.segnn", "SEGNNCG"),
    "apen": ("equinets.piecewise.model", "APEN"),
}


def _resolve_lazy(key: str) -> None:
    if key in _LAZY and key not in _MODELS:
        import importlib

        module, attr = _LAZY[key]
        _MODELS[key] = getattr(importlib.import_module(module), attr)


def register_model(name: str, fn: Callable[..., nn.Module] | None = None):
    """Register a model class or factory under ``name`` (lower-case); usable as a decorator.

    >>> @register_model("my_tiny_model")
    ... class Tiny(nn.Module):
    ...     pass
    >>> "my_tiny_model" in list_models()
    True
    """
    key = name.lower()

    def deco(f):
        _resolve_lazy(key)
        if key in _MODELS and _MODELS[key] is not f:
            raise ValueError(f"a model named {key!r} is already registered ({_MODELS[key].__name__})")
        _MODELS[key] = f
        return f

    return deco if fn is None else deco(fn)


def list_models() -> list[str]:
    """Sorted names of the registered models.

    >>> [m for m in list_models() if m in ("dgcnn", "fa_gnn", "gnn", "pointnet")]
    ['dgcnn', 'fa_gnn', 'gnn', 'pointnet']
    """
    return sorted(set(_MODELS) | set(_LAZY))


def create_model(name: str, **kwargs) -> nn.Module:
    """Instantiate the model registered as ``name`` with ``kwargs``.

    A keyword the model's constructor does not take is a ``TypeError`` naming it and the accepted ones.

    >>> create_model("pointnet", out_channels=10)
    PointNet(in_channels=0, out_channels=10, task='cls', hidden_channels=(64, 64, 64, 128), emb_dims=1024)
    >>> create_model("pointnet", channels=(8,))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: model 'pointnet' takes no argument 'channels'; it takes: in_channels, out_channels, task, ...
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string (one of {', '.join(list_models())}), got {type(name).__name__}")
    key = name.lower()
    _resolve_lazy(key)
    if key not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    fn = _MODELS[key]
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in kwargs if k not in params]
        if unknown:
            accepted = [k for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            raise TypeError(f"model {key!r} takes no argument {', '.join(map(repr, unknown))}; it takes: "
                            f"{', '.join(accepted)}")
    return fn(**kwargs)
