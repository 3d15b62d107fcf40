"""Backbones and building blocks for point clouds, and neighbour operations.

* neighbour ops: :func:`knn`, :func:`knn_graph`, :func:`knn_dense`, :func:`radius`,
  :func:`radius_graph`, :func:`fps` (pure torch; pyg-lib when it imports);
* pooling: :func:`global_max_pool`, :func:`global_mean_pool`, :func:`global_add_pool`;
* backbones: :class:`PointNet`, :class:`DGCNN`, :class:`GNN`, built by name with
  :func:`create_model` (``"pointnet"``, ``"dgcnn"``, ``"gnn"``).
"""

from __future__ import annotations

from ._base import PointBackbone
from .dgcnn import DGCNN, EdgeConv
from .gin import GIN
from .gnn import GNN, PointMessageLayer
from .neighbors import fps, knn, knn_dense, knn_graph, radius, radius_graph
from .pointnet import PointNet
from .pool import global_add_pool, global_max_pool, global_mean_pool
from .registry import create_model, list_models, register_model

register_model("pointnet", PointNet)
register_model("dgcnn", DGCNN)
register_model("gnn", GNN)

__all__ = [
    "PointBackbone",
    "PointNet",
    "DGCNN",
    "EdgeConv",
    "GIN",
    "GNN",
    "PointMessageLayer",
    "knn",
    "knn_graph",
    "knn_dense",
    "radius",
    "radius_graph",
    "fps",
    "global_max_pool",
    "global_mean_pool",
    "global_add_pool",
    "register_model",
    "create_model",
    "list_models",
]
