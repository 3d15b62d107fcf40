"""Training: config, CLI (``equinets``), loop, metrics, checkpoints, run directories, distributed helpers."""

from ..errors import SetupError
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, list_configs, resolve_config
from .loop import ResumeError, TrainingDiverged, evaluate, train
from .metrics import ClassificationMeter, RegressionMeter, SegmentationMeter, shape_ious
from .rundir import RunDirError, RunExistsError, RunLockedError

__all__ = ["train", "evaluate", "resolve_config", "list_configs", "ConfigError", "CheckpointError",
           "RunExistsError", "RunLockedError", "RunDirError", "ResumeError", "SetupError", "TrainingDiverged",
           "save_checkpoint", "load_checkpoint", "ClassificationMeter", "SegmentationMeter", "RegressionMeter",
           "shape_ious"]
