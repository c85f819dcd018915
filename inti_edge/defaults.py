"""The bundled default model (see inti_edge/assets/MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL = ASSETS / "default_motion_small.pt"
DEFAULT_MODEL_SHA256 = "71b0d10eca36d12f2e9c45bc9360117913fa1f51d092736e8d5d2038a820266a"
