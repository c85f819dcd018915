"""Artifacts and their contracts: the one reader every stage uses.

An artifact is what a stage writes and the next one reads:

    checkpoint.pt   (inti-edge train)    config, classes, preprocessing, sampling, weights
    DIR/            (inti-edge export)   model.onnx, encoder.onnx, head.onnx: each carries the same
                                         ``inti.*`` metadata (config, classes, preprocessing, sampling)
    DIR/            (inti-edge build)    the same forms in a precision, manifest.json, *.plan where
                                         TensorRT built them

``open_artifact(path)`` takes any of them (a folder, one of its ONNX files or plans, a checkpoint)
and says what it holds: the model's facts (``ModelInfo``: config, classes, ``Preprocess``,
``Sampling``), the ONNX file and plan of each form, and the checkpoint. Nothing here imports
torch unless the artifact is a checkpoint (reading one needs it).

Forms and their I/O (batch B is the only dynamic dimension):

    model     clip   (B, T, 3, S, S)    -> logits    (B, classes)
    encoder   unit   (B, 2^s, 3, S, S)  -> embedding (B, K, E)
    head      units  (B, U, K, E)       -> logits    (B, classes)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data.preprocess import Preprocess
from .data.sampling import Sampling
from .model.config import ModelConfig

# graph I/O names, one pair per form
IO_NAMES = {
    "model": ("clip", "logits"),
    "encoder": ("unit", "embedding"),
    "head": ("units", "logits"),
}
FORMS = tuple(IO_NAMES)
# ONNX metadata keys (all values are strings; JSON where structured)
META_CONFIG, META_CLASSES, META_PREPROCESS = "inti.config", "inti.classes", "inti.preprocess"
META_FORM, META_INTERP, META_PRECISION = "inti.form", "inti.interpolation", "inti.precision"
META_SOURCE, META_SOURCE_SHA, META_FORMAT = "inti.source", "inti.source_sha256", "inti.format_version"
META_BACKEND, META_RECIPE, META_SAMPLING = "inti.backend", "inti.recipe", "inti.sampling"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
PLAN_SUFFIXES = (".plan", ".engine")
MANIFEST = "manifest.json"


class ArtifactError(RuntimeError):
    """An artifact cannot be read or used as asked (one-line reason)."""


def input_shape(cfg: ModelConfig, form: str, batch: int = -1) -> tuple[int, ...]:
    """The input shape of ``form`` for a model config (``batch`` first; -1: dynamic)."""
    S, E = cfg.vision.image_size, cfg.vision.embed_dim
    shapes = {
        "model": (batch, cfg.frames, 3, S, S),
        "encoder": (batch, cfg.unit_frames, 3, S, S),
        "head": (batch, cfg.units, cfg.unit_tokens, E),
    }
    if form not in shapes:
        raise ArtifactError(f"unknown form {form!r}; forms are {', '.join(FORMS)}")
    return shapes[form]


def output_shape(cfg: ModelConfig, form: str, batch: int = -1) -> tuple[int, ...]:
    """The output shape of ``form`` (``batch`` first; -1: dynamic)."""
    if form == "encoder":
        return (batch, cfg.unit_tokens, cfg.vision.embed_dim)
    input_shape(cfg, form)  # validates the form
    return (batch, cfg.num_classes)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --- what every form knows -------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """The facts of a trained model, wherever it is stored: config, classes, input contract."""

    config: ModelConfig
    classes: list[str]
    preprocess: dict[str, Any]  # model.factory.preprocess_info (as stored)
    sampling: Sampling | None = None  # None: made before inti-edge stored it (see ``require_sampling``)

    @property
    def preprocessing(self) -> Preprocess:
        try:
            return Preprocess.from_dict(self.preprocess)
        except ValueError as e:
            raise ArtifactError(f"preprocessing: {e}") from None

    def require_sampling(self, frame_step: float | None = None) -> Sampling:
        """The stored sampling; ``frame_step`` (s) overrides its step or stands in where none is stored."""
        cfg = self.config
        if frame_step is not None:
            return Sampling(frame_step, cfg.unit_frames, cfg.frames, "given")
        if self.sampling is None:
            raise ArtifactError("the model stores no temporal sampling (trained or exported before inti-edge kept it): "
                                "pass --frame-step SECONDS (the time between sampled frames in training), or re-train")
        return self.sampling


@dataclass(frozen=True)
class ArtifactInfo(ModelInfo):
    """What an exported ONNX file says about itself (its ``inti.*`` metadata)."""

    form: str = "model"  # "model" | "encoder" | "head"
    interpolation: str = "function"  # "function" | "plugin-only" | "plain" | "none"
    precision: str = "fp32"  # "fp32" | "fp16" | "int8"
    source: str = ""  # path of the checkpoint it came from (as given at export)
    source_sha256: str = ""
    backend: str = "any"  # the runtime the recipe targets: "any" (fp32 export), "onnxruntime", "tensorrt"
    raw: dict[str, str] = field(default_factory=dict)

    @property
    def input_name(self) -> str:
        return IO_NAMES[self.form][0]

    @property
    def output_name(self) -> str:
        return IO_NAMES[self.form][1]

    def input_shape(self, batch: int = -1) -> tuple[int, ...]:
        return input_shape(self.config, self.form, batch)

    @property
    def recipe(self) -> dict[str, Any]:
        """The precision recipe a build stored (quantize.Recipe as a dict); {} for exports and unreadable entries."""
        try:
            r = json.loads(self.raw.get(META_RECIPE, "{}"))
        except json.JSONDecodeError:
            return {}
        return r if isinstance(r, dict) else {}


# --- what a file is ----------------------------------------------------------------------------------
KINDS = {
    "empty": "an empty file (0 bytes)",
    "onnx": "an ONNX model",
    "checkpoint": "a PyTorch checkpoint",
    "pickle": "a Python pickle",
    "video": "a video file",
    "text": "a text file",
    "unknown": "neither a checkpoint nor an ONNX model",
}


def sniff(path: str | Path) -> str:
    """What a file holds, by its first bytes (a key of KINDS): names the cause when a file is not
    what a command expects, whatever its suffix says."""
    path = Path(path)
    if path.stat().st_size == 0:
        return "empty"
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04"):
        return "checkpoint"  # torch.save writes a zip archive
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if head[4:8] == b"ftyp" or head.startswith((b"RIFF", b"\x1aE\xdf\xa3", b"\x00\x00\x01\xba", b"OggS", b"FLV")):
        return "video"
    if head[:1] == b"\x08" and head[2:3] in (b"\x12", b"\x1a", b"\x22", b"\x3a", b"\x42"):
        return "onnx"  # protobuf: ir_version (field 1) first, then producer / graph / opset fields
    try:
        text = head.decode("utf-8")
        if all(c.isprintable() or c in "\r\n\t" for c in text):
            return "text"
    except UnicodeDecodeError:
        pass
    return "unknown"


def _check_external_data(model, path: Path) -> None:
    """Refuse weights stored outside the model's folder (a model file must not make a reader open
    other files) and name a missing weights file."""
    import onnx

    folder = path.resolve().parent
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        target = (folder / loc).resolve()
        if folder not in target.parents:
            raise ArtifactError(f"{path}: tensor {t.name!r} points outside the model's folder ({loc}): refused")
        if not target.is_file():
            raise ArtifactError(f"{path}: its weights file {loc} is missing; copy it next to the model")


def read_info(model) -> ArtifactInfo:
    """The ``inti.*`` metadata of an ONNX file (a path or a loaded ``onnx.ModelProto``)."""
    import onnx

    path = None
    if not isinstance(model, onnx.ModelProto):
        path = Path(model)
        if not path.is_file():
            raise ArtifactError(f"no ONNX file at {path}" if not path.is_dir() else f"{path} is a folder, not an ONNX file")
        kind = sniff(path)
        if kind not in ("onnx", "unknown"):
            hint = "; give it where a checkpoint is asked for" if kind == "checkpoint" else ""
            raise ArtifactError(f"{path} is {KINDS[kind]}, not an ONNX model{hint}")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
            raise ArtifactError(f"{path} is not a readable ONNX model (truncated or damaged: {type(e).__name__})") from None
        _check_external_data(model, path)
    meta = {p.key: p.value for p in model.metadata_props}
    if META_CONFIG not in meta:
        where = f"{path}: " if path is not None else ""
        raise ArtifactError(f"{where}an ONNX model without inti-edge metadata (config, classes, preprocessing): "
                            "export it with `inti-edge export CHECKPOINT -o DIR`")
    try:
        sampling = Sampling.from_dict(json.loads(meta[META_SAMPLING])) if META_SAMPLING in meta else None
        return ArtifactInfo(
            config=ModelConfig.from_json(meta[META_CONFIG]),
            classes=json.loads(meta[META_CLASSES]),
            preprocess=json.loads(meta[META_PREPROCESS]),
            sampling=sampling,
            form=meta.get(META_FORM, "model"),
            interpolation=meta.get(META_INTERP, "function"),
            precision=meta.get(META_PRECISION, "fp32"),
            source=meta.get(META_SOURCE, ""),
            source_sha256=meta.get(META_SOURCE_SHA, ""),
            backend=meta.get(META_BACKEND, "any"),
            raw=meta,
        )
    except (KeyError, ValueError, TypeError) as e:
        raise ArtifactError(f"the ONNX file's inti-edge metadata is damaged ({e})") from None


# --- a build's manifest ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    """manifest.json of a build folder (``build`` writes it once; everyone reads it through this).

    Paths inside the build folder are recorded relative to it (the folder is renamed into place and
    may be moved); paths outside it absolutely."""

    file: Path
    raw: dict[str, Any]

    @classmethod
    def load(cls, where: str | Path) -> "Manifest | None":
        """The manifest of a build folder (or beside a file of it); None where there is none."""
        p = Path(where)
        f = p if p.name == MANIFEST else (p / MANIFEST if p.is_dir() else p.parent / MANIFEST)
        if not f.is_file():
            return None
        try:
            raw = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ArtifactError(f"{f}: unreadable build manifest ({e})") from None
        if not isinstance(raw, dict):
            raise ArtifactError(f"{f}: not a build manifest")
        return cls(f, raw)

    def path(self, recorded: str) -> Path:
        p = Path(recorded)
        return p if p.is_absolute() else self.file.parent / p

    @property
    def precision(self) -> str:
        return self.raw.get("precision", "fp32")

    @property
    def classes(self) -> list[str]:
        return list(self.raw.get("classes", []))

    def section(self, name: str) -> dict[str, Any]:
        """One of the manifest's records (``target``, ``recipe``, ``build``, ``device``, ``inputs``), {} if absent."""
        return self.raw.get(name) or {}

    target = property(lambda self: self.section("target"), doc="The target's record (name, runtime, ...).")
    recipe = property(lambda self: self.section("recipe"), doc="How the artifacts were quantized.")
    build = property(lambda self: self.section("build"), doc="The TensorRT builder settings (batch profile, workspace, level).")
    device = property(lambda self: self.section("device"), doc="Where the plans were built (TensorRT version, GPU, sm, JetPack).")
    inputs = property(lambda self: self.section("inputs"), doc="What the build was made from (ONNX, checkpoint, reference, calibration, gate data).")

    def artifact_forms(self) -> list[str]:
        return list(self.raw.get("artifacts") or {})

    def source(self, form: str = "model") -> Path | None:
        """The FP32 ONNX of ``form`` this build was made from, where it still is."""
        rec = (self.inputs.get("onnx") or {}).get(form) or {}
        p = self.path(rec["path"]) if rec.get("path") else None
        return p if p is not None and p.is_file() else None

    def plan(self, name: str) -> dict[str, Any] | None:
        """The record of the plan file ``name`` this build made (path, sha256), if it made one."""
        return next((r for r in (self.raw.get("plans") or {}).values() if Path(r.get("path", "")).name == name), None)


