"""A camera-motion checkpoint's accuracy against the footage's own camera motion, clip by clip.

    python scripts/motion_errors.py CHECKPOINT --data motion:VIDEO[,VIDEO...] [--split test] [--seed 1]
                                    [--limit N] [--batch-size 50] [--json] [--plot errors.png]

The same clips as `inti-edge eval` with the same --data, --split and --seed. For each clip, the
footage's own global shift from its first to its last frame is measured on the full frames (phase
correlation, as in footage_motion.py) in sides of that clip's window, the unit of MotionConfig.pan.
The clips are then binned by that shift, with the top-1 accuracy in each bin, overall and for the
`static` class. For the static clips read as pans, the script also counts how many name the
direction in which the footage's own camera moved (content drifting left = the camera turned right).
When most do, those errors are the footage's real camera motion, not the virtual camera's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "scripts"))

from inti_edge.data.motion import PAN_DOWN, PAN_LEFT, PAN_RIGHT, PAN_UP, STATIC  # noqa: E402

BINS = (0.0, 0.0625, 0.125, 0.25, float("inf"))  # own shift / window side; 0.25 = the smallest virtual pan


def apparent_pan(dx: float, dy: float) -> int:
    """The pan class of a global shift (dx, dy) of footage_motion.global_shift: content that moves
    left (dx > 0) means the camera turned right; image y points down."""
    if abs(dx) >= abs(dy):
        return PAN_RIGHT if dx > 0 else PAN_LEFT
    return PAN_DOWN if dy > 0 else PAN_UP


def measure(checkpoint: str, data: str, split: str, seed: int, limit: int | None, batch: int) -> tuple[list[dict], list[str]]:
    """One row per clip: label, prediction, own shift (dx, dy in window sides), video index."""
    import torch
    from rich.progress import Progress

    from footage_motion import global_shift
    from inti_edge.data import build_dataset
    from inti_edge.evaluate import trained_labels
    from inti_edge.model import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    model.eval()
    # the clips `inti-edge eval` draws: the label rule the checkpoint was trained with
    ds = build_dataset(data, model.cfg, split, seed=seed, classes=meta["classes"], labels=trained_labels(meta))
    if not hasattr(ds, "plan"):
        raise ValueError("--data must be a motion: spec (generated camera-motion clips)")
    n = len(ds) if limit is None else min(limit, len(ds))
    rows: list[dict] = []
    with Progress(transient=True) as bar, torch.no_grad():
        task = bar.add_task("clips", total=n)
        for start in range(0, n, batch):
            plans = [ds.plan(i) for i in range(start, min(n, start + batch))]
            clips, labels = ds.render(plans)
            pred = model(clips).argmax(1).tolist()
            for p, y, q in zip(plans, labels.tolist(), pred):
                store = ds.sources[p.video].store
                first = store.frames[int(p.positions[0])].float().mean(0).numpy()
                last = store.frames[int(p.positions[-1])].float().mean(0).numpy()
                dx, dy = global_shift(first, last)
                side = float(np.mean(p.boxes[:, 2] - p.boxes[:, 0]))
                if p.flip:  # the clip is mirrored: so is the footage's motion
                    dx = -dx
                rows.append({"video": p.video, "label": y, "pred": q, "dx": dx / side, "dy": dy / side})
            bar.advance(task, len(plans))
    return rows, list(meta["classes"])


def summarize(rows: list[dict], classes: list[str]) -> dict:
    y = np.array([r["label"] for r in rows])
    p = np.array([r["pred"] for r in rows])
    dx, dy = np.array([r["dx"] for r in rows]), np.array([r["dy"] for r in rows])
    shift = np.hypot(dx, dy)
    bins = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        k = (shift >= lo) & (shift < hi)
        ks = k & (y == STATIC)
        bins.append({
            "own_shift": [lo, hi if np.isfinite(hi) else None],
            "n": int(k.sum()),
            "top1": float((p[k] == y[k]).mean()) if k.any() else None,
            "static_n": int(ks.sum()),
            "static_top1": float((p[ks] == STATIC).mean()) if ks.any() else None,
        })
    misread = (y == STATIC) & (p >= PAN_LEFT) & (p <= PAN_DOWN)
    along = sum(apparent_pan(a, b) == q for a, b, q in zip(dx[misread], dy[misread], p[misread]))
    return {
        "n": len(rows),
        "top1": float((p == y).mean()),
        "own_shift_median": float(np.median(shift)),
        "bins": bins,
        "static_read_as_pan": int(misread.sum()),
        "static_read_as_pan_along_own_motion": int(along),
        "classes": classes,
    }


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{b['own_shift'][0]:g}-{b['own_shift'][1]:g}" if b["own_shift"][1] else f">={b['own_shift'][0]:g}"
              for b in summary["bins"]]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    all_ = [100 * (b["top1"] or 0) for b in summary["bins"]]
    st = [100 * (b["static_top1"] or 0) for b in summary["bins"]]
    ax.bar(x - 0.2, all_, 0.4, label="all classes")
    ax.bar(x + 0.2, st, 0.4, label="static")
    for i, b in enumerate(summary["bins"]):
        ax.text(x[i] - 0.2, all_[i] + 1, f"n={b['n']}", ha="center", fontsize=8)
    ax.set_xticks(x, labels)
    ax.set_xlabel("footage's own shift over the clip (window sides)")
    ax.set_ylabel("top-1 (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True, help="motion:VIDEO[,VIDEO...]")
    ap.add_argument("--split", default="test", help="train | val | test | all [test]")
    ap.add_argument("--seed", type=int, default=1, help="seed of the evaluation clips, as inti-edge eval [1]")
    ap.add_argument("--limit", type=int, default=None, help="at most this many clips")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--plot", type=Path, default=None, help="write a bar chart (PNG) here")
    args = ap.parse_args()
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        ap.error("--batch-size and --limit must be >= 1")
    if not Path(args.checkpoint).is_file():
        sys.exit(f"error: no checkpoint at {args.checkpoint}")
    if args.plot and not args.plot.resolve().parent.is_dir():  # before minutes of work, not after
        sys.exit(f"error: cannot write {args.plot}: no folder {args.plot.resolve().parent}")
    try:
        rows, classes = measure(args.checkpoint, args.data, args.split, args.seed, args.limit, args.batch_size)
    except Exception as e:  # noqa: BLE001 - bad data / checkpoint: one line
        sys.exit(f"error: {e}")
    s = summarize(rows, classes)
    if args.plot:
        plot(s, args.plot, f"{Path(args.checkpoint).name}, {args.split}, seed {args.seed}: top-1 {100 * s['top1']:.1f}%")
    if args.json:
        print(json.dumps(s, indent=2))
        return
    print(f"{s['n']} clips, top-1 {100 * s['top1']:.1f}%, own shift median {s['own_shift_median']:.3f} window sides")
    print(f"{'own shift':>12s} {'clips':>6s} {'top-1':>7s} {'static':>7s} {'static top-1':>13s}")
    for b in s["bins"]:
        lo, hi = b["own_shift"]
        rng = f"{lo:g}-{hi:g}" if hi is not None else f">={lo:g}"
        t1 = f"{100 * b['top1']:.1f}%" if b["top1"] is not None else "-"
        st = f"{100 * b['static_top1']:.1f}%" if b["static_top1"] is not None else "-"
        print(f"{rng:>12s} {b['n']:6d} {t1:>7s} {b['static_n']:7d} {st:>13s}")
    m = s["static_read_as_pan"]
    if m:
        print(f"static clips read as a pan: {m}; along the footage's own motion: "
              f"{s['static_read_as_pan_along_own_motion']} ({100 * s['static_read_as_pan_along_own_motion'] / m:.0f}%)")


if __name__ == "__main__":
    main()
