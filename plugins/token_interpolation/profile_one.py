"""Runs the TokenInterpolation kernels once per variant on the bench shape, for a profiler (Nsight Compute).

    ncu --clock-control none -k regex:"ti_sp_(proj|weights|blend)" -c 3 --section SpeedOfLight \
        python plugins/token_interpolation/profile_one.py [--dtype f16] [--variants split]

One call per variant in the order given (split: ti_sp_pack_kernel, ti_sp_proj_kernel, ti_sp_weights_lane_kernel
or ti_sp_weights_kernel, ti_sp_blend_kernel; auto: the default path); no warm-up is needed: the extension is
built and loaded before the first launch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inti_edge.plugin import kernels  # noqa: E402
from inti_edge.model.interpolation import TokenInterpolation  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--dtype", default="f16", choices=["f32", "f16", "bf16"])
ap.add_argument("--P", type=int, default=128)
ap.add_argument("--variants", nargs="+", default=["split"], choices=["auto", "split"])
ap.add_argument("--runs", type=int, default=1, help="calls per variant")
args = ap.parse_args()
dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
m = TokenInterpolation(768, (14, 14)).randomize_(torch.Generator().manual_seed(0)).eval().cuda()
x = torch.randn(args.P, 2, 197, 768, device="cuda").to(dtype)
for v in args.variants:
    print(v, kernels.plan(x, m, variant=v), flush=True)
with torch.no_grad():
    for v in args.variants:
        for _ in range(args.runs):
            kernels.token_interpolation(x, m, variant=v)
torch.cuda.synchronize()
