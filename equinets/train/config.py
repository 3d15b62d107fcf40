"""Run configuration: built-in defaults, named configs, YAML files and ``key=value`` overrides.

Resolution order (later wins), as in timm's ``train.py``:

1. :data:`DEFAULTS` (every known key, with its type and, where it has one, its allowed values);
2. a named built-in config (``equinets/train/configs/NAME.yaml``) or a YAML file path, itself
   resolved through its ``base:`` chain (a cycle is an error naming the chain);
3. command-line overrides ``key=value`` (values parsed as YAML, dotted keys reach into the
   free-form dicts ``model_kwargs`` / ``dataset_kwargs`` / ``head_kwargs``).

Values are read with YAML 1.2's number syntax, so ``1e-3``, ``1E-3``, ``+1e-3`` and ``.5`` are floats in
files and overrides alike (PyYAML's YAML 1.1 reads ``1e-3`` as a string). Every key is type-checked
(:data:`KEY_KINDS`); numbers must be finite (``.nan``, ``nan``, ``inf`` are refused); ``dataset`` and
``model`` must be registered names, and ``dataset_kwargs`` / ``model_kwargs`` are checked against the
dataset's and model's constructor signatures, all before any data is read or generated. Errors are
:class:`ConfigError` naming the key, what was expected and what came, with the closest known name
as a hint.

>>> cfg = resolve_config("shapes-pointnet", ["epochs=3", "model_kwargs.emb_dims=256", "lr=1e-3"])
>>> cfg["epochs"], cfg["model"], cfg["model_kwargs"]["emb_dims"], cfg["lr"]
(3, 'pointnet', 256, 0.001)
>>> resolve_config(None, ["epoch=3"])
Traceback (most recent call last):
...
equinets.train.config.ConfigError: unknown config key 'epoch' (did you mean 'epochs'?)
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError

__all__ = ["ConfigError", "DEFAULTS", "CHOICES", "KEY_KINDS", "DEFAULT_CONFIG", "list_configs", "load_config",
           "resolve_config", "validate_config", "parse_override", "yaml_load"]

DEFAULT_CONFIG = "shapes-fa-pointnet"


class ConfigError(UserError, ValueError):
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
    "fa_signs": "all",  # all: every sign flip (the paper); shrink: signs fixed by skewness, ambiguous ones
    # averaged; extent: by the range asymmetry first, then the skewness; detail: extremes, edge centroid, skewness
    "fa_degenerate": "blend",  # near-tied eigenvalues: blend (grid fallback), harmonic (angular moments), none
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
    "test_at_best": False,  # with eval_split=val: evaluate the test split whenever val improves
    "time_budget": 0.0,  # seconds; > 0: stop after the first epoch past it (evaluated), resumable
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
    # CPU runs: "default" leaves glibc's malloc as it is; "steady" serves tensors from a heap that is not given back
    # to the system (no fresh zeroed pages per large tensor: the default config trains 1.9x faster, at 1.6x the peak
    # memory)
    "cpu_allocator": "default",
    "num_workers": 0,
    "deterministic": True,
    "log_every": 0,  # > 0: print (and log to TensorBoard) the training loss every that many steps
    "collapse_every": 0,  # > 0: neural-collapse metrics of the training set every that many epochs (task cls)
    "head": "linear",  # the final classifier: linear, simplex_etf, ebv, sparse_etf (equinets.collapse.heads)
    "head_kwargs": {},  # keyword arguments of the head
    "mixup_alpha": 0.0,  # > 0: input mixup, lambda ~ Beta(alpha, alpha) per batch (task cls)
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
    "cpu_allocator": ("default", "steady"),
    "eval_split": ("test", "val"),
    "output_level": ("auto", "cloud", "point"),
    "frame_averaging": (None, "O3", "SO3", "E3", "SE3"),
    "fa_signs": ("all", "shrink", "extent", "detail", "faces"),  # equinets.frames.SIGN_POLICIES (a test keeps them equal)
    "fa_degenerate": ("blend", "harmonic", "none"),
    "head": ("linear", "simplex_etf", "ebv", "sparse_etf"),
}

#: the kind of every key: "choice" (see :data:`CHOICES`), "str", "pos_int", "nonneg_int", "nonneg_float", "pos_float",
#: "bool", "mapping", "irreps" (None or e3nn irreps)
KEY_KINDS: dict[str, str] = {
    **{k: "choice" for k in CHOICES},
    **{k: "str" for k in ("name", "dataset", "model", "data_root", "target")},
    **{k: "pos_int" for k in ("num_points", "epochs", "batch_size", "eval_batch_size", "eval_every", "step_size")},
    **{k: "nonneg_int" for k in ("seed", "num_workers", "log_every", "fa_num_samples", "collapse_every")},
    **{k: "nonneg_float" for k in ("lr", "weight_decay", "momentum", "min_lr", "gamma", "label_smoothing",
                                   "grad_clip", "jitter", "shift", "time_budget", "mixup_alpha")},
    **{k: "pos_float" for k in ("scale_low", "scale_high")},
    **{k: "bool" for k in ("use_features", "deterministic", "fa_position_output", "test_at_best")},
    **{k: "mapping" for k in ("model_kwargs", "dataset_kwargs", "head_kwargs")},
    **{k: "irreps" for k in ("fa_irreps_in", "fa_irreps_out")},
}
assert set(KEY_KINDS) == set(DEFAULTS), set(KEY_KINDS) ^ set(DEFAULTS)

#: constructor arguments the trainer sets itself, with where the user sets them instead
_RESERVED = {
    "dataset_kwargs": {"root": "data_root", "split": "eval_split (train always uses 'train')",
                       "num_points": "the top-level key num_points", "transform": "train_rotation/test_rotation"},
    "model_kwargs": {"in_channels": "use_features (the dataset's feature width)",
                     "out_channels": "the dataset (its classes or target width)",
                     "task": "task and output_level"},
}

# YAML 1.2 floats that YAML 1.1 (PyYAML) leaves as strings: 1e-3, 1E-3, +1e-3, 5e4 (no dot, or signed exponent)
_FLOAT_RE = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_NUMBER_RE = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads YAML 1.2 exponent floats (``1e-3``) as floats."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def yaml_load(text: str):
    """Parse YAML with PyYAML's safe loader plus YAML 1.2 floats.

    >>> yaml_load("lr: 1e-3\\nwd: 5E-4\\nm: +1e-3\\nh: .5\\nn: 10")
    {'lr': 0.001, 'wd': 0.0005, 'm': 0.001, 'h': 0.5, 'n': 10}
    """
    return yaml.load(text, Loader=_Loader)


def _configs_dir():
    return resources.files("equinets.train") / "configs"


def list_configs() -> list[str]:
    """Names of the built-in configs shipped with the package.

    >>> "shapes-fa-pointnet" in list_configs()
    True
    """
    return sorted(p.name[:-5] for p in _configs_dir().iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> dict:
    try:
        data = yaml_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config {where} is not valid YAML: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {where} must be a mapping of key: value, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"config {where}: keys must be strings, got {bad[0]!r}")
    return data


def _locate(name_or_path, relative_to: Path | None) -> tuple[str, str, str]:
    """(identity, display name, text) of a config name or path."""
    if not isinstance(name_or_path, (str, Path)) or str(name_or_path) == "":
        raise ConfigError(f"a config must be a built-in name or a YAML file path, got {name_or_path!r}")
    p = Path(name_or_path)
    if relative_to is not None and not p.is_absolute() and (relative_to / p).is_file():
        p = relative_to / p
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        return str(p.resolve()), str(p), p.read_text()
    f = _configs_dir() / f"{name_or_path}.yaml"
    if not f.is_file():
        close = difflib.get_close_matches(str(name_or_path), list_configs(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown config {str(name_or_path)!r}{hint}: expected a YAML file path or one of "
                          f"{list_configs()}")
    return f"builtin:{name_or_path}", str(name_or_path), f.read_text()


def load_config(name_or_path: str | Path | None, _chain: tuple = (), _relative_to: Path | None = None) -> dict:
    """Read a built-in config by name, or a YAML file by path, resolving ``base:`` chains.

    A config may name another with ``base: NAME_OR_PATH`` (a path relative to the including file's
    folder, or to the working directory); its keys override the base's. A cycle raises
    :class:`ConfigError` naming the chain.

    >>> load_config("shapes-dgcnn")["model"]
    'dgcnn'
    """
    if name_or_path is None:
        name_or_path = DEFAULT_CONFIG
    ident, shown, text = _locate(name_or_path, _relative_to)
    names = [s for _, s in _chain]
    if ident in [i for i, _ in _chain]:
        raise ConfigError(f"config 'base' cycle: {' -> '.join(names + [shown])}")
    data = _read_yaml(text, repr(shown))
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"config key 'base' in {shown!r} must be a config name or YAML path, got {base!r}")
        here = Path(ident).parent if not ident.startswith("builtin:") else None
        merged = load_config(base, _chain + ((ident, shown),), here)
        merged.update(data)
        data = merged
    return data


#: nested spellings of flat keys: ``collapse: {every: 5}`` (or the override ``collapse.every=5``) is ``collapse_every: 5``
SECTIONS = {"collapse": {"every": "collapse_every"}}


def parse_override(item: str) -> tuple[str, Any]:
    """Split a ``key=value`` override; the value is parsed as YAML (``key=`` gives None).

    >>> parse_override("lr=1e-3"), parse_override("model_kwargs.k=10")
    (('lr', 0.001), ('model_kwargs.k', 10))
    """
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"override {item!r} must have the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has no key before '='; expected key=value")
    if "." in key:
        top, sub = key.split(".", 1)
        if top not in ("model_kwargs", "dataset_kwargs", "head_kwargs", *SECTIONS):
            raise ConfigError(f"dotted override {key!r}: only model_kwargs.*, dataset_kwargs.*, head_kwargs.* "
                              f"and {', '.join(k + '.*' for k in SECTIONS)} take sub-keys")
        if not sub or "." in sub:
            raise ConfigError(f"dotted override {key!r} must be {top}.NAME with one sub-key")
    try:
        value = yaml_load(raw) if raw.strip() != "" else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {key!r}: value {raw!r} is not valid YAML ({' '.join(str(e).split())})") from None
    return key, value


def _hint(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; known: {sorted(known)}"


def _as_float(value):
    """A number from an int, float or numeric string (YAML 1.1 leftovers like '1e-3'); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        return float(value.strip().replace("_", ""))
    if isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return float(value.strip())  # so that a written nan/inf meets the finiteness check, not a type error
    return None


