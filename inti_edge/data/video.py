"""Video input on PyAV: a frame index by presentation time, and frames read by time.

Everything here works in seconds of presentation time, never in frame numbers, so variable frame
rate files and odd containers sample correctly. "The frame at time t" is the frame on screen at
t: the last frame whose presentation time is <= t.

How the index is built (``probe``):
- Usually from the demuxer alone (no decoding): every packet's pts, sorted, is one frame's time, and
  keyframe packets say where a seek may land. Reading then seeks to the keyframe before each wanted
  frame and decodes forward (``seekable``).
- Some files carry presentation times the decoder does not honour (AVI with packed MPEG-4 B-frames,
  streams without pts). ``probe`` decodes the first frames to check; where they disagree with the
  packets, the index is built from a full decode (frame times from pts, else dts, else the frame
  rate, as FFmpeg's best-effort timestamp does) and reading decodes from the start
  (``seekable=False``). Such files are short in practice (UCF101, HMDB51 AVIs).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch


class VideoError(RuntimeError):
    """A video cannot be used: missing, unreadable, without a video stream, or too short."""


class InputWarning(UserWarning):
    """Input that is used, but deserves a word: damage, an odd size, a split that had to adapt.
    The CLI prints each as one ``warning:`` line."""


def reason(e: BaseException) -> str:
    """An exception as the short phrase a one-line error quotes (FFmpeg's message, an OS error's text)."""
    msg = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return msg.splitlines()[0].strip()


def first_video_stream(container, name: str):
    """The container's first video stream that is not an attached picture (cover art); a VideoError
    naming the streams it has when there is none (the container is closed then)."""
    import av

    attached = int(av.stream.Disposition.attached_pic)
    streams = [s for s in container.streams.video if not (int(s.disposition) & attached)]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoError(f"{name}: no video stream (streams found: {', '.join(kinds)})")
    return streams[0]


def open_video(path: str | Path):
    """(container, video stream) or a VideoError that says why not."""
    import av

    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: no such file")
    if p.is_dir():
        raise VideoError(f"{p}: is a folder, not a video file")
    try:
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoError(f"{p}: cannot open as a video ({reason(e)})") from None
    return container, first_video_stream(container, str(p))


def set_threads(stream, threads: int) -> None:
    """threads=1: one decoding thread (the right thing inside DataLoader workers); 0: FFmpeg picks."""
    if threads != 1:
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads


def decoded_frames(container, stream, report: "DecodeReport | None" = None) -> Iterator:
    """Decoded frames in presentation order; packets the decoder rejects are skipped, as ffmpeg does.
    ``report`` counts what was skipped and why reading stopped early (damage, truncation)."""
    import av

    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.EOFError:
                return
            except (av.FFmpegError, ValueError):
                if report is not None:
                    report.decode_errors += 1
                continue  # one damaged packet: later keyframes still decode
            yield from frames
    except av.FFmpegError as e:
        if report is not None:
            report.read_error = reason(e)
        return  # a truncated or damaged container: stop where reading stops


def out_size(h: int, w: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) after scaling the short side down to ``short_side`` (never up)."""
    short = min(h, w)
    if not short_side or short_side >= short:
        return h, w
    s = short_side / short
    return max(1, round(h * s)), max(1, round(w * s))


def quarter_turns(frame) -> int:
    """How many quarter turns counter-clockwise show ``frame`` upright (its display matrix, as
    ffmpeg's autorotate reads it: phone videos store portrait pixels as landscape plus a rotation)."""
    return int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) % 4


def rgb_frame(frame, short_side: int | None = None, reformatter=None) -> np.ndarray:
    """One decoded frame as uint8 RGB (H, W, 3), upright (its display rotation applied), scaled by
    swscale (area filter) when ``short_side`` is smaller than the frame's short side: scaling while
    converting from YUV is far cheaper than scaling the full-size RGB frame. Pass one
    ``av.video.reformatter.VideoReformatter`` for a run of frames: it keeps its swscale context
    (3-4x faster than one per frame)."""
    reformatter = reformatter or new_reformatter()
    h, w = out_size(frame.height, frame.width, short_side)
    interp = None if (h, w) == (frame.height, frame.width) else "AREA"
    rgb = reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation=interp).to_ndarray()
    k = quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def frame_to_tensor(frame, short_side: int | None = None, reformatter=None) -> torch.Tensor:
    """``rgb_frame`` as a torch tensor (H, W, 3) uint8."""
    import torch

    return torch.from_numpy(rgb_frame(frame, short_side, reformatter))


