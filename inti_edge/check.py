"""The accuracy-regression gate: an artifact against the FP32 PyTorch model, on held-out real clips.

    metrics   top-1 agreement, top-1 accuracy of both and the delta (points), logits cosine per
              clip (mean, min), max abs error (absolute and relative to the logit scale,
              max |reference logit|), per-class agreement (by the reference's class).
    budget    per precision, overridable:  fp32  max abs error <= 1e-4 x logit scale, 100% agreement
                                           fp16  agreement >= 99%, min cosine >= 0.999
                                           int8  accuracy loss <= 1.0 point, agreement >= 95%,
                                                 mean cosine >= 0.99
    layerwise over budget (ONNX artifacts): every intermediate tensor of the FP32 ONNX and the
              artifact on a few clips; a node's contribution is how much its output's relative
              error exceeds its inputs'. The largest contributors are named in the report.
    report    report.json (precision, backend, metrics, budget, passed, artifacts, ...), report.md
              and a PNG plot.

Runners are Polygraphy's (engines/): Comparator.run feeds the same clips to the reference and the
artifact. A TensorRT-targeted Q/DQ ONNX checked on ONNX Runtime runs with basic graph optimisations
only, so Q/DQ is evaluated as TensorRT computes it (int8 products, exact int32 sums), not through
ONNX Runtime's CPU integer kernels.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import artifact as artifacts

GATE_SPLIT = "test"
GATE_CLIPS = 256
GATE_SEED = 1  # calibration draws with seed 0 from the train split; the gate never sees those clips


class CheckError(RuntimeError):
    """The gate cannot run as asked (one-line reason)."""


# --- budgets -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """Limits an artifact must meet; None = not checked."""

    max_abs_rel: float | None = None  # max |artifact - reference| / max |reference logit|
    min_agreement: float | None = None  # top-1 agreement, fraction
    min_cos_mean: float | None = None  # mean over clips of the logits cosine
    min_cos_min: float | None = None  # worst clip's logits cosine
    max_acc_drop: float | None = None  # reference accuracy - artifact accuracy, points (labelled clips)

    def replace(self, overrides: dict[str, float]) -> "Budget":
        known = {f.name for f in fields(self)}
        bad = set(overrides) - known
        if bad:
            raise CheckError(f"unknown budget key(s) {sorted(bad)}; known: {', '.join(sorted(known))}")
        return Budget(**{**asdict(self), **overrides})


DEFAULT_BUDGETS = {
    "fp32": Budget(max_abs_rel=1e-4, min_agreement=1.0),
    "fp16": Budget(min_agreement=0.99, min_cos_min=0.999),
    "int8": Budget(max_acc_drop=1.0, min_agreement=0.95, min_cos_mean=0.99),
}


def parse_budget(items: Sequence[str]) -> dict[str, float]:
    """["min_agreement=0.97", ...] -> {"min_agreement": 0.97}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise CheckError(f"bad --budget {item!r}; use KEY=NUMBER, e.g. min_agreement=0.97") from None
    return out


# --- metrics -----------------------------------------------------------------------------------------
def compare_logits(ref: np.ndarray, art: np.ndarray, labels: np.ndarray | None, classes: Sequence[str]) -> dict[str, Any]:
    """Gate metrics of artifact logits ``art`` against reference logits ``ref`` (both (n, classes))."""
    ref, art = ref.astype(np.float64), art.astype(np.float64)
    p_ref, p_art = ref.argmax(1), art.argmax(1)
    agree = p_ref == p_art
    denom = np.linalg.norm(ref, axis=1) * np.linalg.norm(art, axis=1)
    cos = np.where(denom > 0, (ref * art).sum(1) / np.maximum(denom, 1e-300), 1.0)
    err = np.abs(ref - art)
    scale = float(np.abs(ref).max()) or 1.0
    m: dict[str, Any] = {
        "clips": int(len(ref)),
        "agreement": float(agree.mean()),
        "cos_mean": float(cos.mean()),
        "cos_min": float(cos.min()),
        "max_abs": float(err.max()),
        "logit_scale": scale,
        "max_abs_rel": float(err.max() / scale),
        "per_class_agreement": {},
        "cosines": [float(c) for c in cos],
    }
    for c in np.unique(p_ref):
        mask = p_ref == c
        m["per_class_agreement"][classes[c] if c < len(classes) else str(c)] = {
            "clips": int(mask.sum()), "agreement": float(agree[mask].mean())}
    lab = None if labels is None else np.asarray(labels)
    if lab is not None and (lab >= 0).any():
        known = lab >= 0
        acc_ref = float((p_ref[known] == lab[known]).mean() * 100)
        acc_art = float((p_art[known] == lab[known]).mean() * 100)
        m.update(labelled=int(known.sum()), accuracy_ref=acc_ref, accuracy_art=acc_art, accuracy_delta=acc_art - acc_ref)
    else:
        m.update(labelled=0, accuracy_ref=None, accuracy_art=None, accuracy_delta=None)
    return m


