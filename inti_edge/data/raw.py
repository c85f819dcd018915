"""Untouched real footage as a camera-motion test set: clips labelled by time range, no virtual camera.

``--data raw:LABELS.csv`` (every row) or ``--data raw:VIDEO[,VIDEO...]@LABELS.csv`` (only those
videos' rows). LABELS.csv has one range per row, ``path,start,end,label`` (a header line ``path,...``
is allowed; ``#`` starts a comment line):
- ``path``: the video, relative to the CSV's folder (or absolute);
- ``start``, ``end``: seconds from the video's first frame, as a player shows them;
- ``label``: the camera motion a viewer sees over that range, one of the 7 camera-motion classes.

Clips are sampled as the model samples a stream: ``frames`` frames ``frame_step`` s apart (the
checkpoint's sampling record in ``inti-edge eval``), the whole picture centre-cropped square and resized
(as ``inti-edge run`` preprocesses), one clip start every ``stride`` s while the clip's last frame lies
in the range. The set is the same on every run (no randomness); each clip knows its video
(``source_of``: per-source accuracy).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.ops import roi_align

from ..model.config import CLIP_MEAN, CLIP_STD
from .motion import MOTION_CLASSES
from .spec import DatasetError
from .transforms import normalize

STRIDE = 0.5  # s between the starts of two clips of a range


@dataclass(frozen=True)
class RawRange:
    """One labelled time range of a video."""

    path: str  # resolved
    start: float  # s from the video's first frame
    end: float
    label: int  # index into MOTION_CLASSES
    line: int  # of the CSV (errors name it)


def read_raw_labels(csv_path: str | os.PathLike, videos: Sequence[str] | None = None) -> list[RawRange]:
    """The ranges of a labels CSV (module docstring); ``videos``: keep only their rows (each must have one)."""
    p = Path(csv_path).expanduser()
    if not p.is_file():
        raise DatasetError(f"{csv_path}: no such labels file (raw: wants a CSV of path,start,end,label)")
    out = []
    with p.open(newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#") or (n == 1 and cells[0].lower() == "path"):
                continue
            where = f"{p.name} line {n}"
            if len(cells) != 4:
                raise DatasetError(f"{where}: {len(cells)} fields, want 4: path,start,end,label")
            try:
                start, end = float(cells[1]), float(cells[2])
            except ValueError:
                raise DatasetError(f"{where}: start and end must be seconds, got {cells[1]!r}, {cells[2]!r}") from None
            if not (0 <= start < end):
                raise DatasetError(f"{where}: want 0 <= start < end, got {start:g}-{end:g} s")
            if cells[3] not in MOTION_CLASSES:
                raise DatasetError(f"{where}: label {cells[3]!r} is not a camera-motion class ({', '.join(MOTION_CLASSES)})")
            video = Path(cells[0]).expanduser()
            video = video if video.is_absolute() else p.parent / video
            if not video.is_file():
                raise DatasetError(f"{where}: no such video {video} (paths are relative to the CSV's folder)")
            out.append(RawRange(str(video.resolve()), start, end, MOTION_CLASSES.index(cells[3]), n))
    if videos is not None:
        want = {str(Path(v).expanduser().resolve()): v for v in videos}
        missing = [v for k, v in want.items() if not any(r.path == k for r in out)]
        if missing:
            raise DatasetError(f"{', '.join(missing)}: no rows in {p.name} (label its ranges there, or leave the video out)")
        out = [r for r in out if r.path in want]
    if not out:
        raise DatasetError(f"{p.name}: no labelled ranges (rows of path,start,end,label)")
    return out


class RawFootageDataset(Dataset):
    """Clips of untouched footage over labelled ranges; items (clip float (T, 3, S, S), label int)."""

    classes = MOTION_CLASSES

    def __init__(self, ranges: Sequence[RawRange], stores: dict, frames: int = 8, size: int = 112,
                 frame_step: float = 1 / 6, mean=CLIP_MEAN, std=CLIP_STD, stride: float = STRIDE):
        self.frames, self.size, self.step = frames, size, float(frame_step)
        self.mean, self.std = tuple(mean), tuple(std)
        self.stores = stores  # resolved path -> FrameStore
        span = (frames - 1) * self.step
        self.clips: list[tuple[str, np.ndarray, int]] = []  # (path, store positions (T,), label)
        for r in ranges:
            st = stores[r.path]
            end = min(r.end, st.end - st.start)
            n = int(np.floor((end - r.start - span) / stride + 1e-9)) + 1
            if n < 1:
                raise DatasetError(
                    f"line {r.line}: {os.path.basename(r.path)} {r.start:g}-{r.end:g} s holds no clip of {frames} frames "
                    f"every {self.step:.3f} s (it needs {span:.2f} s of the video{'' if r.end <= end else f', which ends at {end:.2f} s'})")
            for k in range(n):
                t = st.start + r.start + k * stride + np.arange(frames) * self.step
                self.clips.append((r.path, st.position(t), r.label))

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def num_classes(self) -> int:
        return len(MOTION_CLASSES)

    def frame_step(self) -> tuple[float, str]:
        return self.step, "raw: the model's frame step"

    def source_of(self, index: int) -> str:
        return os.path.basename(self.clips[index][0])

    def __getitem__(self, index: int):
        path, positions, label = self.clips[index]
        st = self.stores[path]
        frames = st.frames[torch.as_tensor(positions)].float()  # (T, 3, H, W)
        side = min(st.height, st.width)
        x0, y0 = (st.width - side) / 2, (st.height - side) / 2
        boxes = torch.tensor([[i, x0, y0, x0 + side, y0 + side] for i in range(len(positions))], dtype=torch.float32)
        clip = roi_align(frames, boxes, output_size=(self.size, self.size), spatial_scale=1.0, sampling_ratio=0, aligned=True)
        return normalize(clip / 255.0, self.mean, self.std), label


def raw_dataset(csv_path: str, videos: Sequence[str] | None, frames: int, size: int, frame_step: float | None = None,
                mean=CLIP_MEAN, std=CLIP_STD, short_side: int | None = None, damage: str = "warn",
                max_lost: float | None = None) -> RawFootageDataset:
    """A RawFootageDataset of a labels CSV (stores decoded once per process, ``store.load_store``)."""
    from .motion import MotionConfig, auto_short_side
    from .store import MAX_LOST, load_store, screen_stores

    ranges = read_raw_labels(csv_path, videos)
    short_side = short_side or auto_short_side(size)
    paths = list(dict.fromkeys(r.path for r in ranges))
    stores = screen_stores([load_store(p, short_side=short_side) for p in paths], damage,
                           MAX_LOST if max_lost is None else max_lost, size)
    kept = {str(Path(st.path).resolve()): st for st in stores}
    ranges = [r for r in ranges if r.path in kept]
    step = frame_step if frame_step is not None else MotionConfig().frame_step[0]
    return RawFootageDataset(ranges, kept, frames=frames, size=size, frame_step=step, mean=mean, std=std)
