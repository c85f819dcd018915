"""``run``: classify video sources with a model artifact, window by window (what `inti-edge run` calls).

    from inti_edge.stream import run, StreamOptions
    summary = run(["camera.mp4", "rtsp://cam/1"], model="out/int8-cpu", on_event=print)

Every input is checked before any source is opened: the source names, the artifact and its
contracts (classes, preprocessing, temporal sampling), the backend, the --save-video path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ..artifact import Artifact, ArtifactError, open_artifact
from ..engines import EngineError
from ..engines.runtime import open_runtime
from .pipeline import Stream, StreamOptions, Summary
from .sources import SourceError, check_file, parse_source


class RunError(ValueError):
    """`run` cannot start as asked (one line: the cause and the fix)."""


def default_model() -> Path:
    from ..defaults import DEFAULT_MODEL

    return DEFAULT_MODEL


def prepare(sources: Sequence[str], model: str | Path | None = None, *, backend: str = "auto", device: str = "auto",
            threads: int | None = None, opts: StreamOptions | None = None, plugin: str | None = None):
    """Everything checked and loaded, nothing read yet: (specs, artifact, runtime, options)."""
    opts = opts or StreamOptions()
    if not sources:
        raise RunError("no source given: name a video file, a camera (/dev/video0) or a stream URL")
    try:
        opts.check()
        specs = [parse_source(s) for s in sources]
    except (SourceError, ValueError) as e:
        raise RunError(str(e)) from None
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise RunError("a source is named twice; name each source once")
    try:
        art: Artifact = open_artifact(model if model is not None else default_model())
        art.model.require_sampling(opts.frame_step)
        art.model.preprocessing  # noqa: B018 - validates the stored preprocessing
    except ArtifactError as e:
        raise RunError(str(e)) from None
    try:
        for spec in specs:
            check_file(spec, art.model.require_sampling(opts.frame_step))
    except SourceError as e:
        raise RunError(str(e)) from None
    if opts.save_video:
        from .overlay import writers_for

        try:
            writers_for(opts.save_video, specs, art.model.require_sampling(opts.frame_step))
        except ValueError as e:
            raise RunError(str(e)) from None
    try:
        forms = ("encoder", "head") if opts.cache and art.streaming else ("model", "encoder", "head")
        rt = open_runtime(art, backend, device, threads=threads, forms=forms, plugin=plugin, max_batch=opts.max_batch)
    except (EngineError, ArtifactError) as e:
        raise RunError(str(e)) from None
    if not opts.cache and rt.model is None and not rt.incremental:
        raise RunError(f"{art.path}: no form to run")
    return specs, art, rt, opts


def run(sources: Sequence[str], model: str | Path | None = None, *, backend: str = "auto", device: str = "auto",
        threads: int | None = None, opts: StreamOptions | None = None, on_event: Callable[[dict], None] = lambda e: None,
        plugin: str | None = None, on_start: Callable[[Stream], None] | None = None) -> Summary:
    """Classify ``sources`` with ``model`` (an artifact folder, ONNX file or checkpoint; None: the
    bundled default model). Events (dicts) go to ``on_event``; returns the end-of-stream summary."""
    specs, art, rt, opts = prepare(sources, model, backend=backend, device=device, threads=threads, opts=opts,
                                   plugin=plugin)
    with rt:
        stream = Stream(specs, rt, art, opts, on_event)
        on_event({"event": "start", "model": str(art.path), "backend": rt.describe(),
                  "mode": "incremental" if stream.incremental else "full",
                  "classes": stream.classes, "sampling": stream.sampling.to_dict(), "stride_units": opts.stride,
                  "sources": [s.name for s in specs], "notes": rt.notes})
        if on_start is not None:
            on_start(stream)
        summary = stream.run()
    on_event({"event": "summary", **summary.to_dict()})
    return summary
