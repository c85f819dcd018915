"""FLOPs of a model, counted by running it (torch.utils.flop_counter), not by formula.

Convention: GFLOPs here are giga multiply-adds (GMACs), the convention of the ViT / video papers
(CLIP ViT-B/16 at 224 px: ~17.6 per frame). torch's counter reports 2 FLOPs per multiply-add; we
divide by 2. Matrix products and convolutions are counted (attention's QK^T and AV included);
element-wise work (LayerNorm, softmax, GELU, adds) is not, as in the papers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig, make_config
from .video import InTIVideoModel


def count_gmacs(model: InTIVideoModel, batch: int = 1) -> dict[str, float]:
    """Run one clip through ``model`` and return {'total': GMACs, 'weightnet': GMACs of the
    TokenInterpolation modules} per clip."""
    cfg = model.cfg
    S = cfg.vision.image_size
    device = next(model.parameters()).device  # 'meta' counts shapes without computing
    x = torch.zeros(batch, cfg.frames, 3, S, S, device=device)
    was_training = model.training
    # train mode: nn.MultiheadAttention's inference fast path is a fused op the counter cannot see;
    # the math SDPA backend decomposes attention into counted matrix products. No dropout is used.
    model.train()
    counter = FlopCounterMode(display=False, depth=None)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            model(x)
    finally:
        model.train(was_training)
    per_module = counter.get_flop_counts()
    total = counter.get_total_flops()
    top = type(model).__name__
    weightnet = sum(
        sum(per_module.get(f"{top}.interps.{i}", {}).values()) for i in range(len(model.interps))
    )
    return {"total": total / 2e9 / batch, "weightnet": weightnet / 2e9 / batch}


def flops(preset: str, frames: int = 8, halvings: int = 1, num_classes: int = 400, **overrides: Any) -> dict:
    """InTI vs the naive baseline for one preset, as one JSON-ready dict."""
    cfg: ModelConfig = make_config(preset, frames, halvings, num_classes, **overrides)
    naive_cfg = dataclasses.replace(cfg, interp_after=())
    # on the meta device: shapes only, so even ViT-L/14 counts in a second on a laptop CPU
    with torch.device("meta"):
        model, naive_model = InTIVideoModel(cfg), InTIVideoModel(naive_cfg)
    inti, naive = count_gmacs(model), count_gmacs(naive_model)
    weightnet_params = sum(p.numel() for p in model.interps.parameters())
    return {
        "model": preset,
        "frames": frames,
        "image_size": cfg.vision.image_size,
        "halvings": cfg.halvings,
        "interp_after": list(cfg.interp_after),
        "units": "GMACs (multiply-adds) per clip",
        "inti_gflops": round(inti["total"], 3),
        "naive_gflops": round(naive["total"], 3),
        "ratio": round(inti["total"] / naive["total"], 4),
        "saving": round(1 - inti["total"] / naive["total"], 4),
        "weightnet_gflops": round(inti["weightnet"], 4),
        "weightnet_fraction": round(inti["weightnet"] / inti["total"], 5) if inti["total"] else 0.0,
        "weightnet_params": weightnet_params,
        "params": sum(p.numel() for p in model.parameters()),
    }
