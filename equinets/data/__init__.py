"""Datasets (generated and file readers) and transforms for point clouds.

* generated, no download: :class:`ShapesDataset` (``shapes``, classification of parametric
  solids) and :class:`PartsDataset` (``parts``, ShapeNetPart-style part segmentation);
* generated, hard for frames: :class:`ShapesHardDataset` (``shapes-hard``, near-symmetric bodies told
  apart by small asymmetric details, with mirror-image pairs);
* generated for piecewise equivariance (APEN): :class:`ArticulatedDataset` (``articulated``, posed
  kinematic trees: part segmentation and subject classification on unseen articulations) and
  :class:`ScenesDataset` (``scenes``, independently moved objects labelled by class and instance);
* generated regression: :class:`NBody` (``nbody``, EGNN's charged-particle N-body task) and
  :func:`nbody_baselines`;
* readers of user-supplied files: :class:`ModelNet40`, :class:`ShapeNetPart`, :class:`ScanObjectNN`, :class:`DFAUST`
  (layouts in ``datasets/README.md``);
* :func:`create_dataset` builds any of them by name;
* :mod:`equinets.data.transforms`: rotation protocols (I / z / SO3 / O3), jitter, scale, shift,
  subsampling, unit-sphere normalisation, for a ``Data`` or a collated ``Batch``.

Every item is a :class:`torch_geometric.data.Data` with ``pos`` ``(N, 3)`` float32, ``x`` ``(N, 3)``
unit normals when the source has them, and ``y``: ``(1,)`` class id (classification) or ``(N,)``
global part ids with ``category`` ``(1,)`` (segmentation).
"""

from __future__ import annotations

from ._base import PointCloudDataset, SegmentationMixin
from .articulated import ARTICULATED_CATEGORIES, ArticulatedDataset, articulated_body, generate_articulated
from .dfaust import DFAUST, DFAUST_PROTOCOLS, DFAUST_SEQUENCES, DFAUST_SUBJECTS
from .modelnet import ModelNet40
from .nbody import NBody, nbody_baselines
from .parts import PART_CATEGORIES, PART_CATEGORY_PARTS, PART_NAMES, PartsDataset, generate_parts
from .registry import DATASETS, create_dataset, list_datasets, takes_num_points
from .scanobjectnn import SCANOBJECTNN_CLASSES, SCANOBJECTNN_VARIANTS, ScanObjectNN
from .scenes import ScenesDataset, generate_scenes, scene_classes
from .shapenetpart import SHAPENETPART_CATEGORIES, ShapeNetPart
from .shapes import SHAPE_CLASSES, ShapesDataset, generate_shapes
from .shapes_hard import MIRROR_PAIRS, SHAPES_HARD_CLASSES, ShapesHardDataset, generate_shapes_hard
from .transforms import (
    Compose,
    Jitter,
    NormalizeUnitSphere,
    RandomRotate,
    RandomScale,
    RandomShift,
    RandomSubsample,
    Transform,
    random_rotation_matrices,
)

__all__ = [
    "PointCloudDataset",
    "SegmentationMixin",
    "ShapesDataset",
    "ShapesHardDataset",
    "generate_shapes_hard",
    "SHAPES_HARD_CLASSES",
    "MIRROR_PAIRS",
    "PartsDataset",
    "ModelNet40",
    "ShapeNetPart",
    "ScanObjectNN",
    "NBody",
    "ArticulatedDataset",
    "ScenesDataset",
    "DFAUST",
    "DFAUST_PROTOCOLS",
    "DFAUST_SEQUENCES",
    "DFAUST_SUBJECTS",
    "articulated_body",
    "generate_articulated",
    "generate_scenes",
    "scene_classes",
    "ARTICULATED_CATEGORIES",
    "nbody_baselines",
    "create_dataset",
    "list_datasets",
    "DATASETS",
    "takes_num_points",
    "generate_shapes",
    "generate_parts",
    "SHAPE_CLASSES",
    "PART_CATEGORIES",
    "PART_CATEGORY_PARTS",
    "PART_NAMES",
    "SHAPENETPART_CATEGORIES",
    "SCANOBJECTNN_CLASSES",
    "SCANOBJECTNN_VARIANTS",
    "Transform",
    "Compose",
    "RandomRotate",
    "Jitter",
    "RandomScale",
    "RandomShift",
    "RandomSubsample",
    "NormalizeUnitSphere",
    "random_rotation_matrices",
]
