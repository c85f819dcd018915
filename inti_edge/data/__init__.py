"""Video data: PyAV reading by presentation time, clip sampling, transforms, and the data sets.

  video.py       VideoReader / probe: frame index by pts, frames read by time; VideoError
  sampling.py    segment sampling (random offsets for training, centres for evaluation)
  transforms.py  short-side resize, crop, flip, CLIP normalisation (torch ops)
  store.py       FrameStore: a video decoded once, small, into RAM (or a GPU)
  clips.py       Kinetics-style labelled clips: CSV of path,label or a folder per class
  motion.py      the camera-motion task over real footage (7 classes)
  build.py       build_dataset(spec, cfg, split) / dataset_classes(spec) for --data SPEC
  transcode.py   shrink a video with PyAV (ship footage to a GPU machine, cut test clips)
  bench.py       python -m inti_edge.data.bench VIDEO...: decode + preprocess clips/s
"""

from .video import FrameIndex, VideoError, VideoReader, probe, probe_decoded
from .sampling import choose_span, segment_times, strided_times
from .transforms import ClipTransform, CropParams, center_crop, hflip, normalize, resize_short_side
from .store import FrameStore, clear_store_cache, load_store
from .clips import DatasetError, VideoClipDataset, read_class_list, read_csv, scan_folder
from .motion import (
    FLIP_LABEL,
    MOTION_CLASSES,
    CameraMotionDataset,
    ClipPlan,
    MotionConfig,
    auto_short_side,
    motion_dataset,
    split_segments,
    window_path,
)
from .build import build_dataset, dataset_classes
from .transcode import transcode

__all__ = [
    "FrameIndex", "VideoError", "VideoReader", "probe", "probe_decoded",
    "choose_span", "segment_times", "strided_times",
    "ClipTransform", "CropParams", "center_crop", "hflip", "normalize", "resize_short_side",
    "FrameStore", "clear_store_cache", "load_store",
    "DatasetError", "VideoClipDataset", "read_class_list", "read_csv", "scan_folder",
    "FLIP_LABEL", "MOTION_CLASSES", "CameraMotionDataset", "ClipPlan", "MotionConfig", "auto_short_side",
    "motion_dataset", "split_segments", "window_path",
    "build_dataset", "dataset_classes", "transcode",
]
