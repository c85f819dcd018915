"""`inti-edge check`: the accuracy-regression gate of an artifact against the FP32 PyTorch model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def print_report(report, console) -> None:
    """A short human summary of a CheckReport."""
    m = report.metrics
    verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
    acc = "n/a" if m["accuracy_delta"] is None else f"{m['accuracy_ref']:.2f}% -> {m['accuracy_art']:.2f}% ({m['accuracy_delta']:+.2f})"
    console.print(f"gate {verdict} {report.precision} ({report.backend}) on {m['clips']} clips: agreement {m['agreement']:.4f}, "
                  f"cosine mean {m['cos_mean']:.5f} min {m['cos_min']:.5f}, max abs {m['max_abs']:.3g} "
                  f"({m['max_abs_rel']:.2g} of scale), accuracy {acc}")
    for f in report.failures:
        console.print(f"  over budget: {f}")
    for row in report.layerwise[:5]:
        console.print(f"  adds error: {row['node']} ({row['op']}{', int8' if row['quantized'] else ''}) +{row['growth']:.4f}")
    if report.auto_exclude:
        kept = report.auto_exclude["kept"]
        console.print(f"  auto-exclude kept {len(kept)} layer(s) in {report.auto_exclude['kept_precision']}: {', '.join(kept)}")


def check(
    artifact: Path = typer.Argument(..., help="ONNX artifact, TensorRT plan, or a build folder (its model.onnx)."),
    reference: Path = typer.Option(..., "--reference", help="The FP32 checkpoint (.pt)."),
    data: str = typer.Option(..., "--data", help="Held-out clips (data spec)."),
    split: str = typer.Option("test", "--split", help="Split of --data."),
    clips: int = typer.Option(256, "--clips", help="Clips (motion specs; labelled specs: at most one per video)."),
    seed: int = typer.Option(1, "--seed", help="Which clips of a motion spec."),
    budget: List[str] = typer.Option([], "--budget", help="Override a budget, KEY=VALUE (repeatable)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Budget to apply (default: the artifact's precision)."),
    auto_exclude: bool = typer.Option(False, "--auto-exclude", help="INT8 build over budget: re-quantize keeping the most sensitive layers out of INT8."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (default: the artifact's folder)."),
    plugin: Optional[str] = typer.Option(None, "--plugin", help="Plugin library (TensorRT plans)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime threads."),
    max_lost: float = typer.Option(0.25, "--max-lost", help="Refuse a video that lost more than this fraction of its time to damage."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json's object."),
) -> None:
    """Compare an artifact with the FP32 model on held-out clips; exit 1 when over budget."""
    from rich.console import Console
    from inti_edge import check as ck
    from inti_edge.commands import fail, step_bar
    from inti_edge.engines import EngineError
    from inti_edge.artifact import ArtifactError
    from inti_edge.model import CheckpointError
    from inti_edge.quantize import QuantizeError

    console = Console(stderr=True, soft_wrap=True)  # one message, one line
    try:
        if artifact.is_dir():
            artifact = artifact / "model.onnx"
        if not artifact.exists():
            raise ck.CheckError(f"no artifact at {artifact}")
        ck.artifact_facts(artifact)  # what it is, before seconds of decoding clips
        overrides = ck.parse_budget(budget)
        bar, update = step_bar(console, disable=as_json)

        def progress(name):
            return lambda done, total: update(name, done, total)

        with bar:
            if auto_exclude:
                report = _auto_exclude(artifact, reference, data, split, clips, overrides, threads, update)
            else:
                from inti_edge.model import read_checkpoint

                meta = read_checkpoint(reference)
                from inti_edge.model import ModelConfig

                cfg = ModelConfig.from_dict(meta["config"])
                gate = ck.gate_data(data, cfg, meta["classes"], split, clips, seed, progress=progress("decoding clips"),
                                    max_lost=max_lost)
                src = _fp32_source(artifact)
                report = ck.check(artifact, gate, reference=reference, precision=precision, budget_overrides=overrides,
                                  reference_onnx=src, threads=threads, plugins=[plugin] if plugin else None,
                                  progress=progress("running"))
        paths = ck.write_report(report, out or artifact.parent)
    except (ck.CheckError, EngineError, ArtifactError, QuantizeError, CheckpointError) as e:
        fail(str(e), console)
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        print_report(report, console)
        console.print(f"wrote {paths['json']}, {paths['md']}")
    if not report.passed:
        raise typer.Exit(1)


def _fp32_source(artifact: Path) -> Path | None:
    """The FP32 ONNX an artifact was built from (for the layerwise comparison), when its build recorded it."""
    manifest = artifact.parent / "manifest.json"
    if artifact.suffix != ".onnx" or not manifest.is_file():
        return None
    from inti_edge.build import manifest_path

    src = json.loads(manifest.read_text()).get("inputs", {}).get("onnx", {}).get("model", {}).get("path")
    return manifest_path(manifest, src) if src and manifest_path(manifest, src).is_file() else None


def _auto_exclude(artifact: Path, reference: Path, data: str, split: str, clips: int, overrides, threads, progress):
    """Re-run the build that made ``artifact`` (its manifest.json) with --auto-exclude."""
    from inti_edge.check import CheckError
    from inti_edge.build import BuildOptions, build

    manifest_path = artifact.parent / "manifest.json"
    if not manifest_path.is_file():
        raise CheckError("--auto-exclude re-quantizes a build: the artifact needs the manifest.json its build wrote")
    m = json.loads(manifest_path.read_text())
    if m["precision"] != "int8":
        raise CheckError(f"--auto-exclude is for INT8 builds; this one is {m['precision']}")
    calib = artifact.parent / "calibration.json"
    rec = m["recipe"]
    cal = (m["inputs"].get("calibration") or {})
    opts = BuildOptions(
        precision="int8", target=m["target"]["name"], calib=str(calib),
        calib_cache=str(Path(cal["cache"]).parent) if cal.get("cache") else None, calib_method=rec["method"],
        exclude=tuple(rec["exclude"]), op_types=tuple(rec["op_types"]), attention=rec.get("attention"), data=data, gate_split=split, gate_clips=clips,
        reference=str(reference), budget=overrides, auto_exclude=True, forms=tuple(m["artifacts"]),
        batch=tuple(m["build"]["batch"]), static_batch=m["build"]["static_batch"],
        workspace_mib=m["build"]["workspace_mib"], opt_level=m["build"]["opt_level"],
        version_compatible=m["build"]["version_compatible"], threads=threads,
    )
    from inti_edge.build import manifest_path as recorded

    source = recorded(manifest_path, m["inputs"]["onnx"]["model"]["path"])
    result = build(source, artifact.parent, opts, progress=progress)
    return result.report
