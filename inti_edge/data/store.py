"""FrameStore: a whole video decoded once, small, into one uint8 tensor in RAM (or on a GPU).

Training on a GPU machine must not wait on a video decoder: the camera-motion task samples
thousands of clips a second from a few videos, so each video is decoded once at a reduced
resolution (short side 144-320 px) and clips are cut from memory with torch ops.
Memory: frames x 3 x H x W bytes (Big Buck Bunny, 14315 frames at 284x160: 1.95 GB; at 256x144:
1.58 GB; ``fps=12`` halves it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .video import (
    TIME_EPS, DecodeReport, FrameClock, GapCounter, InputWarning, VideoError, announced_seconds, decoded_frames, frame_to_tensor,
    Timeline, new_reformatter, open_video, out_size, quarter_turns, set_threads,
)


class FrameStore(Timeline):
    """All frames of one video: ``frames`` uint8 (N, 3, H, W) RGB and ``times`` (N,) float64 s."""

    def __init__(self, frames: torch.Tensor, times: np.ndarray, end: float, path: str = "", source_size=(0, 0)):
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
            raise ValueError("frames must be uint8 (N, 3, H, W)")
        if len(times) != frames.shape[0] or (len(times) > 1 and not (np.diff(times) > 0).all()):
            raise ValueError("times must be strictly increasing, one per frame")
        self.frames = frames  # (N, 3, H, W) uint8
        self.times = np.asarray(times, dtype=np.float64)  # (N,) presentation times, s
        self.end = float(end)  # s: when the last frame leaves the screen
        self.path = path
        self.source_size = tuple(source_size)  # (H, W) of the original video, upright
        self.report: DecodeReport | None = None  # what decoding met (from_video)

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def from_video(
        cls,
        path: str | Path,
        short_side: int = 160,
        fps: float | None = None,
        threads: int = 0,
        start: float = 0.0,
        duration: float | None = None,
    ) -> "FrameStore":
        """Decode ``path`` once, short side scaled to ``short_side`` (area filter, never up).

        ``fps``: keep only the frames on screen at multiples of 1/fps (fewer frames, same timing;
        None keeps all). ``start`` / ``duration`` (s, from the first frame): a part only."""
        path = str(path)
        container, stream = open_video(path)
        set_threads(stream, threads)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        src_h, src_w = stream.codec_context.height, stream.codec_context.width
        h, w = out_size(src_h, src_w, short_side)
        report = DecodeReport(path, announced=announced_seconds(container, stream))
        secs = duration if duration is not None else (report.announced or 0.0)
        rows = int(min(secs, 1e5) * (fps or rate)) + 16 if secs else 1024
        buf = None  # allocated at the first frame: its display rotation decides height and width
        clock = FrameClock(stream.time_base, rate)
        gaps = GapCounter()
        conv = new_reformatter()
        times: list[float] = []
        prev = None  # (frame, time): a frame is kept once the next one shows how long it stays on screen
        lo = hi = None  # keep what is on screen in [lo, hi)
        t_first = t_last = None
        k = 0  # with fps: the next grid time is lo + k / fps
        with container:
            for frame in decoded_frames(container, stream, report):
                t = clock(frame)
                report.frames += 1
                gaps(t)
                t_last = t
                if lo is None:
                    t_first = t
                    lo = t + start
                    hi = lo + duration if duration is not None else float("inf")
                    if quarter_turns(frame) % 2:
                        h, w = w, h
                        src_h, src_w = src_w, src_h
                    report.width, report.height = src_w, src_h
                    buf = torch.empty((rows, 3, h, w), dtype=torch.uint8)
                # prev is on screen during [prev time, t): keep it if that holds a grid time (fps)
                # or reaches past lo (all frames)
                if prev is not None and t > (lo + k / fps if fps else lo) + TIME_EPS:
                    buf = cls._grow(buf, len(times))
                    buf[len(times)].copy_(frame_to_tensor(prev[0], min(h, w), conv).permute(2, 0, 1))
                    times.append(prev[1])
                    while fps and lo + k / fps + TIME_EPS < t:
                        k += 1
                if t >= hi - TIME_EPS:
                    prev = None
                    break
                prev = (frame, t)
            if prev is not None and (not fps or lo + k / fps < prev[1] + 1.0 / rate):
                buf = cls._grow(buf, len(times))
                buf[len(times)].copy_(frame_to_tensor(prev[0], min(h, w), conv).permute(2, 0, 1))
                times.append(prev[1])
        n = len(times)
        if n == 0:
            why = f" ({report.read_error})" if report.read_error else ""
            raise VideoError(f"{path}: no decodable video frames{why}")
        step = 1.0 / fps if fps else (float(np.median(np.diff(times))) if n > 1 else 1.0 / rate)
        frames = buf[:n] if n == buf.shape[0] else buf[:n].clone()
        report.gaps, report.gap_seconds, report.interval = gaps.gaps, gaps.seconds, gaps.interval or 1.0 / rate
        report.decoded = t_last - t_first + report.interval
        if start or duration is not None:  # a part was asked for: the rest is not missing
            report.announced = None
        store = cls(frames, np.asarray(times), times[-1] + step, path, (src_h, src_w))
        store.report = report
        return store

    @staticmethod
    def _grow(buf: torch.Tensor, n: int) -> torch.Tensor:
        """``buf`` with room for row n (1.5x when full)."""
        if n < buf.shape[0]:
            return buf
        bigger = torch.empty((int(buf.shape[0] * 1.5) + 16, *buf.shape[1:]), dtype=buf.dtype)
        bigger[:n] = buf[:n]
        return bigger

    # -- facts --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[2]

    @property
    def width(self) -> int:
        return self.frames.shape[3]

    @property
    def nbytes(self) -> int:
        return self.frames.numel()

    @property
    def device(self) -> torch.device:
        return self.frames.device

    def position(self, t) -> np.ndarray:
        """Frame on screen at time(s) ``t`` (s): the last frame with time <= t."""
        i = np.searchsorted(self.times, np.asarray(t, dtype=np.float64) + TIME_EPS, side="right") - 1
        return np.minimum(np.maximum(i, 0), len(self) - 1)

    def cuts(self, threshold: float = 0.08) -> np.ndarray:
        """Positions of frames that start a new shot (hard cuts), increasing; computed once.

        A cut: the mean absolute change of a 32x18 grey thumbnail from the previous frame is above
        ``threshold`` (in [0, 1]) and over 3x the median change of the 8 frames around it."""
        key = ("_cuts", threshold)
        if getattr(self, "_cut_key", None) != key:
            import torch.nn.functional as F

            step = max(1, min(self.height, self.width) // 72)  # subsample before the float copy
            thumbs = torch.cat(
                [
                    F.adaptive_avg_pool2d(self.frames[i : i + 1024, :, ::step, ::step].float().mean(1, keepdim=True), (18, 32))
                    for i in range(0, len(self), 1024)
                ]
            ).cpu() / 255.0  # (N, 1, 18, 32)
            d = np.concatenate([[0.0], (thumbs[1:] - thumbs[:-1]).abs().mean((1, 2, 3)).numpy()])
            padded = np.pad(d, 4, mode="edge")
            around = np.lib.stride_tricks.sliding_window_view(padded, 9)[:, [0, 1, 2, 3, 5, 6, 7, 8]]
            self._cut_positions = np.flatnonzero((d > threshold) & (d > 3 * np.median(around, 1))).astype(np.int64)
            self._cut_key = key
        return self._cut_positions

    def motion(self):
        """The footage's own motion between neighbouring frames (``footage_motion.FootageMotion``),
        measured once (a few seconds for a feature film) and kept with the store."""
        if getattr(self, "_motion", None) is None:
            from .footage_motion import measure

            gap = float(np.median(np.diff(self.times))) if len(self) > 1 else 1.0
            self._motion = measure(self.frames, gap)
        return self._motion

    def to(self, device) -> "FrameStore":
        """The same store with its frames on ``device`` (times stay on the CPU)."""
        moved = FrameStore(self.frames.to(device), self.times, self.end, self.path, self.source_size)
        moved.report = self.report
        if hasattr(self, "_cut_key"):
            moved._cut_key, moved._cut_positions = self._cut_key, self._cut_positions
        moved._motion = getattr(self, "_motion", None)
        return moved

    def __repr__(self) -> str:
        return (
            f"FrameStore({os.path.basename(self.path)!r}, {len(self)} frames {self.width}x{self.height}, "
            f"{self.start:.2f}-{self.end:.2f} s, {self.nbytes / 2**20:.0f} MiB on {self.device})"
        )


_CACHE: dict[tuple, FrameStore] = {}


def load_store(path: str | Path, short_side: int = 160, fps: float | None = None, threads: int = 0) -> FrameStore:
    """``FrameStore.from_video``, decoded once per process for each (file, short_side, fps):
    the train, val and test sets of one video share one store."""
    p = Path(path).resolve()
    try:
        mtime = p.stat().st_mtime_ns
    except OSError:
        raise VideoError(f"{path}: no such file") from None
    key = (str(p), mtime, short_side, fps)
    if key not in _CACHE:
        _CACHE[key] = FrameStore.from_video(p, short_side=short_side, fps=fps, threads=threads)
    return _CACHE[key]


DAMAGE_POLICIES = ("warn", "skip", "refuse")
MAX_LOST = 0.25  # default --max-lost: the fraction of a video's time damage may take before it is left out


class DamageWarning(InputWarning):
    """A source was read with damage (or is odd: far below the model's size); the message has the counts."""


def screen_stores(stores: list[FrameStore], policy: str = "warn", max_lost: float = MAX_LOST,
                  image_size: int | None = None) -> list[FrameStore]:
    """Say, one warning line per video, what decoding met; then by ``policy`` keep every video
    ("warn"), leave out those that lost more than ``max_lost`` of their time ("skip": training and
    calibration), or refuse them ("refuse": evaluation and the gate, a VideoError naming the option)."""
    import warnings

    if policy not in DAMAGE_POLICIES:
        raise ValueError(f"damage policy must be one of {', '.join(DAMAGE_POLICIES)}, not {policy!r}")
    kept = []
    for st in stores:
        rep = st.report
        line = rep.line(image_size) if rep is not None else None
        over = rep is not None and rep.lost_fraction > max_lost
        if over and policy == "refuse":
            raise VideoError(f"{line}: over the limit of {100 * max_lost:.0f}% (--max-lost); repair or drop the video, "
                             "or raise --max-lost to use it as it is")
        if over and policy == "skip":
            warnings.warn(f"skipped {line}: over the limit of {100 * max_lost:.0f}% (--max-lost)", DamageWarning, stacklevel=2)
            continue
        if line:
            warnings.warn(line, DamageWarning, stacklevel=2)
        kept.append(st)
    if not kept:
        raise VideoError(f"every video was left out for damage over {100 * max_lost:.0f}% of its time (--max-lost)")
    return kept
