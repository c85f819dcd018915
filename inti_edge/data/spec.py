"""Data specs: the strings that name a data set everywhere (``--data SPEC``), parsed without torch.

``motion:VIDEO[,VIDEO...]`` is the camera-motion task over those videos; anything else is a CSV of
``path,label`` or a folder (``data.build`` reads them).
"""

from __future__ import annotations

MOTION_PREFIX = "motion:"


class DatasetError(ValueError):
    """A data set description is wrong: unknown label, bad CSV row, empty folder, empty spec."""


def motion_paths(spec: str) -> list[str]:
    """The video paths of a ``motion:`` spec."""
    paths = [p.strip() for p in spec[len(MOTION_PREFIX):].split(",") if p.strip()]
    if not paths:
        raise DatasetError(f"{spec!r}: 'motion:' needs at least one video path")
    return paths
