"""Runs the TokenInterpolation kernel a few times on the bench shape, for a profiler (Nsight Compute).

    ncu --clock-control none -k regex:ti_fused_kernel -s 2 -c 1 --section SpeedOfLight \
        python plugins/token_interpolation/profile_one.py [--dtype f16] [--cluster 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inti_edge import kernels  # noqa: E402
from inti_edge.model.interpolation import TokenInterpolation  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--dtype", default="f16", choices=["f32", "f16", "bf16"])
ap.add_argument("--P", type=int, default=128)
ap.add_argument("--cluster", type=int, default=0)
ap.add_argument("--runs", type=int, default=3)
args = ap.parse_args()
dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
m = TokenInterpolation(768, (14, 14)).eval().cuda()
x = torch.randn(args.P, 2, 197, 768, device="cuda").to(dtype)
print(kernels.plan(x, m, cluster=args.cluster))
with torch.no_grad():
    for _ in range(args.runs):
        kernels.token_interpolation(x, m, cluster=args.cluster)
torch.cuda.synchronize()
