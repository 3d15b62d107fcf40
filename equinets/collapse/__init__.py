"""Neural-collapse analysis (issue #10): metrics, a streaming DDP-mergeable tracker, feature capture of any
model, run analysis; fixed heads, UFM theory, mixup geometry and calibration where installed.

>>> from equinets.collapse import nc_metrics, CollapseTracker, find_classifier
"""

from __future__ import annotations

from .capture import FeatureCapture, capture_features, find_classifier, is_classifier_layer
from .metrics import (
    GLOBAL_MEANS,
    METRIC_KEYS,
    WEIGHT_KEYS,
    CollapseStats,
    collapse_stats,
    metrics_from_stats,
    nc_metrics,
    ncc_mismatch,
)
from .tracker import CollapseTracker

__all__ = ["nc_metrics", "metrics_from_stats", "collapse_stats", "CollapseStats", "ncc_mismatch", "CollapseTracker",
           "find_classifier", "FeatureCapture", "capture_features", "is_classifier_layer", "GLOBAL_MEANS",
           "METRIC_KEYS", "WEIGHT_KEYS"]
