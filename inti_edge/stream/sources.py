"""Video sources for streaming: files, cameras and network streams, read by one thread each.

A source is named as the user types it:

    clip.mp4, /data/cam0.mkv        a file (anything FFmpeg reads)
    /dev/video0, v4l2:///dev/video0 a camera (PyAV format ``v4l2``; needs an FFmpeg with libavdevice)
    rtsp://host/path                RTSP over TCP (``rtsp_transport=tcp``: no lost UDP packets)
    http(s)://, tcp://, udp://, rtmp://, srt://   network streams

``SourceReader`` (a thread) opens the source with timeouts, decodes every frame, picks the frames a
model samples (``TimeSampler``: the frame on screen at t0, t0 + step, ...), preprocesses them with
numpy (``data.preprocess``) and hands complete units of 2^s frames to the ``Hub``. A file is read
as fast as the model takes its units (nothing is dropped); a live source (camera, network, or any
source with ``realtime``) keeps the newest units and drops the oldest when the model falls behind.
A network source that stalls (no frame for ``stall_timeout`` s) or drops is reopened with
exponential backoff, up to ``reconnect_attempts`` tries in a row (-1: forever); then it ends with
a status event while the other sources go on.

Times: a file's windows carry its own presentation times (s), as training sampled them; a live
source's times count from its first frame, and go on across reconnects by the wall-clock gap.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.preprocess import Preprocess
from ..data.sampling import Sampling
from ..data.video import (
    TIME_EPS, DecodeReport, FrameClock, GapCounter, VideoError, announced_seconds, decoded_frames, first_video_stream,
    new_reformatter, quarter_turns, reason, set_threads,
)

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https", "tcp", "udp", "rtmp", "rtmps", "srt", "rtp")


class SourceError(ValueError):
    """A source cannot be used as named (one-line reason with the fix)."""


@dataclass(frozen=True)
class SourceSpec:
    """A source as ``av.open`` takes it."""

    name: str  # as the user typed it (the ``source`` of every event)
    url: str  # what av.open gets
    kind: str  # "file" | "camera" | "network"
    format: str | None = None  # FFmpeg input format (v4l2 for cameras)
    options: dict[str, str] = field(default_factory=dict)  # FFmpeg options (rtsp_transport, ...)

    @property
    def live(self) -> bool:
        return self.kind != "file"


def parse_source(text: str) -> SourceSpec:
    """A ``SourceSpec`` for what the user typed, or a SourceError that says what is wrong and what to do."""
    import av

    s = text.strip()
    if not s:
        raise SourceError("empty source name")
    if s.startswith("v4l2://") or re.fullmatch(r"/dev/video\d+", s):
        dev = s[len("v4l2://"):] if s.startswith("v4l2://") else s
        if "v4l2" not in av.formats_available:
            raise SourceError(f"{s}: this PyAV's FFmpeg has no v4l2 camera input (PyPI wheels leave libavdevice's "
                              "v4l2 out); install PyAV built on the system FFmpeg: pip install av --no-binary av")
        if not Path(dev).exists():
            raise SourceError(f"{s}: no such camera device ({dev} does not exist; `ls /dev/video*` lists them)")
        return SourceSpec(s, dev, "camera", "v4l2")
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", s)
    if m and len(m.group(1)) > 1:  # one letter: a Windows drive, not a scheme
        scheme = m.group(1).lower()
        if scheme == "file":
            return parse_source(s[len("file://"):])
        if scheme not in NETWORK_SCHEMES:
            raise SourceError(f"{s}: unknown scheme {scheme}:// (use a file path, /dev/videoN, or one of "
                              f"{', '.join(x + '://' for x in NETWORK_SCHEMES)})")
        options = {"rtsp_transport": "tcp"} if scheme in ("rtsp", "rtsps") else {}
        return SourceSpec(s, s, "network", None, options)
    p = Path(s).expanduser()
    if not p.exists():
        raise SourceError(f"{s}: no such file")
    if p.is_dir():
        raise SourceError(f"{s}: is a folder; name the video files in it")
    if p.stat().st_size == 0:
        raise SourceError(f"{s}: empty file (0 bytes)")
    return SourceSpec(s, str(p), "file")


def check_file(spec: SourceSpec, sampling: Sampling) -> None:
    """Refuse a file source that cannot give one window, before anything runs: unreadable, no video
    stream, or shorter than a window. Decodes up to one window's span (container durations are
    often wrong, so they are not trusted). Live sources are tried, and retried, by their reader."""
    import av

    if spec.live:
        return
    need = sampling.window_seconds - sampling.frame_step  # first to last sampled frame of a window
    try:
        with av.open(spec.url, metadata_errors="ignore") as c:
            stream = first_video_stream(c, spec.name)
            clock = FrameClock(stream.time_base, float(stream.average_rate or stream.guessed_rate or 25))
            first = last = None
            n = 0
            for frame in decoded_frames(c, stream):
                last = clock(frame)
                first = last if first is None else first
                n += 1
                if last - first >= need - TIME_EPS:
                    return
    except av.FFmpegError as e:
        raise SourceError(f"{spec.name}: not a readable video ({reason(e)}); is it damaged, or not a video?") from None
    except VideoError as e:
        raise SourceError(str(e)) from None
    if first is None:
        raise SourceError(f"{spec.name}: no frame decodes; is it damaged, or not a video?")
    raise SourceError(f"{spec.name}: {n} frame(s) over {last - first:.2f} s, too short for one window of this model "
                      f"(its {sampling.window_frames} frames are {sampling.frame_step:.3g} s apart: {need:.2f} s from "
                      f"first to last)")


# --- picking frames by time ----------------------------------------------------------------------------
class TimeSampler:
    """From frames arriving in time order, the frame on screen at t0, t0 + step, t0 + 2 step, ...
    (the last frame whose time is <= t, as ``FrameIndex.position`` picks it); t0 = the first frame's time.

    ``push(frame, t)`` returns the (time, frame) pairs that became certain: a target is answered by
    a frame once the next frame's time passes it."""

    def __init__(self, step: float):
        self.step = step
        self.k = 0  # targets answered so far
        self.t0: float | None = None
        self.prev = None  # (frame, t) of the last frame pushed

    def target(self) -> float:
        return self.t0 + self.k * self.step

    def push(self, frame, t: float) -> list:
        if self.t0 is None:
            self.t0 = t
        out = []
        while self.prev is not None and self.target() < t - TIME_EPS:
            out.append((self.target(), self.prev[0]))
            self.k += 1
        self.prev = (frame, t)
        return out

    def flush(self) -> list:
        """At the end of the stream: the targets the last frame answers exactly."""
        out = []
        while self.prev is not None and self.target() <= self.prev[1] + TIME_EPS:
            out.append((self.target(), self.prev[0]))
            self.k += 1
        return out


