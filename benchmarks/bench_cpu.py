"""CPU latency of the default model: ONNX Runtime INT8 vs FP32 vs PyTorch, interleaved, medians, JSON.

    python benchmarks/bench_cpu.py [--checkpoint CKPT] [--threads 2] [--batch 1] [--runs 50] [--repeats 1]
                                   [--calib calibration/ci.json] [--data SPEC --split test --clips 256]
                                   [--attention | --no-attention] [--profile]

Builds (once, into --work) the FP32 export, the `--target cpu` FP32 artifact (what `inti-edge build
-p fp32 -t cpu` ships) and the `--target cpu` INT8 artifact of the checkpoint with the project's own
commands, then times the runtimes on the same clip, one call of each per round in rotating order, so
machine noise hits all of them alike. --repeats N does that N times and reports every median and their
spread (on a shared machine, one median is not a figure). With --data it also gates the INT8 artifact
(accuracy of both, delta, agreement). --profile adds ONNX Runtime's per-op-type kernel times of FP32
and INT8 and what they bound: the share of FP32 time in matrix products (the only ops INT8 speeds up)
and the INT8 speed-up that would follow even if the rest stayed as it is.
Goal: INT8 >= 2x FP32 at <= 1 point accuracy loss.

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


# the ops INT8 speeds up (FP32 and ONNX Runtime's fused integer kernels), and what INT8 adds
GEMM_OPS = {"MatMul", "Gemm", "FusedMatMul", "FusedGemm", "MatMulIntegerToFloat", "MatMulInteger", "QGemm", "QLinearMatMul",
            "DynamicQuantizeMatMul", "Attention", "QAttention"}
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


def split_profile(times: dict[str, float]) -> dict[str, float]:
    """Per-op-type ms -> {gemm, quant, other, total} ms per run."""
    gemm = sum(v for k, v in times.items() if k in GEMM_OPS)
    quant = sum(v for k, v in times.items() if k in QUANT_OPS)
    total = sum(times.values())
    return {"gemm": round(gemm, 3), "quant": round(quant, 3), "other": round(total - gemm - quant, 3), "total": round(total, 3)}


def amdahl(fp32: dict[str, float], int8: dict[str, float]) -> dict[str, float | None]:
    """What the profiles allow: INT8/FP32 speed-up of the matrix products alone, the whole-model speed-up they
    give with the rest as it is in FP32, the bound with free matrix products, and the matrix-product speed-up
    2x would need (None: not even free matrix products reach it)."""
    s = fp32["gemm"] / int8["gemm"] if int8["gemm"] else None
    rest = fp32["total"] - fp32["gemm"]
    need = fp32["gemm"] / (fp32["total"] / 2 - rest) if fp32["total"] / 2 > rest else None
    return {"gemm_share_fp32": round(fp32["gemm"] / fp32["total"], 3), "gemm_speedup_int8": round(s, 3) if s else None,
            "whole_model_at_that_gemm_speedup": round(fp32["total"] / (rest + fp32["gemm"] / s), 3) if s else None,
            "bound_with_free_gemm": round(fp32["total"] / rest, 3) if rest > 0 else None,
            "gemm_speedup_needed_for_2x": round(need, 2) if need else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=1, help="interleaved timing rounds of --runs each (spread of medians)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--calib", default=str(ROOT / "calibration" / "ci.json"))
    ap.add_argument("--calib-clips", type=int, default=None)
    ap.add_argument("--op-types", default=None, help="INT8 op types for the CPU recipe [MatMul,Gemm]")
    ap.add_argument("--attention", action=argparse.BooleanOptionalAction, default=None,
                    help="INT8 attention matmuls (QK^T, AV) in the CPU recipe [the build's default]")
    ap.add_argument("--target", default="cpu", choices=("cpu", "cpu-x86", "cpu-vnni", "cpu-arm"),
                    help="INT8 recipe's CPU (cpu: this machine's; cpu-vnni: build here, time on a VNNI machine)")
    ap.add_argument("--spin", action="store_true",
                    help="let ONNX Runtime's threads busy-wait between runs (off: sessions interleave fairly on few cores)")
    ap.add_argument("--profile", action="store_true", help="per-op-type kernel times of FP32 and INT8 (ONNX Runtime profiler)")
    ap.add_argument("--data", default=None, help="held-out clips: gate the INT8 artifact (accuracy, agreement)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--rebuild", action="store_true", help="export and quantize again even if --work has them")
    args = ap.parse_args()
    for name in ("threads", "batch", "runs", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1")

    import numpy as np
    import torch

    from inti_edge import export as ex
    from inti_edge import artifact as artifacts
    from inti_edge.check import CheckError
    from inti_edge.engines import EngineError
    from inti_edge.build import TARGETS, BuildOptions, build
    from inti_edge.engines.onnxrt import op_type_times, session
    from inti_edge.artifact import ArtifactError
    from inti_edge.model import CheckpointError, load_checkpoint
    from inti_edge.quantize import QuantizeError

    ckpt = args.checkpoint or next(iter(sorted((ROOT / "inti_edge" / "assets").glob("*.pt"))), None)
    if ckpt is None:
        sys.exit("no bundled default model in inti_edge/assets/: pass --checkpoint CKPT")
    work = args.work
    fp32_dir, fp32_cpu_dir, int8_dir = work / "fp32", work / "fp32_cpu", work / "int8"
    op_types = tuple(t.strip() for t in args.op_types.split(",") if t.strip()) if args.op_types else None
    t0 = time.time()
    try:
        if args.rebuild or not (fp32_dir / "model.onnx").is_file():
            ex.export_checkpoint(ckpt, fp32_dir, streaming=False)
        if args.rebuild or not (fp32_cpu_dir / "model.onnx").is_file():  # the FP32 artifact `build -t cpu` ships
            build(fp32_dir, fp32_cpu_dir, BuildOptions(precision="fp32", target="cpu", forms=("model",)))
        built = int8_dir / "model.onnx"
        stale = built.is_file() and _recipe_differs(artifacts.read_info(built).recipe, op_types, args.attention,
                                                   TARGETS[args.target].cpu_isa)
        if args.rebuild or not built.is_file() or stale or args.data:
            opts = BuildOptions(precision="int8", target=args.target, calib=args.calib, calib_clips=args.calib_clips,
                                op_types=op_types, attention=args.attention, forms=("model",),
                                data=args.data, gate_split=args.split, gate_clips=args.clips, reference=str(ckpt),
                                threads=args.threads)
            result = build(fp32_dir, int8_dir, opts)
            gate = result.report
        else:
            gate = None
    except (EngineError, ArtifactError, QuantizeError, CheckError, CheckpointError) as e:
        sys.exit(f"error: {e}")
    prepare_s = time.time() - t0

    model, _ = load_checkpoint(ckpt)
    cfg = model.cfg
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    S = cfg.vision.image_size
    x = rng.standard_normal((args.batch, cfg.frames, 3, S, S)).astype(np.float32)
    xt = torch.from_numpy(x)
    fp32 = session(fp32_dir / "model.onnx", threads=args.threads, spin=args.spin)
    fp32_cpu = session(fp32_cpu_dir / "model.onnx", threads=args.threads, spin=args.spin)
    int8 = session(int8_dir / "model.onnx", threads=args.threads, spin=args.spin)

    def run_torch():
        with torch.inference_mode():
            model(xt)

    runners = {
        "pytorch_fp32": run_torch,
        "onnxruntime_fp32": lambda: fp32.run(None, {"clip": x}),
        "onnxruntime_fp32_cpu": lambda: fp32_cpu.run(None, {"clip": x}),
        "onnxruntime_int8": lambda: int8.run(None, {"clip": x}),
    }
    names = list(runners)
    for _ in range(args.warmup):
        for n in names:
            runners[n]()
    times = {n: [] for n in names}
    medians = {n: [] for n in names}  # one per repeat
    for _ in range(args.repeats):
        this = {n: [] for n in names}
        for r in range(args.runs):
            order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
            for n in order:
                t = time.perf_counter()
                runners[n]()
                this[n].append((time.perf_counter() - t) * 1000)
        for n in names:
            times[n] += this[n]
            medians[n].append(statistics.median(this[n]))
    med = {n: statistics.median(v) for n, v in medians.items()}  # median of the repeats' medians
    ratio = lambda a, b: [round(x / y, 3) for x, y in zip(medians[a], medians[b])]  # per repeat
    out = {
        "checkpoint": str(ckpt),
        "model": {"name": cfg.name, "frames": cfg.frames, "image_size": S, "width": cfg.vision.width,
                  "layers": cfg.vision.layers, "interp_after": list(cfg.interp_after)},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads,
                    "isa": __import__("inti_edge.quantize", fromlist=["cpu_isa"]).cpu_isa()},
        "batch": args.batch,
        "spin": args.spin,
        "runs": args.runs,
        "repeats": args.repeats,
        "median_ms": {n: round(v, 3) for n, v in med.items()},
        "medians_per_repeat_ms": {n: [round(v, 3) for v in vs] for n, vs in medians.items()},
        "p10_ms": {n: round(float(np.percentile(v, 10)), 3) for n, v in times.items()},
        "p90_ms": {n: round(float(np.percentile(v, 90)), 3) for n, v in times.items()},
        "speedup": {
            "int8_vs_fp32": round(med["onnxruntime_fp32"] / med["onnxruntime_int8"], 3),
            "int8_vs_fp32_cpu": round(med["onnxruntime_fp32_cpu"] / med["onnxruntime_int8"], 3),
            "int8_vs_pytorch": round(med["pytorch_fp32"] / med["onnxruntime_int8"], 3),
            "fp32_vs_pytorch": round(med["pytorch_fp32"] / med["onnxruntime_fp32"], 3),
        },
        "speedup_per_repeat": {"int8_vs_fp32": ratio("onnxruntime_fp32", "onnxruntime_int8"),
                               "int8_vs_fp32_cpu": ratio("onnxruntime_fp32_cpu", "onnxruntime_int8")},
        "recipe": artifacts.read_info(int8_dir / "model.onnx").recipe,
        "prepare_s": round(prepare_s, 1),
    }
    if gate is not None:
        m = gate.metrics
        out["gate"] = {"passed": gate.passed, "clips": m["clips"], "agreement": m["agreement"], "cos_mean": m["cos_mean"],
                       "accuracy_fp32": m["accuracy_ref"], "accuracy_int8": m["accuracy_art"],
                       "accuracy_delta": m["accuracy_delta"], "data": gate.data}
    if args.profile:
        prof = {k: op_type_times(d / "model.onnx", {"clip": x}, args.threads, runs=max(10, args.runs // 2))
                for k, d in (("fp32", fp32_dir), ("fp32_cpu", fp32_cpu_dir), ("int8", int8_dir))}
        split = {k: split_profile(v) for k, v in prof.items()}
        out["profile_ms"] = {k: {op: round(t, 3) for op, t in v.items()} for k, v in prof.items()}
        out["profile_split_ms"] = split
        out["profile_bound"] = amdahl(split["fp32_cpu"], split["int8"])
    loss_ok = gate is not None and gate.metrics["accuracy_delta"] is not None and -gate.metrics["accuracy_delta"] <= 1.0
    out["goal"] = {"int8_2x_fp32": min(out["speedup"]["int8_vs_fp32"], out["speedup"]["int8_vs_fp32_cpu"]) >= 2.0,
                   "accuracy_loss_le_1_point": loss_ok if gate is not None else None}
    print(json.dumps(out, indent=2))


def _recipe_differs(r: dict, op_types, attention, cpu_isa: str | None) -> bool:
    """Whether the INT8 artifact in --work was built with other --op-types / --attention / CPU than asked."""
    if not r:
        return True
    return (op_types is not None and tuple(r.get("op_types", ())) != tuple(op_types)) or (
        attention is not None and r.get("attention") != attention) or (
        cpu_isa is not None and r.get("cpu_isa") != cpu_isa)


if __name__ == "__main__":
    main()
