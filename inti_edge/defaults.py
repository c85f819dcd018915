"""The bundled default model (see inti_edge/assets/MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL = ASSETS / "default_motion_small.pt"
DEFAULT_MODEL_SHA256 = "b9491f1391bde20edc5f0328efb36a67825e160cfe522a4145354d140d6d6054"