def judge(metrics: dict[str, Any], budget: Budget) -> list[str]:
    """The budget lines ``metrics`` break (empty: passed)."""
    fails = []

    def low(key, limit, what):
        if limit is not None and metrics[key] < limit:
            fails.append(f"{what} {metrics[key]:.6g} < {limit:g}")

    if budget.max_abs_rel is not None and metrics["max_abs_rel"] > budget.max_abs_rel:
        fails.append(f"max abs error / logit scale {metrics['max_abs_rel']:.3g} > {budget.max_abs_rel:g}")
    low("agreement", budget.min_agreement, "top-1 agreement")
    low("cos_mean", budget.min_cos_mean, "mean cosine")
    low("cos_min", budget.min_cos_min, "min cosine")
    if budget.max_acc_drop is not None and metrics.get("accuracy_delta") is not None:
        if -metrics["accuracy_delta"] > budget.max_acc_drop:
            fails.append(f"accuracy loss {-metrics['accuracy_delta']:.2f} points > {budget.max_acc_drop:g}")
    return fails


# --- running -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_polygraphy():
    from polygraphy.logger import G_LOGGER

    old = G_LOGGER.module_severity
    G_LOGGER.module_severity = G_LOGGER.ERROR
    try:
        yield
    finally:
        G_LOGGER.module_severity = old


def artifact_runner(path: str | Path, threads: int | None = None, plugins: list[str] | None = None, mark_all: bool = False):
    """The runner that executes an artifact the way its backend would (see the module docstring)."""
    from .engines import EngineError, open_runner
    from .engines.onnxrt import onnxrt_runner

    path = Path(path)
    if path.suffix.lower() == ".onnx":
        info = artifacts.read_info(path)
        basic = info.precision == "int8" and (info.backend == "tensorrt" or _foreign_vnni(info))
        return onnxrt_runner(path, threads=threads, mark_all=mark_all, basic_optimizations=basic,
                             fp16=info.precision == "fp16")
    if mark_all:
        raise EngineError("layerwise comparison needs an ONNX artifact")
    if path.suffix.lower() in (".plan", ".engine"):  # a plan with the plugin node needs its library registered
        from .engines.trt import find_plugin_library

        lib = find_plugin_library(plugins[0] if plugins else None)
        plugins = [str(lib)] if lib else []
    return open_runner(path, threads=threads, plugins=plugins)


def _foreign_vnni(info) -> bool:
    """An INT8 artifact made for a VNNI CPU (8-bit weights), checked on an x86 CPU without VNNI: there ONNX
    Runtime's fused u8*s8 kernels saturate on such weights, so the gate runs the Q/DQ graph unfused (exact
    integer products in float), which is what the target's VNNI kernels compute."""
    from .quantize import cpu_isa

    return info.recipe.get("cpu_isa") == "x86-vnni" and cpu_isa() == "x86"


