"""Run configuration: built-in defaults, named configs, YAML files and ``key=value`` overrides.

Resolution order (later wins), as in timm's ``train.py``:

1. :data:`DEFAULTS` (every known key, with its type and, where it has one, its allowed values);
2. a named built-in config (``equinets/train/configs/NAME.yaml``) or a YAML file path;
3. command-line overrides ``key=value`` (values parsed as YAML, dotted keys reach into the
   free-form dicts ``model_kwargs`` / ``dataset_kwargs``).

Unknown keys and values outside the allowed set raise :class:`ConfigError` naming the key, what
was expected and what came, with the closest known key as a hint.

>>> cfg = resolve_config("shapes-pointnet", ["epochs=3", "model_kwargs.emb_dims=256"])
>>> cfg["epochs"], cfg["model"], cfg["model_kwargs"]["emb_dims"]
(3, 'pointnet', 256)
>>> resolve_config(None, ["epoch=3"])
Traceback (most recent call last):
...
equinets.train.config.ConfigError: unknown config key 'epoch' (did you mean 'epochs'?)
"""

from __future__ import annotations

import copy
import difflib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "DEFAULTS", "CHOICES", "DEFAULT_CONFIG", "list_configs", "load_config",
           "resolve_config", "validate_config"]

DEFAULT_CONFIG = "shapes-fa-pointnet"


class ConfigError(ValueError):
    """A configuration key or value that equinets does not accept."""


#: every key a run config may hold, with its default
DEFAULTS: dict[str, Any] = {
    "name": "run",
    "task": "cls",  # cls | seg | reg
    "dataset": "shapes",
    "data_root": "datasets",
    "dataset_kwargs": {},
    "num_points": 1024,
    "use_features": False,  # pass data.x (normals, velocities, ...) to the model
    "output_level": "auto",  # auto: per point for seg, per cloud for cls/reg; or cloud / point
    "target": "extent",  # regression target attribute of each Data
    "model": "pointnet",
    "model_kwargs": {},
    "frame_averaging": None,  # None, or the group of a FrameAveraging wrapper: O3, SO3, E3, SE3
    "fa_irreps_in": None,  # e3nn irreps of data.x for the wrapper, e.g. "1o" for normals
    "fa_irreps_out": None,  # e3nn irreps of the output (None: invariant scalars)
    "fa_position_output": False,  # outputs are positions: the centroid is added back
    "fa_num_samples": 0,  # > 0: that many sampled frames per cloud in training (stochastic FA)
    "train_rotation": "I",
    "test_rotation": "I",
    "up_axis": None,  # None = the dataset's own up axis
    "jitter": 0.0,
    "scale_low": 1.0,
    "scale_high": 1.0,
    "shift": 0.0,
    "epochs": 20,
    "batch_size": 32,
    "eval_batch_size": 64,
    "eval_every": 1,  # evaluate after every k-th epoch (and always after the last one)
    "eval_split": "test",
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "momentum": 0.9,
    "scheduler": "cosine",
    "min_lr": 1e-5,
    "step_size": 20,
    "gamma": 0.7,
    "label_smoothing": 0.0,
    "grad_clip": 0.0,
    "seed": 0,
    "device": "auto",
    "num_workers": 0,
    "deterministic": True,
    "log_every": 0,
}

#: allowed values of the enumerated keys
CHOICES: dict[str, tuple] = {
    "task": ("cls", "seg", "reg"),
    "train_rotation": ("I", "z", "SO3", "O3"),
    "test_rotation": ("I", "z", "SO3", "O3"),
    "up_axis": (None, "x", "y", "z"),
    "optimizer": ("adam", "adamw", "sgd"),
    "scheduler": ("cosine", "step", "none"),
    "device": ("auto", "cpu", "cuda"),
    "eval_split": ("test", "val"),
    "output_level": ("auto", "cloud", "point"),
    "frame_averaging": (None, "O3", "SO3", "E3", "SE3"),
}

_POSITIVE_INT = ("num_points", "epochs", "batch_size", "eval_batch_size", "eval_every", "step_size")
_NONNEG_FLOAT = ("lr", "weight_decay", "momentum", "min_lr", "gamma", "label_smoothing", "grad_clip",
                 "jitter", "shift", "scale_low", "scale_high")


