"""The `inti-edge` command: parses, calls inti_edge, prints. The work lives in the package."""

from __future__ import annotations

import typer

from inti_edge.commands import bench as _bench
from inti_edge.commands import flops as _flops
from inti_edge.commands import build as _build
from inti_edge.commands import check as _check
from inti_edge.commands import export as _export
from inti_edge.commands import run as _run
from inti_edge.commands import train as _train

app = typer.Typer(
    name="inti-edge",
    help="Classify video streams with InTI models; train, export, quantize, build and check them for NVIDIA GPUs and Jetson.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _print_version(value: bool) -> None:
    """--version: answered while parsing, before Typer asks for a command."""
    if value:
        from inti_edge import __version__

        print(f"inti-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version),
) -> None:
    """Classify video streams with InTI models; train, export, quantize, build and check them for NVIDIA GPUs and Jetson."""
    from inti_edge.commands import one_line_warnings

    one_line_warnings()


# --- commands (one line each; the function lives in inti_edge/commands/<name>.py) ----------------
app.command("run")(_run.run)
app.command("flops")(_flops.flops)
app.command("export")(_export.export)
app.command("build")(_build.build)
app.command("quantize", help=_build.QUANTIZE_HELP)(_build.build)
app.command("check")(_check.check)
app.command("train")(_train.train)
app.command("eval")(_train.eval_cmd)
app.command("bench")(_bench.bench)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
