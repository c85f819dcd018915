"""The camera-motion split on short videos (CPU, ~1 min): the layout adapts (shorter blocks, one block
per split, the whole video) so train / val / test work on clips of a few seconds, without a frame
shared between splits; long videos keep their split exactly; warnings and errors are one line with
numbers and name the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from inti_edge.data import (
    CameraMotionDataset,
    ClipsTooShortError,
    FrameStore,
    MotionConfig,
    build_dataset,
    split_layout,
    split_segments,
    transcode,
)
from inti_edge.model import load_checkpoint, make_config
from inti_edge.train import TrainConfig, TrainError, train

ROOT = Path(__file__).resolve().parents[1]
BBB = ROOT / "tests" / "data" / "bbb_8s_160x90.mp4"  # 8 s, 24 fps
SOCCER = ROOT / "tests" / "data" / "soccer_juggling_4s_160x120.avi"  # 4 s, 29.97 fps
SPAN8 = 7 / 6  # 8 frames at 1/6 s: the default model's clip
SPLITS = ("train", "val", "test")
TINY = dict(model="small", frames=4, halvings=1, workers=0, device="cpu", quiet=True, log_every=1, warmup_steps=2)


@pytest.fixture(autouse=True)
def _small_vit(monkeypatch):
    """The 'small' preset shrunk as in test_train.py (4 blocks, 64 px): CPU runs take seconds."""
    import dataclasses

    from inti_edge.model import config as mc

    monkeypatch.setitem(mc.PRESETS, "small", dataclasses.replace(mc.SMALL, layers=4, image_size=64, width=64, embed_dim=64))


@pytest.fixture(scope="module")
def stores() -> dict:
    return {"bbb": FrameStore.from_video(BBB, short_side=90), "soccer": FrameStore.from_video(SOCCER, short_side=90)}


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory) -> dict:
    """Cuts of the committed clip: 0.5 s (no 8-frame clip fits) and 2 s (a clip fits, no split)."""
    d = tmp_path_factory.mktemp("short")
    return {s: Path(transcode(BBB, d / f"bbb_{s}s.mp4", short_side=90, start=1.0, duration=s)["path"]) for s in (0.5, 2.0)}


def _recorded(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(x.message) for x in w]


def _synthetic_store(seconds: float, fps: float = 24.0) -> FrameStore:
    """Footage of ``seconds`` at ``fps`` with 2x2-pixel frames: the split needs times, not pixels."""
    n = int(round(seconds * fps))
    return FrameStore(torch.zeros((n, 3, 2, 2), dtype=torch.uint8), np.arange(n) / fps, n / fps, f"synthetic_{seconds:g}s")


# --- long videos: unchanged ----------------------------------------------------------------------
def test_long_video_split_is_unchanged():
    """Big Buck Bunny (596 s): every split exactly as split_segments deals it, the model card's blocks."""
    for span in (0.5, SPAN8, 4.0):
        lay = split_layout(0.0, 596.0, span, frame_gap=1 / 24)
        assert lay.kind == "blocks" and lay.guard == 0.5
        for split in SPLITS:
            assert lay.segments[split] == split_segments(0.0, 596.0, split), (span, split)
    store = _synthetic_store(596.0)
    cfg = MotionConfig(avoid_cuts=False)
    for split in SPLITS:
        ds, seen = _recorded(lambda: CameraMotionDataset([store], split, frames=8, size=16, clips_per_epoch=700, config=cfg))
        want = [(s, e) for s, e in split_segments(store.start, store.end, split) if e - s > SPAN8]
        assert ds.sources[0].segments == want and ds.layouts[0].kind == "blocks"
        assert seen == []  # a long video neither re-splits nor overlaps
    blocks = lambda split: [(round(s - 0.5), round(e + 0.5)) for s, e in split_segments(0.0, 596.0, split)]  # noqa: E731
    # inti_edge/assets/MODEL_CARD.md: the bundled model's held-out blocks
    assert blocks("val") == [(80, 90), (130, 140), (200, 210), (320, 330), (440, 450), (550, 560)]
    assert blocks("test") == [(60, 70), (100, 110), (290, 300), (350, 360), (400, 410), (580, 590)]


