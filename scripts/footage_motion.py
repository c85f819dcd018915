"""The footage's own camera motion, in the units of the camera-motion task.

    python scripts/footage_motion.py VIDEO [VIDEO ...] [--span 1.1667] [--window 0.6] [--every 3]
                                     [--ranges 60-70,100-110] [--json]

For every few frames t of each video, the global shift between the frame at t and the frame at
t + span (phase correlation of the grey frames, inti_edge.data.footage_motion) is measured as a fraction of a square window of
`window` x the short side: the same units as MotionConfig.pan (the default model's smallest virtual
pan is 0.25 window sides over a clip's 7/6 s). A "static" virtual camera over footage that moves this
much looks like a pan to anyone, so this bounds what the camera-motion task can score on that footage.
`--ranges` keeps spans that lie inside the given seconds (e.g. the held-out blocks of a split).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def grey_frames(path: str, short_side: int) -> list[tuple[float, np.ndarray]]:
    """(time s, grey frame) of every frame, decoded the way the camera-motion task decodes footage
    (inti_edge.data.load_store: presentation times, short side ``short_side``)."""
    from inti_edge.data.store import load_store
    from inti_edge.data.video import VideoError

    try:
        store = load_store(path, short_side=short_side)
    except VideoError as e:
        sys.exit(f"error: {e}")
    grey = store.frames.float().mean(1).numpy()  # (T, H, W)
    return list(zip(np.asarray(store.times, dtype=np.float64).tolist(), grey))


def global_shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(dx, dy) in whole pixels that best aligns b with a: minus the content's move from a to b
    (``inti_edge.data.footage_motion.pair_shift``, the measure the camera-motion labels use)."""
    from inti_edge.data.footage_motion import pair_shift

    dx, dy = pair_shift(a, b)
    return -int(round(dx)), -int(round(dy))


def own_motion(path: str, span: float, window: float, every: int, ranges: list[tuple[float, float]] | None,
               short_side: int = 160) -> dict:
    frames = grey_frames(path, short_side)
    if len(frames) < 2:
        sys.exit(f"error: {path} has fewer than 2 frames")
    times = np.array([t for t, _ in frames])
    side = window * min(frames[0][1].shape)
    shifts = []
    for i in range(0, len(frames), every):
        t = times[i]
        if ranges is not None and not any(lo <= t and t + span <= hi for lo, hi in ranges):
            continue
        j = int(np.searchsorted(times, t + span))
        if j >= len(frames):
            break
        dx, dy = global_shift(frames[i][1], frames[j][1])
        shifts.append(float(np.hypot(dx, dy)) / side)
    if not shifts:
        return {"video": path, "spans": 0}
    s = np.array(shifts)
    return {"video": path, "spans": len(s), "median": round(float(np.median(s)), 3),
            "ge_0.125": round(float(np.mean(s >= 0.125)), 3), "ge_0.25": round(float(np.mean(s >= 0.25)), 3)}


def parse_ranges(text: str | None) -> list[tuple[float, float]] | None:
    if not text:
        return None
    try:
        out = [tuple(float(v) for v in part.split("-")) for part in text.split(",")]
    except ValueError:
        sys.exit(f"error: --ranges wants START-END[,START-END...] in seconds, got {text!r}")
    if any(len(r) != 2 or r[0] >= r[1] for r in out):
        sys.exit(f"error: --ranges wants START-END with START < END, got {text!r}")
    return out  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--span", type=float, default=7 / 6, help="seconds between the compared frames [7/6: 8 frames 1/6 s apart]")
    ap.add_argument("--window", type=float, default=0.6, help="window side / short side [0.6]")
    ap.add_argument("--every", type=int, default=3, help="measure every n-th frame [3]")
    ap.add_argument("--short-side", type=int, default=160, help="decode at this short side, as the task's stores [160]")
    ap.add_argument("--ranges", default=None, help="only spans inside these seconds: 60-70,100-110")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.span <= 0 or not 0 < args.window <= 1 or args.every < 1 or args.short_side < 16:
        ap.error("--span > 0, 0 < --window <= 1, --every >= 1 and --short-side >= 16")
    ranges = parse_ranges(args.ranges)
    rows = [own_motion(v, args.span, args.window, args.every, ranges, args.short_side) for v in args.videos]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'video':44s} {'spans':>5s} {'median':>7s} {'>=0.125':>8s} {'>=0.25':>7s}   (own shift / window side over {args.span:.3f} s)")
    for r in rows:
        if not r["spans"]:
            print(f"{r['video'][-44:]:44s} {0:5d}   (no span fits)")
            continue
        print(f"{r['video'][-44:]:44s} {r['spans']:5d} {r['median']:7.2f} {r['ge_0.125'] * 100:7.0f}% {r['ge_0.25'] * 100:6.0f}%")


if __name__ == "__main__":
    main()
