"""Model configurations: architectures are data, one dataclass, a few named presets.

A ``ModelConfig`` travels inside every checkpoint and every ONNX file (as JSON), so later stages
rebuild the exact model from the artifact alone.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

EPS = 1e-5  # TokenInterpolation's LayerNorm epsilon

# CLIP's preprocessing (open_clip OPENAI_DATASET_MEAN / STD), RGB in [0, 1]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class InterpolationConfig:
    """Hyper-parameters of one TokenInterpolation op (ablation switches included)."""

    context_dim: int = 32  # D: channels of the context network (cost ~ 2*C*D MACs per pair-token)
    dilations: tuple[int, ...] = (1, 2, 3)  # the scales; (1,) is the single-scale ablation
    normalize: str = "softmax"  # "softmax" over the pair, or "sigmoid" per frame (ablation)
    groups: int = 1  # weight pairs per token: 1 = per token, G = per token and channel group
    cls_mode: str = "mean"  # "mean" of the patch weights, or "half" (fixed 0.5/0.5)

    def __post_init__(self) -> None:
        if self.normalize not in ("softmax", "sigmoid"):
            raise ValueError(f"normalize must be 'softmax' or 'sigmoid', not {self.normalize!r}")
        if self.cls_mode not in ("mean", "half"):
            raise ValueError(f"cls_mode must be 'mean' or 'half', not {self.cls_mode!r}")
        if not self.dilations or any(d < 1 for d in self.dilations):
            raise ValueError(f"dilations must be positive integers, not {self.dilations!r}")
        if self.groups < 1 or self.context_dim < 1:
            raise ValueError("groups and context_dim must be >= 1")

    def to_dict(self) -> dict:
        return {
            "context_dim": self.context_dim,
            "dilations": list(self.dilations),
            "normalize": self.normalize,
            "groups": self.groups,
            "cls_mode": self.cls_mode,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "InterpolationConfig":
        d = dict(d)
        if "dilations" in d:
            d["dilations"] = tuple(d["dilations"])
        return cls(**d)


@dataclass(frozen=True)
class VisionConfig:
    """The image ViT (an open_clip VisionTransformer)."""

    width: int = 768  # C: token channels
    layers: int = 12  # transformer blocks
    head_width: int = 64  # channels per attention head (heads = width / head_width)
    mlp_ratio: float = 4.0
    patch_size: int = 16
    image_size: int = 224  # square input, pixels
    embed_dim: int = 512  # E: output of the visual projection (CLIP's joint embedding size)
    quick_gelu: bool = False  # True for OpenAI's original CLIP weights
    open_clip_name: str | None = None  # open_clip architecture this matches, for --pretrained tags

    @property
    def grid(self) -> tuple[int, int]:
        g = self.image_size // self.patch_size
        return (g, g)

    @property
    def tokens(self) -> int:
        """N: tokens per frame, CLS included."""
        h, w = self.grid
        return 1 + h * w


@dataclass(frozen=True)
class ModelConfig:
    """A whole video model: backbone, InTI schedule, unit embedding and head."""

    name: str = "vit-b16"
    vision: VisionConfig = field(default_factory=VisionConfig)
    frames: int = 8  # T: frames per clip
    interp_after: tuple[int, ...] = (3,)  # interpolate before these block indices; () = naive
    interpolation: InterpolationConfig = field(default_factory=InterpolationConfig)
    pooled_grid: int = 2  # unit embedding: CLS + patch grid average-pooled to pooled_grid^2 tokens
    head: str = "temporal"  # "temporal" (order-aware transformer) or "mean" (average pool)
    head_layers: int = 2
    head_heads: int = 4
    head_mlp_ratio: float = 2.0
    num_classes: int = 400
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        pts = tuple(self.interp_after)
        if list(pts) != sorted(set(pts)) or any(not 0 < p < self.vision.layers for p in pts):
            raise ValueError(
                f"interp_after must be increasing block indices in 1..{self.vision.layers - 1}, got {pts}"
            )
        if self.frames % self.unit_frames:
            raise ValueError(f"{self.frames} frames cannot be cut into units of {self.unit_frames} frames")
        if self.head not in ("temporal", "mean"):
            raise ValueError(f"head must be 'temporal' or 'mean', not {self.head!r}")
        if self.vision.image_size % self.vision.patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        if not 1 <= self.pooled_grid <= min(self.vision.grid):
            raise ValueError(f"pooled_grid must lie in 1..{min(self.vision.grid)} (the patch grid), not {self.pooled_grid}")

    # --- derived facts -------------------------------------------------------------------------
    @property
    def halvings(self) -> int:
        """s: how many times the frame axis is halved."""
        return len(self.interp_after)

    @property
    def unit_frames(self) -> int:
        """2^s: frames that pass the backbone together and become one unit embedding."""
        return 2 ** self.halvings

    @property
    def units(self) -> int:
        """U: unit embeddings per clip (what the head sees)."""
        return self.frames // self.unit_frames

    @property
    def unit_tokens(self) -> int:
        """K: tokens per unit embedding (CLS + pooled grid)."""
        return 1 + self.pooled_grid**2

    @property
    def variant(self) -> str:
        return "inti" if self.interp_after else "naive"

    # --- (de)serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["interpolation"] = self.interpolation.to_dict()
        d["interp_after"] = list(self.interp_after)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        d["vision"] = VisionConfig(**d.get("vision", {}))
        d["interpolation"] = InterpolationConfig.from_dict(d.get("interpolation", {}))
        for k in ("interp_after", "mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    @classmethod
    def from_json(cls, s: str) -> "ModelConfig":
        return cls.from_dict(json.loads(s))

    def replace(self, **kw) -> "ModelConfig":
        return dataclasses.replace(self, **kw)


VIT_B16 = VisionConfig(width=768, layers=12, patch_size=16, image_size=224, embed_dim=512, open_clip_name="ViT-B-16")
VIT_L14 = VisionConfig(width=1024, layers=24, patch_size=14, image_size=224, embed_dim=768, open_clip_name="ViT-L-14")
# The CPU / default-model ViT: width 192, 8 blocks, 3 heads, 112 px (7x7 grid), ~3.6M parameters
SMALL = VisionConfig(width=192, layers=8, patch_size=16, image_size=112, embed_dim=192)

PRESETS: dict[str, VisionConfig] = {"vit-b16": VIT_B16, "vit-l14": VIT_L14, "small": SMALL}


def default_schedule(layers: int, halvings: int = 1) -> tuple[int, ...]:
    """Where to interpolate: the first halving after the first quarter of the blocks (the reading
    that gives the paper's 37.5% saving), a second one after the first half."""
    if halvings == 0:
        return ()
    if halvings == 1:
        return (layers // 4,)
    if halvings == 2:
        return (layers // 4, layers // 2)
    raise ValueError("halvings must be 0, 1 or 2")


def make_config(
    preset: str = "vit-b16",
    frames: int = 8,
    halvings: int = 1,
    num_classes: int = 400,
    **overrides,
) -> ModelConfig:
    """A named preset with its default schedule. ``halvings=0`` gives the naive baseline."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model {preset!r}; choose one of {', '.join(PRESETS)}")
    vision = PRESETS[preset]
    if "vision" in overrides:
        vision = dataclasses.replace(vision, **overrides.pop("vision"))
    cfg = ModelConfig(
        name=preset,
        vision=vision,
        frames=frames,
        interp_after=default_schedule(vision.layers, halvings),
        num_classes=num_classes,
    )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
