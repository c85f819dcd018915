"""`inti-edge run`: classify files, cameras and network streams, window by window."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer

from inti_edge.commands import fail


def run(
    sources: List[str] = typer.Argument(..., help="Video files, cameras (/dev/video0, v4l2:///dev/video0) or stream URLs (rtsp://, http(s)://, tcp://, udp://)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Artifact folder (from export / build), ONNX file or checkpoint. Default: the bundled camera-motion model."),
    backend: str = typer.Option("auto", "--backend", help="auto | tensorrt | onnxruntime | torch."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    stride: int = typer.Option(1, "--stride", help="Units (2^s sampled frames) between two windows."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per window and status event on stdout, nothing else."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the JSON lines to this file."),
    save_video: Optional[str] = typer.Option(None, "--save-video", help="Write the input with its labels drawn (OUT.mp4; OUT.N.mp4 per source for several)."),
    realtime: bool = typer.Option(False, "--realtime", help="Read files at their own rate and drop what falls behind, as for live sources."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Re-run every whole window instead of encoding each unit once."),
    reconnect_attempts: int = typer.Option(5, "--reconnect-attempts", help="Reopen tries in a row for a live source that drops (-1: forever)."),
    open_timeout: float = typer.Option(10.0, "--open-timeout", help="Seconds to wait for a network source to open."),
    stall_timeout: float = typer.Option(5.0, "--stall-timeout", help="Seconds without data before a live source is reopened."),
    loop: int = typer.Option(0, "--loop", help="Play each file this many more times (-1: until stopped); times go on across passes."),
    frame_step: Optional[float] = typer.Option(None, "--frame-step", help="Seconds between sampled frames (default: the model's training sampling)."),
    batch: int = typer.Option(32, "--batch", help="Most units per encoder call (across all sources)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Inference threads (ONNX Runtime intra-op; default: one per core)."),
    plugin: Optional[str] = typer.Option(None, "--plugin", help="TensorRT: the TokenInterpolation plugin library (default: $INTI_PLUGIN_LIB or plugins/ build)."),
) -> None:
    """Classify video streams: one prediction per window, each unit of frames encoded once.

    Ctrl-C or SIGTERM ends every source with the summary. Exit code: 0 when every source ended well,
    1 when one failed, 2 for bad input."""
    from rich.console import Console

    from inti_edge.stream import RunError, StreamOptions
    from inti_edge.stream import run as run_stream

    err = Console(stderr=True, soft_wrap=True)
    sink = None
    if out is not None:
        try:
            sink = open(out, "w", encoding="utf-8")
        except OSError as e:
            fail(f"cannot write {out}: {e.strerror or e}", err)
    opts = StreamOptions(stride=stride, cache=not no_cache, realtime=realtime, max_batch=batch,
                         reconnect_attempts=reconnect_attempts, open_timeout=open_timeout, stall_timeout=stall_timeout,
                         frame_step=frame_step, save_video=save_video, loop=loop)
    view = _JsonView() if as_json else (_LiveView(err) if sys.stdout.isatty() else _LineView())

    def on_event(ev: dict) -> None:
        if ev.get("event") == "video_written":
            view.videos.append(ev)
        elif ev.get("event") == "warning":
            view.warnings.append(ev["message"])
        if sink is not None:
            sink.write(json.dumps(ev) + "\n")
            sink.flush()
        view.event(ev)

    def on_start(stream) -> None:
        view.attach(stream)
        # SIGTERM (docker stop, systemd, kill) ends the stream as Ctrl-C does: with the summary
        signal.signal(signal.SIGTERM, lambda *_: stream.stop())

    try:
        with view:
            summary = run_stream(sources, model, backend=backend, device=device, threads=threads, opts=opts,
                                 on_event=on_event, plugin=plugin, on_start=on_start)
    except RunError as e:
        fail(str(e), err)
    except KeyboardInterrupt:  # before the stream started (loading): nothing to summarise
        err.print("interrupted", highlight=False)
        raise typer.Exit(130)
    finally:
        if sink is not None:
            sink.close()
    for w in getattr(view, "videos", []):
        if w.get("error"):
            err.print(f"[red]--save-video failed:[/] {w['path']}: {w['error']}", highlight=False)
    for w in view.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    for s in summary.sources:
        if s.failed:
            err.print(f"[red]source failed:[/] {s.source}: {s.reason}", highlight=False)
    if not as_json:
        _print_summary(summary)
    raise typer.Exit(1 if summary.failed else 0)


# --- views ---------------------------------------------------------------------------------------------
class _JsonView:
    """--json: every event, one line each, on stdout."""

    videos: list
    warnings: list

    def __init__(self):
        self.videos, self.warnings = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def attach(self, stream) -> None:
        self.stream = stream

    def event(self, ev: dict) -> None:
        sys.stdout.write(json.dumps(ev) + "\n")
        sys.stdout.flush()


class _LineView(_JsonView):
    """Not a terminal, no --json: one plain line per window and status change."""

    def event(self, ev: dict) -> None:
        kind = ev.get("event")
        if kind == "window":
            print(f"{ev['source']}  {ev['window_start_s']:8.2f}-{ev['window_end_s']:<8.2f}  {ev['label']:<12} "
                  f"{ev['score']:.3f}  {ev['latency_ms']:.1f} ms", flush=True)
        elif kind in ("opened", "reopened", "stalled", "dropped", "reconnecting", "ended"):
            extra = ev.get("reason") or (f"{ev.get('codec')} {ev.get('width')}x{ev.get('height')}" if "codec" in ev else "")
            print(f"{ev['source']}  [{kind}] {extra}", flush=True)
        elif kind == "start":
            print(f"model {ev['model']}: {ev['backend']}, {ev['mode']}", flush=True)


class _LiveView:
    """A terminal: a table per source (label, score, windows/s, dropped), refreshed as events come."""

    def __init__(self, console):
        from rich.live import Live

        self.console = console
        self.rows: dict[str, dict] = {}
        self.head = ""
        self.stream = None
        self.videos: list = []
        self.warnings: list = []
        self.live = Live(self._table(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def attach(self, stream) -> None:
        self.stream = stream

    def __exit__(self, *exc):
        self.live.update(self._table())
        return self.live.__exit__(*exc)

    def event(self, ev: dict) -> None:
        import time

        kind = ev.get("event")
        if kind == "start":
            self.head = f"{ev['model']}  |  {ev['backend']}  |  {ev['mode']}"
            for s in ev["sources"]:
                self.rows[s] = {"state": "opening", "label": "", "score": None, "windows": 0,
                                "t0": time.perf_counter(), "latency": None}
            return
        row = self.rows.get(ev.get("source"))
        if row is None:
            return
        if kind == "window":
            row.update(label=ev["label"], score=ev["score"], windows=row["windows"] + 1, latency=ev["latency_ms"])
        elif kind in ("opened", "reopened"):
            row["state"] = "live" if kind == "opened" else "reopened"
        elif kind in ("stalled", "dropped", "reconnecting"):
            row["state"] = kind
        elif kind == "ended":
            row["state"] = ev["state"]
        self.live.update(self._table())

    def _table(self):
        import time

        from rich.table import Table

        t = Table(title=self.head or "inti-edge run", title_justify="left")
        for col, just in (("source", "left"), ("state", "left"), ("label", "left"), ("score", "right"),
                          ("windows", "right"), ("windows/s", "right"), ("dropped", "right"), ("latency ms", "right")):
            t.add_column(col, justify=just)
        for i, (name, r) in enumerate(self.rows.items()):
            rate = r["windows"] / max(1e-9, time.perf_counter() - r["t0"])
            dropped = self.stream.dropped_windows(i) if self.stream is not None else 0
            t.add_row(name, r["state"], r["label"], "" if r["score"] is None else f"{r['score']:.2f}", str(r["windows"]),
                      f"{rate:.1f}", str(dropped), "" if r["latency"] is None else f"{r['latency']:.1f}")
        return t


def _print_summary(summary) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"summary: {summary.backend}, {summary.mode}" + (" (interrupted)" if summary.interrupted else ""),
              title_justify="left")
    for col in ("source", "state", "frames", "windows", "win/s", "RTF", "p50/p95 ms", "dropped", "reconn"):
        t.add_column(col, justify="left" if col in ("source", "state") else "right")
    for s in summary.sources:
        rtf = "-" if s.realtime_factor is None else f"{s.realtime_factor:.3f}"
        lat = "-" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.1f} / {s.latency_p95_ms:.1f}"
        t.add_row(s.source, s.state, str(s.frames), str(s.windows), f"{s.windows_per_s:.1f}", rtf, lat,
                  str(s.dropped_windows), str(s.reconnects))
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # a log or a pipe: no 80-column squeeze
    console.print(t)
