"""Cache and per-item seeding shared by the generated datasets (``shapes``, ``parts``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ._io import atomic_save, atomic_write_json

_SPLIT_CODE = {"train": 0, "test": 1}


def check_split(split: str) -> int:
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _SPLIT_CODE[split]


def item_rng(salt: int, seed: int, split: str, index: int) -> np.random.Generator:
    """The generator for one item: depends on (dataset, seed, split, index) only."""
    return np.random.default_rng([salt, seed, _SPLIT_CODE[split], index])


def cache_key(params: dict) -> str:
    """Readable folder name for a parameter set, e.g. ``n1024_tr2400_te600_s0_z0.005_v1``."""
    short = dict(num_points="n", num_train="tr", num_test="te", seed="s", noise="z", version="v")
    return "_".join(f"{short.get(k, k)}{v}" for k, v in params.items())


def load_or_generate(
    root: str | Path, name: str, split: str, params: dict, generate: Callable[[], dict], force_reload: bool
) -> dict[str, torch.Tensor]:
    """Load ``root/name/<key>/<split>.pt``, or build it with ``generate()`` and write it atomically."""
    folder = Path(root) / name / cache_key(params)
    path = folder / f"{split}.pt"
    if path.exists() and not force_reload:
        return torch.load(path, weights_only=True)
    out = generate()
    atomic_save(out, path)
    atomic_write_json({"dataset": name, **params}, folder / "manifest.json")
    return out


def load_generated(
    name: str,
    generate: Callable[..., dict],
    root: str | Path,
    split: str,
    *,
    num_points: int,
    num_train: int,
    num_test: int,
    seed: int,
    noise: float,
    version: int,
    force_reload: bool,
) -> dict[str, torch.Tensor]:
    """Validate the arguments of a generated dataset and load (or generate and cache) one split.

    ``generate(count, num_points, seed=..., split=..., noise=...)`` builds the split's tensors.
    """
    check_split(split)
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    count = num_train if split == "train" else num_test
    params = dict(num_points=num_points, num_train=num_train, num_test=num_test, seed=seed, noise=noise,
                  version=version)
    return load_or_generate(root, name, split, params,
                            lambda: generate(count, num_points, seed=seed, split=split, noise=noise), force_reload)
