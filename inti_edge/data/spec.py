"""Data specs: the strings that name a data set everywhere (``--data SPEC``), parsed without torch.

``motion:VIDEO[,VIDEO...]`` is the camera-motion task over those videos; ``raw:LABELS.csv`` or
``raw:VIDEO[,VIDEO...]@LABELS.csv`` is untouched footage (no virtual camera) labelled by time range
(``raw.py``: a CSV of ``path,start,end,label``; with VIDEOs, only their rows); anything else is a CSV of
``path,label`` or a folder (``data.build`` reads them).
"""

from __future__ import annotations

MOTION_PREFIX = "motion:"
RAW_PREFIX = "raw:"


class DatasetError(ValueError):
    """A data set description is wrong: unknown label, bad CSV row, empty folder, empty spec."""


def motion_paths(spec: str) -> list[str]:
    """The video paths of a ``motion:`` spec."""
    paths = [p.strip() for p in spec[len(MOTION_PREFIX):].split(",") if p.strip()]
    if not paths:
        raise DatasetError(f"{spec!r}: 'motion:' needs at least one video path")
    return paths


def raw_spec(spec: str) -> tuple[str, list[str] | None]:
    """(labels CSV, the videos asked for or None for all its rows) of a ``raw:`` spec."""
    body = spec[len(RAW_PREFIX):].strip()
    form = "raw:LABELS.csv or raw:VIDEO[,VIDEO...]@LABELS.csv (a CSV of path,start,end,label)"
    if not body:
        raise DatasetError(f"{spec!r}: 'raw:' needs a labels CSV: {form}")
    if "@" not in body:
        if not body.lower().endswith(".csv"):
            raise DatasetError(f"{spec!r}: raw footage needs its labels: raw:{body}@LABELS.csv (a CSV of path,start,end,label)")
        return body, None
    videos, _, csv = body.rpartition("@")
    paths = [p.strip() for p in videos.split(",") if p.strip()]
    if not csv.strip():
        raise DatasetError(f"{spec!r}: nothing after '@': {form}")
    if not paths:
        raise DatasetError(f"{spec!r}: no video before '@': {form}")
    return csv.strip(), paths
