"""TensorRT, kept thin: a strongly typed plan from an ONNX file through Polygraphy's loaders, and its runner.

Nothing here runs unless ``tensorrt`` imports (it cannot be installed on the machines this project
is developed on); every function says so in one line instead of pretending. Precision is not a
builder flag: TensorRT 10/11 strongly typed networks take it from the ONNX file (FP16 tensors from
AutoCast, INT8 from explicit Q/DQ), so the same recipe serves TensorRT 10.3 (JetPack 6) and 11.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..plugin import spec as plugin_spec
from . import EngineError


def version() -> str | None:
    """The TensorRT version, or None when ``tensorrt`` does not import."""
    try:
        import tensorrt as trt
    except Exception:  # noqa: BLE001 - ImportError, or a missing libnvinfer behind the bindings
        return None
    return str(trt.__version__)


def require() -> str:
    v = version()
    if v is None:
        raise EngineError("TensorRT is not available here (`import tensorrt` fails)")
    return v


def jetpack() -> dict[str, str] | None:
    """L4T release of a Jetson (/etc/nv_tegra_release) and the JetPack it belongs to; None elsewhere."""
    try:
        text = Path("/etc/nv_tegra_release").read_text()
    except OSError:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return {"l4t": text.strip()[:80]}
    major = int(m.group(1))
    jp = {35: "5.x", 36: "6.x", 38: "7.x"}.get(major, "unknown")
    return {"l4t": f"{major}.{m.group(2)}", "jetpack": jp}


def gpu() -> dict[str, str] | None:
    """Name and SM (compute capability) of GPU 0, from PyTorch when it sees one; None otherwise."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return {"name": torch.cuda.get_device_name(0), "sm": f"{major}.{minor}"}
    except Exception:  # noqa: BLE001 - no torch, or a broken CUDA setup: unknown GPU
        pass
    return None


def find_plugin_library(explicit: str | None = None) -> Path | None:
    """The TokenInterpolation plugin library: ``explicit``, $INTI_PLUGIN_LIB, or plugins/ build outputs."""
    candidates = [explicit] if explicit else []
    candidates.append(os.environ.get("INTI_PLUGIN_LIB"))
    root = Path(__file__).resolve().parents[2]
    for sub in ("plugins/token_interpolation/build", "plugins/token_interpolation", "build", "."):
        candidates.append(str(root / sub / plugin_spec.PLUGIN_LIBRARY))
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    if explicit:
        raise EngineError(f"no plugin library at {explicit}")
    return None


@dataclass(frozen=True)
class PlanConfig:
    """How to build one plan. Batch is the only dynamic dimension."""

    input_name: str
    input_shape: tuple[int, ...]  # with the batch dimension first (its value is ignored)
    batch: tuple[int, int, int] = (1, 8, 32)  # optimization profile: min, opt, max
    opt_level: int = 3  # builder optimization level 0..5 (3 is TensorRT's default)
    workspace_mib: int | None = None  # workspace pool limit; None: TensorRT's default (all device memory)
    version_compatible: bool = False  # plan runs on newer TensorRT runtimes (lean runtime), plugins serialized in it
    timing_cache: str | None = None  # read and updated
    plugin: str | None = None  # path of the plugin library

    def shapes(self) -> dict[str, tuple[int, ...]]:
        rest = tuple(self.input_shape[1:])
        return {k: (b, *rest) for k, b in zip(("min", "opt", "max"), self.batch)}


_LOADED: set[str] = set()


def load_plugins(paths: list[str], obj=None):
    """A Polygraphy-style loader: registers the plugin libraries, then calls (or returns) ``obj``.

    The plugin library exposes TensorRT 10's ``getCreators`` entry point, which only
    ``IPluginRegistry.load_library`` reads (Polygraphy's LoadPlugins only dlopens a library,
    which registers nothing here).
    """

    def load(*args, **kwargs):
        import tensorrt as trt

        registry = trt.get_plugin_registry()
        for p in paths:
            if str(p) in _LOADED:
                continue
            if registry.load_library(str(p)) is None:
                raise EngineError(f"TensorRT could not load the plugin library {p}")
            _LOADED.add(str(p))
        return obj(*args, **kwargs) if callable(obj) else obj

    return load


