"""Decoded frames -> model input with PyAV and numpy alone: what `inti-edge run` uses, no torch.

The evaluation transform of training (``transforms.ClipTransform`` with ``train=False``, fed by
``VideoReader.read(times, short_side=image_size)``) is, per frame:

1. swscale (PyAV ``VideoReformatter``, area filter) converts to RGB and scales the short side down
   to ``image_size`` (never up) while converting from YUV;
2. the centre square is cropped (side = the short side);
3. torchvision's antialiased bilinear resize takes it to ``image_size`` square, which is the
   identity when step 1 already reached ``image_size``;
4. uint8 -> float32 in [0, 1], then (x - mean) / std per channel.

``Preprocess.frame`` does the same steps in the same float32 arithmetic, so its output equals the
training transform's bit for bit whenever the source is at least ``image_size`` on its short side
(tested). A smaller source is scaled up in step 3; numpy does that with the same bilinear weights
as torchvision in float and rounds, where torchvision's uint8 kernel uses fixed-point weights:
values differ there by at most one grey level (tested).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .video import rgb_frame


@dataclass(frozen=True)
class Preprocess:
    """The model's input contract: what ``model.factory.preprocess_info`` stores in checkpoints and
    ONNX metadata (``image_size``, ``mean``, ``std``, ``resize``, ``crop``)."""

    image_size: int  # S: output side, pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "short_side"
    crop: str = "center"
    _lut: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.resize != "short_side" or self.crop != "center":
            raise ValueError(f"unsupported preprocessing resize={self.resize!r} crop={self.crop!r} "
                             "(this inti-edge knows resize=short_side, crop=center)")
        if self.image_size < 1 or len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("preprocessing needs image_size >= 1 and three mean / std values")
        mean32, std32 = np.asarray(self.mean, dtype=np.float32), np.asarray(self.std, dtype=np.float32)
        # step 4 for every uint8 value, in the same float32 operations: normalising is then a table lookup
        levels = np.arange(256, dtype=np.float32) / np.float32(255.0)
        object.__setattr__(self, "_lut", np.stack([(levels - mean32[c]) / std32[c] for c in range(3)]))  # (3, 256)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        try:
            return cls(int(d["image_size"]), tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]),
                       str(d.get("resize", "short_side")), str(d.get("crop", "center")))
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a preprocessing record (missing {e})") from None

    def rgb(self, frame, reformatter=None) -> np.ndarray:
        """A decoded ``av.VideoFrame`` -> uint8 (h, w, 3) RGB, upright, with the short side scaled down
        to ``image_size`` (swscale's area filter; never up): step 1 of the module docstring, the
        training readers' own ``rgb_frame``."""
        return rgb_frame(frame, self.image_size, reformatter)

    def crop_resize(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (h, w, 3) -> uint8 (S, S, 3): the centre square, resized to S (steps 2-3)."""
        h, w = rgb.shape[:2]
        side, S = min(h, w), self.image_size
        top, left = (h - side) // 2, (w - side) // 2
        sq = rgb[top : top + side, left : left + side]
        if side == S:
            return sq
        idx, wts = _taps(side, S)  # (S, k) source pixels and weights; a square: the same both ways
        x = sq.astype(np.float32)
        rows = sum(wts[:, j, None, None] * x[idx[:, j]] for j in range(idx.shape[1]))  # (S, side, 3)
        out = sum(wts[None, :, j, None] * rows[:, idx[:, j]] for j in range(idx.shape[1]))  # (S, S, 3)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def normalize(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (..., S, S, 3) -> float32 (..., 3, S, S), (x / 255 - mean) / std (step 4)."""
        out = np.empty((*rgb.shape[:-3], 3, *rgb.shape[-3:-1]), dtype=np.float32)
        for c in range(3):
            np.take(self._lut[c], rgb[..., c], out=out[..., c, :, :])
        return out

    def frame(self, frame, reformatter=None) -> np.ndarray:
        """A decoded ``av.VideoFrame`` -> float32 (3, S, S), the model's input for that frame."""
        return self.normalize(self.crop_resize(self.rgb(frame, reformatter)))


@functools.lru_cache(maxsize=16)
def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``resize_weights`` as its few non-zero taps per output pixel: (n_out, k) indices and weights.
    A gather and a sum, not a matrix product: numpy's BLAS would start threads that spin between
    frames (measured: a second core kept busy by a stream of 3 frames a second)."""
    w = resize_weights(n_in, n_out)
    k = max(1, int((w != 0).sum(1).max()))
    idx = np.argsort(w == 0, axis=1, kind="stable")[:, :k]  # the non-zero columns first, in order
    return idx, np.take_along_axis(w, idx, axis=1)


def resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 weights of an antialiased bilinear resize, as torchvision / PyTorch's
    ``_upsample_bilinear2d_aa`` compute them (a triangle filter widened by the scale when shrinking,
    centres at (i + 0.5) * scale, each row normalised to sum 1)."""
    scale = n_in / n_out
    support = scale if scale >= 1.0 else 1.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    out = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi)
        wts = np.maximum(0.0, 1.0 - np.abs((j - center + 0.5) * inv))
        total = wts.sum()
        out[i, lo:hi] = wts / total if total > 0 else 0.0
    return out.astype(np.float32)
