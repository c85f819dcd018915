"""The bundled default model (see inti_edge/assets/MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL = ASSETS / "default_motion_small.pt"
DEFAULT_MODEL_SHA256 = "3e88c3a13176e13c513d3bba4e4f85ec10460de632e65c804e4e3cd62810804c"