def run_logits(runner, clips: np.ndarray, input_name: str = "clip", output_name: str = "logits", batch: int = 8,
               progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Logits of one runner over ``clips`` in batches (Polygraphy's Comparator drives the runner)."""
    from polygraphy.comparator import Comparator

    feeds = [{input_name: clips[i:i + batch]} for i in range(0, len(clips), batch)]
    with quiet_polygraphy():
        results = Comparator.run([runner], data_loader=_Progress(feeds, progress))
    _, iterations = list(results.items())[0]
    return np.concatenate([np.asarray(it[output_name], np.float32) for it in iterations])


def reference_logits(reference: str | Path, clips: np.ndarray, progress=None) -> np.ndarray:
    """The FP32 PyTorch model's logits: compute once, pass to every ``check`` of the same clips."""
    from .engines.pyt import TorchRunner

    return run_logits(TorchRunner.from_checkpoint(reference), clips, progress=progress)


class _Progress:
    """A Comparator data loader that reports how far it got (in clips)."""

    def __init__(self, feeds, progress):
        self.feeds, self.progress = feeds, progress
        self.total = sum(len(next(iter(f.values()))) for f in feeds)

    def __iter__(self):
        done = 0
        for f in self.feeds:
            yield f
            done += len(next(iter(f.values())))
            if self.progress:
                self.progress(done, self.total)

    def __len__(self):
        return len(self.feeds)


# --- layerwise -----------------------------------------------------------------------------------------
def layerwise(reference_onnx: str | Path, artifact_onnx: str | Path, clips: np.ndarray, input_name: str,
              top: int = 10, quantized: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Nodes whose outputs add the most error, largest first.

    Every tensor both graphs compute is compared (relative L2 error over ``clips``); a node's
    ``growth`` is its output's error minus the largest error of its inputs: the error it adds.
    """
    import onnx

    from .engines.onnxrt import onnxrt_runner

    ref_model = onnx.load(str(reference_onnx))
    feeds = {input_name: clips}
    with quiet_polygraphy():
        with onnxrt_runner(ref_model, mark_all=True) as r:
            ref = {k: np.asarray(v) for k, v in r.infer(feeds).items()}
        with artifact_runner(artifact_onnx, mark_all=True) as r:
            art = {k: np.asarray(v) for k, v in r.infer(feeds).items()}

    def rel_err(name: str) -> float | None:
        a, b = ref.get(name), art.get(name)
        if a is None or b is None or a.shape != b.shape or not np.issubdtype(a.dtype, np.floating):
            return None
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        n = np.linalg.norm(a64)
        return float(np.linalg.norm(a64 - b64) / n) if n > 0 else None

    errs: dict[str, float] = {}
    rows = []
    qset = set(quantized)
    for node in ref_model.graph.node:
        outs = {o: e for o in node.output if (e := rel_err(o)) is not None}
        if not outs:
            continue
        errs.update(outs)
        before = max((errs.get(i, 0.0) for i in node.input), default=0.0)
        after = max(outs.values())
        rows.append({"node": node.name, "op": node.op_type, "error": after, "input_error": before,
                     "growth": after - before, "quantized": node.name in qset})
    rows.sort(key=lambda r: r["growth"], reverse=True)
    return rows[:top] if top else rows


def streaming_metrics(encoder: str | Path, head: str | Path, clips: np.ndarray, ref: np.ndarray, cfg) -> dict[str, Any]:
    """The streaming pair (encoder per unit, then head) against the reference logits: agreement, cosine."""
    k = cfg.unit_frames
    with quiet_polygraphy():
        units = [run_logits(artifact_runner(encoder), np.ascontiguousarray(clips[:, i:i + k]), "unit", "embedding")
                 for i in range(0, cfg.frames, k)]
        logits = run_logits(artifact_runner(head), np.stack(units, axis=1), "units", "logits")
    m = compare_logits(ref, logits, None, [])
    return {key: m[key] for key in ("clips", "agreement", "cos_mean", "cos_min", "max_abs_rel")}


# --- the gate ----------------------------------------------------------------------------------------
@dataclass
class CheckReport:
    precision: str
    backend: str
    metrics: dict[str, Any]
    budget: dict[str, Any]
    passed: bool
    artifacts: dict[str, Any]
    failures: list[str] = field(default_factory=list)
    reference: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    layerwise: list[dict[str, Any]] = field(default_factory=list)
    auto_exclude: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateData:
    """Held-out clips for the gate: normalised float32 (n, T, 3, S, S), labels (-1: unknown)."""

    clips: np.ndarray
    labels: np.ndarray
    description: dict[str, Any]


def gate_data(spec: str, cfg, classes: Sequence[str], split: str = GATE_SPLIT, clips: int = GATE_CLIPS,
              seed: int = GATE_SEED, progress=None, max_lost: float | None = None) -> GateData:
    """Held-out clips for the gate; a video damaged past ``max_lost`` of its time is refused."""
    from .data import DatasetError, load_clips

    try:
        x, y = load_clips(spec, cfg, split, clips, seed, classes, progress, damage="refuse", max_lost=max_lost)
    except DatasetError as e:
        raise CheckError(str(e)) from None
    return GateData(x, y, {"spec": spec, "split": split, "clips": int(len(x)), "seed": seed})


def check(
    artifact: str | Path,
    data: GateData | str,
    reference: str | Path | None = None,
    precision: str | None = None,
    budget_overrides: dict[str, float] | None = None,
    reference_onnx: str | Path | None = None,
    threads: int | None = None,
    plugins: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    ref_logits: np.ndarray | None = None,
    *,
    split: str = GATE_SPLIT,
    clips: int = GATE_CLIPS,
    seed: int = GATE_SEED,
    max_lost: float | None = None,
    step: Callable | None = None,
) -> CheckReport:
    """Run the gate on ``artifact`` (an ONNX file, a plan, or a build / export folder: its model.onnx).

    ``data``: decoded clips (GateData), or a data spec whose ``split`` gives ``clips`` clips (``seed``;
    a video damaged past ``max_lost`` is refused). ``reference``: the FP32 checkpoint (else
    ``reference_onnx``, the FP32 export, stands in, and the report says so; by default the FP32 ONNX
    the build's manifest records); ``ref_logits``: its logits on the clips when already computed.
    ``reference_onnx`` also enables the layerwise comparison when over budget. ``step(name, done,
    total)``: progress of the whole check (decoding, running)."""
    from .engines import EngineError

    artifact = Path(artifact)
    if artifact.is_dir():
        artifact = artifact / "model.onnx"
    if not artifact.exists():
        raise CheckError(f"no artifact at {artifact}")
    notes = []
    info = artifact_facts(artifact)  # what it is, before seconds of decoding clips
    if step is not None:
        progress = progress or (lambda d, t: step("running", d, t))
    if isinstance(data, str):
        if reference is None:
            raise CheckError("a data spec needs the checkpoint to read it as the model does: give --reference")
        from .model import CheckpointError, ModelConfig, read_checkpoint

        try:
            meta = read_checkpoint(reference)
        except CheckpointError as e:
            raise CheckError(str(e)) from None
        data = gate_data(data, ModelConfig.from_dict(meta["config"]), meta["classes"], split, clips, seed,
                         progress=(lambda d, t: step("decoding clips", d, t)) if step else None, max_lost=max_lost)
    if reference_onnx is None:
        manifest = artifacts.Manifest.load(artifact) if artifact.suffix == ".onnx" else None
        reference_onnx = manifest.source("model") if manifest else None
    precision = precision or info.get("precision", "fp32")
    if precision not in DEFAULT_BUDGETS:
        raise CheckError(f"unknown precision {precision!r}")
    budget = DEFAULT_BUDGETS[precision].replace(budget_overrides or {})
    try:
        if reference is not None:
            ref_label = str(reference)
            ref = ref_logits if ref_logits is not None else reference_logits(reference, data.clips, progress)
        elif reference_onnx is not None:
            from .engines.onnxrt import onnxrt_runner

            ref = run_logits(onnxrt_runner(reference_onnx, threads=threads), data.clips, progress=progress)
            ref_label = f"{reference_onnx} (FP32 ONNX: the checkpoint was not given)"
            notes.append("reference: the FP32 ONNX export stood in for the PyTorch model")
        else:
            raise CheckError("no reference: give --reference CHECKPOINT")
        art = run_logits(artifact_runner(artifact, threads=threads, plugins=plugins), data.clips, progress=progress)
    except EngineError as e:
        raise CheckError(str(e)) from None
    metrics = compare_logits(ref, art, data.labels, info.get("classes", []))
    fails = judge(metrics, budget)
    if metrics["accuracy_delta"] is None and budget.max_acc_drop is not None:
        notes.append("accuracy not measured: the clips carry no labels of the model's classes")
    report = CheckReport(
        precision=precision,
        backend=_backend_label(artifact, info),
        metrics=metrics,
        budget={k: v for k, v in asdict(budget).items() if v is not None},
        passed=not fails,
        artifacts={"artifact": str(artifact), "sha256": artifacts.file_sha256(artifact) if artifact.is_file() else ""},
        failures=fails,
        reference=ref_label,
        data=data.description,
        notes=notes,
    )
    if fails and (reference_onnx is None or artifact.suffix != ".onnx"):
        report.notes.append("no layerwise comparison: it needs an ONNX artifact and the FP32 ONNX it was built from "
                            "(the build's manifest.json records it)")
    elif fails:
        import onnx

        from .quantize import quantized_nodes

        q = quantized_nodes(onnx.load(str(artifact), load_external_data=False), ("MatMul", "Gemm", "Conv"))
        report.layerwise = layerwise(reference_onnx, artifact, data.clips[:4], "clip", quantized=q)
    return report


def artifact_facts(path: Path) -> dict[str, Any]:
    """Precision, backend and classes of an artifact (ONNX or plan); a CheckError naming what the file
    is when it is neither."""
    if path.suffix == ".onnx":
        i = artifacts.read_info(path)
        return {"precision": i.precision, "backend": i.backend, "classes": i.classes}
    from .artifact import KINDS, PLAN_SUFFIXES, sniff

    if path.suffix.lower() not in PLAN_SUFFIXES:
        kind = sniff(path)
        what = KINDS[kind] if kind != "unknown" else "not an ONNX model or a TensorRT plan"
        raise CheckError(f"{path} is {what}: check takes an exported or built artifact (ONNX, plan, or its folder) "
                         "and the checkpoint as --reference")
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        return {"precision": m.get("precision"), "backend": "tensorrt", "classes": m.get("classes", [])}
    raise CheckError(f"{path.name}: a plan needs the manifest.json its build wrote next to it")


def _backend_label(path: Path, info: dict[str, Any]) -> str:
    if path.suffix != ".onnx":
        return "tensorrt"
    if info.get("backend") == "tensorrt" and info.get("precision") == "int8":
        return "onnxruntime-cpu (TensorRT Q/DQ simulated: basic graph optimisations)"
    return "onnxruntime-cpu"


# --- report files -------------------------------------------------------------------------------------
def write_report(report: CheckReport, out_dir: str | Path) -> dict[str, Path]:
    """report.json, report.md and report.png in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md"}
    png = _plot(report, out_dir / "report.png")
    if png:
        paths["png"] = png
    from .files import write_atomic

    d = report.to_dict()  # each file whole or not at all, whatever stops the command
    write_atomic(paths["json"], (json.dumps(d, indent=2) + "\n").encode())
    write_atomic(paths["md"], _markdown(report, png.name if png else None).encode())
    return paths


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _limit(budget: dict[str, Any], key: str, how: str) -> str:
    return f"{how} {budget[key]:g}" if key in budget else "not budgeted"


def _markdown(r: CheckReport, png: str | None) -> str:
    m = r.metrics
    verdict = "PASSED" if r.passed else "FAILED"
    lines = [
        f"# Gate: {verdict} ({r.precision}, {r.backend})",
        "",
        f"- artifact: `{r.artifacts.get('artifact')}`",
        f"- reference: `{r.reference}`",
        f"- data: `{r.data.get('spec')}` split {r.data.get('split')}, {m['clips']} clips ({m['labelled']} labelled)",
        "",
        "| metric | value | budget |",
        "| --- | --- | --- |",
        f"| top-1 agreement | {m['agreement']:.4f} | {_limit(r.budget, 'min_agreement', '>=')} |",
        f"| accuracy reference / artifact (%) | {_fmt(m['accuracy_ref'])} / {_fmt(m['accuracy_art'])} | |",
        f"| accuracy delta (points) | {_fmt(m['accuracy_delta'])} | {_limit(r.budget, 'max_acc_drop', 'loss <=')} |",
        f"| logits cosine mean | {m['cos_mean']:.6f} | {_limit(r.budget, 'min_cos_mean', '>=')} |",
        f"| logits cosine min | {m['cos_min']:.6f} | {_limit(r.budget, 'min_cos_min', '>=')} |",
        f"| max abs error (/ logit scale {m['logit_scale']:.4g}) | {m['max_abs']:.4g} ({m['max_abs_rel']:.3g}) | "
        f"{_limit(r.budget, 'max_abs_rel', '<=')} |",
        "",
    ]
    if "streaming" in m:
        st = m["streaming"]
        lines += [f"Streaming form (encoder per unit + head, {st['clips']} clips, not budgeted): agreement "
                  f"{st['agreement']:.4f}, cosine mean {st['cos_mean']:.6f} min {st['cos_min']:.6f}", ""]
    if r.failures:
        lines += ["## Over budget", ""] + [f"- {f}" for f in r.failures] + [""]
    lines += ["## Per-class agreement (by the reference's top-1)", "", "| class | clips | agreement |", "| --- | --- | --- |"]
    for c, v in sorted(m["per_class_agreement"].items()):
        lines.append(f"| {c} | {v['clips']} | {v['agreement']:.3f} |")
    if r.layerwise:
        lines += ["", "## Layers that add the most error", "", "| node | op | INT8 | output rel. error | added |", "| --- | --- | --- | --- | --- |"]
        for row in r.layerwise:
            lines.append(f"| `{row['node']}` | {row['op']} | {'yes' if row['quantized'] else ''} | {row['error']:.4g} | {row['growth']:.4g} |")
    if r.auto_exclude:
        kept = r.auto_exclude.get("kept", [])
        lines += ["", f"## Auto-exclude: {len(kept)} layer(s) kept out of INT8", ""] + [f"- `{k}`" for k in kept]
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    if png:
        lines += ["", f"![gate]({png})"]
    return "\n".join(lines) + "\n"


def _plot(r: CheckReport, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        r.notes.append("no plot: matplotlib is not installed")
        return None
    m = r.metrics
    panels = 3 if r.layerwise else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6))
    cos = np.asarray(m["cosines"])
    axes[0].hist(1.0 - cos, bins=30, color="tab:blue")
    axes[0].set_xlabel("1 - logits cosine (per clip)")
    axes[0].set_ylabel("clips")
    for key in ("min_cos_min", "min_cos_mean"):
        if key in r.budget:
            axes[0].axvline(1.0 - r.budget[key], color="tab:red", ls="--", label=key)
    if any(k in r.budget for k in ("min_cos_min", "min_cos_mean")):
        axes[0].legend(fontsize=7)
    names = sorted(m["per_class_agreement"])
    axes[1].bar(range(len(names)), [m["per_class_agreement"][n]["agreement"] for n in names], color="tab:green")
    axes[1].set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    axes[1].set_ylim(0, 1.05)
    axes[1].set_ylabel("top-1 agreement")
    if "min_agreement" in r.budget:
        axes[1].axhline(r.budget["min_agreement"], color="tab:red", ls="--")
    if r.layerwise:
        rows = r.layerwise[::-1]
        axes[2].barh(range(len(rows)), [row["growth"] for row in rows],
                     color=["tab:orange" if row["quantized"] else "tab:gray" for row in rows])
        axes[2].set_yticks(range(len(rows)), [row["node"][-28:] for row in rows], fontsize=6)
        axes[2].set_xlabel("relative error added")
    fig.suptitle(f"{r.precision} {'passed' if r.passed else 'FAILED'}: agreement {m['agreement']:.3f}, cos mean {m['cos_mean']:.4f}")
    fig.tight_layout()
    from .files import write_atomic

    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path
