"""The streaming pipeline: sources -> units -> one batched encoder call -> ring buffers -> head per window.

    reader thread per source ──units──▶ Hub (bounded queues) ──▶ inference loop (this thread)
                                                                   encoder(units of all sources)  (B, K, E)
                                                                   ring buffer per source: U embeddings
                                                                   head(windows ready)            (W, classes)
                                                                   ──▶ events (window, status, summary)

Incremental mode (the default when the model has the encoder / head split): every backbone block
attends within one (merged) frame, so a unit of 2^s sampled frames has one embedding whatever
window it falls in. Each unit passes the encoder once; a window of U units is the head over the
last U embeddings, so a stride of one unit costs one unit's encoder work instead of U. The logits
equal a re-run of the whole window (tested, <= 1e-4 in fp32). ``cache=False`` re-runs every window
through the whole model (what other streaming demos do), for comparison.

Windows: unit i of a connection ends a window when the ring holds units i-U+1..i, consecutive, and
(i - U + 1) is a multiple of ``stride``. A dropped unit (a live source behind) or a reconnect
empties the ring, so no window spans a gap; the windows that could not be formed count as dropped.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..artifact import Artifact
from ..data.sampling import Sampling
from ..engines.runtime import Runtime
from .sources import Hub, SourceReader, SourceSpec, Unit


@dataclass
class StreamOptions:
    """How ``Stream`` runs (the `inti-edge run` options)."""

    stride: int = 1  # units between two windows
    cache: bool = True  # incremental (unit embeddings reused); False re-runs each whole window
    realtime: bool = False  # files too are read at their own rate, dropping what falls behind
    max_batch: int = 32  # units per encoder call (and windows per head call)
    queue_units: int = 8  # units waiting per source
    reconnect_attempts: int = 5  # reopen tries in a row for a live source (-1: forever)
    open_timeout: float = 10.0  # s to open a network source
    stall_timeout: float = 5.0  # s without data before a live source counts as stalled
    frame_step: float | None = None  # s between sampled frames: overrides the model's sampling
    top_k: int = 5
    with_logits: bool = False  # window events carry the raw logits (tests, benchmarks)
    decoder_threads: int = 0  # FFmpeg decoding threads per source (0: FFmpeg picks)
    loop: int = 0  # play each file this many more times (-1: until stopped); times go on across passes
    save_video: str | None = None  # write each source with its labels drawn (overlay.py)

    def check(self) -> None:
        if self.stride < 1:
            raise ValueError(f"--stride must be >= 1 unit, not {self.stride}")
        if self.max_batch < 1 or self.queue_units < 1:
            raise ValueError("max_batch and queue_units must be >= 1")
        if self.reconnect_attempts < -1:
            raise ValueError("--reconnect-attempts is -1 (forever) or >= 0")
        if not (self.open_timeout > 0 and self.stall_timeout > 0):
            raise ValueError("timeouts must be > 0 s")
        if self.loop < -1:
            raise ValueError("--loop is -1 (until stopped) or >= 0")
        if self.frame_step is not None and not (math.isfinite(self.frame_step) and self.frame_step > 0):
            raise ValueError(f"--frame-step must be a positive number of seconds, not {self.frame_step}")


@dataclass
class SourceSummary:
    source: str
    state: str  # ended | failed | stopped
    reason: str
    frames: int
    sampled: int
    units: int
    windows: int
    dropped_windows: int
    dropped_units: int
    reconnects: int
    decode_errors: int  # packets the decoder rejected
    gaps: int  # jumps in presentation time
    missing_seconds: float  # a truncated file: seconds announced but not there
    lost_fraction: float  # of the source's time, to the three above
    media_seconds: float
    wall_seconds: float
    windows_per_s: float
    realtime_factor: float | None  # wall / media: < 1 is faster than real time
    latency_p50_ms: float | None
    latency_p95_ms: float | None

    @property
    def failed(self) -> bool:
        return self.state == "failed"


@dataclass
class Summary:
    sources: list[SourceSummary]
    wall_seconds: float
    windows: int
    windows_per_s: float
    encoder_calls: int
    encoder_units: int
    head_calls: int
    backend: str
    mode: str  # incremental | full
    interrupted: bool = False
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    @property
    def failed(self) -> bool:
        return any(s.failed for s in self.sources)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["failed"] = self.failed
        return d


@dataclass
class _Track:
    """The inference loop's state for one source."""

    ring: deque  # (Unit, embedding or None) of the current run of consecutive units
    segment: int = -1
    last_index: int = -1
    windows: int = 0
    emitted_by_segment: dict = field(default_factory=dict)
    last_seen_by_segment: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list)
    last_window_at: float = 0.0


