"""`inti-edge build` and `inti-edge quantize`: an export (or checkpoint) -> fp32 / fp16 / int8 artifacts for a
target, then (build) the bundle and plans; the gate where --data names clips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def _batch(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        b = tuple(int(v) for v in text.split(","))
        if len(b) != 3 or not 1 <= b[0] <= b[1] <= b[2]:
            raise ValueError
    except ValueError:
        raise typer.BadParameter("--batch takes MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX, e.g. 1,8,32") from None
    return b  # type: ignore[return-value]


QUANTIZE_HELP = ("Quantize an export (or checkpoint) for a target's runtime: FP16 / INT8 ONNX and manifest.json, "
                 "the gate where --data names clips; no bundle, no TensorRT plan (that is `build`).")


def build(
    ctx: typer.Context,
    model: Path = typer.Argument(..., help="Export folder, its model.onnx, or a checkpoint (.pt: exported first)."),
    precision: str = typer.Option("fp16", "--precision", "-p", help="fp32, fp16 or int8."),
    target: str = typer.Option("cpu", "--target", "-t", help="cpu (cpu-x86, cpu-vnni, cpu-arm), gpu, h100, a100, l4, orin, thor."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    calib: Optional[str] = typer.Option(None, "--calib", help="Calibration manifest (.json) or data spec (default: calibration/default.json)."),
    calib_clips: Optional[int] = typer.Option(None, "--calib-clips", help="Override the manifest's clip count."),
    calib_method: str = typer.Option("entropy", "--calib-method", help="entropy or max."),
    calib_cache: Optional[str] = typer.Option(None, "--calib-cache", help="Folder of cached calibration clips."),
    exclude: List[str] = typer.Option([], "--exclude", help="Regex of node names kept out of INT8 (repeatable)."),
    op_types: Optional[str] = typer.Option(None, "--op-types", help="INT8 op types, comma-separated (default: TensorRT: MatMul,Gemm,Conv; CPU: MatMul,Gemm)."),
    attention: Optional[bool] = typer.Option(None, "--attention/--no-attention", help="INT8 attention matmuls (QK^T, AV) too (default: no; slower on CPU, less accurate)."),
    data: Optional[str] = typer.Option(None, "--data", help="Held-out clips for the gate (data spec)."),
    split: str = typer.Option("test", "--split", help="Split of --data the gate uses."),
    clips: int = typer.Option(256, "--clips", help="Gate clips (motion specs; labelled specs: at most one per video)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="FP32 checkpoint for the gate (default: the one the export recorded)."),
    budget: List[str] = typer.Option([], "--budget", help="Override a gate budget, KEY=VALUE (repeatable), e.g. min_agreement=0.97."),
    auto_exclude: bool = typer.Option(False, "--auto-exclude", help="INT8 over budget: keep the most sensitive layers out of INT8 until it holds."),
    forms: str = typer.Option("model,encoder,head", "--forms", help="Which exported forms to build."),
    batch: Optional[str] = typer.Option(None, "--batch", help="TensorRT profile MIN,OPT,MAX (default: target's)."),
    static_batch: Optional[int] = typer.Option(None, "--static-batch", help="Fixed batch size (static shapes; Jetson)."),
    workspace: Optional[int] = typer.Option(None, "--workspace", help="TensorRT workspace limit, MiB (default: target's)."),
    opt_level: int = typer.Option(3, "--opt-level", min=0, max=5, help="TensorRT builder optimisation level."),
    version_compatible: bool = typer.Option(False, "--version-compatible", help="Plan that runs on newer TensorRT runtimes."),
    timing_cache: Optional[str] = typer.Option(None, "--timing-cache", help="TensorRT timing cache file (default: OUT/timing.cache)."),
    plugin: Optional[str] = typer.Option(None, "--plugin", help="Plugin library for a local TensorRT build."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime threads for the gate."),
    max_lost: float = typer.Option(0.25, "--max-lost", help="A video that lost more than this fraction of its time to damage is skipped for calibration and refused for the gate."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest and gate report as one JSON object."),
) -> None:
    """Build artifacts for a target; the gate runs at the end (exit 1 when over budget)."""
    from rich.console import Console
    from inti_edge.build import BuildOptions
    from inti_edge.build import build as run_build
    from inti_edge.build import quantize as run_quantize
    from inti_edge.check import parse_budget
    from inti_edge.commands import fail, input_errors
    from inti_edge.progress import step_bar

    console = Console(stderr=True, soft_wrap=True)  # one message, one line
    try:
        opts = BuildOptions(
            precision=precision, target=target, calib=calib, calib_clips=calib_clips, calib_method=calib_method,
            calib_cache=calib_cache, exclude=tuple(exclude),
            op_types=tuple(t.strip() for t in op_types.split(",") if t.strip()) if op_types else None, attention=attention,
            data=data, gate_split=split, gate_clips=clips, reference=str(reference) if reference else None,
            budget=parse_budget(budget), auto_exclude=auto_exclude,
            forms=tuple(f.strip() for f in forms.split(",") if f.strip()), batch=_batch(batch), static_batch=static_batch,
            workspace_mib=workspace, opt_level=opt_level, version_compatible=version_compatible,
            timing_cache=timing_cache, plugin=plugin, threads=threads, max_lost=max_lost,
        )
        bar, progress = step_bar(console, disable=as_json)
        with bar:
            stage = run_quantize if ctx.info_name == "quantize" else run_build  # the one function per command
            result = stage(model, out, opts, progress=progress)
    except input_errors() as e:
        fail(str(e), console)
    report = result.report
    if as_json:
        print(json.dumps({"manifest": result.manifest, "report": report.to_dict() if report else None,
                          "messages": result.messages}))
    else:
        for m in result.messages:
            console.print(m)
        console.print(f"wrote {out}/ ({', '.join(sorted(result.manifest['artifacts']))}"
                      f"{', plans' if result.plans else ''}{', bundle/' if (out / 'bundle').is_dir() else ''}, manifest.json)")
        if report is not None:
            from inti_edge.commands.check import print_report

            print_report(report, console)
    if report is not None and not report.passed:
        raise typer.Exit(1)