def _configs_dir():
    return resources.files("equinets.train") / "configs"


def list_configs() -> list[str]:
    """Names of the built-in configs shipped with the package."""
    return sorted(p.name[:-5] for p in _configs_dir().iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config {where} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {where} must be a mapping of key: value, got {type(data).__name__}")
    return data


def load_config(name_or_path: str | Path | None) -> dict:
    """Read a built-in config by name, or a YAML file by path, resolving ``base:`` chains.

    A config may name another with ``base: NAME_OR_PATH``; its keys override the base's.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_CONFIG
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        data = _read_yaml(p.read_text(), repr(str(p)))
    else:
        f = _configs_dir() / f"{name_or_path}.yaml"
        if not f.is_file():
            raise ConfigError(
                f"unknown config {str(name_or_path)!r}: expected a YAML file path or one of {list_configs()}"
            )
        data = _read_yaml(f.read_text(), repr(str(name_or_path)))
    base = data.pop("base", None)
    if base is not None:
        merged = load_config(base)
        merged.update(data)
        data = merged
    return data


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must have the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else None
    except yaml.YAMLError:
        value = raw
    return key, value


def _hint(key: str) -> str:
    close = difflib.get_close_matches(key, list(DEFAULTS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; known keys: {sorted(DEFAULTS)}"


def validate_config(cfg: dict) -> dict:
    """Check keys and values; return a new dict with every key of :data:`DEFAULTS` filled in."""
    out = copy.deepcopy(DEFAULTS)
    for key, value in cfg.items():
        if key not in DEFAULTS:
            raise ConfigError(f"unknown config key {key!r}{_hint(key)}")
        out[key] = value
    for key, allowed in CHOICES.items():
        if out[key] not in allowed:
            raise ConfigError(f"config key {key!r} must be one of {list(allowed)}, got {out[key]!r}")
    for key in _POSITIVE_INT:
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"config key {key!r} must be a positive integer, got {v!r}")
    for key in _NONNEG_FLOAT:
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ConfigError(f"config key {key!r} must be a non-negative number, got {v!r}")
        out[key] = float(v)
    for key in ("seed", "num_workers", "log_every", "fa_num_samples"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"config key {key!r} must be a non-negative integer, got {v!r}")
    for key in ("model_kwargs", "dataset_kwargs"):
        if not isinstance(out[key], dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {out[key]!r}")
    for key in ("use_features", "deterministic", "fa_position_output"):
        if not isinstance(out[key], bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {out[key]!r}")
    if out["scale_low"] > out["scale_high"]:
        raise ConfigError(f"scale_low ({out['scale_low']}) must not exceed scale_high ({out['scale_high']})")
    for key in ("name", "dataset", "model", "data_root", "target"):
        if not isinstance(out[key], str) or not out[key]:
            raise ConfigError(f"config key {key!r} must be a non-empty string, got {out[key]!r}")
    for key in ("fa_irreps_in", "fa_irreps_out"):
        if out[key] is not None:
            from e3nn import o3

            try:
                o3.Irreps(out[key])
            except (ValueError, AssertionError) as e:
                raise ConfigError(f"config key {key!r} must be e3nn irreps like '1o' or '2x0e + 1o', "
                                  f"got {out[key]!r} ({e})") from None
    return out


def resolve_config(name_or_path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults <- named config or YAML file <- ``key=value`` overrides, validated."""
    cfg = load_config(name_or_path)
    for item in overrides or []:
        key, value = _parse_override(item)
        if "." in key:
            top, sub = key.split(".", 1)
            if top not in ("model_kwargs", "dataset_kwargs"):
                raise ConfigError(
                    f"dotted override {key!r}: only model_kwargs.* and dataset_kwargs.* take sub-keys"
                )
            d = dict(cfg.get(top) or {})
            d[sub] = value
            cfg[top] = d
        else:
            if key not in DEFAULTS:
                raise ConfigError(f"unknown config key {key!r}{_hint(key)}")
            cfg[key] = value
    return validate_config(cfg)
