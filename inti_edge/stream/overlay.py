"""``--save-video``: each source written again with its current label and score drawn on it (PyAV).

Every decoded frame is written at the source's own size and rate. A frame at time t shows the
label of the last window that ended at or before t: what a viewer of the live stream would have
seen. A file's frames wait (bounded) until the windows up to their time are known; a live
source's frames are drawn with what is known when they arrive, and dropped (counted) if the
encoder falls behind.
"""

from __future__ import annotations

import threading
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.sampling import Sampling
from ..data.video import rgb_frame
from .sources import SourceSpec


def writers_for(path: str, specs: Sequence[SourceSpec], sampling: Sampling) -> list["OverlayWriter"]:
    """One writer per source: ``path`` for one source, ``stem.N.suffix`` for several."""
    p = Path(path)
    if not p.suffix:
        raise ValueError(f"--save-video {path}: name a video file (e.g. out.mp4)")
    if not p.resolve().parent.is_dir():
        raise ValueError(f"--save-video {path}: no folder {p.resolve().parent}")
    if len(specs) == 1:
        return [OverlayWriter(p, specs[0], sampling)]
    return [OverlayWriter(p.with_name(f"{p.stem}.{i}{p.suffix}"), s, sampling) for i, s in enumerate(specs)]


class OverlayWriter(threading.Thread):
    """Receives (frame, time) from a reader, labels from the inference loop; encodes in its own thread."""

    def __init__(self, path: Path, spec: SourceSpec, sampling: Sampling):
        super().__init__(name=f"overlay-{path.name}", daemon=True)
        self.path, self.spec = Path(path), spec
        self.live = spec.live
        self.cond = threading.Condition()
        self.frames: deque = deque()
        # a file's frames wait for the labels up to their time: room for a unit's span and a margin
        self.capacity = 256
        self.labels: list[tuple[float, str, float]] = []  # (window end s, label, score), in time order
        self.frontier = float("-inf")  # labels are known for every window ending before this time
        self.closing = False
        self.abandon = False
        self.written = self.dropped = 0
        self.error: str | None = None
        self._out = None
        self._stream = None
        self._font = None
        self.rate = lambda: 25.0  # the source's frame rate once it is open (set by the stream)

    # -- from the reader thread -------------------------------------------------------------------
    def add_frame(self, frame, t: float) -> None:
        with self.cond:
            while len(self.frames) >= self.capacity and not (self.closing or self.live):
                self.cond.wait(0.1)
            if len(self.frames) >= self.capacity:
                self.dropped += 1
                return
            self.frames.append((frame, t))
            self.cond.notify_all()

    # -- from the inference loop ------------------------------------------------------------------
    def label(self, t_end: float, label: str, score: float) -> None:
        with self.cond:
            self.labels.append((t_end, label, score))

    def advance(self, t: float) -> None:
        with self.cond:
            self.frontier = max(self.frontier, t)
            self.cond.notify_all()

    def close(self, abandon: bool = False) -> None:
        """No more frames; write what is queued (``abandon``: only what is already labelled)."""
        with self.cond:
            self.closing, self.abandon = True, abandon
            self.frontier = float("inf")
            self.cond.notify_all()
        self.join(timeout=60)

    # -- the thread -------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.frames and not self.closing:
                        self.cond.wait(0.1)
                    if not self.frames:
                        break
                    frame, t = self.frames[0]
                    if not self.live:
                        while t > self.frontier and not self.closing:
                            self.cond.wait(0.1)
                    self.frames.popleft()
                    self.cond.notify_all()
                    shown = self._label_at(t)
                self._write(frame, shown)
        except Exception as e:  # noqa: BLE001 - a broken writer must not stop the stream
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self._finish()

    def _label_at(self, t: float):
        shown = None
        for t_end, label, score in reversed(self.labels):
            if t_end <= t + 1e-6:
                shown = (label, score)
                break
        # labels older than the newest one before t are never needed again
        while len(self.labels) > 1 and self.labels[1][0] <= t:
            self.labels.pop(0)
        return shown

    def _open(self, img: np.ndarray) -> None:
        import av

        self._out = av.open(str(self.path), mode="w")
        rate = Fraction(self.rate() or 25.0).limit_denominator(1001)
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        st = self._out.add_stream(codec, rate=rate)
        h, w = img.shape[:2]
        st.width, st.height = w - w % 2, h - h % 2
        st.pix_fmt = "yuv420p"
        if codec == "libx264":
            st.options = {"preset": "veryfast", "crf": "23"}
        self._stream = st
        self._tb = 1 / rate

    def _write(self, frame, shown) -> None:
        img = rgb_frame(frame)  # upright, full size
        if self._out is None:
            self._open(img)
        st = self._stream
        img = np.ascontiguousarray(img[: st.height, : st.width])
        self._draw(img, shown)
        import av

        out = av.VideoFrame.from_ndarray(img, format="rgb24")
        out.pts = self.written
        out.time_base = self._tb
        for packet in st.encode(out):
            self._out.mux(packet)
        self.written += 1

    def _draw(self, img: np.ndarray, shown) -> None:
        """The label and score on a dark band at the top, with a bar the length of the score."""
        from PIL import Image, ImageDraw, ImageFont

        h, w = img.shape[:2]
        band = max(12, min(h // 6, 48))
        if self._font is None:
            try:
                self._font = ImageFont.load_default(size=max(8, int(band * 0.6)))
            except TypeError:  # Pillow < 10.1: the fixed bitmap font
                self._font = ImageFont.load_default()
        region = Image.fromarray(img[:band])
        draw = ImageDraw.Draw(region)
        draw.rectangle([0, 0, w, band], fill=(0, 0, 0))
        text = f"{shown[0]}  {shown[1]:.2f}" if shown else "waiting for the first window"
        draw.text((4, int(band * 0.1)), text, fill=(255, 255, 255), font=self._font)
        if shown:
            draw.rectangle([0, band - 3, int(w * shown[1]), band - 1], fill=(80, 200, 120))
        img[:band] = np.asarray(region)

    def _finish(self) -> None:
        if self._out is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._out.mux(packet)
        finally:
            self._out.close()
