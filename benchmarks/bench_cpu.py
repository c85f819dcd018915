"""CPU latency of the default model: ONNX Runtime INT8 vs FP32 vs PyTorch, interleaved, medians, JSON.

    python benchmarks/bench_cpu.py [--checkpoint CKPT] [--threads 2] [--batch 1] [--runs 50]
                                   [--calib calibration/ci.json] [--data SPEC --split test --clips 256]

Builds (once, into --work) the FP32 export and the `--target cpu` INT8 artifact of the checkpoint with
the project's own commands, then times the three runtimes on the same clip, one call of each per round
in rotating order, so machine noise hits all of them alike. With --data it also gates the INT8
artifact (accuracy of both, delta, agreement). Goal: INT8 >= 2x FP32 at <= 1 point accuracy loss.

The checkpoint defaults to the bundled default model (inti_edge/assets/*.pt); without one, pass
--checkpoint (a random-weight model times the same, but its accuracy means nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    m = re.search(r"model name\s*:\s*(.+)", text)
    return m.group(1).strip() if m else platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--calib", default=str(ROOT / "calibration" / "ci.json"))
    ap.add_argument("--calib-clips", type=int, default=None)
    ap.add_argument("--op-types", default=None, help="INT8 op types for the CPU recipe [MatMul,Gemm]")
    ap.add_argument("--data", default=None, help="held-out clips: gate the INT8 artifact (accuracy, agreement)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--rebuild", action="store_true", help="export and quantize again even if --work has them")
    args = ap.parse_args()

    import numpy as np
    import torch

    from inti_edge import export as ex
    from inti_edge.engines.build import BuildOptions, build
    from inti_edge.engines.onnxrt import session
    from inti_edge.model import load_checkpoint

    ckpt = args.checkpoint or next(iter(sorted((ROOT / "inti_edge" / "assets").glob("*.pt"))), None)
    if ckpt is None:
        sys.exit("no bundled default model in inti_edge/assets/: pass --checkpoint CKPT")
    work = args.work
    fp32_dir, int8_dir = work / "fp32", work / "int8"
    t0 = time.time()
    if args.rebuild or not (fp32_dir / "model.onnx").is_file():
        ex.export_checkpoint(ckpt, fp32_dir, streaming=False)
    if args.rebuild or not (int8_dir / "model.onnx").is_file() or args.data:
        opts = BuildOptions(precision="int8", target="cpu", calib=args.calib, calib_clips=args.calib_clips,
                            op_types=tuple(args.op_types.split(",")) if args.op_types else None, forms=("model",),
                            data=args.data, gate_split=args.split, gate_clips=args.clips, reference=str(ckpt),
                            threads=args.threads)
        result = build(fp32_dir, int8_dir, opts)
        gate = result.report
    else:
        gate = None
    prepare_s = time.time() - t0

    model, meta = load_checkpoint(ckpt)
    cfg = model.cfg
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    S = cfg.vision.image_size
    x = rng.standard_normal((args.batch, cfg.frames, 3, S, S)).astype(np.float32)
    xt = torch.from_numpy(x)
    fp32 = session(fp32_dir / "model.onnx", threads=args.threads)
    int8 = session(int8_dir / "model.onnx", threads=args.threads)

    def run_torch():
        with torch.inference_mode():
            model(xt)

    runners = {
        "pytorch_fp32": run_torch,
        "onnxruntime_fp32": lambda: fp32.run(None, {"clip": x}),
        "onnxruntime_int8": lambda: int8.run(None, {"clip": x}),
    }
    names = list(runners)
    for _ in range(args.warmup):
        for n in names:
            runners[n]()
    times = {n: [] for n in names}
    for r in range(args.runs):
        order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
        for n in order:
            t = time.perf_counter()
            runners[n]()
            times[n].append((time.perf_counter() - t) * 1000)
    med = {n: statistics.median(v) for n, v in times.items()}
    out = {
        "checkpoint": str(ckpt),
        "model": {"name": cfg.name, "frames": cfg.frames, "image_size": S, "width": cfg.vision.width,
                  "layers": cfg.vision.layers, "interp_after": list(cfg.interp_after)},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads,
                    "isa": __import__("inti_edge.quantize", fromlist=["cpu_isa"]).cpu_isa()},
        "batch": args.batch,
        "runs": args.runs,
        "median_ms": {n: round(v, 3) for n, v in med.items()},
        "p90_ms": {n: round(float(np.percentile(v, 90)), 3) for n, v in times.items()},
        "speedup": {
            "int8_vs_fp32": round(med["onnxruntime_fp32"] / med["onnxruntime_int8"], 3),
            "int8_vs_pytorch": round(med["pytorch_fp32"] / med["onnxruntime_int8"], 3),
            "fp32_vs_pytorch": round(med["pytorch_fp32"] / med["onnxruntime_fp32"], 3),
        },
        "recipe": json.loads(ex.read_info(int8_dir / "model.onnx").raw.get("inti.recipe", "{}")),
        "prepare_s": round(prepare_s, 1),
    }
    if gate is not None:
        m = gate.metrics
        out["gate"] = {"passed": gate.passed, "clips": m["clips"], "agreement": m["agreement"], "cos_mean": m["cos_mean"],
                       "accuracy_fp32": m["accuracy_ref"], "accuracy_int8": m["accuracy_art"],
                       "accuracy_delta": m["accuracy_delta"], "data": gate.data}
    loss_ok = gate is not None and gate.metrics["accuracy_delta"] is not None and -gate.metrics["accuracy_delta"] <= 1.0
    out["goal"] = {"int8_2x_fp32": out["speedup"]["int8_vs_fp32"] >= 2.0,
                   "accuracy_loss_le_1_point": loss_ok if gate is not None else None}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
