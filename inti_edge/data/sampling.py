"""Which times of a video a clip shows: segment sampling (TSN style), by time, never by frame number.

Training: the span is cut into T equal segments and each segment gives one time at a random offset.
Evaluation: the centre of each segment, so a clip is the same on every run.

``Sampling`` is the temporal contract a trained model carries (checkpoint, ONNX metadata): seconds
between sampled frames, frames per unit (what the encoder takes), frames per window (a clip), so a
stream samples exactly as training did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sampling:
    """How a model sees time: T frames ``frame_step`` s apart, in units of ``unit_frames``.

    A window (one clip, one prediction) is ``window_frames`` sampled frames; the encoder takes one
    unit of ``unit_frames`` (2^s) consecutive sampled frames at a time; the head reads the window's
    ``units`` unit embeddings."""

    frame_step: float  # s between two sampled frames
    unit_frames: int  # 2^s: sampled frames per unit
    window_frames: int  # T: sampled frames per window
    origin: str = ""  # how frame_step was set (e.g. "motion: fixed", "span 8.0 s / 8", "median of 12 videos")

    def __post_init__(self) -> None:
        if not (math.isfinite(self.frame_step) and self.frame_step > 0):
            raise ValueError(f"frame_step must be a positive number of seconds, not {self.frame_step!r}")
        if self.unit_frames < 1 or self.window_frames < 1 or self.window_frames % self.unit_frames:
            raise ValueError(f"a window of {self.window_frames} frames is not a whole number of {self.unit_frames}-frame units")

    @property
    def units(self) -> int:
        """U: units per window."""
        return self.window_frames // self.unit_frames

    @property
    def unit_seconds(self) -> float:
        """Seconds of video one unit covers (from its first sampled frame to the next unit's)."""
        return self.unit_frames * self.frame_step

    @property
    def window_seconds(self) -> float:
        """Seconds of video one window covers (first sampled frame to one step past the last)."""
        return self.window_frames * self.frame_step

    def to_dict(self) -> dict:
        return {"frame_step": self.frame_step, "unit_frames": self.unit_frames, "window_frames": self.window_frames,
                "origin": self.origin}

    @classmethod
    def from_dict(cls, d: dict) -> "Sampling":
        try:
            return cls(float(d["frame_step"]), int(d["unit_frames"]), int(d["window_frames"]), str(d.get("origin", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a sampling record ({e})") from None


def segment_times(start: float, end: float, num: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """``num`` times (s, increasing) over [start, end): one per equal segment, at a random offset
    inside it with ``rng`` (training), at its centre without (evaluation)."""
    if num < 1:
        raise ValueError("num must be >= 1")
    if not end > start:
        raise ValueError(f"empty span [{start}, {end})")
    seg = (end - start) / num
    offset = rng.random(num) if rng is not None else np.full(num, 0.5)
    return start + (np.arange(num) + offset) * seg


def choose_span(start: float, end: float, span: float | None, rng: np.random.Generator | None = None) -> tuple[float, float]:
    """A window of ``span`` seconds inside [start, end): at a random place with ``rng``, centred
    without. ``span`` None (or longer than the video): the whole [start, end)."""
    length = end - start
    if span is None or span >= length:
        return start, end
    free = length - span
    s = start + (rng.random() * free if rng is not None else free / 2)
    return s, s + span


