"""Backbones and building blocks for point clouds, and neighbour operations.

* neighbour ops: :func:`knn`, :func:`knn_graph`, :func:`knn_dense`, :func:`radius`,
  :func:`radius_graph`, :func:`fps` (pure torch; pyg-lib, else torch-cluster, when it imports --
  ``equinets.typing.WITH_PYG_LIB`` / ``WITH_TORCH_CLUSTER``); the backbones call these public functions;
* message passing: :func:`aggregate` (sum / mean / max of per-edge messages onto their targets);
  every ``edge_index`` follows PyG: row 0 the source ``j``, row 1 the target ``i``;
* pooling: :func:`global_max_pool`, :func:`global_mean_pool`, :func:`global_add_pool`;
* backbones: :class:`PointNet`, :class:`DGCNN`, :class:`GNN`, built by name with
  :func:`create_model` (``"pointnet"``, ``"dgcnn"``, ``"gnn"``).
"""

from __future__ import annotations

from ._base import PointBackbone
from .dgcnn import DGCNN, EdgeConv
from .gin import GIN
from .gnn import GNN, PointMessageLayer
from .message_passing import aggregate
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
    "aggregate",
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
