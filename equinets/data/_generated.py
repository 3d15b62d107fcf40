"""Argument checks, per-item seeding and caching shared by the generated datasets (``shapes``, ``parts``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._checks import check_choice, check_int, check_real
from ._io import as_root, cache_key, load_cached

_SPLIT_CODE = {"train": 0, "test": 1}


def check_split(split: str) -> int:
    """The code of a generated dataset's split (``"train"`` 0, ``"test"`` 1); anything else raises."""
    return _SPLIT_CODE[check_choice(split, "split", _SPLIT_CODE)]


def item_rng(salt: int, seed: int, split: str, index: int) -> np.random.Generator:
    """The generator for one item: depends on (dataset, seed, split, index) only."""
    return np.random.default_rng([salt, seed, _SPLIT_CODE[split], index])


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

    ``generate(count, num_points, seed=..., split=..., noise=...)`` builds the split's tensors; the
    cache is ``root/<name>/<cache_key>/<split>.pt`` with its ``manifest.json``
    (:func:`equinets.data._io.load_cached`).
    """
    root = as_root(root)
    check_split(split)
    num_points = check_int(num_points, "num_points", 1)
    num_train = check_int(num_train, "num_train", 1)
    num_test = check_int(num_test, "num_test", 1)
    seed = check_int(seed, "seed", 0)
    noise = check_real(noise, "noise", 0.0)
    count = num_train if split == "train" else num_test
    params = dict(num_points=num_points, num_train=num_train, num_test=num_test, seed=seed, noise=noise,
                  version=version)
    folder = root / name / cache_key(params)
    return load_cached(folder, split,
                       lambda: {split: generate(count, num_points, seed=seed, split=split, noise=noise)},
                       params={"dataset": name, **params}, force_reload=force_reload, what=name)
