"""scripts/footage_motion.py and scripts/motion_errors.py: the footage's own motion, in the task's terms."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import footage_motion  # noqa: E402
import motion_errors  # noqa: E402

from inti_edge.data import load_store  # noqa: E402
from inti_edge.data.motion import _PAN_DIR, PAN_DOWN, PAN_LEFT, PAN_RIGHT, PAN_UP, STATIC  # noqa: E402

CLIP = ROOT / "tests" / "data" / "bbb_8s_160x90.mp4"
MODEL = ROOT / "inti_edge" / "assets" / "default_motion_small.pt"


@pytest.fixture(scope="module")
def still():
    """A real grey frame of the sample clip, (H, W) float."""
    return load_store(CLIP, short_side=90).frames[40].float().mean(0).numpy()


@pytest.mark.parametrize("label", [PAN_LEFT, PAN_RIGHT, PAN_UP, PAN_DOWN])
@pytest.mark.parametrize("step", [5, 11])
def test_a_window_moving_over_still_footage_reads_as_its_own_pan(still, label, step):
    # the task's window moves the way its camera turns (_PAN_DIR); the same window path over still
    # footage is what a real camera turning that way films, so the shift must name that pan
    ddx, ddy = _PAN_DIR[label]
    h, w = 60, 90
    y0, x0 = 15 + (step if ddy < 0 else 0), step if ddx < 0 else 0
    first = still[y0:y0 + h, x0:x0 + w]
    last = still[y0 + ddy * step:y0 + ddy * step + h, x0 + ddx * step:x0 + ddx * step + w]
    dx, dy = footage_motion.global_shift(first, last)
    assert (abs(dx), abs(dy)) == ((step, 0) if ddx else (0, step))
    assert motion_errors.apparent_pan(dx, dy) == label


def test_summary_bins_and_static_errors_along_the_footage():
    rows = [
        {"video": 0, "label": STATIC, "pred": STATIC, "dx": 0.01, "dy": 0.0},  # bin 0, right
        {"video": 0, "label": PAN_UP, "pred": PAN_UP, "dx": 0.0, "dy": 0.1},  # bin 1, right
        {"video": 0, "label": STATIC, "pred": PAN_RIGHT, "dx": 0.2, "dy": 0.05},  # bin 2, along its motion
        {"video": 0, "label": STATIC, "pred": PAN_LEFT, "dx": 0.3, "dy": 0.0},  # bin 3, against it
        {"video": 0, "label": PAN_LEFT, "pred": PAN_RIGHT, "dx": -0.4, "dy": 0.0},  # bin 3, not static
    ]
    s = motion_errors.summarize(rows, ["static", "pan_left", "pan_right", "pan_up", "pan_down"])
    assert s["n"] == 5 and s["top1"] == pytest.approx(0.4)
    assert [b["n"] for b in s["bins"]] == [1, 1, 1, 2]
    assert [b["top1"] for b in s["bins"]] == [1.0, 1.0, 0.0, 0.0]
    assert [b["static_n"] for b in s["bins"]] == [1, 0, 1, 1]
    assert s["bins"][1]["static_top1"] is None
    assert s["static_read_as_pan"] == 2 and s["static_read_as_pan_along_own_motion"] == 1


def test_measure_sees_the_same_clips_as_inti_edge_eval():
    torch = pytest.importorskip("torch")
    from inti_edge.data import build_dataset
    from inti_edge.evaluate import trained_labels
    from inti_edge.model import load_checkpoint
    from inti_edge.train import evaluate_model as evaluate

    spec = f"motion:{CLIP}"
    rows, classes = motion_errors.measure(str(MODEL), spec, "all", seed=3, limit=21, batch=8)
    model, meta = load_checkpoint(MODEL)
    ds = build_dataset(spec, model.cfg, "all", seed=3, classes=meta["classes"], labels=trained_labels(meta))  # the model's own rule
    ref = evaluate(model, ds, meta["classes"], batch_size=8, limit=21)
    assert classes == list(meta["classes"]) and len(rows) == 21
    assert [r["label"] for r in rows] == [i % 7 for i in range(21)]
    assert np.mean([r["label"] == r["pred"] for r in rows]) == pytest.approx(ref["top1"])
    assert all(np.isfinite([r["dx"], r["dy"]]).all() for r in rows)
    with torch.no_grad():
        first = model(ds.render([ds.plan(0)])[0]).argmax(1).item()
    assert rows[0]["pred"] == first