def new_reformatter():
    from av.video.reformatter import VideoReformatter

    return VideoReformatter()


# A frame whose time is within this of t counts as on screen at t: float fuzz (700 * 0.001 != 0.7)
# must not hand back the previous frame. Far below any frame interval.
TIME_EPS = 1e-6


def seconds(stamps, time_base) -> np.ndarray:
    """Timestamps in ``time_base`` units -> float64 seconds, correctly rounded (700 * 1/1000 -> 0.7)."""
    tb = Fraction(time_base)
    return np.asarray(stamps, dtype=np.float64) * tb.numerator / tb.denominator


class FrameClock:
    """Strictly increasing frame times (s) while decoding. Like FFmpeg's best-effort timestamp: pts
    unless pts have gone backwards more often than dts; a time that does not increase is nudged."""

    def __init__(self, time_base, rate: float):
        self.tb, self.rate = Fraction(time_base or 0), rate
        self.faults = {"pts": 0, "dts": 0}
        self.prev = {"pts": None, "dts": None}
        self.t = None

    def __call__(self, frame) -> float:
        for k in ("pts", "dts"):
            v = getattr(frame, k)
            if v is not None:
                if self.prev[k] is not None and v <= self.prev[k]:
                    self.faults[k] += 1
                self.prev[k] = v
        use_pts = frame.pts is not None and (self.faults["pts"] <= self.faults["dts"] or frame.dts is None)
        stamp = frame.pts if use_pts else frame.dts
        t = stamp * self.tb.numerator / self.tb.denominator if stamp is not None else (self.t + 1.0 / self.rate if self.t is not None else 0.0)
        if self.t is not None and t <= self.t:
            t = self.t + 1e-6
        self.t = t
        return t


class GapCounter:
    """Counts jumps in presentation time: a frame interval over ``factor`` x the median of the last
    intervals (a camera that stalled, frames lost in transit, cut-out damage)."""

    def __init__(self, factor: float = 2.5, window: int = 32):
        from collections import deque

        self.factor = factor
        self.intervals: deque = deque(maxlen=window)
        self.prev: float | None = None
        self.gaps, self.seconds = 0, 0.0
        self._median = 0.0

    def __call__(self, t: float) -> None:
        if self.prev is not None:
            dt = t - self.prev
            if len(self.intervals) >= 8 and dt > self.factor * self._median:
                self.gaps += 1
                self.seconds += dt - self._median
            else:
                self.intervals.append(dt)
                if len(self.intervals) >= 8:
                    self._median = float(np.median(self.intervals))
        self.prev = t

    @property
    def interval(self) -> float:
        """The usual frame interval (s), 0 until a few frames were seen."""
        return self._median


@dataclass
class DecodeReport:
    """What reading one video met: packets the decoder rejected, gaps in time, a short tail, its size."""

    path: str
    frames: int = 0  # frames decoded
    decode_errors: int = 0  # packets the decoder rejected
    gaps: int = 0  # jumps in presentation time (GapCounter)
    gap_seconds: float = 0.0
    read_error: str | None = None  # why the demuxer stopped before the end, if it did
    announced: float | None = None  # seconds the container says it holds
    decoded: float = 0.0  # seconds decoded: from the first frame to the end of the last
    interval: float = 0.0  # the usual frame interval, s
    width: int = 0  # upright size of the frames
    height: int = 0

    @property
    def missing_tail(self) -> float:
        """Seconds the container announced but did not deliver (a truncated file), 0 if none."""
        if not self.announced or self.announced <= 0:
            return 0.0
        short = self.announced - self.decoded
        return short if short > max(0.5, 0.05 * self.announced) else 0.0

    @property
    def lost_seconds(self) -> float:
        """Seconds of the video lost to damage: rejected packets (a frame interval each), gaps, the missing tail."""
        return self.decode_errors * self.interval + self.gap_seconds + self.missing_tail

    @property
    def lost_fraction(self) -> float:
        whole = max(self.announced or 0.0, self.decoded, 1e-9)
        return min(1.0, self.lost_seconds / whole)

    def problems(self, image_size: int | None = None, small: float = 0.5) -> list[str]:
        """What a user should hear about, one phrase each with its numbers (empty: nothing to say)."""
        out = []
        if self.decode_errors:
            out.append(f"{self.decode_errors} packet(s) failed to decode")
        if self.gaps:
            out.append(f"{self.gaps} gap(s) in time ({self.gap_seconds:.2f} s)")
        if self.missing_tail:
            why = f" ({self.read_error})" if self.read_error else ""
            out.append(f"truncated: {self.decoded:.2f} of {self.announced:.2f} s announced decoded{why}")
        elif self.read_error and not self.frames:
            out.append(f"unreadable: {self.read_error}")
        if image_size and self.width and min(self.width, self.height) < small * image_size:
            out.append(f"{self.width}x{self.height} is far below the model's {image_size} px input "
                       f"({image_size / min(self.width, self.height):.1f}x upscaled)")
        return out

    def line(self, image_size: int | None = None) -> str | None:
        """One warning line, or None when reading met nothing worth saying."""
        probs = self.problems(image_size)
        if not probs:
            return None
        lost = f"; {100 * self.lost_fraction:.0f}% of its time lost" if self.lost_seconds > 0 else ""
        return f"{self.path}: {', '.join(probs)}{lost}"


