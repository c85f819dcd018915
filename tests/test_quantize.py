"""Precision recipes on the default model and committed real clips: calibration manifests and their
cache, FP16 (AutoCast), INT8 for TensorRT (ModelOpt Q/DQ) and for the CPU (ONNX Runtime QDQ), each
within its gate budget, with the interpolation node kept whole and FP32."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_export import (  # noqa: E402
    CALIB, MOTION, ROOT, cpu_build, default_checkpoint, exported, gate_clips, gate_reference, shared_dir)

from inti_edge import check as ck  # noqa: E402
from inti_edge import artifact as artifacts  # noqa: E402
from inti_edge.plugin import node as pnode  # noqa: E402
from inti_edge import quantize as q  # noqa: E402
from inti_edge.model import load_checkpoint  # noqa: E402

NOT_QUANTIZED = ("LayerNormalization", "Softmax", "Erf", "Add", "Div", "Mul", "TokenInterpolation")


@pytest.fixture(scope="session")
def setup(tmp_path_factory):
    ckpt = default_checkpoint(tmp_path_factory)
    files = exported(tmp_path_factory)
    model, meta = load_checkpoint(ckpt)
    manifest = q.CalibrationManifest(MOTION, name="test", **CALIB)
    calib = q.calibration_set(manifest, model.cfg, meta["preprocess"], shared_dir(tmp_path_factory) / "calib-cache",
                              classes=meta["classes"])
    x, y = gate_clips(model.cfg, meta["classes"])
    gate = ck.GateData(x, y, {"spec": MOTION, "split": "all", "clips": len(x)})
    return dict(ckpt=ckpt, files=files, cfg=model.cfg, meta=meta, calib=calib, gate=gate,
                ref=gate_reference(ckpt, model.cfg, meta["classes"]),
                src=onnx.load(str(files["model"])), dir=shared_dir(tmp_path_factory))


def _artifact(setup, name: str, recipe: q.Recipe) -> Path:
    path = setup["dir"] / f"{name}.onnx"
    if not path.exists():
        artifacts.save_onnx(q.apply_recipe(setup["src"], recipe, setup["calib"]), path)
    return path


def _gate(setup, path: Path) -> ck.CheckReport:
    return ck.check(path, setup["gate"], reference=setup["ckpt"], reference_onnx=setup["files"]["model"],
                    ref_logits=setup["ref"])


def _consumers_of_dq(model: onnx.ModelProto) -> set[str]:
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.op_type for n in model.graph.node if n.op_type != "QuantizeLinear" and any(i in dq for i in n.input)}


def _interp_input_is_float32(model: onnx.ModelProto) -> bool:
    node = pnode.interpolation_nodes(model)[0]
    producer = next(n for n in model.graph.node if node.input[0] in n.output)
    if producer.op_type == "Cast":
        return next(a.i for a in producer.attribute if a.name == "to") == onnx.TensorProto.FLOAT
    inferred = onnx.shape_inference.infer_shapes(model)
    vi = {v.name: v for v in inferred.graph.value_info}
    return vi[node.input[0]].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


# --- calibration sets ------------------------------------------------------------------------------
def test_manifest_fingerprint_is_reproducible_and_tracks_what_matters(setup):
    pre = setup["meta"]["preprocess"]
    m = q.CalibrationManifest.load(ROOT / "calibration" / "ci.json")
    assert m.clips >= 32
    assert sorted(p.resolve() for p in m.files()) == sorted(
        (ROOT / "tests" / "data" / n).resolve() for n in ("bbb_8s_160x90.mp4", "soccer_juggling_4s_160x120.avi"))
    fp = m.fingerprint(pre)
    assert fp == q.CalibrationManifest.load(ROOT / "calibration" / "ci.json").fingerprint(pre)
    assert fp != q.CalibrationManifest.resolve(str(ROOT / "calibration" / "ci.json"), seed=7).fingerprint(pre)
    assert fp != m.fingerprint({**pre, "image_size": 224})
    default = q.CalibrationManifest.load(ROOT / "calibration" / "default.json")
    assert default.clips >= 256 and default.split == "train"
    with pytest.raises(q.QuantizeError):
        q.CalibrationManifest(MOTION, clips=0)


def test_calibration_clips_are_cached_and_come_back_identical(setup, tmp_path):
    cfg, meta = setup["cfg"], setup["meta"]
    manifest = q.CalibrationManifest(MOTION, clips=6, split="all", seed=3, name="tiny")
    first = q.calibration_set(manifest, cfg, meta["preprocess"], tmp_path, classes=meta["classes"])
    second = q.calibration_set(manifest, cfg, meta["preprocess"], tmp_path, classes=meta["classes"])
    assert not first.from_cache and second.from_cache
    assert second.cache_path.name.startswith("tiny-") and second.cache_path.suffix == ".npz"
    np.testing.assert_array_equal(first.frames, second.frames)
    np.testing.assert_array_equal(first.labels, second.labels)
    from inti_edge.data import load_clips

    direct, _ = load_clips(MOTION, cfg, "all", 6, 3, meta["classes"])
    # uint8 storage costs at most half a grey level
    assert np.abs(second.clips() - direct).max() <= 0.5 / 255 / min(cfg.std) + 1e-6
    reader = second.reader("clip", batch=4)
    shapes = [b["clip"].shape[0] for b in iter(reader.get_next, None)]
    reader.rewind()
    assert shapes == [4, 2] and reader.get_next()["clip"].shape == (4, cfg.frames, 3, cfg.vision.image_size, cfg.vision.image_size)


# --- recipes ----------------------------------------------------------------------------------------
def test_fp16_autocast_is_within_budget_and_keeps_the_node_fp32(setup):
    path = _artifact(setup, "fp16", q.Recipe("fp16", "tensorrt"))
    model = onnx.load(str(path))
    assert artifacts.read_info(model).precision == "fp16"
    halves = sum(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    assert halves > 50  # the weights went to FP16 ...
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # ... the I/O did not
    assert len(pnode.interpolation_nodes(model)) == 1 and model.functions and _interp_input_is_float32(model)
    assert "LayerNormalization" in {n.op_type for n in model.graph.node}
    report = _gate(setup, path)
    assert report.passed, report.failures
    assert report.metrics["agreement"] >= 0.99 and report.metrics["cos_min"] >= 0.999


def test_int8_for_tensorrt_puts_qdq_only_on_matmul_gemm_conv_and_holds_the_budget(setup):
    # the build's TensorRT default: attention's QK^T / AV stay FP16 (see engines/build.py)
    path = _artifact(setup, "int8_trt", q.Recipe("int8", "tensorrt", op_types=q.TRT_OP_TYPES, attention=False))
    model = onnx.load(str(path))
    consumers = _consumers_of_dq(model)
    assert consumers and consumers <= {"MatMul", "Gemm", "Conv"}, consumers
    assert not consumers & set(NOT_QUANTIZED)
    assert len(pnode.interpolation_nodes(model)) == 1 and _interp_input_is_float32(model)
    quantized = set(q.quantized_nodes(model))
    assert len(quantized) >= 8 * 4 + 1  # qkv, proj, fc1, fc2 of every block, and the patch embedding
    assert any(n.endswith("/Conv") for n in quantized)
    attention = set(q.attention_matmuls(setup["src"]))
    assert len(attention) >= 2 * 8 and not attention & quantized
    info = artifacts.read_info(model)
    assert (info.precision, info.backend) == ("int8", "tensorrt")
    assert info.recipe["method"] == "entropy"
    report = _gate(setup, path)
    assert report.passed, report.failures
    assert "simulated" in report.backend


def test_int8_for_cpu_uses_onnxruntime_qdq_per_channel_and_holds_the_budget(setup, tmp_path_factory):
    # `inti-edge build -p int8 -t cpu-x86` runs in this process after the ModelOpt test: ModelOpt's
    # patches of ONNX Runtime's quantizer must have been undone for it to work
    out = cpu_build(tmp_path_factory)
    model = onnx.load(str(out / "model.onnx"))
    info = artifacts.read_info(model)
    assert (info.precision, info.backend) == ("int8", "onnxruntime")
    inits = {i.name: i for i in model.graph.initializer}
    weight_scales = [inits[n.input[1]] for n in model.graph.node
                     if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert weight_scales and max(onnx.numpy_helper.to_array(s).size for s in weight_scales) > 1  # per channel
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(z.data_type == onnx.TensorProto.UINT8 for z in zero_points)  # U8S8 on x86
    assert _consumers_of_dq(model) <= {"MatMul", "Gemm"}
    assert len(pnode.interpolation_nodes(model)) == 1 and _interp_input_is_float32(model)
    report = json.loads((out / "report.json").read_text())
    assert report["passed"], report["failures"]
    m = report["metrics"]
    assert m["clips"] == 128 and m["agreement"] >= 0.95 and m["cos_mean"] >= 0.99
    assert m["accuracy_delta"] is not None and -m["accuracy_delta"] <= 1.0


def test_exclude_patterns_keep_nodes_out_of_int8(setup):
    src = setup["src"]
    pattern = r"resblocks\.0\."  # nodes are named after their modules: /visual.transformer.resblocks.0.mlp.c_fc/MatMul
    block0 = {n.name for n in src.graph.node if n.op_type in ("MatMul", "Gemm") and "resblocks.0." in n.name}
    assert len(block0) >= 4
    small = q.CalibrationSet(setup["calib"].manifest, "x", setup["calib"].frames[:8], setup["calib"].labels[:8],
                             setup["calib"].mean, setup["calib"].std)
    recipe = q.Recipe("int8", "onnxruntime", op_types=q.CPU_OP_TYPES, exclude=(pattern,), cpu_isa="x86")
    model = q.apply_recipe(src, recipe, small)
    quantized = set(q.quantized_nodes(model, q.CPU_OP_TYPES))
    assert len(quantized) >= 7 * 4 and not quantized & block0
    assert any("resblocks.1." in n for n in quantized)
    assert artifacts.read_info(model).recipe["exclude"] == [pattern]


def test_recipes_refuse_what_they_cannot_do(setup):
    with pytest.raises(q.QuantizeError, match="calibration"):
        q.apply_recipe(setup["src"], q.Recipe("int8", "tensorrt", op_types=q.TRT_OP_TYPES), None)
    fp16 = onnx.load(str(_artifact(setup, "fp16", q.Recipe("fp16", "tensorrt"))))
    with pytest.raises(q.QuantizeError, match="already fp16"):
        q.apply_recipe(fp16, q.Recipe("int8", "tensorrt"), setup["calib"])
    with pytest.raises(q.QuantizeError, match="bad --exclude"):
        q.expand_patterns(setup["src"], ["("])


def test_cpu_int8_runs_integer_kernels_in_onnxruntime(setup, tmp_path_factory):
    # the speed of the CPU recipe comes only from ONNX Runtime fusing Q/DQ + MatMul into its integer kernels;
    # a DequantizeLinear -> float MatMul graph would compute the same and run slower than FP32
    from inti_edge.engines.onnxrt import op_type_times

    cfg = setup["cfg"]
    S = cfg.vision.image_size
    feed = {"clip": np.random.default_rng(0).standard_normal((1, cfg.frames, 3, S, S)).astype(np.float32)}
    fp32 = op_type_times(setup["files"]["model"], feed, threads=1, runs=2, warmup=1)
    int8 = op_type_times(cpu_build(tmp_path_factory) / "model.onnx", feed, threads=1, runs=2, warmup=1)
    assert fp32 and all(v >= 0 for v in fp32.values()) and "MatMul" in fp32
    integer = {"MatMulIntegerToFloat", "QGemm", "QLinearMatMul", "MatMulInteger"}
    assert integer & set(int8), sorted(int8)
    assert "DequantizeLinear" not in int8  # every Q/DQ pair was fused away
