"""Transcode a video to a small file with PyAV: short side scaled down, optional frame rate, a part.

Used to ship footage to a GPU machine (Big Buck Bunny, 10 min: a few MB at short side 144-160)
and to cut the tiny clips the tests use. Video only; audio is dropped.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from .video import VideoError, decoded_frames, open_video, out_size


def _even(x: int) -> int:
    return max(2, x - x % 2)


def transcode(
    src: str | Path,
    dst: str | Path,
    short_side: int | None = 160,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    codec: str = "libx264",
    crf: int = 23,
    preset: str = "medium",
    gop_seconds: float = 2.0,
    bit_rate: int | None = None,
) -> dict:
    """Write ``src`` to ``dst`` (container from its suffix: .mp4, .mkv, .avi ...).

    ``short_side``: scale down to it (area filter; None keeps the size). ``fps``: constant output
    rate, each output frame the source frame on screen at that time (None keeps the source's own
    timestamps, VFR included). ``start``/``duration`` (s, from the first frame): a part only.
    ``codec``: an FFmpeg encoder; libx264 takes ``crf``/``preset``, others ``bit_rate`` (bits/s).
    ``gop_seconds``: a keyframe at least this often, so readers can seek.
    Returns {path, bytes, frames, width, height, seconds}.
    """
    import av

    src, dst = str(src), str(dst)
    cin, sin = open_video(src)
    in_tb = sin.time_base
    rate = sin.average_rate or sin.guessed_rate or Fraction(25)
    out_rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(rate).limit_denominator(1001)
    h, w = out_size(sin.codec_context.height, sin.codec_context.width, short_side)
    h, w = _even(h), _even(w)  # yuv420p needs even sides
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    try:
        cout = av.open(dst, mode="w")
    except (av.FFmpegError, OSError) as e:
        cin.close()
        raise VideoError(f"{dst}: cannot write ({e})") from None
    options = {"crf": str(crf), "preset": preset} if codec == "libx264" else {}
    sout = cout.add_stream(codec, rate=out_rate, options=options)
    sout.width, sout.height, sout.pix_fmt = w, h, "yuv420p"
    sout.codec_context.gop_size = max(1, int(round(float(out_rate) * gop_seconds)))
    if bit_rate:
        sout.bit_rate = bit_rate
    # the encoder's clock: 1/fps for a constant rate, else the source's own time base
    enc_tb = Fraction(1, 1) / out_rate if fps else in_tb
    sout.codec_context.time_base = enc_tb

    frames_out, t_first, last_pts = 0, None, None
    next_k = 0  # with fps: the next output frame index
    prev = None  # (frame, time) with fps: the frame on screen until the next one arrives

    def emit(frame, pts):
        nonlocal frames_out, last_pts
        if last_pts is not None and pts <= last_pts:
            return
        out = frame.reformat(width=w, height=h, format="yuv420p", interpolation="AREA")
        out.pts, out.time_base = pts, enc_tb
        for pkt in sout.encode(out):
            cout.mux(pkt)
        frames_out += 1
        last_pts = pts

    try:
        with cin:
            for frame in decoded_frames(cin, sin):
                if frame.pts is None:
                    continue
                t = float(frame.pts * in_tb)
                if t_first is None:
                    t_first = t
                rel = t - t_first - start
                if duration is not None and rel >= duration:
                    break
                if fps:
                    # output frame k shows the source frame on screen at start + k/fps
                    while prev is not None and next_k / float(out_rate) < rel:
                        emit(prev[0], next_k)
                        next_k += 1
                    prev = (frame, rel)
                elif rel >= 0:
                    emit(frame, int(round(rel / float(in_tb))))
            if fps and prev is not None:
                end = duration if duration is not None else prev[1] + 1.0 / float(rate)
                while next_k / float(out_rate) < end:
                    emit(prev[0], next_k)
                    next_k += 1
            for pkt in sout.encode():
                cout.mux(pkt)
    finally:
        cout.close()
    if frames_out == 0:
        Path(dst).unlink(missing_ok=True)
        raise VideoError(f"{src}: nothing to write (start {start} s is past the end?)")
    size = Path(dst).stat().st_size
    return {
        "path": dst,
        "bytes": size,
        "frames": frames_out,
        "width": w,
        "height": h,
        "seconds": round(frames_out / float(out_rate) if fps else float(last_pts * enc_tb) + 1 / float(rate), 3),
    }


def retime(src: str | Path, dst: str | Path, *, width: int, height: int, fps: float = 25.0,
           seconds: float | None = None, times: list[float] | None = None, codec: str = "libx264",
           options: dict[str, str] | None = None, gop: int | None = None, pix_fmt: str = "yuv420p",
           rotate: float | None = None, container_options: dict[str, str] | None = None) -> Path:
    """A video made of ``src``'s frames in order, looped as needed, each frame becoming the next
    output frame: ``seconds`` at a constant ``fps``, or one frame at each of ``times`` (s; variable
    rate, gaps). Scaled to ``width`` x ``height``. ``rotate`` stores a display rotation (degrees,
    counter-clockwise), as phones do. Real footage at any size, rate and length for benchmarks and
    test inputs; motion plays at fps / the source's rate."""
    import av

    rate = Fraction(fps).limit_denominator(1001)
    tb = Fraction(1, 1000) if times is not None else 1 / rate
    n = len(times) if times is not None else int(round(seconds * fps))
    with av.open(str(dst), mode="w", options=container_options or {}) as out:
        st = out.add_stream(codec, rate=rate, options=options or {})
        st.width, st.height, st.pix_fmt = width, height, pix_fmt
        st.codec_context.time_base = tb
        if gop:
            st.codec_context.gop_size = gop
        if rotate is not None:
            st.set_display_rotation(rotate)
        k = 0
        while k < n:
            cin, sin = open_video(src)
            with cin:
                for frame in decoded_frames(cin, sin):
                    f = frame.reformat(width=width, height=height, format=pix_fmt, interpolation="BILINEAR")
                    f.pts = int(round(times[k] * 1000)) if times is not None else k
                    f.time_base = tb
                    for p in st.encode(f):
                        out.mux(p)
                    k += 1
                    if k >= n:
                        break
        for p in st.encode(None):
            out.mux(p)
    return Path(dst)
