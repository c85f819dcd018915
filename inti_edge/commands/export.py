"""`inti-edge export`: a checkpoint -> ONNX (one TokenInterpolation node; encoder/head streaming form)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def export(
    checkpoint: Path = typer.Argument(..., help="inti-edge checkpoint (.pt) to export."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: model.onnx, encoder.onnx, head.onnx."),
    plugin_only: bool = typer.Option(
        False, "--plugin-only", help="Also write *.plugin.onnx without the local function (TensorRT < 10.7 with the plugin)."
    ),
    plain: bool = typer.Option(False, "--plain", help="Decomposed interpolation instead of the single plugin node."),
    streaming: bool = typer.Option(True, "--streaming/--no-streaming", help="Also export encoder (one unit) and head."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (>= 17: LayerNormalization stays whole)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Export a checkpoint to ONNX with dynamic batch; config, classes and preprocessing in the metadata."""
    from rich.console import Console

    from inti_edge.progress import step_bar

    from inti_edge.commands import fail
    from inti_edge.artifact import ArtifactError, read_info
    from inti_edge.export import export as run_export
    from inti_edge.model import CheckpointError

    console = Console(stderr=True, soft_wrap=True)  # one message, one line
    if plain and plugin_only:
        fail("--plain and --plugin-only exclude each other", console)
    try:
        bar, update = step_bar(console, disable=as_json)
        with bar:
            update("loading checkpoint")
            paths = run_export(checkpoint, out, plugin_only=plugin_only, plain=plain, streaming=streaming,
                                      opset=opset, progress=lambda form: update(f"exporting {form}"))
    except (ArtifactError, CheckpointError) as e:
        fail(str(e), console)
    rows = []
    for name, p in paths.items():
        info = read_info(p)
        rows.append({"name": name, "path": str(p), "bytes": p.stat().st_size, "interpolation": info.interpolation,
                     "input": info.input_name, "output": info.output_name})
    if as_json:
        print(json.dumps({"files": rows}))
        return
    from rich.table import Table

    table = Table(title=f"exported {checkpoint.name}")
    for col in ("file", "MB", "interpolation", "input -> output"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["path"], f"{r['bytes'] / 1e6:.1f}", r["interpolation"], f"{r['input']} -> {r['output']}")
    Console().print(table)
