"""A live MPEG-TS stream on 127.0.0.1 for the network tests: a clip looped, encoded and served by PyAV.

    python tests/stream_server.py PORT CLIP [--speed 2.0] [--stall-after S] [--max-seconds S] [--to PATH]

Listens on tcp://127.0.0.1:PORT (FFmpeg's tcp protocol with listen=1), waits for one client, then
sends the clip over and over at ``speed`` times its own rate (h264 in MPEG-TS). ``--stall-after``:
after that many seconds of stream it stops sending but keeps the connection open (a stalled
camera). ``--to PATH`` writes the stream into a file or FIFO instead (a device that vanishes when the
test kills the writer and removes the FIFO). The tests start it, kill it (SIGKILL: a dropped stream)
and start it again.
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import av


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("clip")
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--stall-after", type=float, default=None)
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--to", default=None)
    a = ap.parse_args()

    src = av.open(a.clip)
    ist = src.streams.video[0]
    rate = Fraction(ist.average_rate or 25).limit_denominator(1001)
    w, h = ist.codec_context.width // 2 * 2, ist.codec_context.height // 2 * 2
    print("listening", flush=True)
    url = a.to or f"tcp://127.0.0.1:{a.port}?listen=1"
    out = av.open(url, mode="w", format="mpegts")  # returns once a client connects (or a FIFO's reader opens)
    print("connected", flush=True)
    ost = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "tune": "zerolatency", "g": "12"})
    ost.width, ost.height, ost.pix_fmt = w, h, "yuv420p"
    tb = 1 / rate
    n = 0
    t0 = time.monotonic()
    while n * tb < a.max_seconds:
        src.seek(0)
        for frame in src.decode(ist):
            f = frame.reformat(w, h, "yuv420p")
            f.pts, f.time_base = n, tb
            for packet in ost.encode(f):
                out.mux(packet)
            n += 1
            if a.stall_after is not None and n * tb >= a.stall_after:
                print("stalling", flush=True)
                time.sleep(3600)
            ahead = t0 + float(n * tb) / a.speed - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


if __name__ == "__main__":
    main()
