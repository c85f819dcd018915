"""The InTI video model on an open_clip ViT, and its encoder / head split.

    clip (B, T, 3, S, S)
      -> patch embed, CLS, positions, ln_pre       (B*T, N, C)     open_clip's VisionTransformer._embeds
      -> blocks [0, a1)                            (B*T, N, C)     every block attends within one frame
      -> TokenInterpolation                        (B*T/2, N, C)   pairs (2t, 2t+1) merged
      -> blocks [a1, a2) ... (more halvings)       (B*U, N, C)     U = T / 2^s merged frames
      -> ln_post, CLS + grid pooled to 2x2, proj   (B, U, K, E)    one unit embedding per merged frame
      -> temporal head                             (B, classes)

Every block attends within one (merged) frame, so a unit of 2^s consecutive frames passes the
backbone on its own: ``encode_units`` of a clip equals ``encode_unit`` of each of its units, and the
head alone mixes time. Export and streaming use that split (``VideoEncoder`` / ``VideoHead``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .interpolation import TokenInterpolation


def build_visual(cfg: ModelConfig) -> nn.Module:
    """An open_clip VisionTransformer for cfg.vision (no text tower is built)."""
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    v = cfg.vision
    vcfg = CLIPVisionCfg(
        layers=v.layers,
        width=v.width,
        head_width=v.head_width,
        mlp_ratio=v.mlp_ratio,
        patch_size=v.patch_size,
        image_size=v.image_size,
    )
    visual = _build_vision_tower(v.embed_dim, vcfg, quick_gelu=v.quick_gelu)
    if not hasattr(visual, "_embeds") or not hasattr(visual, "transformer"):
        raise RuntimeError("this open_clip version's VisionTransformer lacks _embeds/transformer; need open_clip_torch>=2.24")
    return visual


class TemporalHead(nn.Module):
    """Order-aware head: a small transformer over all unit tokens with learned temporal positions.

    units (B, U, K, E) -> logits (B, classes)
    """

    def __init__(self, cfg: ModelConfig, max_units: int):
        super().__init__()
        E = cfg.vision.embed_dim
        self.max_units = max_units
        self.time_pos = nn.Parameter(torch.zeros(max_units, 1, E))  # which unit (time)
        self.token_pos = nn.Parameter(torch.zeros(1, cfg.unit_tokens, E))  # which token of a unit
        nn.init.normal_(self.time_pos, std=0.02)
        nn.init.normal_(self.token_pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            E,
            cfg.head_heads,
            dim_feedforward=int(E * cfg.head_mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.head_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(E)
        self.fc = nn.Linear(E, cfg.num_classes)

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        B, U, K, E = units.shape
        if U > self.max_units:
            raise ValueError(f"head was built for at most {self.max_units} units, got {U}")
        x = units + self.time_pos[:U] + self.token_pos  # (B, U, K, E)
        x = self.blocks(x.reshape(B, U * K, E))  # (B, U*K, E)
        return self.fc(self.norm(x).mean(dim=1))  # (B, classes)


class MeanHead(nn.Module):
    """Order-blind head: average of all unit tokens, then a linear classifier."""

    def __init__(self, cfg: ModelConfig, max_units: int):
        super().__init__()
        E = cfg.vision.embed_dim
        self.max_units = max_units
        self.norm = nn.LayerNorm(E)
        self.fc = nn.Linear(E, cfg.num_classes)

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(units.mean(dim=(1, 2))))


class InTIVideoModel(nn.Module):
    """InTI (or, with no interpolation points, the naive baseline) on an open_clip ViT."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.visual = build_visual(cfg)
        v = cfg.vision
        self.interps = nn.ModuleList(
            TokenInterpolation(v.width, v.grid, cfg.interpolation) for _ in cfg.interp_after
        )
        head_cls = TemporalHead if cfg.head == "temporal" else MeanHead
        self.head = head_cls(cfg, cfg.units)

    # --- encoder ---------------------------------------------------------------------------------
    def encode_units(self, clip: torch.Tensor) -> torch.Tensor:
        """clip (B, T, 3, S, S) with T a multiple of 2^s -> unit embeddings (B, T/2^s, K, E)."""
        B, T = clip.shape[:2]
        if T % self.cfg.unit_frames:
            raise ValueError(f"{T} frames are not a whole number of {self.cfg.unit_frames}-frame units")
        vis = self.visual
        x = vis._embeds(clip.flatten(0, 1))  # (B*T, N, C)
        t = T
        points = dict(zip(self.cfg.interp_after, self.interps))
        for i, block in enumerate(vis.transformer.resblocks):
            if i in points:
                x = points[i].merge_frames(x, t)  # (B*t/2, N, C)
                t //= 2
            x = block(x)
        return self.unit_embedding(x).reshape(B, t, self.cfg.unit_tokens, -1)

    def unit_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Final tokens of merged frames (M, N, C) -> unit tokens (M, K, E): CLS + pooled grid."""
        vis = self.visual
        x = vis.ln_post(x)
        M, N, C = x.shape
        H, W = self.cfg.vision.grid
        grid = x[:, 1:].transpose(1, 2).reshape(M, C, H, W)  # (M, C, H, W)
        g = self.cfg.pooled_grid
        pooled = F.adaptive_avg_pool2d(grid, g).flatten(2).transpose(1, 2)  # (M, g*g, C)
        tokens = torch.cat([x[:, :1], pooled], dim=1)  # (M, K, C)
        if vis.proj is not None:
            tokens = tokens @ vis.proj  # (M, K, E)
        return tokens

    def encode_unit(self, unit: torch.Tensor) -> torch.Tensor:
        """One unit (B, 2^s, 3, S, S) -> its embedding (B, K, E)."""
        if unit.shape[1] != self.cfg.unit_frames:
            raise ValueError(f"a unit has {self.cfg.unit_frames} frames, got {unit.shape[1]}")
        return self.encode_units(unit)[:, 0]

    # --- whole clip ------------------------------------------------------------------------------
    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """clip (B, T, 3, S, S), normalised -> logits (B, classes)."""
        return self.head(self.encode_units(clip))

    def use_kernels(self, enabled: bool = True) -> bool:
        """Run the interpolation with the CUDA kernel of plugins/ in inference (no grad) on a GPU.
        Returns whether the kernel is usable here; the reference path is used where it is not."""
        for op in self.interps:
            op.fast_path = enabled
            op.fast_path_op = False
        if not enabled:
            return False
        from inti_edge.plugin import kernels

        if not kernels.available():
            return False
        traced = kernels.custom_op() is not None  # torch.compile then traces the kernel instead of breaking the graph
        for op in self.interps:
            op.fast_path_op = traced
        return True

    def split(self) -> tuple["VideoEncoder", "VideoHead"]:
        """The streaming form: (encoder: one unit -> embedding, head: unit embeddings -> logits)."""
        return VideoEncoder(self), VideoHead(self)


class VideoEncoder(nn.Module):
    """unit (B, 2^s, 3, S, S) -> unit embedding (B, K, E). Shares the model's parameters."""

    def __init__(self, model: InTIVideoModel):
        super().__init__()
        self.model = model

    def forward(self, unit: torch.Tensor) -> torch.Tensor:
        return self.model.encode_unit(unit)


class VideoHead(nn.Module):
    """unit embeddings (B, U, K, E) -> logits (B, classes). Shares the model's parameters."""

    def __init__(self, model: InTIVideoModel):
        super().__init__()
        self.head = model.head

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        return self.head(units)
