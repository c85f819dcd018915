"""The gate: metrics and budgets, the layerwise report that names a broken layer, report files, the
`check` and `build` commands (exit codes, manifest, Jetson bundle, --auto-exclude), TensorRT where it imports."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_export import (  # noqa: E402
    CALIB, GATE, MOTION, ROOT, cli, cpu_build, default_checkpoint, exported, gate_clips, gate_reference)

from inti_edge import check as ck  # noqa: E402
from inti_edge import artifact as artifacts  # noqa: E402
from inti_edge.plugin import node as pnode  # noqa: E402
from inti_edge.plugin import spec as plugin_spec  # noqa: E402
from inti_edge.model import load_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    ckpt = default_checkpoint(tmp_path_factory)
    files = exported(tmp_path_factory)
    model, meta = load_checkpoint(ckpt)
    x, y = gate_clips(model.cfg, meta["classes"])
    return dict(ckpt=ckpt, files=files, cfg=model.cfg, classes=meta["classes"],
                gate=ck.GateData(x, y, {"spec": MOTION, **GATE}), ref=gate_reference(ckpt, model.cfg, meta["classes"]))


# --- metrics and budgets ------------------------------------------------------------------------------
def test_metrics_on_known_logits():
    ref = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 4.0], [2.0, 1.9, 0.0]])
    art = ref.copy()
    art[3] = [1.8, 2.0, 0.0]  # the last clip flips from class 0 to class 1
    labels = np.array([0, 1, 2, 0])
    m = ck.compare_logits(ref, art, labels, ["a", "b", "c"])
    assert m["agreement"] == 0.75
    assert (m["accuracy_ref"], m["accuracy_art"], m["accuracy_delta"]) == (100.0, 75.0, -25.0)
    assert m["max_abs"] == pytest.approx(0.2) and m["max_abs_rel"] == pytest.approx(0.2 / 4.0)
    assert m["cos_min"] < 1.0 and m["cos_mean"] == pytest.approx((3 + m["cos_min"]) / 4)
    assert m["per_class_agreement"] == {"a": {"clips": 2, "agreement": 0.5}, "b": {"clips": 1, "agreement": 1.0},
                                        "c": {"clips": 1, "agreement": 1.0}}
    fails = ck.judge(m, ck.DEFAULT_BUDGETS["int8"])
    assert any("agreement" in f for f in fails) and any("accuracy loss 25.00" in f for f in fails)
    assert ck.judge(ck.compare_logits(ref, ref, labels, "abc"), ck.DEFAULT_BUDGETS["fp32"]) == []
    unlabelled = ck.compare_logits(ref, art, np.full(4, -1), "abc")
    assert unlabelled["accuracy_delta"] is None and not any("accuracy" in f for f in ck.judge(unlabelled, ck.DEFAULT_BUDGETS["int8"]))


def test_default_budgets_and_overrides():
    assert ck.DEFAULT_BUDGETS["fp32"].max_abs_rel == 1e-4 and ck.DEFAULT_BUDGETS["fp32"].min_agreement == 1.0
    assert ck.DEFAULT_BUDGETS["fp16"].min_agreement == 0.99 and ck.DEFAULT_BUDGETS["fp16"].min_cos_min == 0.999
    i8 = ck.DEFAULT_BUDGETS["int8"]
    assert (i8.max_acc_drop, i8.min_agreement, i8.min_cos_mean) == (1.0, 0.95, 0.99)
    b = i8.replace(ck.parse_budget(["min_agreement=0.97", "max_acc_drop = 0.5"]))
    assert (b.min_agreement, b.max_acc_drop, b.min_cos_mean) == (0.97, 0.5, 0.99)
    with pytest.raises(ck.CheckError, match="unknown budget"):
        i8.replace({"agreement": 1.0})
    with pytest.raises(ck.CheckError, match="KEY=NUMBER"):
        ck.parse_budget(["min_agreement"])


# --- the gate on artifacts -------------------------------------------------------------------------------
def test_vnni_int8_is_checked_unfused_on_a_cpu_without_vnni(monkeypatch):
    # an int8 artifact built for a VNNI CPU has 8-bit weights, on which AVX2's fused u8*s8 kernels saturate:
    # the gate must then run the Q/DQ graph unfused (what the target computes), and fused everywhere else
    from inti_edge import quantize as q

    def info(recipe: str) -> artifacts.ArtifactInfo:
        return artifacts.ArtifactInfo(config=None, classes=[], preprocess={}, form="model", interpolation="function",
                               precision="int8", source="", source_sha256="", backend="onnxruntime",
                               raw={artifacts.META_RECIPE: recipe})

    monkeypatch.setattr(q, "cpu_isa", lambda: "x86")
    assert ck._foreign_vnni(info(json.dumps({"cpu_isa": "x86-vnni"}))) is True
    assert ck._foreign_vnni(info(json.dumps({"cpu_isa": "x86"}))) is False
    assert info("not json").recipe == {} and ck._foreign_vnni(info("not json")) is False
    monkeypatch.setattr(q, "cpu_isa", lambda: "x86-vnni")
    assert ck._foreign_vnni(info(json.dumps({"cpu_isa": "x86-vnni"}))) is False


def test_fp32_export_passes_against_pytorch_and_writes_the_report(env, tmp_path):
    r = ck.check(env["files"]["model"], env["gate"], reference=env["ckpt"], ref_logits=env["ref"])
    assert r.passed, r.failures
    assert r.metrics["max_abs_rel"] <= 1e-4 and r.metrics["agreement"] == 1.0 and r.metrics["clips"] == GATE["clips"]
    paths = ck.write_report(r, tmp_path)
    d = json.loads(paths["json"].read_text())
    assert {"precision", "backend", "metrics", "budget", "passed", "artifacts"} <= set(d)
    assert d["precision"] == "fp32" and d["passed"] is True and d["artifacts"]["sha256"] == artifacts.file_sha256(env["files"]["model"])
    md = paths["md"].read_text()
    assert "PASSED" in md and "top-1 agreement" in md and "report.png" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _break_one_layer(src: Path, dst: Path) -> str:
    """Scale the weight of one MLP layer in block 5 by 1.5: a wrong layer the gate must find."""
    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "MatMul" and "resblocks.5.mlp.c_fc" in n.name)
    w = next(inits[i] for i in node.input if i in inits)
    w.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(w) * 1.5, w.name))
    onnx.save(model, str(dst))
    return node.name


def test_a_broken_layer_fails_the_gate_and_is_named_first(env, tmp_path):
    broken = tmp_path / "model.onnx"
    name = _break_one_layer(env["files"]["model"], broken)
    r = ck.check(broken, env["gate"], reference=env["ckpt"], reference_onnx=env["files"]["model"], ref_logits=env["ref"])
    assert not r.passed and any("max abs error" in f for f in r.failures)
    assert r.layerwise and r.layerwise[0]["node"] == name
    assert r.layerwise[0]["growth"] == pytest.approx(0.5, abs=1e-3)  # the 1.5x weight, exactly
    assert r.layerwise[0]["growth"] > 2 * max(row["growth"] for row in r.layerwise[1:])
    md = ck.write_report(r, tmp_path)["md"].read_text()
    assert "FAILED" in md and name in md


# --- commands -------------------------------------------------------------------------------------------
def test_check_command_exit_codes(env, tmp_path):
    model = env["files"]["model"]
    common = ["--reference", env["ckpt"], "--data", MOTION, "--split", "all", "--clips", 16, "-o", tmp_path / "ok"]
    res = cli("check", model, *common, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["passed"] is True
    assert json.loads((tmp_path / "ok" / "report.json").read_text())["metrics"]["clips"] == 16
    broken = tmp_path / "b" / "model.onnx"
    broken.parent.mkdir()
    _break_one_layer(model, broken)
    res = cli("check", broken, *common[:-2], "-o", tmp_path / "bad")
    assert res.exit_code == 1 and "FAILED" in res.output
    for args, msg in [((tmp_path / "missing.onnx", *common), "no artifact"),
                      ((model, *common, "--budget", "nonsense"), "KEY=NUMBER"),
                      ((model, "--reference", env["ckpt"], "--data", str(tmp_path / "nothing.mp4"), "--split", "all"), "error:")]:
        res = cli("check", *args)
        assert res.exit_code == 2 and msg in res.output and "Traceback" not in res.output, res.output


def test_build_cpu_int8_writes_manifest_report_and_artifacts(env, tmp_path_factory):
    out = cpu_build(tmp_path_factory)
    m = json.loads((out / "manifest.json").read_text())
    assert m["precision"] == "int8" and m["target"]["name"] == "cpu-x86" and m["target"]["backend"] == "onnxruntime"
    assert m["inputs"]["onnx"]["model"]["sha256"] == artifacts.file_sha256(env["files"]["model"])
    assert m["inputs"]["reference"]["path"] == str(Path(env["ckpt"]).resolve())  # found through the ONNX metadata
    cal = m["inputs"]["calibration"]
    assert cal["clips"] == CALIB["clips"] and len(cal["fingerprint"]) == 64 and Path(cal["cache"]).is_file()
    assert m["artifacts"]["model"]["sha256"] == artifacts.file_sha256(out / "model.onnx")
    assert m["tools"]["onnxruntime"] and m["tools"]["nvidia-modelopt"] and "tensorrt" in m["tools"]
    assert m["device"]["tensorrt"] is None or isinstance(m["device"]["tensorrt"], str)
    assert m["gate"]["passed"] is True and m["plans"] == {}
    report = json.loads((out / "report.json").read_text())
    assert report["precision"] == "int8" and report["artifacts"]["manifest"].endswith("manifest.json")
    assert (out / "report.md").is_file() and (out / "report.png").is_file() and (out / "calibration.json").is_file()


def test_build_for_orin_writes_a_device_bundle(env, tmp_path):
    out = tmp_path / "orin"
    res = cli("build", env["files"]["model"].parent, "-p", "fp32", "-t", "orin", "--forms", "model,head",
              "--static-batch", 1, "-o", out)
    assert res.exit_code == 0, res.output
    bundle = out / "bundle"
    config = json.loads((bundle / "build_config.json").read_text())
    assert config["target"]["sm"] == "8.7" and config["workspace_mib"] == 1024 and config["batch"] == {"static": 1}
    assert config["strongly_typed"] and config["plugin_library"] == plugin_spec.PLUGIN_LIBRARY
    model_entry = next(f for f in config["forms"] if f["form"] == "model")
    assert model_entry["onnx"] == "model.plugin.onnx"  # TensorRT 10.3 would take the local function over the plugin
    plugin_form = onnx.load(str(bundle / "model.plugin.onnx"))
    assert not plugin_form.functions and pnode.interpolation_nodes(plugin_form)
    assert plugin_form.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # static shapes
    script = (bundle / "build.sh").read_text()
    assert "trtexec --onnx=model.plugin.onnx --stronglyTyped" in script and '"--dynamicPlugins=$PLUGIN_LIB"' in script
    assert "--memPoolSize=workspace:1024M" in script and "cmake -S plugins/token_interpolation" in script
    if (ROOT / "plugins" / "token_interpolation" / "CMakeLists.txt").is_file():
        assert (bundle / "plugins" / "token_interpolation" / "CMakeLists.txt").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    if manifest["device"]["tensorrt"] is None:
        assert "no plan was built" in res.output and manifest["plans"] == {}


def test_build_refuses_bad_input_in_one_line(env, tmp_path):
    export_dir = env["files"]["model"].parent
    for args, msg in [(("-p", "int4"), "unknown precision"), (("-t", "xavier"), "unknown target"),
                      (("-p", "int8", "--calib", str(tmp_path / "none.json")), "calibration manifest"),
                      (("--batch", "4,2,8"), "MIN,OPT,MAX")]:
        res = cli("build", export_dir, "-o", tmp_path / "out", *args)
        assert res.exit_code == 2 and msg in res.output and "Traceback" not in res.output, res.output
    res = cli("build", export_dir, "-o", export_dir)
    assert res.exit_code == 2 and "holds the FP32 export" in res.output


def test_check_auto_exclude_keeps_the_most_sensitive_layers_out_of_int8(env, tmp_path_factory, tmp_path):
    """A budget the INT8 build misses: `check --auto-exclude` re-quantizes it (from its manifest) with
    the layers that add the most error kept in FP32, until the budget holds."""
    work = tmp_path / "build"
    shutil.copytree(cpu_build(tmp_path_factory), work)
    first = json.loads((work / "report.json").read_text())["metrics"]["cos_mean"]
    strict = first + 0.3 * (1.0 - first)  # 30% less error than plain INT8 gives
    res = cli("check", work / "model.onnx", "--reference", env["ckpt"], "--data", MOTION, "--split", GATE["split"],
              "--clips", GATE["clips"], "--budget", f"min_cos_mean={strict}", "--auto-exclude", "--json")
    assert res.exit_code in (0, 1), res.output
    report = json.loads((work / "report.json").read_text())
    auto = report["auto_exclude"]
    assert auto["kept"] and auto["kept_precision"] == "fp32" and auto["steps"][0]["kept"] == 1
    from inti_edge.quantize import quantized_nodes

    model = onnx.load(str(work / "model.onnx"))
    assert not set(auto["kept"]) & set(quantized_nodes(model, ("MatMul", "Gemm")))  # kept = really not INT8
    assert json.loads((work / "manifest.json").read_text())["auto_exclude"]["kept"] == auto["kept"]
    assert report["passed"] == (report["metrics"]["cos_mean"] >= strict) == (res.exit_code == 0)
    assert report["passed"], f"still over budget with {len(auto['kept'])} layers kept: {auto['steps']}"


# --- TensorRT (skipped where `tensorrt` does not import) ---------------------------------------------------
@pytest.mark.tensorrt
def test_tensorrt_plan_from_the_fp16_artifact_passes_the_gate(env, tmp_path):
    pytest.importorskip("tensorrt")
    from inti_edge.engines import trt as trt_layer

    if trt_layer.gpu() is None:
        pytest.skip("no CUDA GPU")
    out = tmp_path / "gpu"
    res = cli("build", env["files"]["model"].parent, "-p", "fp16", "-t", "gpu", "--forms", "model",
              "--data", MOTION, "--split", "all", "--clips", 32, "--batch", "1,4,8", "-o", out)
    assert res.exit_code == 0, res.output
    plan = out / "model.plan"
    assert plan.is_file() and plan.stat().st_size > 1_000_000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["device"]["tensorrt"] and manifest["plans"]["model"]["sha256"] == artifacts.file_sha256(plan)
    res = cli("check", plan, "--reference", env["ckpt"], "--data", MOTION, "--split", "all", "--clips", 32,
              "-o", tmp_path / "plan-check", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["backend"] == "tensorrt"


def test_quantize_is_the_quantization_stage_alone(env, tmp_path):
    """`inti-edge quantize`: the artifacts and their manifest for a TensorRT target, no bundle and no plan."""
    out = tmp_path / "q"
    res = cli("quantize", env["files"]["model"].parent, "-p", "fp16", "-t", "orin", "--forms", "head", "-o", out)
    assert res.exit_code == 0, res.output
    assert (out / "head.onnx").is_file() and not (out / "bundle").exists() and not list(out.glob("*.plan"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "fp16" and manifest["target"]["name"] == "orin" and manifest["plans"] == {}
    assert artifacts.read_info(out / "head.onnx").precision == "fp16"
