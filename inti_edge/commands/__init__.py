"""One module per CLI command: a Typer-typed function that parses, calls the package, prints.

Heavy imports (torch, onnx, av) stay inside the functions, so `inti-edge --help` is instant and a
deploy-only install never imports training code.
"""
from __future__ import annotations

from typing import NoReturn

import typer


def fail(msg: str, console=None) -> NoReturn:
    """Bad input: one line on stderr, exit code 2, no traceback."""
    if console is None:
        from rich.console import Console

        console = Console(stderr=True, soft_wrap=True)
    console.print(f"[red]error:[/] {msg}", highlight=False)
    raise typer.Exit(2)


def input_errors() -> tuple[type[Exception], ...]:
    """The package's errors that name bad input (a file, an option, a model): the commands that quantize,
    build and check print them in one line (``fail``)."""
    from inti_edge.artifact import ArtifactError
    from inti_edge.check import CheckError
    from inti_edge.engines import EngineError
    from inti_edge.model import CheckpointError
    from inti_edge.quantize import QuantizeError

    return (ArtifactError, CheckError, CheckpointError, EngineError, QuantizeError)


def one_line_warnings() -> None:
    """Show Python warnings as ``fail`` shows errors: one line on stderr. The default format adds the
    warning's file, line number and source line, which mean nothing to a CLI user. Input warnings
    (data.video.InputWarning) show every time they are raised, each distinct line once per command."""
    import warnings

    from inti_edge.data.video import InputWarning

    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from rich.console import Console
        from rich.markup import escape

        text = str(message)
        if text in seen:
            return
        seen.add(text)
        Console(stderr=True, soft_wrap=True).print(f"[yellow]warning:[/] {escape(text)}", highlight=False)

    warnings.simplefilter("always", InputWarning)
    warnings.showwarning = show