# --- what a reader hands over ---------------------------------------------------------------------------
@dataclass
class Unit:
    """One unit of 2^s sampled, preprocessed frames of one source."""

    source: int  # which source
    segment: int  # which connection of it (0, then +1 per reopen)
    index: int  # unit number within the segment (consecutive unless units were dropped)
    frames: np.ndarray | None  # (2^s, 3, S, S) float32, model input (None once encoded)
    times: np.ndarray  # (2^s,) float64 s: source time of each sampled frame
    decode_ms: float  # demux + decode time spent on the frames of this unit
    preprocess_ms: float  # reformat + crop + normalise time of its frames
    ready: float  # time.perf_counter() when its last frame was decoded


class Hub:
    """Bounded per-source queues of units, shared by the readers and the inference loop."""

    def __init__(self, sources: int, capacity: int):
        self.cond = threading.Condition()
        self.queues: list[deque] = [deque() for _ in range(sources)]
        self.capacity = max(1, capacity)
        self.done = [False] * sources
        self.stopping = False
        self.dropped = [0] * sources
        self._rr = 0

    def put(self, unit: Unit, live: bool) -> bool:
        """Queue ``unit``; a full queue blocks a file's reader and drops a live source's oldest unit.
        False when the hub is stopping."""
        q = self.queues[unit.source]
        with self.cond:
            while len(q) >= self.capacity and not self.stopping:
                if live:
                    q.popleft()
                    self.dropped[unit.source] += 1
                    break
                self.cond.wait(0.1)
            if self.stopping:
                return False
            q.append(unit)
            self.cond.notify_all()
            return True

    def finish(self, source: int) -> None:
        with self.cond:
            self.done[source] = True
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def exhausted(self) -> bool:
        with self.cond:
            return all(self.done) and not any(self.queues)

    def take(self, max_units: int, timeout: float) -> list[Unit]:
        """Up to ``max_units`` units, round-robin over the sources (oldest first in each); waits up to
        ``timeout`` s for the first one; [] when none came."""
        with self.cond:
            if not any(self.queues):
                self.cond.wait(timeout)
            out: list[Unit] = []
            n = len(self.queues)
            while len(out) < max_units and any(self.queues):
                q = self.queues[self._rr % n]
                self._rr += 1
                if q:
                    out.append(q.popleft())
            if out:
                self.cond.notify_all()
            return out


