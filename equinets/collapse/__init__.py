"""Neural-collapse analysis: metrics, streaming tracker, feature capture (issue #10)."""

from __future__ import annotations

from .capture import FeatureCapture, capture_features, find_classifier, is_classifier_layer

__all__ = ["find_classifier", "FeatureCapture", "capture_features", "is_classifier_layer"]