def _check_finite_tree(value, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {where!r} must be finite, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite_tree(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite_tree(v, f"{where}[{i}]")


def _check_value(key: str, value):
    """The validated (possibly coerced) value of top-level ``key``."""
    kind = KEY_KINDS[key]
    if kind == "choice":
        allowed = CHOICES[key]
        if isinstance(value, (dict, list)) or value not in allowed or type(value) not in {type(a) for a in allowed}:
            raise ConfigError(f"config key {key!r} must be one of {list(allowed)}, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"config key {key!r} must be a non-empty string, got {value!r}")
        if key == "name" and ("/" in value or "\\" in value or value in (".", "..")):
            raise ConfigError(f"config key 'name' names a run folder and must not contain '/', got {value!r}")
        return value
    if kind in ("pos_int", "nonneg_int"):
        low = 1 if kind == "pos_int" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            what = "a positive integer" if low else "a non-negative integer"
            raise ConfigError(f"config key {key!r} must be {what}, got {value!r}")
        return value
    if kind in ("nonneg_float", "pos_float"):
        what = "a non-negative number" if kind == "nonneg_float" else "a positive number"
        v = _as_float(value)
        if v is None:
            raise ConfigError(f"config key {key!r} must be {what}, got {value!r}")
        if not math.isfinite(v):
            raise ConfigError(f"config key {key!r} must be a finite {what[2:]}, got {value!r}")
        if v < 0 or (v == 0 and kind == "pos_float"):
            raise ConfigError(f"config key {key!r} must be {what}, got {value!r}")
        return v
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if kind == "mapping":
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        bad = [k for k in value if not isinstance(k, str) or not k]
        if bad:
            raise ConfigError(f"config key {key!r}: sub-keys must be non-empty strings, got {bad[0]!r}")
        _check_finite_tree(value, key)
        return dict(value)
    if kind == "irreps":
        if value is None:
            return None
        from e3nn import o3

        try:
            if not isinstance(value, str):
                raise TypeError(f"a string, not {type(value).__name__}")
            o3.Irreps(value)
        except (ValueError, AssertionError, TypeError) as e:
            raise ConfigError(f"config key {key!r} must be e3nn irreps like '1o' or '2x0e + 1o', "
                              f"got {value!r} ({e})") from None
        return value
    raise AssertionError(kind)  # pragma: no cover


def _constructor_params(fn) -> dict[str, inspect.Parameter] | None:
    """Keyword-passable parameters of ``fn`` (None when it takes ``**kwargs``, i.e. anything)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n: p for n, p in sig.parameters.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


_SIMPLE_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "Path": (str,),
                 "None": (type(None),)}


def _annotation_types(ann) -> tuple | None:
    """Python types a YAML value may have for annotation ``ann`` (a string under postponed evaluation);
    None when the annotation is not one of the simple forms (then the value is not type-checked)."""
    if ann is inspect.Parameter.empty:
        return None
    if not isinstance(ann, str):
        ann = getattr(ann, "__name__", str(ann))
    out: list[type] = []
    for part in (p.strip() for p in ann.split("|")):
        base = part.split("[", 1)[0].split(".")[-1]
        if base in _SIMPLE_TYPES:
            out += _SIMPLE_TYPES[base]
        elif base in ("list", "tuple", "Sequence", "List", "Tuple"):
            out += [list, tuple]
        else:
            return None
    return tuple(out)


def _check_kwargs(group: str, kwargs: dict, owner: str, fn) -> None:
    """Check ``kwargs`` (``group`` = model_kwargs / dataset_kwargs) against the constructor ``fn``."""
    reserved = _RESERVED[group]
    for k in kwargs:
        if k in reserved:
            raise ConfigError(f"config key '{group}.{k}' is set by the trainer; use {reserved[k]} instead")
    params = _constructor_params(fn)
    if params is None:
        return
    accepted = [n for n in params if n not in reserved and n != "self"]
    for k, v in kwargs.items():
        if k not in params:
            close = difflib.get_close_matches(k, accepted, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown config key '{group}.{k}' for {owner} ({hint}accepted: {accepted})")
        types = _annotation_types(params[k].annotation)
        if types is None:
            continue
        if isinstance(v, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(v, types)
        if not ok:
            want = str(params[k].annotation)
            raise ConfigError(f"config key '{group}.{k}' of {owner} must be {want}, got {v!r}")


def _model_factory(name: str):
    from ..nn import list_models, registry

    if name.lower() not in list_models():
        raise ConfigError(f"config key 'model': unknown model {name!r}{_hint(name.lower(), list_models())}")
    try:  # the registry's own lookup (lazy models included); a registry without it skips the signature check
        registry._resolve_lazy(name.lower())
        return registry._MODELS.get(name.lower())
    except AttributeError:  # pragma: no cover
        return None


def _dataset_class(name: str):
    from ..data.registry import DATASETS

    cls = DATASETS.get(name.lower())
    if cls is None:
        raise ConfigError(f"config key 'dataset': unknown dataset {name!r}{_hint(name.lower(), DATASETS)}")
    return cls




def _flatten_sections(cfg: dict) -> dict:
    """Replace each mapping of :data:`SECTIONS` by its flat keys; a key given both ways must agree."""
    out = {k: v for k, v in cfg.items() if k not in SECTIONS}
    for top, subs in SECTIONS.items():
        if top not in cfg:
            continue
        sec = cfg[top]
        if not isinstance(sec, dict):
            raise ConfigError(f"config key {top!r} must be a mapping of {', '.join(subs)} (e.g. {top}: "
                              f"{{{next(iter(subs))}: 5}}), got {type(sec).__name__} {sec!r}")
        for sub, value in sec.items():
            if sub not in subs:
                raise ConfigError(f"unknown config key {top + '.' + str(sub)!r}{_hint(str(sub), subs)}; "
                                  f"known: {', '.join(top + '.' + k for k in subs)}")
            flat = subs[sub]
            if flat in cfg and cfg[flat] != value:
                raise ConfigError(f"config keys {top}.{sub} ({value!r}) and {flat} ({cfg[flat]!r}) are the same "
                                  f"setting and disagree")
            out[flat] = value
    return out


def validate_config(cfg: dict) -> dict:
    """Check every key and value; return a new dict with every key of :data:`DEFAULTS` filled in.

    Nothing is read or generated: ``dataset``/``model`` are checked against the registries and their
    ``*_kwargs`` against the constructors' signatures.

    >>> validate_config({"lr": "5e-4"})["lr"]
    0.0005
    >>> try:
    ...     validate_config({"dataset_kwargs": {"num_trian": 10}})
    ... except ConfigError as e:
    ...     print(str(e).split(" accepted")[0])
    unknown config key 'dataset_kwargs.num_trian' for dataset 'shapes' (did you mean 'num_train'?
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"a config must be a mapping of key: value, got {type(cfg).__name__}")
    out = copy.deepcopy(DEFAULTS)
    for key, value in _flatten_sections(cfg).items():
        if key not in DEFAULTS:
            raise ConfigError(f"unknown config key {key!r}{_hint(str(key), DEFAULTS)}")
        out[key] = value
    for key in DEFAULTS:
        out[key] = _check_value(key, out[key])
    if out["scale_low"] > out["scale_high"]:
        raise ConfigError(f"scale_low ({out['scale_low']}) must not exceed scale_high ({out['scale_high']})")
    if out["label_smoothing"] >= 1:
        raise ConfigError(f"config key 'label_smoothing' must be in [0, 1), got {out['label_smoothing']}")
    if out["test_at_best"] and out["eval_split"] != "val":
        raise ConfigError("config key 'test_at_best' reports the test split at the best validation epoch and needs "
                          f"eval_split: val, got eval_split: {out['eval_split']!r}")
    if out["scheduler"] == "cosine" and out["min_lr"] > out["lr"]:
        raise ConfigError(f"config key 'min_lr' ({out['min_lr']:g}) must not exceed 'lr' ({out['lr']:g}) under the "
                          f"cosine scheduler, which anneals lr down to min_lr")
    if out["frame_averaging"] is not None and out["use_features"] and out["fa_irreps_in"] is None:
        raise ConfigError("config key 'fa_irreps_in' is needed: frame_averaging with use_features=true must know the "
                          "e3nn irreps of data.x (e.g. '1o' for normals), so that features are rotated into each frame")
    ds_cls = _dataset_class(out["dataset"])
    ds_task = getattr(ds_cls, "task", None)
    if isinstance(ds_task, str) and out["task"] in ("cls", "seg") and ds_task != out["task"]:
        raise ConfigError(f"config key 'task' is {out['task']!r} but dataset {out['dataset']!r} is a {ds_task!r} "
                          f"dataset")
    _check_augmentation(out, ds_cls)
    _check_collapse_keys(out)
    _check_kwargs("dataset_kwargs", out["dataset_kwargs"], f"dataset {out['dataset']!r}", ds_cls)
    fn = _model_factory(out["model"])
    if fn is not None:
        _check_kwargs("model_kwargs", out["model_kwargs"], f"model {out['model']!r}", fn)
    return out


def _check_collapse_keys(out: dict) -> None:
    """``collapse_every``, ``head``/``head_kwargs`` and ``mixup_alpha`` are for classification (``task: cls``)."""
    for key, on in (("collapse_every", out["collapse_every"] > 0), ("mixup_alpha", out["mixup_alpha"] > 0),
                    ("head", out["head"] != "linear")):
        if on and out["task"] != "cls":
            raise ConfigError(f"config key {key!r} ({out[key]!r}) needs a classification task (task: cls, one label "
                              f"per cloud), got task: {out['task']!r}")
    if out["head"] == "linear" and out["head_kwargs"]:
        raise ConfigError(f"config key 'head_kwargs' ({out['head_kwargs']}) needs a head other than 'linear' (the "
                          f"model's own classifier takes no head_kwargs)")


def _check_augmentation(out: dict, ds_cls) -> None:
    """Refuse training augmentations that would move a regression task's inputs without its target.

    ``scale_low``/``scale_high`` change every length, so a regression target (extents, positions) would no longer
    match its scaled inputs; ``shift`` translates ``pos`` only, so it is refused when the target is one of the
    dataset's declared vector keys (n-body's target positions ``y``). ``jitter`` is input noise and stays allowed.
    """
    if out["task"] != "reg":
        return
    if out["scale_low"] != 1.0 or out["scale_high"] != 1.0:
        key = "scale_low" if out["scale_low"] != 1.0 else "scale_high"
        raise ConfigError(f"config key {key!r}: random scaling changes every length, so under task 'reg' the inputs "
                          f"would no longer match the target data.{out['target']}; set scale_low = scale_high = 1")
    declared = getattr(ds_cls, "vector_keys", ())
    names = {k if isinstance(k, str) else k[0] for k in declared} if isinstance(declared, (tuple, list)) else set()
    if out["shift"] > 0 and out["target"] in names:
        raise ConfigError(f"config key 'shift': a random translation moves pos but not the target data.{out['target']} "
                          f"(a position-type vector of dataset {out['dataset']!r}); set shift: 0")


def resolve_config(name_or_path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults <- named config or YAML file <- ``key=value`` overrides, validated (:func:`validate_config`)."""
    cfg = load_config(name_or_path)
    for item in overrides or []:
        key, value = parse_override(item)
        if "." in key:
            top, sub = key.split(".", 1)
            d = cfg.get(top)
            d = dict(d) if isinstance(d, dict) else {}
            d[sub] = value
            cfg[top] = d
            if top in SECTIONS and sub in SECTIONS[top]:
                cfg.pop(SECTIONS[top][sub], None)  # the override wins over the file's flat spelling
        else:
            if key not in DEFAULTS and key not in SECTIONS:
                raise ConfigError(f"unknown config key {key!r}{_hint(key, DEFAULTS)}")
            cfg[key] = value
            for top, subs in SECTIONS.items():  # ... and a flat override over the file's nested spelling
                if isinstance(cfg.get(top), dict):
                    cfg[top] = {k: v for k, v in cfg[top].items() if subs.get(k) != key}
    return validate_config(cfg)
