"""Training: config, CLI (``equinets``), loop, metrics, checkpoints, distributed helpers."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, list_configs, resolve_config
from .loop import RunExistsError, TrainingDiverged, evaluate, train
from .metrics import ClassificationMeter, RegressionMeter, SegmentationMeter, shape_ious

__all__ = ["train", "evaluate", "resolve_config", "list_configs", "ConfigError", "CheckpointError",
           "RunExistsError", "TrainingDiverged", "save_checkpoint", "load_checkpoint",
           "ClassificationMeter", "SegmentationMeter", "RegressionMeter", "shape_ious"]