def announced_seconds(container, stream) -> float | None:
    """How long the container says the video stream is (s), when it says."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def _best_effort_times(pts: list, dts: list, time_base: Fraction, rate: float) -> np.ndarray:
    """Frame times (s) from decoded frames: pts if they increase, else dts if they do, else the rate."""
    for stamps in (pts, dts):
        if stamps and all(s is not None for s in stamps):
            a = np.asarray(stamps, dtype=np.int64)
            if (np.diff(a) > 0).all():
                return seconds(a, time_base)
    first = next((s for s in pts + dts if s is not None), 0)
    return float(seconds(first, time_base)) + np.arange(len(pts)) / rate


class Timeline:
    """``start`` and ``duration`` of anything with ``times`` (presentation times, s) and ``end``."""

    times: np.ndarray
    end: float

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, eq=False)
class FrameIndex(Timeline):
    """Where every frame of a video's first video stream sits in time."""

    path: str
    times: np.ndarray  # (N,) float64 seconds: presentation time of each frame, strictly increasing
    pts: np.ndarray  # (N,) int64 in time_base units (what decoded frames carry; seekable files only)
    keyframes: np.ndarray  # (K,) int64: positions (into times) of the keyframes, increasing
    end: float  # seconds: the last frame's time plus its duration
    time_base: Fraction
    width: int
    height: int
    codec: str
    seekable: bool  # False: frames are read by decoding from the start (see module docstring)
    report: "DecodeReport | None" = None  # damage found so far: demux (gaps, a short tail), then reads (decode errors)

    @property
    def num_frames(self) -> int:
        return len(self.times)

    @property
    def fps(self) -> float:
        """Average frames per second (VFR files: an average only)."""
        return self.num_frames / self.duration if self.duration > 0 else 0.0

    def position(self, t) -> np.ndarray:
        """Frame position on screen at time(s) ``t`` (s): the last frame with time <= t."""
        i = np.searchsorted(self.times, np.asarray(t, dtype=np.float64) + TIME_EPS, side="right") - 1
        return np.clip(i, 0, self.num_frames - 1)

    def count_between(self, t0: float, t1: float) -> int:
        """How many frames have their time in [t0, t1)."""
        return int(np.searchsorted(self.times, t1 - TIME_EPS, "left") - np.searchsorted(self.times, t0 - TIME_EPS, "left"))


