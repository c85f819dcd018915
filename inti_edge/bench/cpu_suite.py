"""cpu: latency of the default model on the CPU: PyTorch fp32 against ONNX Runtime fp32 and int8.

The artifacts are made with the project's own stages, once, into ``<work>/cpu`` (reused while the
checkpoint and the recipe are the same): the ONNX export, the fp32 artifact `build -p fp32 -t cpu`
ships, and the `-t cpu` INT8 artifact calibrated on ``calibration/ci.json``. Every runtime is timed on
the same clip, one call per repetition each, interleaved; p50 / p95 over the repetitions. ``profile``
adds ONNX Runtime's per-op-type kernel times and what they bound (the share of fp32 time in matrix
products, the only ops INT8 speeds up)."""

from __future__ import annotations

import os
from pathlib import Path

from . import BenchError, Context
from .core import measure, rnd, summarize

ROOT = Path(__file__).resolve().parents[2]
# the ops INT8 speeds up (FP32 and ONNX Runtime's fused integer kernels), and what INT8 adds
GEMM_OPS = {"MatMul", "Gemm", "FusedMatMul", "FusedGemm", "MatMulIntegerToFloat", "MatMulInteger", "QGemm", "QLinearMatMul",
            "DynamicQuantizeMatMul", "Attention", "QAttention"}
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
NAMES = {"pytorch_fp32": "PyTorch fp32", "ort_fp32_export": "ORT fp32 (export)", "ort_fp32": "ORT fp32 (build -t cpu)",
         "ort_int8": "ORT int8 (build -t cpu)"}


def split_profile(times: dict[str, float]) -> dict[str, float]:
    """Per-op-type ms -> {gemm, quant, other, total} ms per run."""
    gemm = sum(v for k, v in times.items() if k in GEMM_OPS)
    quant = sum(v for k, v in times.items() if k in QUANT_OPS)
    total = sum(times.values())
    return {"gemm": round(gemm, 3), "quant": round(quant, 3), "other": round(total - gemm - quant, 3), "total": round(total, 3)}


def amdahl(fp32: dict[str, float], int8: dict[str, float]) -> dict[str, float | None]:
    """What the profiles allow: INT8/FP32 speed-up of the matrix products alone, the whole-model speed-up
    they give with the rest as in FP32, the bound with free matrix products, and the matrix-product
    speed-up 2x would need (None: not even free matrix products reach it)."""
    s = fp32["gemm"] / int8["gemm"] if int8["gemm"] else None
    rest = fp32["total"] - fp32["gemm"]
    need = fp32["gemm"] / (fp32["total"] / 2 - rest) if fp32["total"] / 2 > rest else None
    return {"gemm_share_fp32": round(fp32["gemm"] / fp32["total"], 3), "gemm_speedup_int8": round(s, 3) if s else None,
            "whole_model_at_that_gemm_speedup": round(fp32["total"] / (rest + fp32["gemm"] / s), 3) if s else None,
            "bound_with_free_gemm": round(fp32["total"] / rest, 3) if rest > 0 else None,
            "gemm_speedup_needed_for_2x": round(need, 2) if need else None}


def prepare(ckpt: Path, work: Path, target: str = "cpu", calib: str | None = None, calib_clips: int | None = None,
            update=lambda *a, **k: None) -> dict[str, Path]:
    """The export, the fp32 `-t cpu` artifact and the int8 `-t cpu` artifact of ``ckpt`` under ``work``
    (made where missing or made from another checkpoint / recipe)."""
    import json

    from .. import export as ex
    from ..build import BuildOptions, build
    from ..commands import input_errors

    calib = calib or str(ROOT / "calibration" / "ci.json")
    stamp = {"checkpoint": str(Path(ckpt).resolve()), "mtime": os.path.getmtime(ckpt), "target": target, "calib": calib,
             "calib_clips": calib_clips}
    dirs = {"export": work / "fp32", "fp32": work / "fp32_cpu", "int8": work / f"int8_{target}"}
    stamp_file = work / "stamp.json"
    fresh = stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp and all(
        (d / "model.onnx").is_file() for d in dirs.values())
    if fresh:
        return dirs
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        update("cpu: export")
        ex.export(ckpt, dirs["export"], streaming=False)
        update("cpu: build fp32 -t cpu")
        build(dirs["export"], dirs["fp32"], BuildOptions(precision="fp32", target="cpu", forms=("model",)))
        update("cpu: build int8 -t cpu (calibration)")
        build(dirs["export"], dirs["int8"], BuildOptions(precision="int8", target=target, calib=calib,
                                                        calib_clips=calib_clips, forms=("model",)))
    except input_errors() as e:
        raise BenchError(f"cpu suite: could not make the artifacts: {e}") from None
    stamp_file.write_text(json.dumps(stamp))
    return dirs


