"""`inti-edge flops`: counted GFLOPs of InTI vs the naive baseline."""

from __future__ import annotations

import json

import typer


def flops(
    model: str = typer.Option("vit-b16", "--model", "-m", help="Preset: vit-b16, vit-l14 or small."),
    frames: int = typer.Option(8, "--frames", "-t", help="Frames per clip."),
    halvings: int = typer.Option(1, "--halvings", help="Interpolation steps (1: T->T/2, 2: T->T/4)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Count GFLOPs (multiply-adds) by running the model: InTI, naive, ratio, weight network."""
    from rich.console import Console
    from rich.table import Table

    from inti_edge.commands import fail
    from inti_edge.model.config import PRESETS
    from inti_edge.model.flops import flops as count_flops

    console = Console(stderr=True)
    if model not in PRESETS:
        fail(f"unknown model {model!r}; choose one of {', '.join(PRESETS)}", console)
    try:
        report = count_flops(model, frames, halvings)
    except ValueError as e:
        fail(str(e), console)
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"{model}, {frames} frames, {halvings} halving(s) — GFLOPs = GMACs per clip")
    for col in ("InTI", "naive", "ratio", "saving", "weight net", "weight net share"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{report['inti_gflops']:.2f}",
        f"{report['naive_gflops']:.2f}",
        f"{report['ratio']:.3f}",
        f"{100 * report['saving']:.1f}%",
        f"{report['weightnet_gflops']:.3f}",
        f"{100 * report['weightnet_fraction']:.3f}%",
    )
    Console().print(table)
