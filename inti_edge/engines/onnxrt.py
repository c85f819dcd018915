"""ONNX Runtime: sessions and Polygraphy's OnnxrtRunner over them."""

from __future__ import annotations

from pathlib import Path

import onnx


def session(model: str | Path | bytes | onnx.ModelProto, threads: int | None = None, providers: list[str] | None = None,
            basic_optimizations: bool = False, fp16: bool = False, profile: str | Path | None = None,
            spin: bool = True):
    """An ``onnxruntime.InferenceSession`` (CPU unless ``providers`` says otherwise).

    ``threads``: intra-op threads (None: ONNX Runtime's default, one per core); inter-op is 1,
    the graph is one chain. ``basic_optimizations``: no Q/DQ fusion into ONNX Runtime's integer
    kernels, so a TensorRT-shaped Q/DQ model computes what TensorRT computes (on x86 without VNNI,
    the fused u8*s8 kernels saturate on symmetric int8 weights). ``fp16``: an FP16 graph; ONNX
    Runtime 1.32's NCHWc layout pass segfaults on the AutoCast FP16 encoder, so it is switched off.
    ``profile``: a file prefix; ONNX Runtime's profiler records every kernel (``end_profiling()``
    returns the JSON file; see ``op_type_times``). ``spin``: False stops the intra-op threads from
    busy-waiting after a run (benchmarks that interleave several sessions on few cores).
    """
    import onnxruntime as ort

    from . import EngineError

    so = ort.SessionOptions()
    so.log_severity_level = 3  # warnings about fp16 fallbacks on CPU are expected, not news
    if threads:
        so.intra_op_num_threads = threads
    if basic_optimizations:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.inter_op_num_threads = 1
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = str(profile)
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif isinstance(model, Path):
        model = str(model)
    try:
        return ort.InferenceSession(model, so, providers=providers or ["CPUExecutionProvider"],
                                    disabled_optimizers=["NchwcTransformer"] if fp16 else None)
    except Exception as e:  # noqa: BLE001 - ORT raises its own exception types for bad models
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EngineError(f"ONNX Runtime cannot load the model: {msg[:300]}") from None


def op_type_times(model: str | Path | onnx.ModelProto, feed: dict, threads: int | None = None, runs: int = 20,
                  warmup: int = 3, workdir: str | Path | None = None) -> dict[str, float]:
    """Milliseconds per run spent in each op type (ONNX Runtime's profiler, kernel time, after ``warmup`` runs).

    The node types are the ones ONNX Runtime runs after its own graph optimizations (e.g. a Q/DQ
    MatMul appears as MatMulIntegerToFloat), so the split shows what quantization can and cannot speed up.
    """
    import json
    import tempfile
    from collections import defaultdict

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        sess = session(model, threads, profile=Path(tmp) / "ort")
        for _ in range(warmup + runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    runs_at = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    if len(runs_at) < warmup + runs:
        return {}
    first = runs_at[warmup]  # kernels of the timed runs only
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= first:
            per_op[e["args"]["op_name"]] += e["dur"] / 1000.0
    return {k: v / runs for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])}


def onnxrt_runner(model, threads: int | None = None, mark_all: bool = False, name: str | None = None,
                  basic_optimizations: bool = False, fp16: bool = False):
    """Polygraphy's OnnxrtRunner; ``mark_all`` makes every intermediate tensor an output (layerwise)."""
    from polygraphy.backend.onnxrt import OnnxrtRunner

    label = name or (f"onnxrt:{Path(model).name}" if isinstance(model, (str, Path)) else "onnxrt")
    if mark_all:
        model = mark_all_outputs(model if isinstance(model, onnx.ModelProto) else onnx.load(str(model)))
    return OnnxrtRunner(lambda: session(model, threads, basic_optimizations=basic_optimizations, fp16=fp16), name=label)


def mark_all_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy in which every tensor a node of the main graph produces is a graph output (Polygraphy's MARK_ALL)."""
    from polygraphy import constants
    from polygraphy.backend.onnx import ModifyOutputs

    return ModifyOutputs(model, outputs=constants.MARK_ALL, copy=True)()
