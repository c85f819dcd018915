"""TokenInterpolation: the InTI op, reference PyTorch module.

One frame pair in, one merged frame out, position by position:

    x   : (P, 2, N, C)  P frame pairs (2t, 2t+1), N = 1 + H*W tokens (CLS first), C channels
    out : (P, N, C)     out[p, n, c] = w0[p, n, g(c)] * x[p, 0, n, c] + w1[p, n, g(c)] * x[p, 1, n, c]

The weights (w0, w1) of each patch position come from a small multi-scale context network that
looks at both frames of the pair on the H x W token grid:

    z_f  = (x_f - mean_C(x_f)) / sqrt(var_C(x_f) + eps)           f = 0, 1; per token, no affine
    u    = [z_0, z_1] @ W_in + b_in                                 (P, HW, D)   D = context_dim
    c_d  = depthwise_conv3x3(u, dilation=d, zero padding=d) + b_d   d in dilations (the scales)
    h    = GELU([u, c_d1, c_d2, ...])                               (P, HW, D * (1 + #dilations))
    l    = h @ W_out + b_out                                        (P, HW, 2 * G), read as (G, 2)
    w    = softmax over the pair of l   (or sigmoid of each logit:  ablation "sigmoid")

G = groups: 1 means one weight pair per token; G > 1 gives one weight pair per token and channel
group of C / G channels (g(c) = c // (C / G)).

CLS token (one per frame, position 0, not on the grid): merged with the mean over the patch
positions of the patch weights (per group). Why: the CLS token summarises the whole frame, so the
average of how much each frame contributed position by position is the natural weight for it,
and it adds no parameters. ``cls_mode="half"`` (a fixed 0.5 / 0.5 mean) is the ablation.

The LayerNorm affine is left out on purpose: W_in follows it, so a gain and bias would be absorbed
by W_in and b_in exactly. W_out and b_out start at zero, so a fresh module averages the pair
(w = 0.5, 0.5 under softmax) and training moves away from that.

This module is the single definition of the op: the ONNX export (local function + plugin node),
the CUDA kernel of plugins/ and the PyTorch extension are all tested against ``forward``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import EPS, InterpolationConfig  # noqa: F401 - the op's config lives with the model's (no torch)


class TokenInterpolation(nn.Module):
    """Merge frame pairs token by token with weights from a multi-scale context network."""

    def __init__(self, width: int, grid: tuple[int, int], cfg: InterpolationConfig = InterpolationConfig()):
        super().__init__()
        if width % cfg.groups:
            raise ValueError(f"width {width} is not divisible by groups {cfg.groups}")
        self.width, self.grid, self.cfg = width, tuple(grid), cfg
        D, S = cfg.context_dim, len(cfg.dilations)
        self.proj_in = nn.Linear(2 * width, D)  # W_in: (2C, D) as weight.T
        # one depthwise 3x3 kernel per scale: (S, D, 3, 3) and bias (S, D)
        self.dw_weight = nn.Parameter(torch.randn(S, D, 3, 3) * (1.0 / 3.0))
        self.dw_bias = nn.Parameter(torch.zeros(S, D))
        self.proj_out = nn.Linear(D * (1 + S), 2 * cfg.groups)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)
        nn.init.normal_(self.proj_in.weight, std=1.0 / math.sqrt(2 * width))
        nn.init.zeros_(self.proj_in.bias)

    def pair_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Weights of the patch tokens. x: (P, 2, N, C) -> (P, H*W, G, 2)."""
        P, two, N, C = x.shape
        H, W = self.grid
        assert two == 2 and N == 1 + H * W and C == self.width, (x.shape, self.grid, self.width)
        patches = x[:, :, 1:, :]  # (P, 2, HW, C)
        z = F.layer_norm(patches, (C,), eps=EPS)
        z = torch.cat([z[:, 0], z[:, 1]], dim=-1)  # (P, HW, 2C)
        u = self.proj_in(z)  # (P, HW, D)
        D = u.shape[-1]
        ug = u.transpose(1, 2).reshape(P, D, H, W)  # (P, D, H, W)
        feats = [u]
        for i, d in enumerate(self.cfg.dilations):
            c = F.conv2d(ug, self.dw_weight[i].unsqueeze(1), self.dw_bias[i], padding=d, dilation=d, groups=D)
            feats.append(c.reshape(P, D, H * W).transpose(1, 2))  # (P, HW, D)
        h = F.gelu(torch.cat(feats, dim=-1))  # (P, HW, D*(1+S))
        logits = self.proj_out(h).reshape(P, H * W, self.cfg.groups, 2)  # (P, HW, G, 2)
        if self.cfg.normalize == "softmax":
            return torch.softmax(logits, dim=-1)
        return torch.sigmoid(logits)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Weights of every token, CLS included. x: (P, 2, N, C) -> (P, N, G, 2)."""
        wp = self.pair_weights(x)  # (P, HW, G, 2)
        if self.cfg.cls_mode == "mean":
            wc = wp.mean(dim=1, keepdim=True)  # (P, 1, G, 2)
        else:
            wc = torch.full_like(wp[:, :1], 0.5)
        return torch.cat([wc, wp], dim=1)  # (P, N, G, 2)

    def blend(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x: (P, 2, N, C), w: (P, N, G, 2) -> (P, N, C)."""
        P, _, N, C = x.shape
        G = w.shape[2]
        xg = x.reshape(P, 2, N, G, C // G)
        out = w[..., 0, None] * xg[:, 0] + w[..., 1, None] * xg[:, 1]  # (P, N, G, C/G)
        return out.reshape(P, N, C)

    @torch.no_grad()
    def randomize_(self, generator: torch.Generator | None = None) -> "TokenInterpolation":
        """Give every weight a non-trivial random value, in place (tests, references, benchmarks:
        a fresh module's zero W_out makes every weight 1/2 and hides the context network)."""
        def rnd(t: torch.Tensor, scale: float) -> None:
            t.copy_(torch.randn(t.shape, generator=generator) * scale)

        rnd(self.proj_in.weight, 1.0 / (2 * self.width) ** 0.5)
        rnd(self.proj_in.bias, 0.1)
        rnd(self.dw_weight, 1.0 / 3.0)
        rnd(self.dw_bias, 0.1)
        rnd(self.proj_out.weight, 0.3)
        rnd(self.proj_out.bias, 0.2)
        return self

    #: inference on a CUDA device may use the CUDA kernel of plugins/ (``InTIVideoModel.use_kernels``)
    fast_path: bool = False
    #: torch.compile traces the kernel as the custom op inti::token_interpolation (kernels.custom_op)
    fast_path_op: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (P, 2, N, C) frame pairs -> (P, N, C) merged frames."""
        if self.fast_path and x.is_cuda and not torch.is_grad_enabled():
            from inti_edge.plugin import kernels  # forward-only: training keeps this reference path

            if torch.compiler.is_compiling():  # traced: the custom op (set up by use_kernels), fields in the graph
                if self.fast_path_op:
                    return kernels.token_interpolation_traced(x, self)
            elif kernels.available():
                return kernels.token_interpolation(x, self)
        return self.blend(x, self.weights(x))

    def extra_repr(self) -> str:
        return f"width={self.width}, grid={self.grid}, {self.cfg}"

    def merge_frames(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """Frame-major token batch (B*T, N, C) -> (B*T/2, N, C), pairing frames (2t, 2t+1) of each clip."""
        BT, N, C = x.shape
        if frames % 2 or BT % frames:
            raise ValueError(f"cannot pair {frames} frames in a batch of {BT} frames")
        return self(x.reshape(BT // 2, 2, N, C))