# --- the rule ------------------------------------------------------------------------------------
def test_layout_adapts_by_length_and_keeps_splits_apart():
    kinds = []
    for T in np.arange(0.5, 130.0, 0.5):
        lay = split_layout(0.0, float(T), SPAN8, frame_gap=1 / 24)
        assert lay == split_layout(0.0, float(T), SPAN8, frame_gap=1 / 24)  # deterministic
        kinds.append(lay.kind)
        if lay.kind in ("whole", "none"):
            assert all(lay.segments[s] == [(0.0, T)] for s in SPLITS)
            continue
        for split in SPLITS:  # every split holds a clip
            assert any(e - s > SPAN8 for s, e in lay.segments[split]), (T, split)
        owned = sorted((s, e, split) for split in SPLITS for s, e in lay.segments[split])
        for (s1, e1, a), (s2, e2, b) in zip(owned, owned[1:]):
            assert s2 - e1 >= (2 * lay.guard - 1e-9 if a != b else 0), (T, owned)
        # video ends need no guard; the adapted layouts lose no tail (10 s blocks drop one shorter than a guard)
        assert owned[0][0] == 0.0 and T - owned[-1][1] <= (2 * lay.guard if lay.kind == "blocks" else 1e-9), (T, owned)
    # the layouts come in order of length: no video gets a coarser layout than a longer one
    order = ["none", "whole", "pieces", "cycle", "blocks"]
    ranks = [order.index(k) for k in kinds]
    assert ranks == sorted(ranks) and set(kinds) == set(order)
    # 70 s: one cycle of 7 s blocks, 8:1:1, guards scaled to 0.35 s
    lay = split_layout(0.0, 70.0, SPAN8, frame_gap=1 / 24)
    assert (lay.kind, lay.block, lay.guard) == ("cycle", 7.0, pytest.approx(0.35))
    assert [lay.time(s) for s in SPLITS] == pytest.approx([54.6, 6.3, 6.3])
    # 8 s: one block per split; each held-out block is a clip and 1 s of starts, train the rest
    lay = split_layout(0.0, 8.0, SPAN8, frame_gap=1 / 24)
    assert (lay.kind, lay.guard) == ("pieces", 0.1)
    assert [lay.time(s) for s in SPLITS] == pytest.approx([8.0 - 0.4 - 2 * (SPAN8 + 1), SPAN8 + 1, SPAN8 + 1])
    # 3.9 s is the least that splits 8-frame clips (three clips and four 0.1 s guards); 1 s holds no clip
    assert split_layout(0.0, 3.95, SPAN8).kind == "pieces" and split_layout(0.0, 3.9, SPAN8).kind == "whole"
    assert split_layout(0.0, 1.0, SPAN8).kind == "none"
    # a coarse store (4 fps) widens the guards to a frame interval, so no frame straddles a boundary
    assert split_layout(0.0, 8.0, 0.5, frame_gap=0.25).guard == 0.25


@pytest.mark.parametrize("name,frames", [("bbb", 4), ("bbb", 8), ("soccer", 4), ("soccer", 8)])
def test_short_clips_split_without_a_shared_frame(stores, name, frames):
    store = stores[name]
    used = {}
    for split in SPLITS:
        ds, _ = _recorded(lambda: CameraMotionDataset([store], split, frames=frames, size=16, clips_per_epoch=300, random=False))
        segs = ds.sources[0].segments
        assert len(segs) == 1 and ds.layouts[0].kind == "pieces"
        used[split] = set()
        for i in range(len(ds)):
            p = ds.plan(i)
            assert segs[0][0] <= p.times.min() and p.times.max() <= segs[0][1]
            used[split] |= set(p.positions.tolist())
    assert all(used.values())
    assert not used["train"] & used["val"] and not used["train"] & used["test"] and not used["val"] & used["test"]


