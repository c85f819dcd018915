"""The bundled default model (see inti_edge/assets/MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL = ASSETS / "default_motion_small.pt"
DEFAULT_MODEL_SHA256 = "1b119e2be4a612e7c194f2d81b88b5678b20454be4c7301da2061e3963a95c57"
