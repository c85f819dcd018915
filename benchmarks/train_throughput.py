"""Training throughput (clips/s) of InTI and the naive baseline, model only (synthetic clips already on
the device), the same optimizer step `inti-edge train` runs: forward, backward, AdamW.

    python benchmarks/train_throughput.py --model vit-b16 --frames 8 --batch-size 32 --amp bf16

Prints one JSON line per variant with the median clips/s over repeated timed windows (after warm-up),
and the InTI / naive speed ratio measured in the same run (variants interleaved window by window).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inti_edge.model import create_model, make_config  # noqa: E402
from inti_edge.train import param_groups  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="small")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--amp", default="bf16", choices=["bf16", "off"])
    ap.add_argument("--steps", type=int, default=5, help="steps per timed window")
    ap.add_argument("--windows", type=int, default=5, help="timed windows per variant")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = torch.bfloat16 if args.amp == "bf16" else None
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    variants = {}
    for name, halvings in (("inti", 1), ("naive", 0)):
        cfg = make_config(args.model, args.frames, halvings, num_classes=400)
        model = create_model(cfg).to(dev).train()
        net = torch.compile(model) if args.compile else model
        opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, fused=dev.type == "cuda")
        S = cfg.vision.image_size
        x = torch.randn(args.batch_size, args.frames, 3, S, S, device=dev)
        y = torch.randint(0, 400, (args.batch_size,), device=dev)
        variants[name] = (net, opt, x, y)

    def window(name: str, steps: int) -> float:
        net, opt, x, y = variants[name]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss = F.cross_entropy(net(x).float(), y)
            loss.backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return args.batch_size * steps / (time.perf_counter() - t)

    for name in variants:  # warm-up (cuDNN / compile)
        window(name, 3)
    rates = {name: [] for name in variants}
    for _ in range(args.windows):  # interleaved
        for name in variants:
            rates[name].append(window(name, args.steps))
    med = {k: statistics.median(v) for k, v in rates.items()}
    device = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    for name in variants:
        print(json.dumps({"model": args.model, "variant": name, "frames": args.frames, "batch": args.batch_size,
                          "amp": args.amp, "device": device, "clips_per_s_median": round(med[name], 1),
                          "windows": [round(r, 1) for r in rates[name]]}))
    print(json.dumps({"model": args.model, "inti_over_naive_speed": round(med["inti"] / med["naive"], 3), "device": device}))


if __name__ == "__main__":
    main()
