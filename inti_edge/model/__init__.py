"""The InTI video model: configs, the TokenInterpolation op, the video model, heads, FLOPs.

Configs (``config.py``) import no torch, so a deploy-only install reads the config that travels in
checkpoints and ONNX metadata; the modules are loaded on first use (PEP 562).
"""

from importlib import import_module

from .config import InterpolationConfig, ModelConfig, PRESETS, VisionConfig, default_schedule, make_config

_LAZY = {
    "TokenInterpolation": "interpolation",
    "InTIVideoModel": "video",
    "VideoEncoder": "video",
    "VideoHead": "video",
    "CheckpointError": "factory",
    "PretrainedError": "factory",
    "create_model": "factory",
    "load_checkpoint": "factory",
    "read_checkpoint": "factory",
    "save_checkpoint": "factory",
}

__all__ = [
    "ModelConfig", "VisionConfig", "make_config", "PRESETS", "default_schedule", "InterpolationConfig", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
