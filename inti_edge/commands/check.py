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
    from inti_edge.build import rebuild_auto_exclude
    from inti_edge.commands import fail, input_errors
    from inti_edge.progress import step_bar

    console = Console(stderr=True, soft_wrap=True)  # one message, one line
    try:
        overrides = ck.parse_budget(budget)
        bar, update = step_bar(console, disable=as_json)
        with bar:
            if auto_exclude:
                report = rebuild_auto_exclude(artifact, reference, data, split, clips, overrides, threads, update)
            else:
                report = ck.check(artifact, data, reference=reference, precision=precision, budget_overrides=overrides,
                                  threads=threads, plugins=[plugin] if plugin else None, split=split, clips=clips,
                                  seed=seed, max_lost=max_lost, step=update)
        folder = artifact if artifact.is_dir() else artifact.parent
        paths = ck.write_report(report, out or folder)
    except input_errors() as e:
        fail(str(e), console)
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        print_report(report, console)
        console.print(f"wrote {paths['json']}, {paths['md']}")
    if not report.passed:
        raise typer.Exit(1)