def probe(path: str | Path, check_frames: int = 12) -> FrameIndex:
    """Build the FrameIndex of ``path`` (demux only, plus a check of the first ``check_frames``
    decoded frames; a full decode where packet times cannot be trusted). Raises VideoError."""
    import av

    path = str(path)
    container, stream = open_video(path)
    with container:
        tb = stream.time_base or Fraction(1, 90000)
        pts: list[int] = []
        key: list[bool] = []
        last_dur = None
        missing_pts = False
        report = DecodeReport(path, announced=announced_seconds(container, stream))
        try:
            for pkt in container.demux(stream):
                if pkt.size == 0:
                    continue  # the flush packet at the end of the stream
                if pkt.pts is None:
                    missing_pts = True
                    break
                if getattr(pkt, "is_discard", False):
                    continue  # edit-list pre-roll: decoded, then dropped by the decoder
                pts.append(pkt.pts)
                key.append(bool(pkt.is_keyframe))
                last_dur = pkt.duration
        except av.FFmpegError as e:
            report.read_error = reason(e)  # a truncated file: index what could be read
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
        frame_rate = float(stream.average_rate or stream.guessed_rate or 25)

    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    spts = np.asarray(pts, dtype=np.int64)[order]
    trusted = (
        not missing_pts
        and len(spts) > 0
        and (np.diff(spts) > 0).all()
        and _first_frames_match(path, set(spts[: 4 * check_frames].tolist()), check_frames)
    )
    if trusted:
        times = seconds(spts, tb)
        keyframes = np.flatnonzero(np.asarray(key)[order])
        if len(keyframes) == 0 or keyframes[0] != 0:
            keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
        end = float(times[-1]) + _last_frame_duration(times, last_dur, tb, frame_rate)
        gaps = GapCounter()
        for t in times:
            gaps(float(t))
        report.frames, report.gaps, report.gap_seconds = len(times), gaps.gaps, gaps.seconds
        report.interval = gaps.interval or 1.0 / frame_rate
        report.decoded = end - float(times[0])
        report.width, report.height = width, height
        return FrameIndex(path, times, spts, keyframes.astype(np.int64), end, Fraction(tb), width, height, codec, True,
                          report)

    # Packet times cannot be trusted: decode everything once and take the decoder's word.
    return probe_decoded(path)


def _last_frame_duration(times, last_dur, tb, frame_rate) -> float:
    if last_dur:
        return last_dur * float(tb)
    if len(times) > 1:
        return float(np.median(np.diff(times)))
    return 1.0 / frame_rate


def _first_frames_match(path: str, packet_pts: set, n: int) -> bool:
    """Do the first n decoded frames carry increasing pts that the packets announced?"""
    container, stream = open_video(path)
    with container:
        last = None
        for i, frame in enumerate(decoded_frames(container, stream)):
            if frame.pts is None or frame.pts not in packet_pts or (last is not None and frame.pts <= last):
                return False
            last = frame.pts
            if i + 1 >= n:
                break
        return last is not None


class _Untrusted(Exception):
    """Decoded pts disagreed with the index while reading: fall back to a decoded index."""


