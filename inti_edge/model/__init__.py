"""The InTI video model: configs, the TokenInterpolation op, the video model, heads, FLOPs."""

from .config import ModelConfig, VisionConfig, make_config, PRESETS, default_schedule
from .interpolation import InterpolationConfig, TokenInterpolation
from .video import InTIVideoModel, VideoEncoder, VideoHead
from .factory import (
    CheckpointError,
    PretrainedError,
    create_model,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

__all__ = [
    "ModelConfig", "VisionConfig", "make_config", "PRESETS", "default_schedule",
    "InterpolationConfig", "TokenInterpolation", "InTIVideoModel", "VideoEncoder", "VideoHead",
    "CheckpointError", "PretrainedError", "create_model", "load_checkpoint", "read_checkpoint",
    "save_checkpoint",
]