def build_plan(onnx_path: str | Path, plan_path: str | Path, cfg: PlanConfig) -> Path:
    """A strongly typed serialized plan from ``onnx_path`` (Polygraphy loaders)."""
    require()
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile

    shapes = cfg.shapes()
    network = NetworkFromOnnxPath(str(onnx_path), strongly_typed=True)
    plugins = [cfg.plugin] if cfg.plugin else []
    if plugins:
        network = load_plugins(plugins, network)
    create = CreateConfig(
        profiles=[Profile().add(cfg.input_name, min=shapes["min"], opt=shapes["opt"], max=shapes["max"])],
        load_timing_cache=cfg.timing_cache if cfg.timing_cache and Path(cfg.timing_cache).is_file() else None,
        builder_optimization_level=cfg.opt_level,
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: cfg.workspace_mib << 20} if cfg.workspace_mib else None,
        version_compatible=cfg.version_compatible or None,
    )

    def config(builder, network_def):
        c = create(builder, network_def)
        if cfg.version_compatible and plugins:
            c.set_plugins_to_serialize(plugins)  # the plan carries the plugin library
        return c

    plan = EngineBytesFromNetwork(network, config=config, save_timing_cache=cfg.timing_cache)()
    if plan is None:
        raise EngineError("TensorRT returned no plan (see its log above)")
    plan_path = Path(plan_path)
    plan_path.write_bytes(bytes(plan))
    return plan_path


def plan_mismatch(plan: Path, manifest, here_version: str | None, here_sm: str | None,
                  plugin: Path | None) -> str | None:
    """Why a plan cannot run here, from the manifest its build wrote (None: no known reason). Plans are
    tied to the TensorRT version (unless version-compatible) and to the GPU they were built on, and a
    plan built with the plugin needs that plugin library."""
    if manifest is None:
        return None
    from ..artifact import file_sha256

    rec = manifest.plan(plan.name)
    if rec is None or (plan.is_file() and rec.get("sha256") != file_sha256(plan)):
        return None  # not the plan this manifest's build made (e.g. one built on a Jetson by bundle/build.sh)
    built = manifest.device
    compat = manifest.build.get("version_compatible")
    v, sm = built.get("tensorrt"), built.get("sm")
    if v and here_version and not compat and v.split(".")[:2] != here_version.split(".")[:2]:
        return (f"{plan} was built with TensorRT {v}; this machine has {here_version}: rebuild it here "
                "(inti-edge build, or bundle/build.sh), or build it --version-compatible")
    if sm and here_sm and sm != here_sm:
        return f"{plan} was built for a GPU of SM {sm}; this GPU is SM {here_sm}: rebuild it here"
    want = manifest.build.get("plugin")
    if want:
        if plugin is None:
            return (f"{plan} needs the plugin library {want['name']} it was built with: build plugins/token_interpolation "
                    "(cmake) or pass --plugin PATH")
        if file_sha256(plugin) != want["sha256"]:
            return (f"{plugin} is not the plugin library {plan.name} was built with (sha256 differs): pass the one "
                    "from that build with --plugin, or rebuild the plan")
    return None


def trt_runner(plan_path: str | Path, plugins: list[str] | None = None, version_compatible: bool = False):
    """Polygraphy's TrtRunner over a plan, plugin library loaded first; a plan that its build's
    manifest says cannot run here is refused in one line before TensorRT tries."""
    from ..artifact import Manifest

    here = require()
    plan_path = Path(plan_path)
    manifest = Manifest.load(plan_path)
    sm = (gpu() or {}).get("sm") if manifest else None
    why = plan_mismatch(plan_path, manifest, here, sm, Path(plugins[0]) if plugins else None)
    if why:
        raise EngineError(why)
    import tensorrt as trt
    from polygraphy.backend.trt import EngineFromPath, TrtRunner

    def runtime():
        rt = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if version_compatible:
            rt.engine_host_code_allowed = True  # version-compatible plans carry their lean runtime
        return rt

    engine = EngineFromPath(str(plan_path), runtime=runtime)
    if plugins:
        engine = load_plugins([str(p) for p in plugins], engine)
    return TrtRunner(engine, name=f"trt:{Path(plan_path).name}")
