"""``inti-edge build``: an FP32 export -> fp32 / fp16 / int8 artifacts for a target, a TensorRT plan
where ``tensorrt`` imports, a bundle to build on the device, manifest.json, and the gate.

    DIR/model.onnx (encoder.onnx, head.onnx)   the artifacts, in the target's recipe (quantize.py)
    DIR/model.plan ...                          TensorRT plans (only where tensorrt imports)
    DIR/bundle/                                 ONNX (node + plugin-only forms), plugin sources,
                                                build_config.json, build.sh (the exact commands)
    DIR/manifest.json                           inputs' hashes, recipe, tool versions, TensorRT/SM/JetPack
    DIR/report.json, report.md, report.png      the gate (check.py) on held-out clips

Targets: ``cpu`` (ONNX Runtime; ISA from this machine, or cpu-x86 / cpu-vnni / cpu-arm), ``gpu``
(TensorRT on this machine's GPU), ``h100``, ``a100``, ``l4`` (datacenter TensorRT), ``orin``
(JetPack 6: TensorRT 10.3, which takes the ONNX local function over a plugin, so its bundle builds
the plugin-only form), ``thor`` (JetPack 7). On Jetson targets the batch profile is small, the
workspace is capped (memory is shared with the CPU) and ``--static-batch`` writes fixed-shape ONNX.
DLA (Orin AGX/NX only) is not used: a ViT's attention and LayerNorm fall back to the GPU there.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import onnx

from . import __version__
from . import export as ex
from .artifact import ArtifactInfo, FORMS, copy_model, file_sha256, read_info, save_onnx
from .plugin import node as pnode
from .plugin import spec as plugin_spec
from . import quantize as q
from .engines import EngineError
from .engines import trt as trt_layer


@dataclass(frozen=True)
class Target:
    name: str
    backend: str  # onnxruntime | tensorrt
    sm: str | None = None  # compute capability the plan is for (None: whatever GPU builds it)
    jetson: bool = False
    jetpack: str | None = None
    tensorrt: str | None = None  # TensorRT the device ships
    plugin_only: bool = False  # the parser there takes a local function over a registered plugin (TensorRT < 10.7)
    batch: tuple[int, int, int] = (1, 8, 32)  # optimization profile min / opt / max
    workspace_mib: int | None = None
    cpu_isa: str | None = None  # onnxruntime int8 recipe


TARGETS: dict[str, Target] = {
    "cpu": Target("cpu", "onnxruntime"),
    "cpu-x86": Target("cpu-x86", "onnxruntime", cpu_isa="x86"),
    "cpu-vnni": Target("cpu-vnni", "onnxruntime", cpu_isa="x86-vnni"),
    "cpu-arm": Target("cpu-arm", "onnxruntime", cpu_isa="arm"),
    "gpu": Target("gpu", "tensorrt"),
    "h100": Target("h100", "tensorrt", sm="9.0"),
    "a100": Target("a100", "tensorrt", sm="8.0"),
    "l4": Target("l4", "tensorrt", sm="8.9"),
    "orin": Target("orin", "tensorrt", sm="8.7", jetson=True, jetpack="6.x", tensorrt="10.3", plugin_only=True,
                   batch=(1, 1, 4), workspace_mib=1024),
    "thor": Target("thor", "tensorrt", sm="11.0", jetson=True, jetpack="7.x", tensorrt=">=10.13", batch=(1, 1, 8),
                   workspace_mib=2048),
}


@dataclass
class BuildOptions:
    precision: str = "fp16"
    target: str = "cpu"
    calib: str | None = None  # calibration manifest (.json) or data spec
    calib_clips: int | None = None
    calib_method: str = "entropy"
    calib_cache: str | None = None  # default: the manifest's folder/cache, or ./calibration/cache
    exclude: tuple[str, ...] = ()
    op_types: tuple[str, ...] | None = None  # default per backend
    attention: bool | None = None  # quantize attention's QK^T / AV matmuls; default per backend
    data: str | None = None  # gate data spec
    gate_split: str = "test"
    gate_clips: int = 256
    reference: str | None = None
    budget: dict[str, float] = field(default_factory=dict)
    auto_exclude: bool = False
    forms: tuple[str, ...] = ("model", "encoder", "head")
    batch: tuple[int, int, int] | None = None
    static_batch: int | None = None
    workspace_mib: int | None = None
    opt_level: int = 3
    version_compatible: bool = False
    timing_cache: str | None = None
    plugin: str | None = None  # plugin library for a local TensorRT build
    threads: int | None = None
    max_lost: float | None = None  # calibration videos past it are skipped, gate videos refused (None: the default)


@dataclass
class BuildResult:
    out_dir: Path
    manifest: dict[str, Any]
    report: Any  # check.CheckReport | None
    plans: dict[str, Path]
    messages: list[str]

    @property
    def passed(self) -> bool:
        return self.report is None or self.report.passed


def _sources(model: Path, out_dir: Path, progress) -> tuple[dict[str, Path], Path | None]:
    """FP32 ONNX files per form, and the checkpoint when ``model`` is one (exported into out_dir/fp32)."""
    from .artifact import open_artifact

    if open_artifact(model).kind == "checkpoint":  # by content, whatever the file is named
        paths = ex.export(model, out_dir / "fp32", progress=lambda f: progress(f"export {f}"))
        return {k: v for k, v in paths.items() if k in FORMS}, model
    folder = model if model.is_dir() else model.parent
    main = model if model.is_file() else folder / "model.onnx"
    if not main.is_file():
        raise EngineError(f"no model.onnx in {model}")
    found = {"model": main}
    for form in ("encoder", "head"):
        p = folder / f"{form}.onnx"
        if p.is_file() and read_info(p).form == form:
            found[form] = p
    return found, None


def _reference(info: ArtifactInfo, given: str | None, checkpoint: Path | None) -> tuple[Path | None, str]:
    if given:
        p = Path(given)
        if not p.is_file():
            raise EngineError(f"no reference checkpoint at {p}")
        return p, "given"
    if checkpoint:
        return checkpoint, "built from"
    src = Path(info.source) if info.source else None
    if src and src.is_file() and file_sha256(src) == info.source_sha256:
        return src, "recorded in the ONNX metadata (hash matches)"
    return None, "none"


DEFAULT_CALIB = Path("calibration/default.json")


def default_calibration(needed: bool) -> str | None:
    """calibration/default.json when it is here and its videos are too; None otherwise (an INT8
    build then needs --calib: the error says so)."""
    if not DEFAULT_CALIB.is_file():
        missing = "there is no calibration/default.json here"
    else:
        try:
            gone = [f for f in q.CalibrationManifest.resolve(str(DEFAULT_CALIB)).files() if not f.exists()]
        except q.QuantizeError as e:
            gone = [str(e)]
        if not gone:
            return str(DEFAULT_CALIB)
        missing = f"calibration/default.json reads {gone[0]}, which is not here"
    if needed:
        raise EngineError(f"INT8 needs a calibration set and {missing}: pass --calib MANIFEST.json or a data spec")
    return None


def _calibration(opts: BuildOptions, info: ArtifactInfo, needed: bool, progress_clips) -> q.CalibrationSet | None:
    spec = opts.calib or default_calibration(needed)
    if spec is None:  # FP16 without calibration clips: AutoCast keeps to its defaults
        return None
    manifest = q.CalibrationManifest.resolve(spec, clips=opts.calib_clips)
    if not needed:  # FP16: AutoCast only reads a few clips' activations to find FP16-unsafe nodes
        manifest = replace(manifest, clips=min(manifest.clips, 16))
    cache = opts.calib_cache or (str(Path(spec).parent / "cache") if spec.endswith(".json") else "calibration/cache")
    return q.calibration_set(manifest, info.config, info.preprocess, cache, classes=info.classes, progress=progress_clips,
                             max_lost=opts.max_lost)


def _units(calib: q.CalibrationSet, cfg) -> q.CalibrationSet:
    """The encoder's calibration set: every unit (2^s frames) of every calibration clip."""
    n, T = calib.frames.shape[:2]
    k = cfg.unit_frames
    frames = calib.frames.reshape(n * (T // k), k, *calib.frames.shape[2:])
    return replace(calib, frames=frames, labels=calib.labels.repeat(T // k))


def _head_feeds(calib: q.CalibrationSet, encoder_onnx: Path, cfg, count: int = 32) -> q.FeedSet:
    """The head's calibration inputs: FP32 encoder embeddings of the first calibration clips, (n, U, K, E)."""
    import numpy as np

    from .engines.onnxrt import session

    sess = session(encoder_onnx)
    units = _units(q.CalibrationSet(calib.manifest, calib.fingerprint, calib.frames[:count], calib.labels[:count],
                                    calib.mean, calib.std), cfg)
    emb = np.concatenate([sess.run(None, {"unit": units.clips(i, i + 16)})[0] for i in range(0, len(units), 16)])
    return q.FeedSet(emb.reshape(-1, cfg.units, *emb.shape[1:]).astype(np.float32))


def _recipe(opts: BuildOptions, target: Target, calib: q.CalibrationSet | None) -> q.Recipe:
    backend = target.backend
    op_types = opts.op_types or (q.TRT_OP_TYPES if backend == "tensorrt" else q.CPU_OP_TYPES)
    # Attention's QK^T / AV stay out of INT8 by default on every backend. TensorRT: on the default model
    # they cost 2.5 points of top-1 agreement (98.8% -> 96.3%) for matmuls of 50 tokens that FP16 runs
    # fast anyway. ONNX Runtime CPU: their 50x50-per-head inputs add quantize steps that cost more than the
    # integer kernels save (1 thread: 22.2 ms without vs 22.8-24.0 ms with), and agreement drops
    # 99.6% -> 98.8%. `--attention` quantizes them.
    attention = bool(opts.attention)
    r = q.Recipe(opts.precision, backend, opts.calib_method, tuple(op_types) if opts.precision == "int8" else (),
                 tuple(opts.exclude), target.cpu_isa or (q.cpu_isa() if backend == "onnxruntime" else ""),
                 attention, len(calib) if calib is not None else 0)
    if backend == "onnxruntime" and opts.precision == "fp16":
        r.notes.append("fp16 on ONNX Runtime CPU runs through fp32 casts: smaller file, no speed-up")
    return r


def _head_recipe(recipe: q.Recipe) -> q.Recipe:
    """The head (< 1% of the FLOPs, reads the encoder's embeddings) is never INT8: FP16 for TensorRT, FP32 on CPU."""
    if recipe.precision != "int8":
        return recipe
    return replace(recipe, precision="fp16" if recipe.backend == "tensorrt" else "fp32", op_types=(), notes=[])


def static_copy(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """The same graph with the batch dimension fixed (Jetson-sane static shapes)."""
    m = copy_model(model)
    for v in list(m.graph.input) + list(m.graph.output):
        d = v.type.tensor_type.shape.dim[0]
        d.Clear()
        d.dim_value = batch
    return m


def _tool_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"inti-edge": __version__, "python": platform.python_version()}
    for dist in ("onnx", "onnxruntime", "onnxruntime-gpu", "nvidia-modelopt", "polygraphy", "onnx-graphsurgeon", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    out["tensorrt"] = trt_layer.version()
    return out


def trtexec_command(onnx_name: str, info: ArtifactInfo, batch: tuple[int, int, int], static: bool, opts: BuildOptions,
                    workspace: int | None, plan_name: str) -> list[str]:
    shape = info.input_shape(1)
    dims = lambda b: "x".join(str(d) for d in (b, *shape[1:]))  # noqa: E731
    cmd = ["trtexec", f"--onnx={onnx_name}", "--stronglyTyped", f"--saveEngine={plan_name}",
           f"--builderOptimizationLevel={opts.opt_level}", "--timingCacheFile=timing.cache", "--skipInference"]
    if not static:
        cmd += [f"--minShapes={info.input_name}:{dims(batch[0])}", f"--optShapes={info.input_name}:{dims(batch[1])}",
                f"--maxShapes={info.input_name}:{dims(batch[2])}"]
    if workspace:
        cmd.append(f"--memPoolSize=workspace:{workspace}M")
    if opts.version_compatible:
        cmd += ["--versionCompatible", "--setPluginsToSerialize=$PLUGIN_LIB"]
    cmd.append("--dynamicPlugins=$PLUGIN_LIB")  # IPluginRegistry::loadLibrary: the library's getCreators
    return cmd


def _shell(cmd: list[str]) -> str:
    """One command line; $PLUGIN_LIB stays a shell variable (double quotes), the rest is quoted."""
    return " ".join(f'"{c}"' if "$PLUGIN_LIB" in c else shlex.quote(c) for c in cmd)


def write_bundle(out_dir: Path, artifacts: dict[str, Path], target: Target, opts: BuildOptions,
                 batch: tuple[int, int, int], workspace: int | None) -> Path:
    """Everything a device needs to build its own plans: ONNX, plugin sources, config, the exact commands."""
    bundle = out_dir / "bundle"
    if bundle.exists():
        shutil.rmtree(bundle)
    bundle.mkdir(parents=True)
    src = Path(__file__).resolve().parents[1] / "plugins" / "token_interpolation"
    if src.is_dir():
        shutil.copytree(src, bundle / "plugins" / "token_interpolation",
                        ignore=shutil.ignore_patterns("build", "*.o", "*.so", "__pycache__"))
    has_plugin_sources = (bundle / "plugins" / "token_interpolation" / "CMakeLists.txt").is_file()
    entries, lines = [], []
    for form, path in artifacts.items():
        model = onnx.load(str(path))
        info = read_info(model)
        if opts.static_batch:
            model = static_copy(model, opts.static_batch)
        node_form = save_onnx(model, bundle / f"{form}.onnx")
        use = node_form.name
        if pnode.interpolation_nodes(model):
            plugin_form = save_onnx(pnode.to_plugin_only(model), bundle / f"{form}.plugin.onnx")
            if target.plugin_only:
                use = plugin_form.name
        cmd = trtexec_command(use, info, batch, bool(opts.static_batch), opts, workspace, f"{form}.plan")
        entries.append({"form": form, "onnx": use, "plan": f"{form}.plan", "trtexec": cmd})
        lines.append(_shell(cmd))
    config = {
        "target": asdict(target),
        "precision": opts.precision,
        "batch": {"min": batch[0], "opt": batch[1], "max": batch[2]} if not opts.static_batch else {"static": opts.static_batch},
        "workspace_mib": workspace,
        "builder_optimization_level": opts.opt_level,
        "version_compatible": opts.version_compatible,
        "strongly_typed": True,
        "plugin_library": plugin_spec.PLUGIN_LIBRARY,
        "plugin": f"{plugin_spec.PLUGIN_NAMESPACE}::{plugin_spec.PLUGIN_NAME} v{plugin_spec.PLUGIN_VERSION}",
        "forms": entries,
        "notes": [
            "plans are not portable between GPUs or TensorRT versions: build them on the device",
            "TensorRT < 10.7 takes an ONNX local function over a registered plugin: use the *.plugin.onnx files there",
            "DLA is not used: a ViT's attention and LayerNorm fall back to the GPU",
        ],
    }
    (bundle / "build_config.json").write_text(json.dumps(config, indent=2) + "\n")
    script = [
        "#!/usr/bin/env bash",
        f"# Build the TensorRT plans of this bundle on the device ({target.name}). Generated by inti-edge {__version__}.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        f'PLUGIN_LIB="${{PLUGIN_LIB:-$PWD/plugins/token_interpolation/build/{plugin_spec.PLUGIN_LIBRARY}}}"',
        'if [ ! -f "$PLUGIN_LIB" ]; then',
        "  cmake -S plugins/token_interpolation -B plugins/token_interpolation/build -DCMAKE_BUILD_TYPE=Release",
        "  cmake --build plugins/token_interpolation/build -j",
        "fi",
        "cat /etc/nv_tegra_release 2>/dev/null || true",
        *lines,
        "",
    ]
    sh = bundle / "build.sh"
    sh.write_text("\n".join(script))
    sh.chmod(0o755)
    readme = [
        f"# inti-edge bundle for {target.name} ({opts.precision})",
        "",
        "Run `./build.sh` on the device: it compiles the TokenInterpolation plugin from `plugins/` (CMake, CUDA)",
        "and builds one strongly typed plan per ONNX file with `trtexec` (precision comes from the ONNX: FP16",
        "tensors and INT8 Q/DQ scales are inside). Set `PLUGIN_LIB` to use a plugin library built elsewhere.",
        "",
        "Then check a plan against the FP32 model with `inti-edge check model.plan --reference CHECKPOINT --data SPEC`",
        "(copy manifest.json next to the plan).",
    ]
    if not has_plugin_sources:
        readme += ["", "WARNING: plugins/token_interpolation had no CMakeLists.txt when this bundle was written;",
                   "add the plugin sources before running build.sh."]
    (bundle / "README.md").write_text("\n".join(readme) + "\n")
    return bundle


def build(model: str | Path, out_dir: str | Path, opts: BuildOptions,
          progress: Callable[[str, int | None, int | None], None] | None = None, device: bool = True) -> BuildResult:
    """Build artifacts for ``opts.target`` in ``opts.precision`` from an export (dir / model.onnx) or a checkpoint.

    Every input is checked before any long work (``validate``). The output is written into a
    temporary folder beside ``out_dir`` and renamed into place at the end, so a failed or
    interrupted build leaves ``out_dir`` as it was (absent, or the previous build)."""
    model, final = Path(model), Path(out_dir)
    validate(model, final, opts)
    work = final.parent / f".{final.name}.building-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        inside = _inside(model, final)
        if inside is not None:  # a rebuild from the FP32 export a checkpoint build left in the folder: keep it
            top = inside.parts[0]
            shutil.copytree(final / top, work / top)
            model = work / inside
        result = _build(model, work, opts, progress, device)
        _publish(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result.out_dir = final
    return result


def quantize(model: str | Path, out_dir: str | Path, opts: BuildOptions,
             progress: Callable[[str, int | None, int | None], None] | None = None) -> BuildResult:
    """The quantization stage alone: the FP32 export (a checkpoint is exported first) in
    ``opts.precision`` for ``opts.target``'s runtime, with manifest.json (and the gate when
    ``opts.data`` names clips); no bundle and no TensorRT plan. ``build`` is this, then those."""
    return build(model, out_dir, opts, progress, device=False)


def rebuild_auto_exclude(artifact: str | Path, reference: str | Path, data: str, split: str, clips: int,
                         budget: dict[str, float], threads: int | None = None, progress=None):
    """Re-run the INT8 build that made ``artifact`` (its manifest.json: same recipe, same calibration
    set) with auto-exclude against ``data``; returns the new gate report."""
    from .artifact import Manifest
    from .check import CheckError

    artifact = Path(artifact)
    folder = artifact if artifact.is_dir() else artifact.parent
    m = Manifest.load(folder)
    if m is None:
        raise CheckError("--auto-exclude re-quantizes a build: the artifact needs the manifest.json its build wrote")
    if m.precision != "int8":
        raise CheckError(f"--auto-exclude is for INT8 builds; this one is {m.precision}")
    rec, cal, b = m.recipe, m.inputs.get("calibration") or {}, m.build
    opts = BuildOptions(
        precision="int8", target=m.target["name"], calib=str(folder / "calibration.json"),
        calib_cache=str(Path(cal["cache"]).parent) if cal.get("cache") else None, calib_method=rec["method"],
        exclude=tuple(rec["exclude"]), op_types=tuple(rec["op_types"]), attention=rec.get("attention"), data=data,
        gate_split=split, gate_clips=clips, reference=str(reference), budget=budget, auto_exclude=True,
        forms=tuple(m.artifact_forms()), batch=tuple(b["batch"]), static_batch=b["static_batch"],
        workspace_mib=b["workspace_mib"], opt_level=b["opt_level"], version_compatible=b["version_compatible"],
        threads=threads,
    )
    source = m.path(m.inputs["onnx"]["model"]["path"])
    return build(source, folder, opts, progress=progress).report


def _inside(path: Path, folder: Path) -> Path | None:
    """``path`` relative to ``folder`` when it lies inside it (None otherwise)."""
    try:
        return path.resolve().relative_to(folder.resolve())
    except ValueError:
        return None


def _publish(work: Path, final: Path) -> None:
    """Put the finished build in place: the previous build (if any) goes only once the new one is there."""
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        final.rename(old)
        work.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(final)


def validate(model: Path, out_dir: Path, opts: BuildOptions) -> None:
    """Everything a build can check in a second, before minutes of export and quantization."""
    from .artifact import open_artifact

    if not model.exists():
        raise EngineError(f"no model at {model}")
    if opts.target not in TARGETS:
        raise EngineError(f"unknown target {opts.target!r}; choose one of {', '.join(TARGETS)}")
    if opts.precision not in q.PRECISIONS:
        raise EngineError(f"unknown precision {opts.precision!r}; choose one of {', '.join(q.PRECISIONS)}")
    if not 0.0 <= (opts.max_lost if opts.max_lost is not None else 0.0) <= 1.0:
        raise EngineError(f"--max-lost is a fraction in [0, 1], not {opts.max_lost}")
    bad = set(opts.forms) - set(FORMS)
    if bad or not opts.forms:
        raise EngineError(f"--forms takes {', '.join(FORMS)}, not {', '.join(sorted(bad)) or 'nothing'}")
    if out_dir.exists() and not out_dir.is_dir():
        raise EngineError(f"-o {out_dir} is a file; name a folder")
    inside = _inside(model, out_dir)
    if inside is not None and len(inside.parts) <= 1:
        raise EngineError(f"the output folder {out_dir} holds the FP32 export; build into another folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").is_file():
        raise EngineError(f"-o {out_dir} holds files that are not a build (no manifest.json); choose another folder")
    source = open_artifact(model)
    if source.kind == "build" or source.precision != "fp32":
        raise EngineError(f"{model} is already a {source.precision} build: build from the FP32 export or the checkpoint")
    if opts.reference:
        ref = open_artifact(opts.reference)
        if ref.kind != "checkpoint":
            raise EngineError(f"--reference {opts.reference} is {ref.kind == 'export' and 'an ONNX export' or ref.kind}; "
                              "give the FP32 checkpoint (.pt) the model was exported from")
        if ref.model.config != source.model.config or ref.model.classes != source.model.classes:
            raise EngineError(f"--reference {opts.reference} is another model than {model} (config or classes differ)")
    spec = opts.calib
    if spec is None and opts.precision == "int8":
        default_calibration(needed=True)  # raises where the default set cannot be read
    if spec is not None:
        try:
            files = q.CalibrationManifest.resolve(spec, clips=opts.calib_clips).files()
        except q.QuantizeError as e:
            raise EngineError(f"--calib: {e}") from None
        for f in files:
            if not f.exists():
                raise EngineError(f"--calib: {f}: no such file")
    if opts.data:
        _check_spec_paths(opts.data, "--data")


def _check_spec_paths(spec: str, option: str) -> None:
    """The files a data spec names exist (the data set itself is read later, and says what else is wrong)."""
    paths = [x.strip() for x in spec[len("motion:"):].split(",") if x.strip()] if spec.startswith("motion:") else [spec]
    if not paths:
        raise EngineError(f"{option} {spec!r}: names no video")
    for x in paths:
        if not Path(x).expanduser().exists():
            raise EngineError(f"{option}: {x}: no such file or folder")


@dataclass
class _Job:
    """One build's state, filled stage by stage (``_build``)."""

    out_dir: Path
    opts: BuildOptions
    step: Callable
    target: Target
    t0: float = field(default_factory=time.time)
    messages: list[str] = field(default_factory=list)
    sources: dict[str, Path] = field(default_factory=dict)  # FP32 ONNX per form
    checkpoint: Path | None = None
    info: ArtifactInfo | None = None  # of the FP32 model form
    reference: Path | None = None
    ref_how: str = "none"
    gate: Any = None  # check.GateData
    calib: q.CalibrationSet | None = None
    recipe: q.Recipe | None = None
    artifacts: dict[str, Path] = field(default_factory=dict)
    report: Any = None  # check.CheckReport
    auto: dict | None = None
    plans: dict[str, Path] = field(default_factory=dict)


def _build(model: Path, out_dir: Path, opts: BuildOptions, progress, device: bool = True) -> BuildResult:
    """The stages, in order: export, gate clips, calibration, quantization, gate, bundle and plans
    (``device``: the TensorRT part), manifest. Each reads what the one before left in the job."""
    step = progress or (lambda name, done=None, total=None: None)
    job = _Job(out_dir, opts, step, TARGETS[opts.target])
    _export_stage(job, model)
    _gate_clips_stage(job)  # decoded before quantizing: a bad spec fails in seconds, not minutes
    _calibration_stage(job)
    _quantize_stage(job)
    _gate_stage(job)
    if device:
        _device_stage(job)
    return _finish(job)


def _export_stage(job: _Job, model: Path) -> None:
    job.sources, job.checkpoint = _sources(model, job.out_dir, lambda s: job.step(s))
    job.info = read_info(job.sources["model"])
    if job.info.precision != "fp32":
        raise EngineError(f"{job.sources['model']} is already {job.info.precision}: build from the FP32 export")
    job.reference, job.ref_how = _reference(job.info, job.opts.reference, job.checkpoint)


def _gate_clips_stage(job: _Job) -> None:
    from . import check as ck

    if not job.opts.data:
        job.messages.append("no gate: give --data SPEC (held-out clips) to check the artifacts against the FP32 model")
        return
    job.step("gate clips")
    job.gate = ck.gate_data(job.opts.data, job.info.config, job.info.classes, job.opts.gate_split, job.opts.gate_clips,
                            progress=lambda d, t: job.step("gate clips", d, t), max_lost=job.opts.max_lost)


def _calibration_stage(job: _Job) -> None:
    opts = job.opts
    if opts.precision != "fp32":
        job.calib = _calibration(opts, job.info, opts.precision == "int8", lambda d, t: job.step("calibration clips", d, t))
    if job.calib is not None:  # the exact set, so a later `check --auto-exclude` can re-quantize
        job.calib.manifest.save(job.out_dir / "calibration.json")
    job.recipe = _recipe(opts, job.target, job.calib)


def _make_artifacts(job: _Job, recipe: q.Recipe) -> dict[str, Path]:
    """Every form asked for in ``recipe`` (the head in its own recipe, see ``_head_recipe``)."""
    made, calib, cfg = {}, job.calib, job.info.config
    for form in [f for f in job.opts.forms if f in job.sources]:
        job.step(f"{recipe.precision} {form}")
        src = onnx.load(str(job.sources[form]))
        form_rec = _head_recipe(recipe) if form == "head" else recipe
        form_calib = calib
        if calib is not None and form == "encoder":
            form_calib = _units(calib, cfg)
        elif calib is not None and form == "head":
            form_calib = _head_feeds(calib, job.sources["encoder"], cfg) if "encoder" in job.sources else None
        if form_calib is None and form_rec.precision == "int8":
            raise EngineError("INT8 needs a calibration set")
        made[form] = save_onnx(q.apply_recipe(src, form_rec, form_calib, workdir=job.out_dir), job.out_dir / f"{form}.onnx")
    return made


def _quantize_stage(job: _Job) -> None:
    job.artifacts = _make_artifacts(job, job.recipe)


def _gate_stage(job: _Job) -> None:
    from . import check as ck

    if job.gate is None:
        return
    step, gate, opts = job.step, job.gate, job.opts
    step("gate: reference")
    ref_logits = (ck.reference_logits(job.reference, gate.clips, lambda d, t: step("gate: reference", d, t))
                  if job.reference else None)

    def gate_check(path: Path):
        return ck.check(path, gate, reference=job.reference, budget_overrides=opts.budget,
                        reference_onnx=job.sources["model"], threads=opts.threads,
                        progress=lambda d, t: step("gate", d, t), ref_logits=ref_logits)

    step("gate")
    job.report = gate_check(job.artifacts["model"])
    if not job.report.passed and opts.auto_exclude and opts.precision == "int8":
        _auto_exclude(job, gate_check)
    if "encoder" in job.artifacts and "head" in job.artifacts and ref_logits is not None:
        step("gate: streaming form")
        n = min(32, len(gate.clips))
        job.report.metrics["streaming"] = ck.streaming_metrics(job.artifacts["encoder"], job.artifacts["head"],
                                                               gate.clips[:n], ref_logits[:n], job.info.config)


def _device_stage(job: _Job) -> None:
    """TensorRT targets: the bundle a device builds its plans from, and the plans where TensorRT is here."""
    target, opts = job.target, job.opts
    if target.backend != "tensorrt":
        return
    batch = opts.batch or target.batch
    workspace = opts.workspace_mib or target.workspace_mib
    job.step("bundle")
    write_bundle(job.out_dir, job.artifacts, target, opts, batch, workspace)
    job.plans = _local_plans(job.artifacts, target, opts, batch, workspace, job.out_dir, job.messages, job.step)


def _finish(job: _Job) -> BuildResult:
    from . import check as ck

    out_dir = job.out_dir
    manifest = _manifest(job.sources, job.checkpoint, job.reference, job.ref_how, job.opts, job.target, job.recipe,
                         job.calib, job.artifacts, job.plans, job.report, job.auto, job.info, time.time() - job.t0, out_dir)
    plugin_lib = trt_layer.find_plugin_library(job.opts.plugin) if job.plans else None
    if plugin_lib is not None:  # the plans need this library: run and check verify it is the one they get
        manifest["build"]["plugin"] = {"name": plugin_lib.name, "sha256": file_sha256(plugin_lib)}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if job.report is not None:  # names inside the build folder: it is renamed into place, and may be moved later
        job.report.artifacts.update({form: _where(p, out_dir) for form, p in job.artifacts.items()})
        job.report.artifacts["manifest"] = "manifest.json"
        ck.write_report(job.report, out_dir)
    return BuildResult(out_dir, manifest, job.report, job.plans, job.messages)


def _auto_exclude(job: _Job, gate_check) -> None:
    """Keep the most sensitive INT8 layers out of INT8 (1, 2, 4, ... of them) until the budget holds.

    Sensitivity: the relative error each quantized node adds (check.layerwise), measured once on the
    first build. Kept layers run in the recipe's high precision (FP16 for TensorRT, FP32 on CPU)."""
    from . import check as ck

    base = job.recipe
    rows = ck.layerwise(job.sources["model"], job.artifacts["model"], job.gate.clips[:4], "clip", top=0,
                        quantized=q.quantized_nodes(onnx.load(str(job.artifacts["model"])), base.op_types))
    ranked = [r["node"] for r in rows if r["quantized"]]
    tried, kept = [], []
    k = 1
    while ranked:
        kept = ranked[:k]
        job.recipe = replace(base, exclude=tuple(base.exclude) + tuple(f"^{re.escape(n)}$" for n in kept), notes=list(base.notes))
        job.step(f"auto-exclude: {len(kept)} layer(s) out of INT8")
        job.artifacts = _make_artifacts(job, job.recipe)
        job.report = gate_check(job.artifacts["model"])
        m = job.report.metrics
        tried.append({"kept": len(kept), "passed": job.report.passed, "agreement": m["agreement"],
                      "cos_mean": m["cos_mean"], "accuracy_delta": m["accuracy_delta"]})
        if job.report.passed or k >= len(ranked):
            break
        k = min(2 * k, len(ranked))
    job.auto = {"kept": kept, "kept_precision": "fp16" if job.recipe.backend == "tensorrt" else "fp32", "steps": tried,
                "passed": job.report.passed}
    job.report.auto_exclude = job.auto


def _local_plans(artifacts, target: Target, opts: BuildOptions, batch, workspace, out_dir: Path, messages, step) -> dict[str, Path]:
    version = trt_layer.version()
    if version is None:
        messages.append("TensorRT is not installed here: no plan was built (ONNX artifacts and bundle/ are written)")
        return {}
    here_jetpack = trt_layer.jetpack()
    here_gpu = trt_layer.gpu()
    if target.jetson and here_jetpack is None:
        messages.append(f"not on a Jetson: no {target.name} plan was built; run bundle/build.sh on the device")
        return {}
    if target.sm and here_gpu and here_gpu["sm"] != target.sm:
        messages.append(f"this GPU is SM {here_gpu['sm']}, target {target.name} is SM {target.sm}: "
                        "no plan was built; run bundle/build.sh there")
        return {}
    plugin = trt_layer.find_plugin_library(opts.plugin)
    if plugin is None and any(pnode.interpolation_nodes(onnx.load(str(p), load_external_data=False)) for p in artifacts.values()):
        messages.append(f"no {plugin_spec.PLUGIN_LIBRARY} found: TensorRT builds the interpolation from its ONNX local function")
    plans = {}
    for form, path in artifacts.items():
        step(f"plan {form}")
        info = read_info(path)
        src = path
        if opts.static_batch:
            src = save_onnx(static_copy(onnx.load(str(path)), opts.static_batch), out_dir / f"{form}.static.onnx")
        b = (opts.static_batch,) * 3 if opts.static_batch else batch
        cfg = trt_layer.PlanConfig(info.input_name, info.input_shape(1), b, opts.opt_level, workspace, opts.version_compatible,
                                   opts.timing_cache or str(out_dir / "timing.cache"), str(plugin) if plugin else None)
        plans[form] = trt_layer.build_plan(src, out_dir / f"{form}.plan", cfg)
    return plans


def _where(path: Path, out_dir: Path) -> str:
    """A path as the manifest records it: relative to the build folder when inside it, else absolute."""
    inside = _inside(path, out_dir)
    return str(inside) if inside is not None else str(Path(path).resolve())


def manifest_path(manifest_file: Path, recorded: str) -> Path:
    """A path a manifest recorded, resolved: relative ones are inside the build folder."""
    p = Path(recorded)
    return p if p.is_absolute() else manifest_file.parent / p


def _manifest(sources, checkpoint, reference, ref_how, opts, target, recipe, calib, artifacts, plans, report, auto,
              info, seconds, out_dir: Path) -> dict[str, Any]:
    gpu = trt_layer.gpu()
    return {
        "format": "inti-edge-build/1",
        "precision": opts.precision,
        "target": asdict(target),
        "recipe": recipe.to_dict(),
        "classes": info.classes,
        "inputs": {
            "onnx": {form: {"path": _where(p, out_dir), "sha256": file_sha256(p)} for form, p in sources.items()},
            "checkpoint": {"path": str(checkpoint), "sha256": file_sha256(checkpoint)} if checkpoint else None,
            "reference": {"path": str(reference), "how": ref_how} if reference else None,
            "calibration": ({"manifest": calib.manifest.to_dict(), "fingerprint": calib.fingerprint, "clips": len(calib),
                             "cache": str(calib.cache_path) if calib.cache_path else None} if calib else None),
            "gate_data": report.data if report else None,
        },
        "artifacts": {form: {"path": _where(p, out_dir), "sha256": file_sha256(p)} for form, p in artifacts.items()},
        "plans": {form: {"path": _where(p, out_dir), "sha256": file_sha256(p)} for form, p in plans.items()},
        "build": {"batch": list(opts.batch or target.batch), "static_batch": opts.static_batch,
                  "workspace_mib": opts.workspace_mib or target.workspace_mib, "opt_level": opts.opt_level,
                  "version_compatible": opts.version_compatible},
        "tools": _tool_versions(),
        "device": {"tensorrt": trt_layer.version(), "sm": gpu["sm"] if gpu else None, "gpu": gpu["name"] if gpu else None,
                   "jetpack": trt_layer.jetpack(), "machine": platform.machine()},
        "gate": {"passed": report.passed, "failures": report.failures} if report else None,
        "auto_exclude": auto,
        "seconds": round(seconds, 1),
    }
