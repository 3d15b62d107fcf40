"""Neural-collapse analysis (issue #10): metrics, a streaming DDP-mergeable tracker, feature capture of any
model, run analysis (``equinets collapse``); fixed heads, UFM theory, mixup geometry and calibration.

>>> from equinets.collapse import nc_metrics, CollapseTracker, find_classifier
"""

from __future__ import annotations

import importlib

from .analysis import AnalysisExistsError, analyse_checkpoint, measure_collapse
from .capture import FeatureCapture, capture_features, find_classifier, is_classifier_layer
from .metrics import (
    GLOBAL_MEANS,
    METRIC_KEYS,
    WEIGHT_KEYS,
    CollapseStats,
    centred_means,
    collapse_stats,
    metrics_from_stats,
    nc_metrics,
    ncc_mismatch,
)
from .tracker import CollapseTracker

__all__ = ["nc_metrics", "metrics_from_stats", "collapse_stats", "CollapseStats", "centred_means", "ncc_mismatch",
           "CollapseTracker", "find_classifier", "FeatureCapture", "capture_features", "is_classifier_layer",
           "measure_collapse", "analyse_checkpoint", "AnalysisExistsError", "GLOBAL_MEANS", "METRIC_KEYS",
           "WEIGHT_KEYS"]

#: the sub-modules of the heads and theory half of the package, re-exported when they are installed
_OPTIONAL = ("heads", "ufm", "mixup", "calibration")


def _export(name: str) -> None:
    try:
        mod = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:  # only the module's own absence is tolerated, not its bugs
        if e.name != f"{__name__}.{name}":
            raise
        return
    globals()[name] = mod
    for attr in getattr(mod, "__all__", ()):
        globals()[attr] = getattr(mod, attr)
        if attr not in __all__:
            __all__.append(attr)
    __all__.append(name)


for _name in _OPTIONAL:
    _export(_name)
del _name
