"""The one progress display of inti-edge (Rich): a spinner, the step's name, a bar with done / total,
the elapsed time; with ``stats``, a text field the caller updates (loss, lr, clips/s) and the time left.
Training, evaluation, export, build and check all show this one."""

from __future__ import annotations


def progress_bar(*, console=None, disable: bool = False, stats: bool = False, transient: bool = True):
    """A ``rich.progress.Progress`` (a context manager; ``add_task`` / ``update`` / ``advance``).
    With ``stats``, tasks carry a ``stats`` field: ``add_task(name, total=n, stats="")``."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if stats:
        columns.append(TextColumn("{task.fields[stats]}"))
    columns.append(TimeElapsedColumn())
    if stats:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, transient=transient, disable=disable)


def step_bar(console=None, disable: bool = False):
    """A bar for a command of several steps (build, check, export): returns the bar (a context manager)
    and ``update(name, done=None, total=None)``."""
    bar = progress_bar(console=console, disable=disable)
    task = bar.add_task("starting", total=None)

    def update(name: str, done: int | None = None, total: int | None = None) -> None:
        bar.update(task, description=name, completed=done or 0, total=total)

    return bar, update
