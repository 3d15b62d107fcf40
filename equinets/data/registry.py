"""Datasets by name: ``create_dataset("shapes", root, split, **kwargs)`` (timm's ``create_model`` habit)."""

from __future__ import annotations

from pathlib import Path

from ._base import PointCloudDataset
from .articulated import ArticulatedDataset
from .dfaust import DFAUST
from .modelnet import ModelNet40
from .nbody import NBody
from .parts import PartsDataset
from .scanobjectnn import ScanObjectNN
from .scenes import ScenesDataset
from .shapenetpart import ShapeNetPart
from .shapes import ShapesDataset
from .shapes_hard import ShapesHardDataset

#: name -> dataset class; each class has ``task`` ("cls"/"seg"/"reg") and ``up_axis`` ("z"/"y").
DATASETS: dict[str, type[PointCloudDataset] | type[NBody]] = {
    "shapes": ShapesDataset,
    "parts": PartsDataset,
    "modelnet40": ModelNet40,
    "shapenetpart": ShapeNetPart,
    "scanobjectnn": ScanObjectNN,
    "nbody": NBody,
    "articulated": ArticulatedDataset,
    "scenes": ScenesDataset,
    "dfaust": DFAUST,
    "shapes-hard": ShapesHardDataset,
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`create_dataset`.

    >>> list_datasets()  # doctest: +NORMALIZE_WHITESPACE
    ['articulated', 'dfaust', 'modelnet40', 'nbody', 'parts', 'scanobjectnn', 'scenes', 'shapenetpart',
     'shapes', 'shapes-hard']
    """
    return sorted(DATASETS)


def takes_num_points(name: str) -> bool:
    """Whether dataset ``name`` is sampled to a point count (``num_points``); ``nbody`` is not.

    >>> takes_num_points("shapes"), takes_num_points("nbody")
    (True, False)
    """
    import inspect

    cls = DATASETS.get(name)
    return cls is not None and "num_points" in inspect.signature(cls).parameters


def create_dataset(
    name: str, root: str | Path = "datasets", split: str = "train", **kwargs
) -> PointCloudDataset | NBody:
    """Build the dataset called ``name`` (case-insensitive) with ``root``, ``split`` and its keyword options.

    >>> import tempfile
    >>> ds = create_dataset("shapes", tempfile.mkdtemp(), "test", num_points=32, num_train=15, num_test=15)
    >>> len(ds), ds.task, ds.up_axis
    (15, 'cls', 'z')
    >>> create_dataset("mnist")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown dataset 'mnist'; known: articulated, dfaust, modelnet40, nbody, parts, scanobjectnn, scenes, ...
    >>> create_dataset("shapes", num_point=64)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: dataset 'shapes' has no option(s) ['num_point']; it takes: force_reload, noise, num_points, ...
    """
    import inspect

    if not isinstance(name, str):
        raise TypeError(f"name must be a dataset name (a string), got {type(name).__name__} {name!r}")
    cls = DATASETS.get(name.lower())
    if cls is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")
    takes = [p for p in inspect.signature(cls).parameters if p not in ("root", "split")]
    unknown = sorted(k for k in kwargs if k not in takes)
    if unknown:
        raise TypeError(f"dataset {name.lower()!r} has no option(s) {unknown}; it takes: {', '.join(sorted(takes))}")
    return cls(root, split, **kwargs)