def test_build_dataset_default_splits_on_committed_clips():
    cfg = make_config("small", frames=8, halvings=1, num_classes=7)
    for clip in (BBB, SOCCER):
        for split in SPLITS:
            ds, _ = _recorded(lambda: build_dataset(f"motion:{clip}", cfg, split, clips_per_epoch=7, short_side=90))
            x, y = ds[5]
            assert x.shape == (8, 3, 64, 64) and y == 5


# --- warnings ------------------------------------------------------------------------------------
def test_warnings_name_the_layout_and_the_overlap(stores):
    kw = dict(frames=8, size=16, random=False)
    _, seen = _recorded(lambda: CameraMotionDataset([stores["bbb"]], "val", clips_per_epoch=700, **kw))
    assert len(seen) == 2 and all("\n" not in m for m in seen)
    assert seen[0] == (f"{BBB}: 8.0 s is too short for 10 s blocks of 1.17 s clips: split into one block per split "
                       "(train 3.3 s, val 2.2 s, test 2.2 s)")
    assert seen[1] == "val: 25 distinct clip positions for 700 evaluation clips: samples overlap heavily (bbb_8s_160x90.mp4)"
    # 100 clips from 25 first frames is not heavy; training repeats footage by design: no overlap warning
    _, seen = _recorded(lambda: CameraMotionDataset([stores["bbb"]], "test", clips_per_epoch=100, **kw))
    assert len(seen) == 1 and "one block per split" in seen[0]
    _, seen = _recorded(lambda: CameraMotionDataset([stores["bbb"]], "train", clips_per_epoch=7000, **kw))
    assert len(seen) == 1 and "one block per split" in seen[0]
    # split 'all' asks for the whole video: nothing to warn about
    _, seen = _recorded(lambda: CameraMotionDataset([stores["bbb"]], "all", clips_per_epoch=100, **kw))
    assert seen == []
    # a 70 s video: shorter blocks
    _, seen = _recorded(lambda: CameraMotionDataset([_synthetic_store(70.0)], "test", clips_per_epoch=70, config=MotionConfig(avoid_cuts=False), **kw))
    assert seen == ["synthetic_70s: 70.0 s is too short for 10 s blocks of 1.17 s clips: split into blocks of 7.00 s "
                    "(train 54.6 s, val 6.3 s, test 6.3 s)"]


def test_a_clip_too_short_to_split_uses_the_whole_video_or_trains_only(short_clips, stores):
    two = FrameStore.from_video(short_clips[2.0], short_side=90)
    kw = dict(frames=8, size=16, clips_per_epoch=70, random=False)
    ds, seen = _recorded(lambda: CameraMotionDataset([two], "val", **kw))
    assert ds.sources[0].segments == [(two.start, two.end)]
    assert seen[0].startswith(f"{two.path}: 2.00 s is too short to split into train/val/test for 1.17 s clips "
                              "(that needs over 3.90 s): every split uses the whole video, so they share frames")
    assert "--val-split all" in seen[0] and "--split all" in seen[0]
    # beside a video that splits, it trains only: held-out time stays clean
    for split in SPLITS:
        ds, seen = _recorded(lambda: CameraMotionDataset([stores["bbb"], two], split, **kw))
        assert ds.sources[1].segments == ([(two.start, two.end)] if split == "train" else [])
        assert any(m.endswith("it trains only (the other videos give val and test)") for m in seen)


