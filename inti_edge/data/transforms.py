"""Clip transforms on torch tensors: short-side resize, crop (random / centre), horizontal flip,
CLIP normalisation. Every frame of a clip gets the same crop and flip.

Frames come in as uint8 (T, 3, H, W) RGB and leave as float32 (T, 3, S, S), normalised with the
model's mean and std. The crop is cut before resizing (one ``resized_crop``), which is the same
as resizing the short side first and cropping after, at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ..model.config import CLIP_MEAN, CLIP_STD


@dataclass(frozen=True)
class CropParams:
    """One clip's crop box in input pixels, and whether it is mirrored."""

    top: int
    left: int
    height: int
    width: int
    flip: bool = False


def resize_short_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, 3, H, W) -> (T, 3, H', W') with min(H', W') = size, aspect kept (antialiased bilinear)."""
    h, w = frames.shape[-2:]
    s = size / min(h, w)
    return TF.resize(frames, [max(1, round(h * s)), max(1, round(w * s))], InterpolationMode.BILINEAR, antialias=True)


def hflip(frames: torch.Tensor) -> torch.Tensor:
    """Mirror left-right (last axis)."""
    return frames.flip(-1)


def normalize(frames: torch.Tensor, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """uint8 [0, 255] (or float [0, 1]) (..., 3, H, W) -> float32 (x - mean) / std."""
    x = frames.float().div_(255.0) if frames.dtype == torch.uint8 else frames.float()
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - m) / s


@dataclass(frozen=True)
class ClipTransform:
    """The model's input pipeline for one clip.

    Evaluation: short side resized to ``size``, centre square crop (CLIP's own Resize + CenterCrop).
    Training: short side resized to ``size * u``, u ~ U(scale), a random ``size`` crop, and a
    horizontal flip with probability ``flip_p``.
    """

    size: int  # S: output side, pixels (the model's image_size)
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    train: bool = False
    scale: tuple[float, float] = (1.0, 1.25)  # training: short side / size before the crop
    flip_p: float = 0.5  # training: probability of a horizontal flip

    @classmethod
    def from_config(cls, cfg, train: bool = False, **kw) -> "ClipTransform":
        """From a ModelConfig: its image size, mean and std."""
        return cls(size=cfg.vision.image_size, mean=tuple(cfg.mean), std=tuple(cfg.std), train=train, **kw)

    @property
    def decode_short_side(self) -> int:
        """The largest short side this transform reads from: decoding smaller loses nothing."""
        return int(np.ceil(self.size * (self.scale[1] if self.train else 1.0)))

    def params(self, height: int, width: int, rng: np.random.Generator | None = None) -> CropParams:
        """The crop box (input pixels) and flip for a (height, width) clip. ``rng`` None: eval."""
        short = min(height, width)
        if not self.train:
            side = short
            return CropParams((height - side) // 2, (width - side) // 2, side, side, False)
        rng = rng if rng is not None else np.random.default_rng()
        target = self.size * rng.uniform(*self.scale)  # the short side after resizing
        side = max(1, min(short, round(short * self.size / target)))  # crop side in input pixels
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        return CropParams(top, left, side, side, bool(rng.random() < self.flip_p))

    def apply(self, frames: torch.Tensor, p: CropParams) -> torch.Tensor:
        """uint8 (T, 3, H, W) -> float32 (T, 3, S, S) normalised."""
        x = TF.resized_crop(
            frames, p.top, p.left, p.height, p.width, [self.size, self.size], InterpolationMode.BILINEAR, antialias=True
        )
        if p.flip:
            x = hflip(x)
        return normalize(x, self.mean, self.std)

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """uint8 (T, 3, H, W) -> float32 (T, 3, S, S); random crop/flip in training."""
        return self.apply(frames, self.params(frames.shape[-2], frames.shape[-1], rng))
