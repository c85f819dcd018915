"""Video data: PyAV reading by presentation time, clip sampling, transforms, and the data sets.

  video.py       VideoReader / probe: frame index by pts, frames read by time; VideoError
  sampling.py    segment sampling (random offsets for training, centres for evaluation); Sampling
  preprocess.py  frames -> model input with PyAV + numpy (no torch): what `run` uses
  transforms.py  short-side resize, crop, flip, CLIP normalisation (torch ops)
  store.py       FrameStore: a video decoded once, small, into RAM (or a GPU)
  clips.py       Kinetics-style labelled clips: CSV of path,label or a folder per class
  motion.py      the camera-motion task over real footage (7 classes)
  footage_motion.py  the footage's own global motion (phase correlation), measured once per video
  raw.py         untouched footage labelled by time range (raw:LABELS.csv): a real test set
  build.py       build_dataset(spec, cfg, split) / dataset_classes(spec) for --data SPEC
  transcode.py   shrink a video with PyAV (ship footage to a GPU machine, cut test clips)
  (decode + preprocess clips/s: `inti-edge bench --suite data`)

Names are loaded on first use (PEP 562): reading video and preprocessing import no torch, so a
deploy-only install streams without it; the data sets and transforms bring torch in.
"""

from importlib import import_module

_WHERE = {
    "video": ("FrameIndex", "InputWarning", "VideoError", "VideoReader", "probe", "probe_decoded"),
    "sampling": ("Sampling", "choose_span", "segment_times"),
    "preprocess": ("Preprocess",),
    "transforms": ("ClipTransform", "CropParams", "hflip", "normalize", "resize_short_side"),
    "store": ("FrameStore", "load_store"),
    "spec": ("DatasetError", "MOTION_PREFIX", "RAW_PREFIX", "motion_paths", "raw_spec"),
    "raw": ("RawFootageDataset", "read_raw_labels"),
    "clips": ("VideoClipDataset", "read_class_list", "read_csv", "scan_folder"),
    "motion": ("FLIP_LABEL", "MOTION_CLASSES", "CameraMotionDataset", "ClipPlan", "ClipsTooShortError", "MotionConfig",
               "SplitLayout", "LABEL_RULES", "apparent_motion", "auto_short_side", "classify_motion", "motion_dataset",
               "split_layout", "split_segments", "window_path"),
    "footage_motion": ("FootageMotion",),
    "build": ("build_dataset", "dataset_classes", "load_clips"),
}
_LAZY = {name: module for module, names in _WHERE.items() for name in names}

# the function shares its module's name: bound now, so importing the module never shadows it (no torch here)
from .transcode import transcode  # noqa: E402

__all__ = [*_LAZY, "transcode"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