def run(ctx: Context, checkpoint: str | None = None, threads: int = 2, batches=(1, 8), target: str = "cpu",
        profile: bool | None = None, reps: int | None = None) -> dict:
    import numpy as np
    import torch

    from ..defaults import DEFAULT_MODEL
    from ..engines.onnxrt import op_type_times, session
    from ..model import load_checkpoint
    from ..quantize import cpu_isa

    ckpt = Path(checkpoint or DEFAULT_MODEL)
    dirs = prepare(ckpt, ctx.work / "cpu", target=target, calib_clips=32 if ctx.quick else None, update=ctx.update)
    model, _ = load_checkpoint(ckpt)
    model.eval()
    cfg = model.cfg
    S = cfg.vision.image_size
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    sessions = {k: session(dirs[d] / "model.onnx", threads=threads, spin=False) for k, d in
                (("ort_fp32_export", "export"), ("ort_fp32", "fp32"), ("ort_int8", "int8"))}
    data, rows, errors = {}, [], []
    try:
        for b in batches:
            x = np.random.default_rng(0).standard_normal((b, cfg.frames, 3, S, S)).astype(np.float32)
            xt = torch.from_numpy(x)

            def run_torch():
                with torch.inference_mode():
                    model(xt)

            variants = {"pytorch_fp32": run_torch, **{k: (lambda s=s: s.run(None, {"clip": x})) for k, s in sessions.items()}}
            n = reps or ((20 if b == 1 else 8) if ctx.quick else (60 if b == 1 else 20))
            samples = measure(variants, reps=n, warmup=3, inner=1,
                              on_rep=lambda d, t, b=b: ctx.update(f"cpu: batch {b}", d, t))
            st = {k: summarize([1e3 * s for s in v]) for k, v in samples.items()}
            data[f"batch{b}"] = {k: {**{m: rnd(v, 4) for m, v in s.items() if m != "n"}, "n": s["n"]} for k, s in st.items()}
            for k in variants:
                rows.append([b, NAMES[k], rnd(st[k]["median"]), rnd(st[k]["p95"]), rnd(1e3 * b / st[k]["median"]),
                             rnd(st["ort_fp32"]["median"] / st[k]["median"])])
            data[f"batch{b}"]["int8_vs_fp32"] = rnd(st["ort_fp32"]["median"] / st["ort_int8"]["median"], 4)
            data[f"batch{b}"]["int8_vs_pytorch"] = rnd(st["pytorch_fp32"]["median"] / st["ort_int8"]["median"], 4)
            ctx.save({"suite": "cpu", "data": data})
        if profile if profile is not None else not ctx.quick:
            ctx.update("cpu: per-op profile")
            x = np.random.default_rng(0).standard_normal((1, cfg.frames, 3, S, S)).astype(np.float32)
            prof = {k: op_type_times(dirs[k] / "model.onnx", {"clip": x}, threads, runs=20) for k in ("fp32", "int8")}
            split = {k: split_profile(v) for k, v in prof.items()}
            data["profile_split_ms"] = split
            data["profile_bound"] = amdahl(split["fp32"], split["int8"])
    finally:
        torch.set_num_threads(before)
    from ..artifact import read_info

    tables = [{"title": f"the default model ({cfg.name}, {cfg.frames} x {S} px), {threads} threads, ms per call",
               "columns": ["batch", "runtime", "p50 ms", "p95 ms", "clips/s", "speed-up vs ORT fp32"], "rows": rows,
               "note": "p50 / p95 over interleaved repetitions of one call each (after warm-up); the int8 artifact is "
                       "ONNX Runtime's static quantizer (`inti-edge build -p int8 -t cpu`), calibrated on calibration/ci.json."}]
    if "profile_split_ms" in data:
        sp, bd = data["profile_split_ms"], data["profile_bound"]
        tables.append({"title": "where the time goes (ONNX Runtime profiler, batch 1, ms per run)",
                       "columns": ["artifact", "matrix products", "quantize / dequantize", "other", "total"],
                       "rows": [[k, v["gemm"], v["quant"], v["other"], v["total"]] for k, v in sp.items()],
                       "note": f"matrix products are {bd['gemm_share_fp32']} of fp32 time; int8 runs them "
                               f"{bd['gemm_speedup_int8']}x faster; even free matrix products would give "
                               f"{bd['bound_with_free_gemm']}x."})
    series = {NAMES[k]: [next(r[2] for r in rows if r[0] == b and r[1] == NAMES[k]) for b in batches] for k in NAMES}
    return {"suite": "cpu", "title": "the default model on the CPU: ONNX Runtime int8 vs fp32 vs PyTorch",
            "settings": {"checkpoint": ckpt.name, "threads": threads, "batches": list(batches), "isa": cpu_isa(),
                         "int8_recipe": read_info(dirs["int8"] / "model.onnx").recipe},
            "tables": tables, "errors": errors,
            "plots": [{"name": "cpu-latency", "title": f"default model latency, {threads} threads (p50)", "kind": "bar",
                       "x": [f"batch {b}" for b in batches], "ylabel": "ms per call", "series": series}],
            "data": data}
