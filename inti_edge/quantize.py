"""Precision recipes: FP16 (AutoCast) and INT8 (ModelOpt Q/DQ for TensorRT, ONNX Runtime's for CPU),
and the calibration sets they are calibrated on.

    calibration set   CalibrationManifest (JSON in calibration/): data spec, split, clips, seed.
                      Its fingerprint hashes the manifest, the videos' bytes and the model's
                      preprocessing; the decoded clips are cached as uint8 under calibration/cache/.
    fp16              ModelOpt AutoCast: FP16 everywhere except nodes whose real activations or
                      weights exceed the FP16-safe range (measured on calibration clips), the
                      graph I/O and the interpolation node (FP32, as the plugin takes it).
    int8, tensorrt    ModelOpt's ONNX PTQ: Q/DQ on MatMul/Gemm/Conv inputs placed the way TensorRT
                      fuses them (entropy or max calibration), the rest FP16 (AutoCast).
    int8, cpu         ONNX Runtime's quantize_static: QDQ, per-channel weights, activation / weight
                      types chosen for the CPU (x86 without VNNI: U8S8 with 7-bit weights, which
                      avoids the int16 saturation of AVX2's u8*s8 instruction; VNNI: U8S8; ARM: S8S8).

The backend decides the recipe: ModelOpt's TensorRT-shaped Q/DQ runs ~0.6x FP32 speed in ONNX
Runtime on a CPU, ONNX Runtime's own QDQ runs faster than FP32 there. How much faster is bounded by the
matrix products (`inti-edge bench --suite cpu`, its profile table): on x86 without VNNI, ONNX Runtime's u8*s8
kernels run the default model's matrix products only ~1.4-1.7x faster than its FP32 SGEMM, and they are
~2/3 of FP32 time at batch 1, so INT8 ends ~1.3-1.4x faster. On a Xeon with AVX512-VNNI and AMX (``--target
cpu-vnni``) the integer matrix products run 1.83x faster than FP32 but are only ~48% of FP32 time: even free
matrix products would give 1.93x, and INT8 measured 1.31-1.39x (batch 1) and 1.39-1.47x (batch 8). At this
model's width (192) the rest of the graph (layout, LayerNorm, GELU, Softmax) decides. Fusing the graph for ONNX
Runtime (attention into MultiHeadAttention, BiasGelu, SkipLayerNormalization) was measured too: no faster in
FP32 or INT8.

In every recipe the interpolation nodes are inlined, excluded from the precision change, and folded
back into the single ``inti::TokenInterpolation`` node (``pnode.inline_interpolation``), and LayerNorm,
Softmax, GELU and the residual Adds stay unquantized (only MatMul/Gemm/Conv are quantized).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import onnx

from . import artifact as artifacts
from .data.spec import MOTION_PREFIX, motion_paths
from .plugin import node as pnode

DEFAULT_CLIPS = 256
TRT_OP_TYPES = ("MatMul", "Gemm", "Conv")
CPU_OP_TYPES = ("MatMul", "Gemm")
CALIB_METHODS = ("entropy", "max")
PRECISIONS = ("fp32", "fp16", "int8")


class QuantizeError(RuntimeError):
    """A precision recipe cannot run as asked (one-line reason)."""


# --- clips from a data spec ----------------------------------------------------------------------------
# --- calibration sets ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationManifest:
    """How a calibration set is drawn: reproducible from this alone (plus the videos it names).

    Relative paths in ``data`` are relative to the manifest file's folder (``origin``), so a
    manifest in calibration/ works from any working directory; the fingerprint hashes the
    manifest as written and the files' bytes, not where they lie.
    """

    data: str  # a data spec (inti_edge.data): motion:VIDEO[,VIDEO...] | CSV | folder
    clips: int = DEFAULT_CLIPS  # how many clips
    split: str = "train"  # which split of the spec; never the gate's held-out split
    seed: int = 0  # which clips (evaluation-style sampling: the same clips on every run)
    name: str = "calib"
    origin: str | None = field(default=None, compare=False)  # folder relative paths start from

    def __post_init__(self):
        if self.clips < 1:
            raise QuantizeError("a calibration set needs at least 1 clip")

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "clips": self.clips, "split": self.split, "seed": self.seed, "name": self.name}

    @classmethod
    def load(cls, path: str | Path) -> "CalibrationManifest":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise QuantizeError(f"cannot read calibration manifest {path}: {e}") from None
        d.pop("comment", None)
        unknown = set(d) - {"data", "clips", "split", "seed", "name"}
        if unknown or "data" not in d:
            raise QuantizeError(f"{path}: a calibration manifest has keys data, clips, split, seed, name (got {sorted(d)})")
        return cls(**d, origin=str(path.resolve().parent))

    @classmethod
    def resolve(cls, spec: str, clips: int | None = None, seed: int | None = None, split: str | None = None) -> "CalibrationManifest":
        """A manifest file (``*.json``) or a data spec; explicit arguments override the manifest's."""
        base = cls.load(spec) if spec.endswith(".json") else cls(data=spec, name="adhoc")
        over = {k: v for k, v in dict(clips=clips, seed=seed, split=split).items() if v is not None}
        return replace(base, **over)

    def save(self, path: str | Path) -> Path:
        """Write the manifest with its paths made absolute (it may be read from another folder)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.to_dict(), "data": self.resolved_data()}, indent=2) + "\n")
        return path

    def resolved_data(self) -> str:
        """``data`` with relative paths resolved against ``origin``."""
        if not self.origin:
            return self.data
        base = Path(self.origin)
        fix = lambda p: str(base / p) if p and not Path(p).is_absolute() else p  # noqa: E731
        if self.data.startswith(MOTION_PREFIX):
            return MOTION_PREFIX + ",".join(fix(p) for p in motion_paths(self.data))
        return fix(self.data)

    def files(self) -> list[Path]:
        """The files the spec reads (videos, CSVs and the videos they list, folders' files), for the fingerprint."""
        spec = self.resolved_data()
        if spec.startswith(MOTION_PREFIX):
            return [Path(p) for p in motion_paths(spec)]
        p = Path(spec)
        if p.is_file():
            files = [p]
            for row in p.read_text().splitlines():
                q = p.parent / row.split(",")[0].strip()
                if q.is_file():
                    files.append(q)
            return files
        if p.is_dir():
            return sorted(q for q in p.rglob("*") if q.is_file())
        raise QuantizeError(f"calibration data {spec!r}: no such file or folder")

    def fingerprint(self, preprocess: dict[str, Any]) -> str:
        """sha256 over the manifest, the model's preprocessing and the bytes of every file it reads."""
        h = hashlib.sha256()
        h.update(json.dumps(self.to_dict(), sort_keys=True).encode())
        h.update(json.dumps({k: preprocess.get(k) for k in ("frames", "image_size", "mean", "std")}, sort_keys=True).encode())
        for f in self.files():
            if not f.is_file():
                raise QuantizeError(f"calibration data file {f} does not exist")
            h.update(f.name.encode())
            h.update(artifacts.file_sha256(f).encode())
        return h.hexdigest()


class _Feeds:
    """What the recipes read: ``clips(start, stop)`` in the model's input form, and its length."""

    def clips(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def reader(self, input_name: str, batch: int = 8, limit: int | None = None):
        """An ONNX Runtime CalibrationDataReader (also what ModelOpt takes) over the set."""
        return ClipReader(self, input_name, batch, limit)

    def save_npz(self, path: str | Path, input_name: str, count: int = 8) -> Path:
        """The first ``count`` inputs as one .npz feed (what AutoCast's reference runner reads)."""
        np.savez(path, **{input_name: self.clips(0, count)})
        return Path(path)


@dataclass
class CalibrationSet(_Feeds):
    """Calibration clips, ready to feed: uint8 frames (n, T, 3, S, S) + the normalisation."""

    manifest: CalibrationManifest
    fingerprint: str
    frames: np.ndarray  # uint8 (n, T, 3, S, S), RGB
    labels: np.ndarray  # int64 (n,)
    mean: np.ndarray  # (3,)
    std: np.ndarray  # (3,)
    cache_path: Path | None = None
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.frames)

    def clips(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Normalised float32 clips [start, stop): the model's input."""
        x = self.frames[start:stop].astype(np.float32) / 255.0
        return (x - self.mean[:, None, None]) / self.std[:, None, None]


@dataclass
class FeedSet(_Feeds):
    """Calibration inputs already in the model's input form (e.g. unit embeddings for the head)."""

    x: np.ndarray  # float32 (n, ...)

    def __len__(self) -> int:
        return len(self.x)

    def clips(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.x[start:stop]


def _to_uint8(clips: np.ndarray, mean, std) -> np.ndarray:
    m, s = np.asarray(mean, np.float32)[:, None, None], np.asarray(std, np.float32)[:, None, None]
    return np.clip(np.rint((clips * s + m) * 255.0), 0, 255).astype(np.uint8)


def calibration_set(manifest: CalibrationManifest, cfg, preprocess: dict[str, Any], cache_dir: str | Path | None = None,
                    classes: Sequence[str] | None = None, progress: Callable[[int, int], None] | None = None,
                    max_lost: float | None = None) -> CalibrationSet:
    """Decode (or read from the cache) the clips of ``manifest`` for a model of config ``cfg``.

    Cache: ``cache_dir/<name>-<fingerprint[:16]>.npz`` with the uint8 frames, the labels and the manifest.
    """
    fp = manifest.fingerprint(preprocess)
    mean, std = np.asarray(cfg.mean, np.float32), np.asarray(cfg.std, np.float32)
    path = Path(cache_dir) / f"{manifest.name}-{fp[:16]}.npz" if cache_dir else None
    if path and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) == fp:
                return CalibrationSet(manifest, fp, z["frames"], z["labels"], mean, std, path, True)
    from .data import DatasetError, load_clips

    try:
        clips, labels = load_clips(manifest.resolved_data(), cfg, manifest.split, manifest.clips, manifest.seed, classes,
                                   progress, damage="skip", max_lost=max_lost)
    except DatasetError as e:
        raise QuantizeError(str(e)) from None
    frames = _to_uint8(clips, mean, std)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, frames=frames, labels=labels, fingerprint=np.array(fp), manifest=np.array(json.dumps(manifest.to_dict())))
        os.replace(tmp, path)
    return CalibrationSet(manifest, fp, frames, labels, mean, std, path, False)


def _reader_base():
    from onnxruntime.quantization import CalibrationDataReader

    return CalibrationDataReader


class ClipReader(_reader_base()):
    """Batches of normalised clips as {input_name: array}; rewindable (ModelOpt reads it twice)."""

    def __init__(self, calib: _Feeds, input_name: str, batch: int = 8, limit: int | None = None):
        self.calib, self.input_name, self.batch = calib, input_name, batch
        self.n = min(len(calib), limit or len(calib))
        self.pos = 0

    def get_next(self):
        if self.pos >= self.n:
            return None
        feed = {self.input_name: self.calib.clips(self.pos, min(self.n, self.pos + self.batch))}
        self.pos += self.batch
        return feed

    def get_first(self):
        return {self.input_name: self.calib.clips(0, min(self.n, self.batch))}

    def rewind(self):
        self.pos = 0

    def __len__(self):
        return -(-self.n // self.batch)


# --- recipes -----------------------------------------------------------------------------------------
@dataclass
class Recipe:
    """What to do to an FP32 ONNX model; recorded in the build manifest."""

    precision: str  # fp32 | fp16 | int8
    backend: str  # tensorrt | onnxruntime
    method: str = "entropy"  # calibration: entropy | max
    op_types: tuple[str, ...] = ()  # quantized op types (int8)
    exclude: tuple[str, ...] = ()  # regexes of node names kept out of INT8 (kept FP16 / FP32)
    cpu_isa: str = ""  # onnxruntime int8: x86 | x86-vnni | arm
    attention: bool = True  # also quantize the attention matmuls (QK^T, AV: both inputs activations)
    calib_clips: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["op_types"], d["exclude"] = list(self.op_types), list(self.exclude)
        return d


def cpu_isa() -> str:
    """The quantization-relevant ISA of this machine: 'arm', 'x86-vnni' or 'x86'."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "x86"
    return "x86-vnni" if re.search(r"\b(avx512_vnni|avx_vnni|amx_int8)\b", flags) else "x86"


def expand_patterns(model: onnx.ModelProto, patterns: Iterable[str]) -> list[str]:
    """Node names matching any regex (``re.search``) in ``patterns``."""
    regs = []
    for p in patterns:
        try:
            regs.append(re.compile(p))
        except re.error as e:
            raise QuantizeError(f"bad --exclude pattern {p!r}: {e}") from None
    return [n.name for n in model.graph.node if any(r.search(n.name) for r in regs)]


def attention_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMul nodes whose inputs are both activations (attention's QK^T and AV), by structure, not by name."""
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not any(i in consts for i in n.input)]


@contextlib.contextmanager
def _quiet():
    """ModelOpt and ONNX Runtime's quantizer log at INFO/WARNING to the root logger, stdout and stderr."""
    loggers = [logging.getLogger(n) for n in ("modelopt", "root", "onnxruntime")]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    # stderr too: ONNX Runtime's calibrator draws tqdm bars there
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        try:
            yield
        finally:
            for lg, lv in zip(loggers, old):
                lg.setLevel(lv)


def _fp16_autocast(path: Path, calib_npz: Path | None, keep_fp32: list[str]) -> onnx.ModelProto:
    from modelopt.onnx.autocast import convert_to_mixed_precision

    try:
        from modelopt.onnx.autocast import configure_logging

        configure_logging("ERROR")
    except Exception:  # noqa: BLE001 - older ModelOpt: logging stays as it is
        pass
    return convert_to_mixed_precision(
        str(path),
        low_precision_type="fp16",
        nodes_to_exclude=keep_fp32,
        keep_io_types=True,  # clip in, logits out stay float32
        calibration_data=str(calib_npz) if calib_npz else None,
        providers=["cpu"],
    )


@contextlib.contextmanager
def _onnxruntime_quantization_restored():
    """Undo ModelOpt's monkey-patches of ONNX Runtime's quantization classes when it returns.

    ModelOpt patches calibrators and quantizers of ``onnxruntime.quantization`` in place; left
    patched, ONNX Runtime's own ``quantize_static`` (the CPU recipe) fails later in the same process.
    """
    import importlib
    import inspect
    import pkgutil

    import onnxruntime.quantization as oq

    saved = []
    for info in pkgutil.iter_modules(oq.__path__, oq.__name__ + "."):
        try:
            mod = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - optional submodules (e.g. for other EPs) may not import
            continue
        for obj in [mod, *(c for _, c in inspect.getmembers(mod, inspect.isclass) if c.__module__ == mod.__name__)]:
            saved.append((obj, dict(vars(obj))))
    try:
        yield
    finally:
        for obj, before in saved:
            now = vars(obj)
            for k in [k for k in now if k not in before]:
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(obj, k)
            for k, v in before.items():
                if now.get(k, v) is not v:
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(obj, k, v)


def _int8_modelopt(path: Path, out: Path, reader, method: str, op_types, exclude: list[str]) -> onnx.ModelProto:
    with _onnxruntime_quantization_restored():
        from modelopt.onnx.quantization import quantize

        _modelopt_quantize(quantize, path, out, reader, method, op_types, exclude)
    return onnx.load(str(out))


def _modelopt_quantize(quantize, path: Path, out: Path, reader, method: str, op_types, exclude: list[str]) -> None:
    quantize(
        str(path),
        quantize_mode="int8",
        calibration_data_reader=reader,
        calibration_method=method,
        calibration_eps=["cpu"],
        op_types_to_quantize=list(op_types),
        nodes_to_exclude=exclude,
        high_precision_dtype="fp32",  # FP16 comes after, from AutoCast, which can keep nodes FP32
        output_path=str(out),
        log_level="ERROR",
    )


def _int8_onnxruntime(path: Path, out: Path, reader, method: str, op_types, exclude_names: list[str], isa: str) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    act = QuantType.QInt8 if isa == "arm" else QuantType.QUInt8
    quantize_static(
        str(path),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(op_types),
        per_channel=True,
        reduce_range=isa == "x86",
        activation_type=act,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude_names,
        calibrate_method=CalibrationMethod.Entropy if method == "entropy" else CalibrationMethod.MinMax,
        extra_options={
            "ActivationSymmetric": act == QuantType.QInt8,
            "WeightSymmetric": True,
            # quantize the inputs of MatMul/Gemm only: their outputs stay float (MatMulIntegerToFloat), so
            # Softmax, LayerNorm, GELU and the residual Adds never see int8 (measured: faster, too)
            "OpTypesToExcludeOutputQuantization": list(op_types),
        },
    )
    return onnx.load(str(out))


def apply_recipe(model: onnx.ModelProto, recipe: Recipe, calib: CalibrationSet | None = None,
                 workdir: str | Path | None = None) -> onnx.ModelProto:
    """``model`` (FP32, from ``inti-edge export``) in ``recipe``'s precision, metadata carried over.

    The result keeps the single interpolation node (with its local function) and the graph I/O in FP32.
    """
    info = artifacts.read_info(model)
    if info.precision != "fp32":
        raise QuantizeError(f"the input model is already {info.precision}; build from the FP32 export")
    if recipe.precision not in PRECISIONS:
        raise QuantizeError(f"precision must be one of {', '.join(PRECISIONS)}")
    if recipe.method not in CALIB_METHODS:
        raise QuantizeError(f"calibration method must be one of {', '.join(CALIB_METHODS)}")
    if recipe.precision == "fp32":
        out = artifacts.copy_model(model)
    else:
        if recipe.precision == "int8" and calib is None:
            raise QuantizeError("INT8 needs a calibration set (--calib)")
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            out = _convert(model, recipe, calib, Path(tmp), info)
    artifacts.set_metadata(out, **{artifacts.META_PRECISION: recipe.precision, artifacts.META_BACKEND: recipe.backend,
                            artifacts.META_RECIPE: json.dumps(recipe.to_dict(), sort_keys=True)})
    onnx.checker.check_model(out)
    return out


def _convert(model: onnx.ModelProto, recipe: Recipe, calib: CalibrationSet | None, tmp: Path, info) -> onnx.ModelProto:
    inlined, undo = pnode.inline_interpolation(model) if pnode.interpolation_nodes(model) else (artifacts.copy_model(model), None)
    keep = [undo.exclude_pattern] if undo else []
    src = tmp / "inlined.onnx"
    onnx.save(inlined, str(src))
    user_excluded = expand_patterns(inlined, recipe.exclude)
    if recipe.precision == "int8" and not recipe.attention:
        user_excluded += attention_matmuls(inlined)
    npz = calib.save_npz(tmp / "calib.npz", info.input_name) if calib is not None else None
    try:
        result = _run_recipe(recipe, calib, tmp, src, npz, keep, inlined, user_excluded, info)
    except QuantizeError:
        raise
    except Exception as e:  # noqa: BLE001 - a failing third-party tool is reported in one line
        tool = "ModelOpt" if recipe.precision == "fp16" or recipe.backend == "tensorrt" else "ONNX Runtime's quantizer"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QuantizeError(f"{tool} failed ({recipe.precision}, {info.form}): {msg[:300]}") from e
    if undo is None:
        undo = pnode.Inlined({}, None, dict(info.raw))
    return pnode.fold_interpolation(result, undo)


def _run_recipe(recipe, calib, tmp: Path, src: Path, npz, keep, inlined, user_excluded, info) -> onnx.ModelProto:
    with _quiet():
        if recipe.precision == "fp16":
            result = _fp16_autocast(src, npz, keep)
        elif recipe.backend == "tensorrt":
            interp_names = expand_patterns(inlined, keep)
            qdq = _int8_modelopt(src, tmp / "qdq.onnx", calib.reader(info.input_name), recipe.method, recipe.op_types,
                                 interp_names + user_excluded)
            onnx.save(qdq, str(tmp / "qdq.onnx"))
            result = _fp16_autocast(tmp / "qdq.onnx", npz, keep)
        else:
            interp_names = expand_patterns(inlined, keep)
            result = _int8_onnxruntime(src, tmp / "qdq.onnx", calib.reader(info.input_name), recipe.method, recipe.op_types,
                                       interp_names + user_excluded, recipe.cpu_isa or cpu_isa())
    return result


def quantized_nodes(model: onnx.ModelProto, op_types: Sequence[str] = TRT_OP_TYPES) -> list[str]:
    """Names of the ``op_types`` nodes that read a DequantizeLinear output: the INT8 layers."""
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type in op_types and any(i in dq_out for i in n.input)]