class Stream:
    """Runs sources through a runtime; ``run()`` returns the ``Summary``; events go to ``on_event``
    (called from the thread that runs ``run()``, one dict per window or status change)."""

    def __init__(self, specs: Sequence[SourceSpec], runtime: Runtime, artifact: Artifact, opts: StreamOptions,
                 on_event: Callable[[dict], None]):
        opts.check()
        self.specs, self.rt, self.art, self.opts = list(specs), runtime, artifact, opts
        self.on_event = on_event
        self.classes = list(artifact.model.classes)
        self.sampling: Sampling = artifact.model.require_sampling(opts.frame_step)
        self.pre = artifact.model.preprocessing
        self.incremental = opts.cache and runtime.incremental
        if not self.incremental and runtime.model is None and not runtime.incremental:
            raise ValueError("the runtime has neither the encoder / head pair nor the whole model")
        self.U = self.sampling.units
        self.hub = Hub(len(self.specs), opts.queue_units)
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._held: list[dict] = []  # status events waiting for their source's last window
        self._index = {spec.name: i for i, spec in enumerate(self.specs)}
        self.writers = []
        if opts.save_video:
            from .overlay import writers_for

            self.writers = writers_for(opts.save_video, self.specs, self.sampling)
        self.readers = [
            SourceReader(i, spec, self.pre, self.sampling, self.hub, self._events.put, realtime=opts.realtime,
                         open_timeout=opts.open_timeout, stall_timeout=opts.stall_timeout,
                         reconnect_attempts=opts.reconnect_attempts,
                         on_frame=self.writers[i].add_frame if self.writers else None, threads=opts.decoder_threads,
                         loop=opts.loop)
            for i, spec in enumerate(self.specs)
        ]
        for w, r in zip(self.writers, self.readers):
            w.rate = lambda st=r.stats: st.fps
        self.tracks = [_Track(deque(maxlen=self.U)) for _ in self.specs]
        self._stop = threading.Event()
        self.encoder_calls = self.encoder_units = self.head_calls = 0

    def stop(self) -> None:
        """Ask the run to end (another thread, or a signal handler)."""
        self._stop.set()

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> Summary:
        t0 = time.perf_counter()
        for w in self.writers:
            w.start()
        for r in self.readers:
            r.start()
        interrupted = False
        try:
            while not self._stop.is_set():
                self._drain_events()
                units = self.hub.take(self.opts.max_batch, timeout=0.05)
                if not units:
                    if self.hub.exhausted():
                        break
                    continue
                self._process(units)
                self._drain_events()
            interrupted = self._stop.is_set()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self.hub.stop()
            for r in self.readers:
                r.stop()
            for r in self.readers:
                r.join(timeout=2.0)
            self._drain_events()
            for i, w in enumerate(self.writers):
                w.close(interrupted)
                self._emit({"event": "video_written", "source": self.specs[i].name, "path": str(w.path),
                            "frames": w.written, "dropped_frames": w.dropped,
                            **({"error": w.error} if w.error else {})})
        return self._summary(time.perf_counter() - t0, interrupted)

    def _emit(self, ev: dict) -> None:
        self.on_event(ev)

    def _drain_events(self) -> None:
        """Pass the readers' status events on; a source's ``ended`` waits until its last window is out."""
        while True:
            try:
                self._held.append(self._events.get_nowait())
            except queue.Empty:
                break
        held, self._held = self._held, []
        for ev in held:
            if ev["event"] == "ended" and self.hub.queues[self._index[ev["source"]]] and not self.hub.stopping:
                self._held.append(ev)
            else:
                self._emit(ev)

    def _process(self, units: list[Unit]) -> None:
        enc_ms = 0.0
        embs: list = [None] * len(units)
        if self.incremental:
            t = time.perf_counter()
            out = self.rt.encoder(np.stack([u.frames for u in units]))  # (B, K, E)
            enc_ms = (time.perf_counter() - t) * 1e3
            self.encoder_calls += 1
            self.encoder_units += len(units)
            embs = list(out)
            for u in units:
                u.frames = None  # encoded: the ring keeps the embedding, not the pixels
        ready = []  # (track index, newest unit, window units)
        for u, e in zip(units, embs):
            tr = self.tracks[u.source]
            if u.segment != tr.segment or u.index != tr.last_index + 1:
                tr.ring.clear()  # a reconnect or a dropped unit: no window spans the gap
            tr.segment, tr.last_index = u.segment, u.index
            tr.last_seen_by_segment[u.segment] = u.index
            tr.ring.append((u, e))
            if len(tr.ring) == self.U and (u.index - self.U + 1) % self.opts.stride == 0:
                ready.append((u.source, u, list(tr.ring)))
        if ready:
            self._windows(ready, enc_ms)
        for u in units:
            if self.writers:
                self.writers[u.source].advance(float(u.times[-1]) + self.sampling.frame_step)

    def _windows(self, ready, enc_ms: float) -> None:
        t = time.perf_counter()
        if self.incremental:
            logits = self.rt.head(np.stack([np.stack([e for _, e in ring]) for _, _, ring in ready]))  # (W, classes)
            head_ms = (time.perf_counter() - t) * 1e3
            self.head_calls += 1
        else:
            clips = np.stack([np.concatenate([u.frames for u, _ in ring]) for _, _, ring in ready])  # (W, T, 3, S, S)
            if self.rt.model is not None:
                logits = self.rt.model(clips)
                head_ms = 0.0
                enc_ms = (time.perf_counter() - t) * 1e3
                self.encoder_calls += 1
                self.encoder_units += len(ready) * self.U
            else:  # no whole-model form: the encoder over every unit of every window, then the head
                W, T = clips.shape[:2]
                k = self.sampling.unit_frames
                emb = self.rt.encoder(clips.reshape(W * (T // k), k, *clips.shape[2:]))
                t_head = time.perf_counter()
                enc_ms = (t_head - t) * 1e3
                logits = self.rt.head(emb.reshape(W, T // k, *emb.shape[1:]))
                head_ms = (time.perf_counter() - t_head) * 1e3
                self.encoder_calls += 1
                self.encoder_units += W * (T // k)
                self.head_calls += 1
        done = time.perf_counter()
        for (src, u, ring), lg in zip(ready, logits):
            tr = self.tracks[src]
            tr.windows += 1
            tr.emitted_by_segment[u.segment] = tr.emitted_by_segment.get(u.segment, 0) + 1
            latency = (done - u.ready) * 1e3
            tr.latencies.append(latency)
            tr.last_window_at = done
            first = ring[0][0]
            p = _softmax(lg.astype(np.float64))
            order = np.argsort(-p)[: self.opts.top_k]
            ev = {
                "event": "window",
                "source": self.specs[src].name,
                "window": tr.windows - 1,
                "window_start_s": round(float(first.times[0]), 4),
                "window_end_s": round(float(u.times[-1]) + self.sampling.frame_step, 4),
                "label": self.classes[int(order[0])],
                "score": round(float(p[order[0]]), 4),
                "top5": [{"label": self.classes[int(i)], "score": round(float(p[i]), 4)} for i in order],
                "latency_ms": round(latency, 2),
                "decode_ms": round(u.decode_ms, 2),
                "preprocess_ms": round(u.preprocess_ms, 2),
                "encoder_ms": round(enc_ms, 2),
                "head_ms": round(head_ms, 2),
            }
            if self.opts.with_logits:
                ev["logits"] = [float(v) for v in lg]
            if self.writers:
                self.writers[src].label(float(u.times[-1]) + self.sampling.frame_step, ev["label"], ev["score"])
            self._emit(ev)

    # -- counts -------------------------------------------------------------------------------------
    def dropped_windows(self, source: int) -> int:
        """Windows of ``source`` that could not be formed so far (their units were dropped)."""
        tr, U, stride = self.tracks[source], self.U, self.opts.stride
        expected = 0
        for last in list(tr.last_seen_by_segment.values()):
            n = last + 1  # units 0..last of that connection reached the loop or were dropped before it
            expected += (n - U) // stride + 1 if n >= U else 0
        return max(0, expected - tr.windows)

    # -- the end ------------------------------------------------------------------------------------
    def _summary(self, wall: float, interrupted: bool) -> Summary:
        rows = []
        all_lat: list[float] = []
        for i, (spec, r, tr) in enumerate(zip(self.specs, self.readers, self.tracks)):
            st = r.stats
            media = (st.last_time - st.first_time + self.sampling.frame_step) if st.first_time is not None else 0.0
            ended = (tr.last_window_at or st.ended or time.perf_counter())
            src_wall = max(1e-9, ended - st.started) if st.started else 0.0
            lat = np.asarray(tr.latencies) if tr.latencies else None
            all_lat += tr.latencies
            state = st.state if st.state in ("ended", "failed") else "stopped"
            rows.append(SourceSummary(
                source=spec.name, state=state, reason=st.reason or state, frames=st.frames, sampled=st.sampled,
                units=st.units, windows=tr.windows, dropped_windows=self.dropped_windows(i),
                dropped_units=self.hub.dropped[i], reconnects=st.reconnects, decode_errors=st.report.decode_errors,
                gaps=st.report.gaps, missing_seconds=round(st.report.missing_tail, 3),
                lost_fraction=round(st.report.lost_fraction, 4), media_seconds=round(media, 3), wall_seconds=round(src_wall, 3),
                windows_per_s=round(tr.windows / src_wall, 2) if src_wall > 0 else 0.0,
                realtime_factor=round(src_wall / media, 4) if media > 0 else None,
                latency_p50_ms=round(float(np.percentile(lat, 50)), 2) if lat is not None else None,
                latency_p95_ms=round(float(np.percentile(lat, 95)), 2) if lat is not None else None,
            ))
        windows = sum(s.windows for s in rows)
        la = np.asarray(all_lat) if all_lat else None
        return Summary(rows, round(wall, 3), windows, round(windows / wall, 2) if wall > 0 else 0.0,
                       self.encoder_calls, self.encoder_units, self.head_calls, self.rt.describe(),
                       "incremental" if self.incremental else "full", interrupted,
                       round(float(np.percentile(la, 50)), 2) if la is not None else None,
                       round(float(np.percentile(la, 95)), 2) if la is not None else None)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