@dataclass
class ReaderStats:
    """What one source's reader counted."""

    frames: int = 0  # frames decoded
    sampled: int = 0  # frames the model sampled
    units: int = 0  # units handed over
    report: DecodeReport | None = None  # damage, gaps, a truncated tail, the frames' size (all connections)
    reconnects: int = 0  # successful reopens
    first_time: float | None = None  # source time of the first sampled frame
    report_first: float | None = None  # a file's own time of its first frame (--loop offsets count from it)
    last_time: float | None = None  # source time of the last sampled frame
    started: float = 0.0  # perf_counter at the start
    ended: float = 0.0  # perf_counter at the end
    state: str = "starting"  # starting | open | reconnecting | ended | failed | stopped
    reason: str = ""  # why it ended
    width: int = 0
    height: int = 0
    fps: float = 0.0
    codec: str = ""


class SourceReader(threading.Thread):
    """Reads one source in its own thread: open (timeouts), decode, sample, preprocess, hand over."""

    def __init__(self, index: int, spec: SourceSpec, preprocess: Preprocess, sampling: Sampling, hub: Hub,
                 emit: Callable[[dict], None], *, realtime: bool = False, open_timeout: float = 10.0,
                 stall_timeout: float = 5.0, reconnect_attempts: int = 5, backoff: tuple[float, float] = (0.5, 10.0),
                 on_frame: Callable | None = None, threads: int = 0, loop: int = 0):
        super().__init__(name=f"source-{index}", daemon=True)
        self.index, self.spec, self.pre, self.sampling = index, spec, preprocess, sampling
        self.hub, self.emit = hub, emit
        self.live = spec.live or realtime
        self.realtime = realtime
        self.open_timeout, self.stall_timeout = open_timeout, stall_timeout
        self.reconnect_attempts, self.backoff = reconnect_attempts, backoff
        self.on_frame = on_frame  # (frame, source time) for --save-video
        self.threads = threads
        self.loop = loop  # files: play this many more times after the first (-1: forever)
        self.stats = ReaderStats()
        self._halt = threading.Event()

    # -- control ---------------------------------------------------------------------------------
    def stop(self) -> None:
        self._halt.set()

    def _event(self, event: str, **kw) -> None:
        self.emit({"event": event, "source": self.spec.name, **kw})

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True if stopped."""
        return self._halt.wait(seconds)

    # -- the thread ------------------------------------------------------------------------------
    def run(self) -> None:
        st = self.stats
        st.started = time.perf_counter()
        st.report = DecodeReport(self.spec.name)
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - a reader never takes the process down: the source fails
            st.state, st.reason = "failed", f"{type(e).__name__}: {e}"
            self._event("ended", state="failed", reason=st.reason)
        finally:
            st.ended = time.perf_counter()
            self.hub.finish(self.index)

    def _run(self) -> None:
        st = self.stats
        segment = -1
        tries = 0  # failed opens in a row
        offset = 0.0  # live: source time at the start of this connection
        last_wall = None  # live: wall time of the last frame (gap across a reconnect)
        while not self._halt.is_set():
            try:
                container, stream = self._open()
            except SourceError as e:
                if not self.spec.live:
                    st.state, st.reason = "failed", str(e)
                    self._event("ended", state="failed", reason=st.reason)
                    return
                tries += 1
                if self._give_up(tries):
                    st.state = "failed"
                    st.reason = str(e) if tries == 1 else f"gave up after {tries - 1} reconnect attempts ({e})"
                    self._warn()
                    self._event("ended", state="failed", reason=st.reason)
                    return
                delay = self._delay(tries)
                st.state = "reconnecting"
                self._event("reconnecting", attempt=tries, delay_s=round(delay, 2), reason=str(e))
                if self._sleep(delay):
                    break
                continue
            segment += 1
            if segment > 0 and self.spec.live:
                st.reconnects += 1
                if last_wall is not None:
                    offset = (st.last_time or 0.0) + (time.perf_counter() - last_wall)
            tries = 0
            st.state = "open"
            cc = stream.codec_context
            st.width, st.height, st.codec = cc.width, cc.height, cc.name
            st.fps = float(stream.average_rate or stream.guessed_rate or 0)
            if segment == 0 or self.spec.live:
                self._event("opened" if segment == 0 else "reopened", source_kind=self.spec.kind, codec=st.codec,
                            width=st.width, height=st.height, fps=round(st.fps, 3), segment=segment)
            with container:
                outcome, last_wall = self._read(container, stream, segment, offset)
            if outcome == "stopped":
                break
            if not self.spec.live and outcome == "end of stream" and (self.loop < 0 or segment < self.loop):
                # --loop: the file again, its times going on after the last pass (a new segment: the
                # cut from its end to its start ends the windows in flight, as a reconnect does)
                offset = (st.last_time or 0.0) + self.sampling.frame_step - (st.report_first or 0.0)
                self._event("looped", loop=segment + 1)
                continue
            if not self.spec.live:
                self._warn()
                if st.units < self.sampling.units:
                    st.state = "failed"
                    st.reason = (f"too short for one window: {st.report.decoded:.2f} s decoded, a window needs "
                                 f"{self.sampling.window_seconds:.2f} s ({self.sampling.window_frames} frames "
                                 f"{self.sampling.frame_step:.3g} s apart)")
                else:
                    st.state, st.reason = "ended", outcome
                self._event("ended", state=st.state, reason=st.reason)
                return
            # a live source that ended, stalled or broke: reopen
            self._event("stalled" if outcome.startswith("stalled") else "dropped", reason=outcome)
            tries = 1
            if self._give_up(tries):
                st.state, st.reason = "failed", f"{outcome}; no reconnect attempts allowed"
                self._event("ended", state="failed", reason=st.reason)
                return
            delay = self._delay(tries)
            st.state = "reconnecting"
            self._event("reconnecting", attempt=tries, delay_s=round(delay, 2), reason=outcome)
            if self._sleep(delay):
                break
        st.state, st.reason = "stopped", "stopped"
        self._warn()
        self._event("ended", state="stopped", reason="stopped")

    def _warn(self) -> None:
        """The one warning line of this source, when reading met damage or odd input."""
        line = self.stats.report.line(self.pre.image_size)
        if line:
            self._event("warning", message=line, lost_fraction=round(self.stats.report.lost_fraction, 4))

    def _give_up(self, tries: int) -> bool:
        """``tries`` counts the next open attempt in this outage (1 = the first reopen)."""
        return self.reconnect_attempts >= 0 and tries > self.reconnect_attempts

    def _delay(self, tries: int) -> float:
        base, cap = self.backoff
        return min(cap, base * 2 ** (tries - 1))

    def _open(self):
        import av

        spec = self.spec
        kw = {"timeout": (self.open_timeout, self.stall_timeout)} if spec.kind != "file" else {}
        try:
            container = av.open(spec.url, mode="r", format=spec.format, options=dict(spec.options),
                                metadata_errors="ignore", **kw)
        except av.ExitError:
            raise SourceError(f"{spec.name}: no answer within {self.open_timeout:g} s (timed out)") from None
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise SourceError(f"{spec.name}: cannot open ({reason(e)})") from None
        try:
            stream = first_video_stream(container, spec.name)
        except VideoError as e:
            raise SourceError(str(e)) from None
        set_threads(stream, self.threads)
        return container, stream

    def _read(self, container, stream, segment: int, offset: float) -> tuple[str, float | None]:
        """Decode until the end, a stall, an error or a stop. Returns (outcome, wall time of the last frame)."""
        import av

        st = self.stats
        rep = st.report
        clock = FrameClock(stream.time_base, float(stream.average_rate or stream.guessed_rate or 25))
        sampler = TimeSampler(self.sampling.frame_step)
        conv = new_reformatter()
        gaps = GapCounter()
        k = self.sampling.unit_frames
        buf: list[np.ndarray] = []
        tbuf: list[float] = []
        decode_s = pre_s = 0.0
        first_t = None  # this connection's first frame time (live: the zero of its clock)
        last_t = None
        wall0 = None  # realtime pacing: wall time of the first frame
        last_wall = None
        index = 0
        if not self.spec.live:
            rep.announced = announced_seconds(container, stream)
        packets = container.demux(stream)  # ends with an empty packet that flushes the decoder
        outcome = "end of stream"

        def hand_over(pairs) -> bool:
            nonlocal buf, tbuf, decode_s, pre_s, index
            for t_s, fr in pairs:
                t0 = time.perf_counter()
                buf.append(self.pre.frame(fr, conv))
                pre_s += time.perf_counter() - t0
                tbuf.append(t_s)
                st.sampled += 1
                st.first_time = t_s if st.first_time is None else st.first_time
                st.last_time = t_s
                if len(buf) == k:
                    unit = Unit(self.index, segment, index, np.stack(buf), np.asarray(tbuf), decode_s * 1e3,
                                pre_s * 1e3, time.perf_counter())
                    buf, tbuf, decode_s, pre_s = [], [], 0.0, 0.0
                    index += 1
                    st.units += 1
                    if not self.hub.put(unit, self.live):
                        return False
            return True

        while True:
            if self._halt.is_set():
                return "stopped", last_wall
            t_dec = time.perf_counter()
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.ExitError:
                outcome = f"stalled: no data for {self.stall_timeout:g} s"
                break
            except (av.FFmpegError, OSError) as e:
                outcome = f"read error: {reason(e)}"
                rep.read_error = reason(e)
                break
            try:
                frames = packet.decode()
            except av.EOFError:
                break
            except (av.FFmpegError, ValueError):
                rep.decode_errors += 1  # one damaged packet: later keyframes still decode
                continue
            decode_s += time.perf_counter() - t_dec
            for frame in frames:
                t = clock(frame)
                rep.frames += 1
                st.frames += 1
                gaps(t)
                if first_t is None:
                    first_t = t
                    rep.width, rep.height = (frame.height, frame.width) if quarter_turns(frame) % 2 else (frame.width, frame.height)
                last_t = t
                src_t = offset + t if not self.spec.live else offset + (t - first_t)
                if st.report_first is None:
                    st.report_first = t
                now = time.perf_counter()
                if self.realtime and not self.spec.live:  # pace a file at its own rate
                    wall0 = now - (src_t - first_t) if wall0 is None else wall0
                    wait = wall0 + (src_t - first_t) - now
                    if wait > 0 and self._sleep(wait):
                        return "stopped", last_wall
                last_wall = time.perf_counter()
                if self.on_frame is not None:
                    self.on_frame(frame, src_t)
                if not hand_over(sampler.push(frame, src_t)):
                    return "stopped", last_wall
        rep.gaps += gaps.gaps
        rep.gap_seconds += gaps.seconds
        rep.interval = gaps.interval or rep.interval
        if first_t is not None:
            rep.decoded += last_t - first_t + (gaps.interval or 0.0)
        if not hand_over(sampler.flush()):
            return "stopped", last_wall
        return outcome, last_wall
