"""Issue 17: camera-motion labels are the motion a viewer sees (virtual window + the footage's own
motion); raw footage labelled by time range (raw:); per-source accuracy in eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from inti_edge.data import DatasetError, FrameStore, build_dataset, raw_spec, read_raw_labels
from inti_edge.data.footage_motion import measure
from inti_edge.data.motion import (
    MOTION_CLASSES, PAN_DOWN, PAN_LEFT, PAN_RIGHT, PAN_UP, STATIC, ZOOM_IN, ZOOM_OUT, CameraMotionDataset, MotionConfig,
    apparent_motion, classify_motion,
)
from inti_edge.evaluate import evaluate
from inti_edge.model import make_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
BBB = DATA / "bbb_8s_160x90.mp4"
SOCCER = DATA / "soccer_juggling_4s_160x120.avi"
RAW = DATA / "raw_labels.csv"
MODEL = ROOT / "inti_edge" / "assets" / "default_motion_small.pt"
FPS = 24.0


def panning_store(vx: float, vy: float = 0.0, frames: int = 60, h: int = 160, w: int = 284) -> FrameStore:
    """Footage filmed by a camera that moves (vx, vy) px per frame over a smooth random texture: its
    content moves by (-vx, -vy) per frame."""
    rng = np.random.default_rng(0)
    tex = torch.tensor(rng.random((1, 3, 120, 200)), dtype=torch.float32)
    tex = F.interpolate(tex, size=(480, 800), mode="bicubic", align_corners=False).clamp(0, 1) * 255
    t = np.arange(frames)
    x0 = 260 - (vx * frames / 2 if vx > 0 else 0) + vx * t
    y0 = 160 + vy * t
    boxes = torch.tensor([[0, x, y, x + w, y + h] for x, y in zip(x0, y0)], dtype=torch.float32)
    img = roi_align(tex, boxes, output_size=(h, w), spatial_scale=1.0, sampling_ratio=0, aligned=True)
    return FrameStore(img.round().clamp(0, 255).to(torch.uint8), np.arange(frames) / FPS, frames / FPS, "synthetic.mp4")


def motion_set(store, labels: str, n: int = 14) -> CameraMotionDataset:
    return CameraMotionDataset([store], split="all", frames=8, size=32, clips_per_epoch=n, seed=2, random=False, flip_p=0.0,
                               config=MotionConfig(labels=labels))


def test_the_footage_measure_finds_a_known_pan():
    st = panning_store(2.0)  # the camera turns right at 2 px per frame: content moves left
    dx, dy, log_scale, amb = st.motion().between(3, 31)
    assert dx == pytest.approx(-56.0, rel=0.08) and abs(dy) < 2.0 and abs(log_scale) < 0.03 and amb < 0.5
    still = panning_store(0.0).motion().between(0, 40)
    assert np.abs(still[:3]).max() < 1e-3


def test_a_still_window_over_panning_footage_is_the_pan_a_viewer_sees():
    right, down = panning_store(2.0), panning_store(0.0, 1.5)
    for store, seen in ((right, PAN_RIGHT), (down, PAN_DOWN)):
        virtual = motion_set(store, "virtual")
        apparent = motion_set(store, "apparent")
        for i in range(0, 14, 7):  # the static clips
            assert virtual.plan(i).label == STATIC
            p = apparent.plan(i)  # no still clip exists in this footage: the clip keeps the pan it shows
            assert p.label == seen, (MOTION_CLASSES[p.label], p.seen)
        # a virtual pan against the footage's own pan cancels it: never labelled as the window moved
        against = PAN_LEFT if seen == PAN_RIGHT else PAN_UP
        assert apparent.plan(against).label != against
        # a virtual pan with it stays that pan (it only looks faster)
        assert apparent.plan(seen).label == seen


def test_over_still_footage_the_rules_agree():
    st = panning_store(0.0)
    virtual, apparent = motion_set(st, "virtual", 28), motion_set(st, "apparent", 28)
    assert [virtual.plan(i).label for i in range(28)] == [i % 7 for i in range(28)]
    assert [apparent.plan(i).label for i in range(28)] == [i % 7 for i in range(28)]


def test_classify_motion_thresholds():
    assert classify_motion(0.02, -0.03, 0.01) == STATIC
    assert classify_motion(0.3, 0.05, 0.0) == PAN_RIGHT and classify_motion(-0.3, 0.05, 0.0) == PAN_LEFT
    assert classify_motion(0.05, -0.4, 0.0) == PAN_UP and classify_motion(0.0, 0.4, 0.1) == PAN_DOWN
    assert classify_motion(0.0, 0.0, 0.4) == ZOOM_IN and classify_motion(0.05, 0.0, -0.4) == ZOOM_OUT
    assert classify_motion(0.14, 0.0, 0.0) == -1  # between static and a pan
    assert classify_motion(0.3, 0.3, 0.0) == -1  # diagonal
    assert classify_motion(0.3, 0.0, 0.3) == -1  # a pan and a zoom at once
    assert classify_motion(0.0, 0.0, 0.0, ambiguity=0.95) == -1  # two competing motions in the footage
    assert classify_motion(0.14, 0.0, 0.0, nearest=True) in (STATIC, PAN_RIGHT)


def test_apparent_motion_of_a_zoom_window_over_still_footage():
    st = panning_store(0.0)
    fm = st.motion()
    boxes = np.array([[40.0, 20.0, 140.0, 120.0], [65.0, 45.0, 115.0, 95.0]])  # side 100 -> 50 about one centre
    sx, sy, log_scale, _ = apparent_motion(boxes, fm, 0, 28)
    assert abs(sx) < 0.02 and abs(sy) < 0.02 and log_scale == pytest.approx(np.log(2.0), abs=0.02)


def test_measure_is_cheap_and_the_store_keeps_it():
    st = panning_store(1.0)
    assert st.motion() is st.motion()
    moved = st.to("cpu")
    assert moved.motion() is st.motion()  # a copy for the device shares the measure
    fm = measure(st.frames, 1 / FPS)
    assert fm.hop == 4 and fm.shift.shape == (60, 2)


def test_labels_option_is_checked_and_reaches_the_data():
    cfg = make_config("small", frames=8, halvings=1, num_classes=7)
    with pytest.raises(DatasetError, match="labels must be one of apparent, virtual"):
        build_dataset(f"motion:{BBB}", cfg, "all", labels="seen")
    ds = build_dataset(f"motion:{BBB}", cfg, "all", labels="virtual", clips_per_epoch=7)
    assert ds.cfg.labels == "virtual"
    assert build_dataset(f"motion:{BBB}", cfg, "all", clips_per_epoch=7).cfg.labels == "apparent"


# --- raw: specs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, why", [
    ("raw:", "needs a labels CSV"),
    ("raw:clip.mp4", r"raw:clip.mp4@LABELS.csv"),
    ("raw:clip.mp4@", "nothing after '@'"),
    ("raw:@labels.csv", "no video before '@'"),
])
def test_raw_spec_errors_say_the_form(spec, why):
    with pytest.raises(DatasetError, match=why):
        raw_spec(spec)


def test_raw_spec_forms():
    assert raw_spec("raw:a/labels.csv") == ("a/labels.csv", None)
    assert raw_spec("raw:x.mp4, y.avi@l.csv") == ("l.csv", ["x.mp4", "y.avi"])


@pytest.mark.parametrize("rows, why", [
    ("bbb_8s_160x90.mp4,1,2\n", "3 fields, want 4"),
    ("bbb_8s_160x90.mp4,one,2,static\n", "start and end must be seconds"),
    ("bbb_8s_160x90.mp4,3,2,static\n", "want 0 <= start < end"),
    ("bbb_8s_160x90.mp4,1,2,tilt\n", "label 'tilt' is not a camera-motion class"),
    ("nope.mp4,1,2,static\n", "no such video"),
    ("# only a comment\n", "no labelled ranges"),
])
def test_raw_labels_errors_name_the_line(tmp_path, rows, why):
    csv = tmp_path / "labels.csv"
    (tmp_path / "bbb_8s_160x90.mp4").write_bytes(BBB.read_bytes())
    csv.write_text("path,start,end,label\n" + rows)
    with pytest.raises(DatasetError, match=why):
        read_raw_labels(csv)


def test_raw_labels_of_the_committed_clips():
    ranges = read_raw_labels(RAW)
    assert {Path(r.path).name for r in ranges} == {BBB.name, SOCCER.name}
    with pytest.raises(DatasetError, match="no rows in raw_labels.csv"):
        read_raw_labels(RAW, [str(DATA / "make_clips.py")])
    only = read_raw_labels(RAW, [str(BBB)])
    assert {Path(r.path).name for r in only} == {BBB.name}
    with pytest.raises(DatasetError, match="no such labels file"):
        read_raw_labels(DATA / "none.csv")


def test_raw_dataset_samples_as_the_model_does(tmp_path):
    cfg = make_config("small", frames=8, halvings=1, num_classes=7)
    ds = build_dataset(f"raw:{RAW}", cfg, "test", frame_step=0.25)
    assert ds.frame_step()[0] == 0.25
    path, pos, label = ds.clips[0]
    st = ds.stores[path]
    np.testing.assert_allclose(np.diff(st.times[pos]), 0.25, atol=1.5 / 24)  # frames 0.25 s apart
    x, y = ds[0]
    assert x.shape == (8, 3, 112, 112) and y == STATIC
    csv = tmp_path / "short.csv"
    csv.write_text(f"{BBB},4.0,5.0,static\n")
    with pytest.raises(DatasetError, match="holds no clip of 8 frames"):
        build_dataset(f"raw:{csv}", cfg, "test", frame_step=0.25)


# --- evaluation: per source, the label rule recorded -----------------------------------------------------
def test_eval_json_has_per_source_accuracy_and_the_label_rule(tmp_path):
    from inti_edge.evaluate import trained_labels
    from inti_edge.model import load_checkpoint

    res = evaluate(MODEL, f"motion:{BBB},{SOCCER}", "all", limit=28, workers=0, device="cpu")
    assert res["labels"] == "apparent"  # the rule the bundled model was trained with, from its checkpoint
    meta = load_checkpoint(MODEL)[1]
    assert trained_labels(meta) == "apparent"
    older = {**meta, "train_config": {k: v for k, v in meta["train_config"].items() if k != "labels"}}
    assert trained_labels(older) == "virtual"  # a checkpoint from before the rule was recorded
    src = res["per_source"]
    assert set(src) == {BBB.name, SOCCER.name}
    assert sum(r["n"] for r in src.values()) == res["n"] == 28
    pooled = sum(r["top1"] * r["n"] for r in src.values()) / res["n"]
    assert pooled == pytest.approx(res["top1"])
    for r in src.values():
        assert set(r["per_class"]) == set(MOTION_CLASSES)
    assert evaluate(MODEL, f"motion:{BBB}", "all", limit=7, workers=0, device="cpu", labels="apparent")["labels"] == "apparent"


def test_eval_cli_on_raw_ranges_prints_a_table_per_source():
    cmd = [sys.executable, str(ROOT / "cli.py"), "eval", str(MODEL), "--data", f"raw:{RAW}", "--workers", "0"]
    p = subprocess.run(cmd + ["--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert set(r["per_source"]) == {BBB.name, SOCCER.name} and "labels" not in r
    assert sum(v["n"] for v in r["per_source"].values()) == r["n"] > 0
    table = subprocess.run(cmd, capture_output=True, text=True)
    assert table.returncode == 0 and "per source" in table.stdout and SOCCER.name in table.stdout, table.stderr[-2000:]
    bad = subprocess.run([sys.executable, str(ROOT / "cli.py"), "eval", str(MODEL), "--data", f"raw:{BBB}"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "@LABELS.csv" in bad.stderr and "Traceback" not in bad.stderr
