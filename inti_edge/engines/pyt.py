"""PyTorch as a Polygraphy runner (Polygraphy's own PytRunner always moves inputs to CUDA)."""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from polygraphy.backend.base import BaseRunner
from polygraphy.common import TensorMetadata


class TorchRunner(BaseRunner):
    """Runs an ``nn.Module`` (one input, one output) on ``device`` under ``torch.no_grad``."""

    def __init__(self, module, input_name: str, input_shape: tuple, output_name: str, device: str = "cpu", name: str | None = None):
        super().__init__(name=name, prefix="torch-runner")
        self.module, self.device = module, device
        self.input_name, self.input_shape, self.output_name = input_name, tuple(input_shape), output_name

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", form: str = "model") -> "TorchRunner":
        """The FP32 model of a checkpoint; ``form`` "model" (clip -> logits), "encoder" or "head"."""
        from ..artifact import IO_NAMES
        from ..model import load_checkpoint

        model, _ = load_checkpoint(path)
        cfg = model.cfg
        S, E = cfg.vision.image_size, cfg.vision.embed_dim
        encoder, head = model.split()
        module, shape = {
            "model": (model, (-1, cfg.frames, 3, S, S)),
            "encoder": (encoder, (-1, cfg.unit_frames, 3, S, S)),
            "head": (head, (-1, cfg.units, cfg.unit_tokens, E)),
        }[form]
        return cls(module, IO_NAMES[form][0], shape, IO_NAMES[form][1], device=device, name=f"torch:{Path(path).name}")

    def activate_impl(self):
        import torch

        self.module.to(self.device).eval()
        self._torch = torch

    def get_input_metadata_impl(self):
        return TensorMetadata().add(self.input_name, dtype=np.float32, shape=self.input_shape)

    def infer_impl(self, feed_dict):
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(feed_dict[self.input_name], dtype=np.float32)).to(self.device)
        start = time.perf_counter()
        with torch.no_grad():
            y = self.module(x)
        out = y.float().cpu().numpy()
        self.inference_time = time.perf_counter() - start
        return OrderedDict([(self.output_name, out)])

    def deactivate_impl(self):
        pass
