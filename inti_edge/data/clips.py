"""Kinetics-style labelled clips: a CSV of ``path,label`` or a folder per class.

- CSV: one ``path,label`` row per video (a ``path,label`` header is allowed); relative paths are
  relative to the CSV's folder; label is a class name.
- Folder: ``root/<class name>/<video files>``.
- Class order: a class-list file (one name per line) fixes it; without one, sorted names. Labels
  not in the list are an error, not a new class.

Each item reads T frames by segment sampling over the video (or over a ``span``-second window of
it): random offsets in training, segment centres in evaluation.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .sampling import choose_span, segment_times
from .spec import DatasetError
from .transforms import ClipTransform
from .video import FrameIndex, InputWarning, VideoError, VideoReader, probe

VIDEO_SUFFIXES = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".flv", ".wmv",
    ".3gp", ".ogv", ".gif", ".y4m",
}


def read_class_list(path: str | Path) -> list[str]:
    """Class names, one per line (blank lines and surrounding spaces ignored; no repeats)."""
    names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{path}: repeated class names: {', '.join(dup[:5])}")
    return names


def _resolve_classes(classes, found: Sequence[str], where: str) -> list[str]:
    if classes is None:
        return sorted(set(found))
    names = read_class_list(classes) if isinstance(classes, (str, Path)) else list(classes)
    unknown = sorted(set(found) - set(names))
    if unknown:
        more = f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise DatasetError(f"{where}: labels not in the class list: {', '.join(map(repr, unknown[:5]))}{more}")
    return names


def read_csv(path: str | Path) -> list[tuple[str, str]]:
    """(video path, label) rows of a ``path,label`` CSV; paths made absolute against its folder."""
    path = Path(path)
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                continue
            if len(row) < 2:
                raise DatasetError(f"{path}:{n}: expected 'path,label', got {','.join(row)!r}")
            p, label = row[0].strip(), row[1].strip()
            if n == 1 and (p.lower(), label.lower()) == ("path", "label"):
                continue
            rows.append((str((path.parent / p) if not Path(p).is_absolute() else Path(p)), label))
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows


def scan_folder(root: str | Path) -> list[tuple[str, str]]:
    """(video path, class folder name) for every video file in ``root/<class>/``."""
    root = Path(root)
    rows = [
        (str(f), d.name)
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for f in sorted(d.rglob("*"))
        if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES and not f.name.startswith(".")
    ]
    if not rows:
        raise DatasetError(f"{root}: no video files in class folders (root/<class>/<video>)")
    return rows


class VideoClipDataset(Dataset):
    """Labelled videos; items are (clip float (T, 3, S, S), label int).

    ``span``: seconds the T segments cover (a window placed at random in training, centred in
    evaluation); None covers the whole video. ``decode_short_side``: frames are scaled down
    while decoding (swscale) to this short side before the torch transform; "auto" takes the
    transform's largest need, None decodes at full size. ``skip_broken``: a video that fails to
    read is replaced by the next one (with a warning) instead of stopping the run. ``damage``: a
    video that lost more than ``max_lost`` of its time to damage is used with its warning line
    ("warn"), skipped ("skip", as a broken video) or refused ("refuse": every video is probed when
    the data set is made, so an evaluation stops before it starts).
    """

    def __init__(
        self,
        items: Sequence[tuple[str, int]],
        classes: Sequence[str],
        frames: int = 8,
        transform: ClipTransform | None = None,
        span: float | None = None,
        decode_short_side: int | str | None = "auto",
        threads: int = 1,
        skip_broken: bool = False,
        seed: int | None = None,
        damage: str = "warn",
        max_lost: float | None = None,
    ):
        self.items = [(str(p), int(y)) for p, y in items]
        self.classes = list(classes)
        self.frames = frames
        self.transform = transform or ClipTransform(112)
        self.train = self.transform.train
        self.span = span
        self.decode_short_side = self.transform.decode_short_side if decode_short_side == "auto" else decode_short_side
        self.threads = threads
        from .store import DAMAGE_POLICIES, MAX_LOST

        if damage not in DAMAGE_POLICIES:
            raise ValueError(f"damage policy must be one of {', '.join(DAMAGE_POLICIES)}, not {damage!r}")
        self.damage, self.max_lost = damage, MAX_LOST if max_lost is None else max_lost
        self.skip_broken = skip_broken or damage == "skip"
        self._said: set = set()
        self.seed = seed  # evaluation: None is fine (no randomness); training: None = fresh each draw
        self.epoch = 0
        self._index: dict[str, FrameIndex] = {}  # per process: the demux pass once per file

    @classmethod
    def from_csv(cls, csv_path: str | Path, classes=None, **kw) -> "VideoClipDataset":
        """From a ``path,label`` CSV; ``classes``: a class-list file or a list of names."""
        return cls._from_rows(read_csv(csv_path), classes, str(csv_path), **kw)

    @classmethod
    def from_folder(cls, root: str | Path, classes=None, **kw) -> "VideoClipDataset":
        """From ``root/<class>/<videos>``; ``classes``: a class-list file or a list of names."""
        return cls._from_rows(scan_folder(root), classes, str(root), **kw)

    @classmethod
    def _from_rows(cls, rows, classes, where: str, **kw) -> "VideoClipDataset":
        names = _resolve_classes(classes, [y for _, y in rows], where)
        pos = {n: i for i, n in enumerate(names)}
        return cls([(p, pos[y]) for p, y in rows], names, **kw)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def frame_step(self, probe_videos: int = 16) -> tuple[float, str]:
        """Seconds between sampled frames that a stream should use, and where it comes from: the span
        over T when a span is set, else the median duration of (up to ``probe_videos``, evenly spread)
        videos over T, as segment sampling over whole videos spaces them."""
        if self.span is not None:
            return self.span / self.frames, f"span {self.span:g} s / {self.frames} frames"
        picks = sorted({round(i) for i in np.linspace(0, len(self.items) - 1, min(probe_videos, len(self.items)))})
        durations = []
        for i in picks:
            try:
                durations.append(self._index.get(self.items[i][0]) or probe(self.items[i][0]))
            except VideoError:
                continue
        durations = [ix.duration for ix in durations if ix.duration > 0]
        if not durations:
            raise VideoError("no readable video to measure the frame step from")
        return float(np.median(durations)) / self.frames, f"median duration of {len(durations)} videos / {self.frames} frames"

    def _rng(self, i: int) -> np.random.Generator | None:
        if not self.train:
            return None
        key = [self.epoch, i, int(torch.randint(0, 2**62, ()).item())] if self.seed is None else [self.seed, self.epoch, i]
        return np.random.default_rng(key)

    def times(self, index: FrameIndex, rng: np.random.Generator | None) -> np.ndarray:
        """The T sampled times (s) of one video; VideoError if it has fewer than T frames to give."""
        s, e = choose_span(index.start, index.end, self.span, rng)
        have = index.count_between(s, e)
        if have < self.frames:
            over = f"in {e - s:.2f} s" if self.span is None else f"in its {e - s:.2f} s span"
            raise VideoError(
                f"{index.path}: clip too short: {have} frames {over}, need at least {self.frames} "
                f"(one per segment; {self.frames / max(index.fps, 1e-9):.2f} s at its {index.fps:.1f} fps)"
            )
        return segment_times(s, e, self.frames, rng)

    def index(self, path: str) -> FrameIndex:
        """The video's FrameIndex (probed once), its damage said once and judged by the policy."""
        index = self._index.get(path)
        if index is None:
            index = self._index[path] = probe(path)
        rep = index.report
        if rep is not None and path not in self._said:
            self._said.add(path)
            line = rep.line(self.transform.size)
            if rep.lost_fraction > self.max_lost and self.damage != "warn":
                raise VideoError(f"{line}: over the limit of {100 * self.max_lost:.0f}% (--max-lost)")
            if line:
                warnings.warn(line, InputWarning, stacklevel=2)
        return index

    def check_all(self) -> None:
        """Probe every video now (the refuse policy: an evaluation must not stop half-way)."""
        for path, _ in self.items:
            self.index(path)

    def read(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[i]
        index = self.index(path)
        rng = self._rng(i)
        reader = VideoReader(path, self.threads, index)
        frames = reader.read(self.times(index, rng), self.decode_short_side)
        self._index[path] = reader.index  # the reader may have rebuilt it (see video.probe)
        rep = reader.index.report
        if rep is not None and rep.decode_errors and (path, "decode") not in self._said:
            self._said.add((path, "decode"))  # damage only decoding finds: said the first time it shows
            warnings.warn(f"{path}: {rep.decode_errors} packet(s) failed to decode while reading a clip", InputWarning,
                          stacklevel=2)
        return self.transform(frames, rng), label

    def __getitem__(self, i: int):
        if not self.skip_broken:
            return self.read(i)
        for k in range(min(len(self), 20)):
            try:
                return self.read((i + k) % len(self))
            except VideoError as e:
                warnings.warn(f"skipping: {e}", InputWarning, stacklevel=2)
        raise VideoError(f"20 videos in a row failed to read, from item {i} ({self.items[i][0]})")
