"""`inti-edge bench`: reproduce the project's speed figures (JSON, markdown table, PNG plots)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def bench(
    suite: str = typer.Option("all", "--suite", "-s", help="flops | gpu | cpu | plugin | data | stream | all (or several, comma separated)."),
    quick: bool = typer.Option(False, "--quick", help="Fewer calls per repetition and smaller sweeps (still medians of >= 5 repetitions)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object (nothing else on stdout)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write bench.json, bench.md and the PNG plots here."),
    work: Optional[Path] = typer.Option(None, "--work", help="Scratch folder for exports, builds and made videos (default runs/bench; reused)."),
    parts: Optional[str] = typer.Option(None, "--parts", help="Only these parts of the suites, comma separated (stream: ratio,rtf,live,gpu; gpu: infer,sweep,dtypes,train,compile)."),
) -> None:
    """Time InTI against the naive baseline and the runtimes: one timing core, medians of interleaved repetitions."""
    from rich.console import Console

    from inti_edge.bench import BenchError, bench as run_bench
    from inti_edge.bench.report import markdown
    from inti_edge.commands import fail
    from inti_edge.progress import step_bar

    console = Console(stderr=True, soft_wrap=True)
    if out is not None and out.exists() and not out.is_dir():
        fail(f"-o {out}: exists and is not a folder")
    bar, update = step_bar(console, disable=as_json)
    try:
        with bar:
            result = run_bench(suite, quick=quick, out=out, work=work, parts=parts, update=update,
                               log=lambda line: console.print(line, highlight=False))
    except BenchError as e:
        fail(str(e), console)
    if as_json:
        print(json.dumps(result))
        return
    from rich.markdown import Markdown

    Console().print(Markdown(markdown(result)))
    if out is not None:
        console.print(f"wrote {out / 'bench.json'}, {out / 'bench.md'} and the plots")