class VideoReader:
    """Reads frames of one video by presentation time.

    ``threads``: decoder threads (1 inside DataLoader workers; 0 lets FFmpeg pick).
    ``index``: a FrameIndex from an earlier ``probe`` of the same file (saves the demux pass).
    """

    def __init__(self, path: str | Path, threads: int = 1, index: FrameIndex | None = None):
        self.path = str(path)
        self.threads = threads
        self.index = index if index is not None else probe(self.path)

    # -- facts --------------------------------------------------------------------------------
    @property
    def duration(self) -> float:
        return self.index.duration

    def __repr__(self) -> str:
        i = self.index
        return (
            f"VideoReader({self.path!r}, {i.codec} {i.width}x{i.height}, {i.num_frames} frames, "
            f"{i.start:.3f}-{i.end:.3f} s, seekable={i.seekable})"
        )

    # -- reading ------------------------------------------------------------------------------
    def read(self, times: Sequence[float] | np.ndarray, short_side: int | None = None) -> torch.Tensor:
        """Frames on screen at ``times`` (s, any order, repeats allowed): uint8 (T, 3, H, W) RGB.

        ``short_side`` scales frames down at decode time (swscale, area filter)."""
        times = np.asarray(times, dtype=np.float64)
        try:
            return self._read(self.index.position(times), short_side)
        except _Untrusted:
            self.index = probe_decoded(self.path)  # the decoder disagreed with the packets' times
            return self._read(self.index.position(times), short_side)

    def _read(self, positions: np.ndarray, short_side) -> torch.Tensor:
        if positions.size == 0:
            raise ValueError("no frames asked for")
        wanted = np.unique(positions)
        if self.index.seekable:
            got = self._read_seeking(wanted, short_side)
        else:
            got = self._read_sequential(wanted, short_side)
        import torch

        return torch.stack([got[int(p)] for p in positions]).permute(0, 3, 1, 2)  # (T, 3, H, W)

    def _read_sequential(self, wanted: np.ndarray, short_side) -> dict[int, torch.Tensor]:
        container, stream = open_video(self.path)
        set_threads(stream, self.threads)
        got, todo = {}, set(wanted.tolist())
        conv = new_reformatter()
        last = None
        with container:
            for i, frame in enumerate(decoded_frames(container, stream, self.index.report)):
                last = frame
                if i in todo:
                    got[i] = frame_to_tensor(frame, short_side, conv)
                    todo.discard(i)
                    if not todo:
                        break
        if last is None:
            raise VideoError(f"{self.path}: no decodable video frames")
        for i in todo:  # fewer frames decoded than indexed (damage): the last frame stays on screen
            got[i] = frame_to_tensor(last, short_side, conv)
        return got

    def _read_seeking(self, wanted: np.ndarray, short_side) -> dict[int, torch.Tensor]:
        idx = self.index
        pts, keys = idx.pts, idx.keyframes
        container, stream = open_video(self.path)
        set_threads(stream, self.threads)
        got: dict[int, torch.Tensor] = {}
        conv = new_reformatter()
        with container:
            frames = None  # the decoded-frame iterator of the current run
            pending = None  # a frame decoded but not yet consumed (peeked)
            shown = None  # the last consumed frame: on screen until the next one's time
            for p in wanted.tolist():
                target = int(pts[p])
                k = int(keys[np.searchsorted(keys, p, side="right") - 1])  # keyframe at or before p
                shown_pos = -1 if shown is None else int(np.searchsorted(pts, shown.pts))
                if frames is None or shown_pos < k:
                    # seek to the keyframe (or an earlier one if the demuxer lands late)
                    frames, pending, shown = self._seek(container, stream, keys, k, target)
                while True:
                    if pending is None:
                        pending = next(frames, None)
                        if pending is None:
                            break  # end of stream: the last frame stays on screen
                        if pending.pts is None or (shown is not None and pending.pts <= shown.pts):
                            raise _Untrusted
                    if pending.pts > target:
                        break
                    shown, pending = pending, None
                    if shown.pts == target:
                        break
                if shown is None and pending is not None:
                    shown, pending = pending, None  # the target precedes every decodable frame
                if shown is None:
                    raise VideoError(f"{self.path}: frame at {idx.times[p]:.3f} s could not be decoded")
                got[p] = frame_to_tensor(shown, short_side, conv)
        return got

    def _seek(self, container, stream, keys: np.ndarray, k: int, target: int):
        """Seek so that decoding starts at or before ``target``; (frames, first frame, None)."""
        pts = self.index.pts
        ki = int(np.searchsorted(keys, k))
        for attempt in range(4):
            start_pts = int(pts[keys[ki]]) if attempt < 3 else None
            if start_pts is None:
                container.seek(0)  # the very start, in AV_TIME_BASE: always safe
            else:
                container.seek(start_pts, stream=stream, backward=True, any_frame=False)
            frames = decoded_frames(container, stream, self.index.report)
            first = next(frames, None)
            if first is not None and first.pts is not None and first.pts <= target:
                return frames, first, None
            if first is not None and first.pts is None:
                raise _Untrusted
            ki = max(ki - 1, 0)  # landed after the target: one keyframe earlier
        frames = decoded_frames(container, stream)
        return frames, next(frames, None), None


def probe_decoded(path: str | Path) -> FrameIndex:
    """The FrameIndex from a full decode (what ``probe`` falls back to); slow for long files."""
    path = str(path)
    container, stream = open_video(path)
    with container:
        tb = stream.time_base or Fraction(1, 90000)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        codec = stream.codec_context.name
        report = DecodeReport(path, announced=announced_seconds(container, stream))
        fpts, fdts = [], []
        width = height = 0
        for frame in decoded_frames(container, stream, report):
            fpts.append(frame.pts)
            fdts.append(frame.dts)
            width, height = frame.width, frame.height
    if not fpts:
        why = f": {report.read_error}" if report.read_error else ""
        raise VideoError(f"{path}: no decodable video frames ({codec}{why})")
    times = _best_effort_times(fpts, fdts, tb, rate)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / rate
    stamps = np.round(times / float(tb)).astype(np.int64)
    gaps = GapCounter()
    for t in times:
        gaps(float(t))
    report.frames, report.gaps, report.gap_seconds, report.interval = len(times), gaps.gaps, gaps.seconds, step
    report.decoded = float(times[-1]) + step - float(times[0])
    report.width, report.height = width, height
    return FrameIndex(path, times, stamps, np.zeros(1, np.int64), float(times[-1]) + step, Fraction(tb), width, height,
                      codec, False, report)