# --- impossible ----------------------------------------------------------------------------------
def test_no_clip_fits_is_a_one_line_error_naming_the_fix(short_clips, tmp_path):
    half = short_clips[0.5]
    with pytest.raises(ClipsTooShortError) as e:
        CameraMotionDataset([FrameStore.from_video(half, short_side=90)], "val", frames=8, size=16)
    assert e.value.max_frames == 3 and e.value.need == pytest.approx(SPAN8)
    assert str(e.value).endswith("use footage longer than 1.17 s, or fewer frames (at most 3 fit)")
    # training names the option: 2 frames, the most of the model's 2-frame units that fit 0.5 s
    with pytest.raises(TrainError, match=r"^data: clips too short for split 'train': a clip of 8 frames every 0\.167 s needs "
                       r"1\.17 s .* the longest piece is 0\.50 s .*: pass --frames 2 \(the most that fit 0\.50 s at 0\.167 s "
                       r"steps, in units of 2\) or use footage longer than 1\.17 s$"):
        train(TrainConfig(data=f"motion:{half}", out=str(tmp_path / "run"), **{**TINY, "frames": 8}))
    with pytest.warns(UserWarning, match="one block per split"), \
            pytest.raises(TrainError, match=r"^val data: .*or use --val-data footage longer than 1\.17 s$"):
        train(TrainConfig(data=f"motion:{BBB}", val_data=f"motion:{half}", val_split="all", out=str(tmp_path / "run"),
                          **{**TINY, "frames": 8}))


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)


# --- end to end ----------------------------------------------------------------------------------
def test_train_and_eval_with_default_splits_on_committed_clips(tmp_path, short_clips):
    """A tiny run per clip validates on its own val split; eval's default split (test) then works,
    and on footage too short for the model's clip the CLI says so in one line, exit code 2."""
    for clip in (BBB, SOCCER):
        with pytest.warns(UserWarning, match=r"too short for 10 s blocks of 0\.50 s clips: split into one block per split"):
            res = train(TrainConfig(data=f"motion:{clip}", out=str(tmp_path / clip.stem), epochs=1, steps_per_epoch=2,
                                    batch_size=4, clips_per_epoch=16, eval_clips=14, **TINY))
        assert res.step == 2 and res.final["val_n"] == 14 and 0 <= res.final["val_top1"] <= 1
        ev = _cli("eval", res.out / "model.pt", "--data", f"motion:{clip}", "--limit", 14, "--workers", 0, "--json")
        assert ev.returncode == 0, ev.stderr[-2000:]
        assert json.loads(ev.stdout)["n"] == 14
        lines = ev.stderr.strip().splitlines()
        assert lines and all(l.startswith("warning: ") for l in lines) and "one block per split" in lines[0], ev.stderr
    model = res.out / "model.pt"
    assert load_checkpoint(model)[0].cfg.frames == 4
    bad = _cli("eval", model, "--data", f"motion:{short_clips[0.5]}", "--workers", 0)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert "needs 0.50 s" in bad.stderr and "the model takes 4 frames every 0.167 s, so evaluate it on footage longer than 0.50 s" in bad.stderr


def test_readme_train_line_on_the_committed_clip_with_default_val_split(tmp_path):
    """The README's training line (default --val-split val) on the 8 s clip, cut to one step."""
    p = _cli("train", "--data", f"motion:{BBB}", "--model", "small", "--frames", 8, "--epochs", 1, "--steps-per-epoch", 1,
             "--batch-size", 2, "--eval-clips", 7, "--workers", 0, "--out", tmp_path / "motion", "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1])["val_n"] == 7
    assert p.stderr.strip().splitlines() == [
        f"warning: {BBB}: 8.0 s is too short for 10 s blocks of 1.17 s clips: split into one block per split "
        "(train 3.3 s, val 2.2 s, test 2.2 s)"
    ]
    bad = _cli("train", "--data", f"motion:{BBB}", "--frames", 64, "--epochs", 1, "--out", tmp_path / "bad", "--quiet")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert "needs 10.50 s" in bad.stderr and "pass --frames 48 (the most that fit 8.00 s" in bad.stderr