# --- an artifact on disk -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Artifact:
    """What a path holds: the model's facts and where each form lives."""

    path: Path  # as the user named it
    kind: str  # "checkpoint" | "export" | "build"
    model: ModelInfo
    precision: str = "fp32"
    onnx: dict[str, Path] = field(default_factory=dict)  # form -> ONNX file
    plans: dict[str, Path] = field(default_factory=dict)  # form -> TensorRT plan
    checkpoint: Path | None = None
    manifest: Manifest | None = None

    @property
    def streaming(self) -> bool:
        """Has the encoder / head pair in some form (ONNX, plan or the checkpoint's split)."""
        if self.checkpoint is not None:
            return True
        return all(f in self.onnx or f in self.plans for f in ("encoder", "head"))

    def describe(self) -> str:
        forms = sorted(set(self.onnx) | set(self.plans)) or ["model", "encoder", "head"]
        return f"{self.path} ({self.kind}, {self.precision}, {self.model.config.name}, forms: {', '.join(forms)})"


def open_artifact(path: str | Path) -> Artifact:
    """Read what ``path`` holds: a checkpoint, an export or build folder, or one file of such a folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ArtifactError(f"{p}: no such file or folder")
    if p.is_dir():
        return _open_folder(p)
    suffix = p.suffix.lower()
    kind = sniff(p)
    if kind in ("checkpoint", "pickle", "empty") and suffix not in PLAN_SUFFIXES:  # by content, whatever the name
        return _open_checkpoint(p)
    if kind in ("video", "text"):
        raise ArtifactError(f"{p} is {KINDS[kind]}, not a model (give a checkpoint, an ONNX model or an export folder)")
    if suffix in CHECKPOINT_SUFFIXES and kind != "onnx":
        return _open_checkpoint(p)
    if suffix in (".onnx", *CHECKPOINT_SUFFIXES):
        info = read_info(p)
        art = _open_folder(p.parent, prefer=info)
        if art.onnx.get(info.form) != p.resolve():  # a file beside the usual names: it alone
            return Artifact(p, "export", info, info.precision, {info.form: p.resolve()})
        return art
    if suffix in PLAN_SUFFIXES:
        return _open_folder(p.parent)
    raise ArtifactError(f"{p.name}: unknown artifact type (expected a folder, .onnx, .pt or .plan)")


def _open_checkpoint(p: Path) -> Artifact:
    if p.stat().st_size == 0:
        raise ArtifactError(f"{p}: empty file (0 bytes), not a checkpoint")
    try:
        from .model.factory import CheckpointError, read_checkpoint
    except ImportError:
        raise ArtifactError(f"{p}: reading a checkpoint needs PyTorch (pip install 'inti-edge[train]'); "
                            "or export it to ONNX where PyTorch is installed") from None
    try:
        obj = read_checkpoint(p)
        info = ModelInfo(ModelConfig.from_dict(obj["config"]), list(obj["classes"]), dict(obj["preprocess"]),
                         Sampling.from_dict(obj["sampling"]) if obj.get("sampling") else None)
    except CheckpointError as e:
        raise ArtifactError(str(e)) from None
    except (KeyError, ValueError, TypeError) as e:
        raise ArtifactError(f"{p}: damaged inti-edge checkpoint ({e})") from None
    return Artifact(p, "checkpoint", info, "fp32", checkpoint=p.resolve())


def _open_folder(d: Path, prefer: ArtifactInfo | None = None) -> Artifact:
    manifest = Manifest.load(d)
    onnx_files = {f: d / f"{f}.onnx" for f in FORMS if (d / f"{f}.onnx").is_file()}
    plans = {f: d / f"{f}{s}" for f in FORMS for s in PLAN_SUFFIXES if (d / f"{f}{s}").is_file()}
    if not onnx_files and prefer is None:
        ckpts = sorted(x for x in d.iterdir() if x.suffix in CHECKPOINT_SUFFIXES and x.name != "last.pt")
        if ckpts:  # a training run's folder: its model.pt
            return _open_checkpoint(d / "model.pt" if (d / "model.pt").is_file() else ckpts[0])
        what = "plans but no ONNX files beside them" if plans else "no model.onnx, encoder.onnx or head.onnx"
        raise ArtifactError(f"{d}: {what} (give a folder from `inti-edge export` or `inti-edge build`, or a checkpoint)")
    infos = {f: read_info(p) for f, p in onnx_files.items()}
    ref = prefer or next(iter(infos.values()))
    for f, info in list(infos.items()):
        if info.form != f:
            raise ArtifactError(f"{onnx_files[f]} holds the {info.form} form, not the {f} form its name says")
        if info.config != ref.config or info.classes != ref.classes or info.source_sha256 != ref.source_sha256:
            if prefer is not None:  # keep the file asked for; drop siblings from another model
                del onnx_files[f], infos[f]
                continue
            raise ArtifactError(f"{d}: {f}.onnx comes from another model than {ref.form}.onnx")
    precision = ref.precision
    return Artifact(d, "build" if manifest is not None else "export", ref, precision,
                    {f: p.resolve() for f, p in onnx_files.items()}, {f: p.resolve() for f, p in plans.items()},
                    None, manifest)


# --- writing ONNX files --------------------------------------------------------------------------------
def set_metadata(model, **values: str) -> None:
    """Set (or replace) ``inti.*`` metadata entries: set_metadata(m, **{"inti.precision": "int8"})."""
    keep = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in values.items():
        model.metadata_props.add(key=k, value=str(v))


def save_onnx(model, path: str | Path) -> Path:
    """Save an ``onnx.ModelProto``, with weights in a side file only where the 2 GB protobuf limit needs
    it (ViT-L, long clips)."""
    import os

    import onnx

    from .files import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() > 1_800_000_000:  # the side file first; the model file, written last, commits both
        tmp = path.with_name(f".{path.name}.partial")
        onnx.save_model(model, str(tmp), save_as_external_data=True, location=path.name + ".data")
        os.replace(tmp, path)
        return path
    return write_atomic(path, model.SerializeToString())  # never a half-written model.onnx


def copy_model(model):
    """A deep copy of an ``onnx.ModelProto`` (tools edit their input in place)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    return m
