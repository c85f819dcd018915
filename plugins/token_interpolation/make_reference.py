"""Reference cases for the plugin harness: random TokenInterpolation modules, inputs, and outputs of
the PyTorch reference module computed in float64 on the CPU.

    python plugins/token_interpolation/make_reference.py OUT_DIR

Writes OUT_DIR/cases.txt and, per case, NAME.meta (key=value), NAME.x.bin (the input in its dtype),
NAME.ref.bin (float32 expected output) and NAME.<field>.bin for each weight field (float32).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from inti_edge.model.interpolation import EPS, InterpolationConfig, TokenInterpolation  # noqa: E402
from inti_edge.plugin import spec as plugin_spec  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
TOL = {"f32": 1e-5, "f16": 1e-2, "bf16": 5e-2}

# name: (dtype, P, (H, W), C, InterpolationConfig kwargs); inputs unit-scale (randn), "_tokenlike"
# cases token-like activations (|x| up to ~20) with the tolerance scaled by max(1, max|ref| / 4)
CASES = {
    "vitb16_f32": ("f32", 3, (14, 14), 768, {}),
    "vitb16_f32_tokenlike": ("f32", 3, (14, 14), 768, {}),
    "vitb16_f16": ("f16", 3, (14, 14), 768, {}),
    "vitl14_bf16": ("bf16", 2, (16, 16), 1024, {}),
    "odd_7x5_c72_g3_sigmoid_half_f32": (
        "f32", 2, (7, 5), 72, dict(context_dim=16, dilations=(2,), normalize="sigmoid", groups=3, cls_mode="half")),
    "odd_5x7_c100_g4_d24_f16": ("f16", 2, (5, 7), 100, dict(context_dim=24, dilations=(1, 3), groups=4)),
}


def random_module(C: int, grid: tuple[int, int], cfg: InterpolationConfig, gen: torch.Generator) -> TokenInterpolation:
    """A module whose weights are all non-trivial (a fresh one has W_out = 0: every weight 0.5)."""
    return TokenInterpolation(C, grid, cfg).randomize_(gen)

def random_input(P: int, N: int, C: int, gen: torch.Generator) -> torch.Tensor:
    """Token-like activations: a per-token offset and scale, a few large channels."""
    x = torch.randn(P, 2, N, C, generator=gen) * (0.5 + torch.rand(P, 2, N, 1, generator=gen))
    x += torch.randn(P, 2, N, 1, generator=gen) * 0.5
    x[..., :: max(1, C // 7)] *= 3.0
    return x


def write_case(out: Path, name: str, dtype: str, P: int, grid, C: int, cfg_kw: dict, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    cfg = InterpolationConfig(**cfg_kw)
    m = random_module(C, grid, cfg, gen)
    N = 1 + grid[0] * grid[1]
    x = (random_input(P, N, C, gen) if name.endswith("_tokenlike") else torch.randn(P, 2, N, C, generator=gen))
    x = x.to(DTYPES[dtype])
    with torch.no_grad():
        ref64 = m.double()(x.double())
        ref = ref64.float()
    tol = TOL[dtype] * (max(1.0, ref64.abs().max().item() / 4) if name.endswith("_tokenlike") else 1.0)
    fields = {
        "w_in": m.proj_in.weight.t(), "b_in": m.proj_in.bias, "dw_weight": m.dw_weight, "dw_bias": m.dw_bias,
        "w_out": m.proj_out.weight.t(), "b_out": m.proj_out.bias,
    }
    assert set(fields) == set(plugin_spec.WEIGHT_FIELDS)
    for k, v in fields.items():
        (out / f"{name}.{k}.bin").write_bytes(v.detach().float().contiguous().numpy().tobytes())
    (out / f"{name}.x.bin").write_bytes(x.contiguous().view(torch.uint8).numpy().tobytes())
    (out / f"{name}.ref.bin").write_bytes(ref.contiguous().numpy().tobytes())
    meta = {
        "dtype": dtype, "P": P, "grid_h": grid[0], "grid_w": grid[1], "C": C, "D": cfg.context_dim,
        "groups": cfg.groups, "softmax": int(cfg.normalize == "softmax"), "cls_mean": int(cfg.cls_mode == "mean"),
        "dilations": ",".join(str(d) for d in cfg.dilations), "eps": EPS, "tol": f"{tol:.3g}",
    }
    (out / f"{name}.meta").write_text("".join(f"{k}={v}\n" for k, v in meta.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (name, (dtype, P, grid, C, kw)) in enumerate(CASES.items()):
        write_case(args.out, name, dtype, P, grid, C, kw, seed=1000 + i)
    (args.out / "cases.txt").write_text("".join(f"{n}\n" for n in CASES))
    print(f"wrote {len(CASES)} cases to {args.out}")


if __name__ == "__main__":
    main()
