"""Which times of a video a clip shows: segment sampling (TSN style), by time, never by frame number.

Training: the span is cut into T equal segments and each segment gives one time at a random offset.
Evaluation: the centre of each segment, so a clip is the same on every run.
"""

from __future__ import annotations

import numpy as np


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


def strided_times(t0: float, num: int, step: float) -> np.ndarray:
    """``num`` times from ``t0`` at a fixed ``step`` (s): footage sampled at a stride."""
    return t0 + np.arange(num) * step
