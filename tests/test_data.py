"""inti_edge.data: PyAV reading by time, sampling, transforms, the data sets (CPU, a few seconds)."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from inti_edge.data import (
    FLIP_LABEL,
    MOTION_CLASSES,
    CameraMotionDataset,
    ClipTransform,
    DatasetError,
    FrameStore,
    MotionConfig,
    VideoClipDataset,
    VideoError,
    VideoReader,
    build_dataset,
    choose_span,
    dataset_classes,
    normalize,
    probe,
    probe_decoded,
    resize_short_side,
    segment_times,
    split_segments,
    transcode,
    window_path,
)
from inti_edge.data.motion import (
    PAN_DOWN, PAN_LEFT, PAN_RIGHT, PAN_UP, REVERSE_LABEL, STATIC, ZOOM_IN, ZOOM_OUT, color_jitter,
)
from inti_edge.model import make_config
from inti_edge.model.config import CLIP_STD

DATA = Path(__file__).parent / "data"
BBB = DATA / "bbb_8s_160x90.mp4"  # h264 / mp4, 160x90, 24 fps, 192 frames
SOCCER = DATA / "soccer_juggling_4s_160x120.avi"  # MPEG-4 part 2 / AVI, 160x120, 29.97 fps, 120 frames


def decode_all(path) -> list[torch.Tensor]:
    """Reference: every frame, decoded straight through, as (3, H, W) uint8."""
    with av.open(str(path)) as c:
        return [torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def bbb_store() -> FrameStore:
    return FrameStore.from_video(BBB, short_side=90)


# --- reading by presentation time ---------------------------------------------------------------
def test_probe_indexes_real_files_by_pts():
    i = probe(BBB)
    assert (i.num_frames, i.width, i.height, i.codec, i.seekable) == (192, 160, 90, "h264", True)
    np.testing.assert_allclose(i.times, np.arange(192) / 24, atol=1e-9)
    assert i.start == 0.0 and i.end == pytest.approx(8.0) and i.fps == pytest.approx(24.0)
    assert i.keyframes[0] == 0 and len(i.keyframes) >= 2  # a keyframe at least every 2 s
    j = probe(SOCCER)
    assert (j.num_frames, j.codec) == (120, "mpeg4") and j.fps == pytest.approx(30000 / 1001, rel=1e-6)
    assert j.position(1.0) == 29  # 1.0 s falls during frame 29 (29 * 1001 / 30000 = 0.967 s)


@pytest.mark.parametrize("path", [BBB, SOCCER])
def test_read_by_time_matches_straight_decode(path):
    ref = decode_all(path)
    r = VideoReader(path)
    assert r.index.num_frames == len(ref)
    rng = np.random.default_rng(0)
    for _ in range(4):
        times = rng.uniform(r.index.start, r.index.end, 8)  # unsorted, seeks both ways
        clip = r.read(times)
        assert clip.shape == (8, 3, r.index.height, r.index.width) and clip.dtype == torch.uint8
        for frame, p in zip(clip, r.index.position(times)):
            assert torch.equal(frame, ref[p])
    again = r.read([2.0, 0.5, 2.0])  # repeats and any order
    assert torch.equal(again[0], again[2]) and torch.equal(again[1], ref[r.index.position(0.5)])
    # the decoded-index (no-seek) path reads the same frames
    seq = VideoReader(path, index=probe_decoded(path))
    assert not seq.index.seekable
    np.testing.assert_allclose(seq.index.times, r.index.times, atol=1e-6)
    assert torch.equal(seq.read([0.1, 3.3]), r.read([0.1, 3.3]))


def test_read_scales_short_side_at_decode():
    clip = VideoReader(SOCCER).read([0.5, 1.5], short_side=60)
    assert clip.shape == (2, 3, 60, 80)


VFR_MS = [0, 40, 50, 150, 160, 170, 400, 420, 700, 710, 1000]  # irregular frame times, ms


def _grey(k: int) -> int:
    return 20 + 18 * k


@pytest.fixture(scope="module")
def vfr_file(tmp_path_factory) -> Path:
    """A variable-frame-rate h264 file; frame k is flat grey _grey(k)."""
    path = tmp_path_factory.mktemp("vfr") / "vfr.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30, options={"crf": "8"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for k, t in enumerate(VFR_MS):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), _grey(k), np.uint8), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def _which(clip: torch.Tensor) -> list[int]:
    """Frame numbers of flat-grey frames."""
    return [round((float(f.float().mean()) - 20) / 18) for f in clip]


def test_vfr_index_and_time_sampling(vfr_file):
    r = VideoReader(vfr_file)
    np.testing.assert_allclose(r.index.times, np.array(VFR_MS) / 1000, atol=1e-6)
    times = np.array([0.0, 0.045, 0.1, 0.155, 0.3, 0.41, 0.69, 0.705, 0.9, 1.02])
    expect = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10]  # the frame on screen at each time
    assert list(r.index.position(times)) == expect
    assert _which(r.read(times)) == expect
    # a frame-number assumption at the nominal 30 fps would show frame 9 at 0.3 s; time gives frame 5
    assert _which(r.read([0.3])) == [5]
    # evaluation segment sampling is by time too: centres of 4 segments over [0, 1.02)
    centres = segment_times(r.index.start, r.index.end, 4)
    assert _which(r.read(centres)) == list(r.index.position(centres))
    # the FrameStore keeps the same timestamps; with fps it keeps what is on screen every 1/fps s
    store = FrameStore.from_video(vfr_file, short_side=48)
    np.testing.assert_allclose(store.times, np.array(VFR_MS) / 1000, atol=1e-6)
    assert _which(store.frames) == list(range(len(VFR_MS)))
    sub = FrameStore.from_video(vfr_file, short_side=48, fps=10)
    grid = np.arange(10) / 10
    assert _which(sub.frames[sub.position(grid)]) == list(r.index.position(grid))


# --- sampling and transforms --------------------------------------------------------------------
def test_segment_sampling_eval_is_fixed_train_is_random():
    np.testing.assert_allclose(segment_times(0.0, 8.0, 4), [1, 3, 5, 7])
    a = segment_times(0.0, 8.0, 4, np.random.default_rng(1))
    b = segment_times(0.0, 8.0, 4, np.random.default_rng(1))
    c = segment_times(0.0, 8.0, 4, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    for t in (a, c):
        assert ((t >= np.arange(4) * 2) & (t < np.arange(1, 5) * 2)).all()  # one per segment
    draws = np.stack([segment_times(0.0, 8.0, 4, np.random.default_rng(s)) for s in range(200)])
    assert draws.std(0).min() > 0.4  # offsets spread over each 2 s segment (uniform sd 0.58)
    assert choose_span(0.0, 10.0, 4.0) == (3.0, 7.0)
    s, e = choose_span(0.0, 10.0, 4.0, np.random.default_rng(0))
    assert 0.0 <= s <= 6.0 and e - s == pytest.approx(4.0)
    assert choose_span(0.0, 3.0, 4.0) == (0.0, 3.0)


def test_transforms_shapes_normalisation_and_flip():
    frames = torch.randint(0, 256, (8, 3, 90, 160), dtype=torch.uint8)
    ev = ClipTransform(32)
    x = ev(frames)
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(ev(frames), x)  # evaluation is deterministic
    flat = torch.full((2, 3, 90, 160), 200, dtype=torch.uint8)
    want = (200 / 255 - torch.tensor(ev.mean)) / torch.tensor(ev.std)
    torch.testing.assert_close(ev(flat)[:, :, 5, 5], want.expand(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalize(flat)[0, :, 0, 0], want, atol=1e-6, rtol=0)
    assert resize_short_side(frames, 45).shape == (8, 3, 45, 80)
    # eval crop: the centre square of the full short side
    assert ev.params(90, 160) == ev.params(90, 160) and ev.params(90, 160).left == 35
    tr = ClipTransform(32, train=True)
    boxes = {tr.params(90, 160, np.random.default_rng(s)) for s in range(20)}
    assert len(boxes) > 10
    for p in boxes:
        assert 0 <= p.left and p.left + p.width <= 160 and 0 <= p.top and p.top + p.height <= 90
        assert 90 / 1.25 - 1 <= p.height <= 90
    # the flip mirrors every frame the same way
    on = ClipTransform(32, train=True, flip_p=1.0)(frames, np.random.default_rng(3))
    off = ClipTransform(32, train=True, flip_p=0.0)(frames, np.random.default_rng(3))
    torch.testing.assert_close(on, off.flip(-1))


# --- camera motion ------------------------------------------------------------------------------
def test_window_motion_is_unambiguous():
    cfg = MotionConfig()
    rng = np.random.default_rng(0)
    H, W, T = 160, 284, 8
    for label in range(7):
        for _ in range(50):
            b = window_path(label, H, W, T, cfg, rng)
            assert (b[:, 0] >= -1e-6).all() and (b[:, 2] <= W + 1e-6).all()
            assert (b[:, 1] >= -1e-6).all() and (b[:, 3] <= H + 1e-6).all()
            side = b[:, 2] - b[:, 0]
            np.testing.assert_allclose(side, b[:, 3] - b[:, 1])  # square windows
            c = (b[:, :2] + b[:, 2:]) / 2
            move = (c[-1] - c[0]) / side.mean()  # centre travel in window sides
            slack = 4 * cfg.jitter  # jitter at both ends
            if label in (PAN_LEFT, PAN_RIGHT, PAN_UP, PAN_DOWN):
                axis, sign = {PAN_LEFT: (0, -1), PAN_RIGHT: (0, 1), PAN_UP: (1, -1), PAN_DOWN: (1, 1)}[label]
                assert cfg.pan[0] - slack <= sign * move[axis] <= cfg.pan[1] + slack
                assert abs(move[1 - axis]) <= slack
            elif label in (ZOOM_IN, ZOOM_OUT):
                z = side[0] / side[-1] if label == ZOOM_IN else side[-1] / side[0]
                assert cfg.zoom[0] - 1e-6 <= z <= cfg.zoom[1] + 1e-6
            else:
                assert label == STATIC and np.abs(move).max() <= slack and np.ptp(side) < 1e-9


def test_flip_relabels_and_mirrors(bbb_store):
    kw = dict(split="all", frames=4, size=32, clips_per_epoch=14, seed=3, random=False)
    plain = CameraMotionDataset([bbb_store], flip_p=0.0, **kw)
    flipped = CameraMotionDataset([bbb_store], flip_p=1.0, **kw)
    for i in range(14):
        x0, y0 = plain[i]
        x1, y1 = flipped[i]
        assert y0 == i % 7 and y1 == FLIP_LABEL[y0]
        torch.testing.assert_close(x1, x0.flip(-1))
    assert flipped[PAN_LEFT][1] == PAN_RIGHT and flipped[PAN_RIGHT][1] == PAN_LEFT
    assert [flipped[k][1] for k in (STATIC, PAN_UP, PAN_DOWN, ZOOM_IN, ZOOM_OUT)] == [
        STATIC, PAN_UP, PAN_DOWN, ZOOM_IN, ZOOM_OUT
    ]


def test_time_reversal_relabels_and_plays_backwards(bbb_store):
    kw = dict(split="all", frames=4, size=32, clips_per_epoch=14, seed=3, random=False, flip_p=0.0, color_jitter=0.0)
    plain = CameraMotionDataset([bbb_store], reverse_p=0.0, **kw)
    rev = CameraMotionDataset([bbb_store], reverse_p=1.0, **kw)
    for i in range(14):
        x0, y0 = plain[i]
        x1, y1 = rev[i]
        assert y1 == REVERSE_LABEL[y0]
        # the same clip, played backwards: footage and window both
        torch.testing.assert_close(x1, x0.flip(0))
    assert [rev[k][1] for k in range(7)] == [STATIC, PAN_RIGHT, PAN_LEFT, PAN_DOWN, PAN_UP, ZOOM_OUT, ZOOM_IN]
    # an eval set has no reversal or colour jitter unless asked: its clips never change
    ev = CameraMotionDataset([bbb_store], split="all", frames=4, size=32, clips_per_epoch=14, seed=3)
    assert ev.reverse_p == 0.0 and ev.color_jitter == 0.0 and ev.flip_p == 0.0


def test_color_jitter_is_per_clip_and_adds_no_motion(bbb_store):
    kw = dict(split="all", frames=4, size=32, clips_per_epoch=7, seed=5, random=False, flip_p=0.0, reverse_p=0.0)
    plain = CameraMotionDataset([bbb_store], color_jitter=0.0, **kw)
    jit = CameraMotionDataset([bbb_store], color_jitter=0.4, **kw)
    plans = [jit.plan(i) for i in range(7)]
    assert all(all(0.6 <= f <= 1.4 for f in p.color) for p in plans)
    assert len({p.color for p in plans}) == 7  # drawn per clip
    x0, _ = plain.render([plain.plan(i) for i in range(7)])
    x1, y1 = jit.render(plans)
    assert y1.tolist() == list(range(7))  # labels untouched
    assert not torch.allclose(x0, x1)
    # factors of 1 change nothing; a pure brightness factor scales every frame alike (before clamping)
    frames = torch.rand(2, 3, 3, 8, 8) * 0.5
    torch.testing.assert_close(color_jitter(frames, torch.ones(2, 3)), frames)
    bright = color_jitter(frames, torch.tensor([[1.5, 1.0, 1.0], [0.5, 1.0, 1.0]]))
    torch.testing.assert_close(bright, frames * torch.tensor([1.5, 0.5]).view(2, 1, 1, 1, 1))
    # zero saturation leaves grey pixels, within [0, 1]
    grey = color_jitter(torch.rand(1, 2, 3, 4, 4), torch.tensor([[1.0, 1.0, 0.0]]))
    torch.testing.assert_close(grey[:, :, 0], grey[:, :, 1])
    torch.testing.assert_close(grey[:, :, 1], grey[:, :, 2])
    with pytest.raises(ValueError, match="color_jitter"):
        CameraMotionDataset([bbb_store], color_jitter=1.5, **kw)


def test_degrade_lowers_resolution_and_adds_noise_deterministically(bbb_store):
    kw = dict(split="all", frames=4, size=32, clips_per_epoch=28, seed=5, random=False, flip_p=0.0, reverse_p=0.0,
              color_jitter=0.0)
    plain = CameraMotionDataset([bbb_store], **kw)
    deg = CameraMotionDataset([bbb_store], degrade_p=1.0, **kw)
    plans = [deg.plan(i) for i in range(28)]
    assert all(p.scale < 1.0 or p.noise > 0 for p in plans)  # every degraded clip gets something
    assert {p.scale for p in plans} == {0.5, 0.75, 1.0} and all(p.noise == 0 or 0.01 <= p.noise <= 0.05 for p in plans)
    assert [p.label for p in plans] == [plain.plan(i).label for i in range(28)]
    x0, _ = plain.render([plain.plan(i) for i in range(28)])
    x1, _ = deg.render(plans)
    torch.testing.assert_close(x1, deg.render(plans)[0])  # the same plans, the same pixels
    std = torch.as_tensor(CLIP_STD).view(1, 1, 3, 1, 1)
    diff = (x1 - x0) * std  # back on the [0, 1] scale
    for b, p in enumerate(plans):
        if p.scale == 1.0:  # noise only: the difference is the noise (before clamping)
            assert abs(diff[b].std().item() - p.noise) < 0.25 * p.noise
        elif p.noise == 0:  # resolution only: high frequencies go, the mean stays
            hf = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean().item()
            assert hf(x1[b]) < hf(x0[b]) and abs(diff[b].mean().item()) < 0.02


def test_time_splits_share_no_frame(bbb_store):
    cfg = MotionConfig(block=1.0, ratios=(2, 1, 1), guard=0.1, frame_step=(1 / 12, 1 / 12))
    used, segs = {}, {}
    for split in ("train", "val", "test"):
        ds = CameraMotionDataset([bbb_store], split, frames=4, size=16, clips_per_epoch=400, random=False, config=cfg)
        segs[split] = ds.sources[0].segments
        used[split] = set()
        for i in range(len(ds)):
            p = ds.plan(i)
            assert any(s <= p.times[0] and p.times[-1] <= e for s, e in segs[split])
            used[split] |= set(p.positions.tolist())
        assert len(used[split]) > 20
    assert not used["train"] & used["val"] and not used["train"] & used["test"] and not used["val"] & used["test"]
    # segments of different splits never overlap and keep 2 x guard apart
    for a in segs:
        for b in segs:
            if a < b:
                for s1, e1 in segs[a]:
                    for s2, e2 in segs[b]:
                        assert e1 + 0.2 - 1e-9 <= s2 or e2 + 0.2 - 1e-9 <= s1
    assert split_segments(0.0, 8.0, "all") == [(0.0, 8.0)]


def test_long_video_split_spreads_held_out_time():
    total = {}
    for split in ("train", "val", "test"):
        segs = split_segments(0.0, 600.0, split, block=10.0, ratios=(8, 1, 1), guard=0.5)
        total[split] = sum(e - s for s, e in segs)
        if split != "train":
            mids = [(s + e) / 2 for s, e in segs]
            assert min(mids) < 200 and max(mids) > 400  # held-out blocks all over the film
    assert 450 < total["train"] < 480 and 50 < total["val"] < 60 and 50 < total["test"] < 60
    assert split_segments(0.0, 600.0, "val", seed=1) != split_segments(0.0, 600.0, "val", seed=0)


def test_motion_determinism_and_batches(bbb_store):
    kw = dict(frames=4, size=24, clips_per_epoch=21)
    a = CameraMotionDataset([bbb_store], "all", seed=5, **kw)
    b = CameraMotionDataset([bbb_store], "all", seed=5, **kw)
    c = CameraMotionDataset([bbb_store], "all", seed=6, **kw)
    for i in (0, 8, 20):
        xa, ya = a[i]
        xb, yb = b[i]
        assert torch.equal(xa, xb) and ya == yb == i % 7
        assert xa.shape == (4, 3, 24, 24)
    assert not np.allclose(a.plan(3).times, c.plan(3).times)
    a.set_epoch(1)
    assert not np.allclose(a.plan(3).times, b.plan(3).times)  # another epoch, other clips
    clips, labels = b.get_batch([0, 8, 20])
    assert clips.shape == (3, 4, 3, 24, 24) and labels.tolist() == [0, 1, 6]
    torch.testing.assert_close(clips[1], b[8][0])
    # training draws fresh clips (torch's RNG), reproducibly under torch.manual_seed
    tr = CameraMotionDataset([bbb_store], "all", random=True, **kw)
    torch.manual_seed(0)
    p1 = tr.plan(3)
    p2 = tr.plan(3)
    torch.manual_seed(0)
    assert not np.allclose(p1.times, p2.times) and np.allclose(tr.plan(3).times, p1.times)


def test_motion_too_short_says_what_is_needed(bbb_store):
    cfg = MotionConfig(frame_step=(0.5, 0.5))
    with pytest.raises(VideoError, match=r"needs 31\.50 s .* longest piece is 8\.00 s"):
        CameraMotionDataset([bbb_store], "all", frames=64, config=cfg)


def test_build_dataset_motion_and_dataloader():
    cfg = make_config("small", frames=4, halvings=1, num_classes=7)
    spec = f"motion:{BBB},{SOCCER}"
    assert dataset_classes(spec) == list(MOTION_CLASSES)
    ds = build_dataset(spec, cfg, "all", clips_per_epoch=16, short_side=90)
    x, y = ds[3]
    assert x.shape == (4, 3, 112, 112) and y == 3
    assert {ds.plan(i).video for i in range(16)} == {0, 1}  # clips from both videos
    with pytest.raises(DatasetError, match="camera-motion classes"):
        build_dataset(spec, cfg, "all", classes=["a", "b"])
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)
    xb, yb = next(iter(loader))
    assert xb.shape == (8, 4, 3, 112, 112) and yb.tolist() == [0, 1, 2, 3, 4, 5, 6, 0]
    torch.testing.assert_close(xb[3], x)  # evaluation clips are the same in any process
    # --augment levels reach the training split only
    levels = {"none": (0.0, 0.0, 0.0, 0.0), "flip": (0.5, 0.0, 0.0, 0.0), "full": (0.5, 0.5, 0.3, 0.0),
              "real": (0.5, 0.5, 0.3, 0.5)}
    for level, want in levels.items():
        tr = build_dataset(spec, cfg, "train", clips_per_epoch=7, short_side=90, augment=level)
        assert (tr.flip_p, tr.reverse_p, tr.color_jitter, tr.degrade_p) == want, level
    ev = build_dataset(spec, cfg, "all", clips_per_epoch=7, short_side=90, augment="real")
    assert (ev.flip_p, ev.reverse_p, ev.color_jitter, ev.degrade_p) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(DatasetError, match="augment must be one of"):
        build_dataset(spec, cfg, "train", clips_per_epoch=7, short_side=90, augment="heavy")


# --- labelled clips -----------------------------------------------------------------------------
@pytest.fixture()
def clip_tree(tmp_path) -> Path:
    """root/{juggle,bunny}/<videos>, and sets/{train,val}.csv with relative paths."""
    root = tmp_path / "root"
    for cls, src in (("juggle", SOCCER), ("bunny", BBB)):
        (root / cls).mkdir(parents=True)
        shutil.copy(src, root / cls / src.name)
    (root / "juggle" / "notes.txt").write_text("not a video")
    sets = tmp_path / "sets"
    sets.mkdir()
    (sets / "train.csv").write_text(f"path,label\n../root/juggle/{SOCCER.name},juggle\n../root/bunny/{BBB.name},bunny\n")
    (sets / "val.csv").write_text(f"{root / 'bunny' / BBB.name},bunny\n")
    return tmp_path


def test_folder_and_csv_datasets(clip_tree):
    cfg = make_config("small", frames=8, halvings=1, num_classes=2)
    root, sets = clip_tree / "root", clip_tree / "sets"
    ds = build_dataset(str(root), cfg, "val")
    assert ds.classes == ["bunny", "juggle"] and len(ds) == 2  # sorted; notes.txt ignored
    assert [y for _, y in ds.items] == [0, 1]
    x, y = ds[1]
    assert x.shape == (8, 3, 112, 112) and y == 1
    assert torch.equal(ds[1][0], x)  # evaluation: segment centres, centre crop
    (root / "classes.txt").write_text("juggle\nbunny\nextra\n")
    assert dataset_classes(str(root)) == ["juggle", "bunny", "extra"]
    ds = build_dataset(str(root), cfg, "train")
    assert ds.classes == ["juggle", "bunny", "extra"] and [y for _, y in ds.items] == [1, 0]
    assert not torch.equal(ds[0][0], ds[0][0])  # training: random offsets, crops, flips
    # a folder of split CSVs: every split gets the training split's classes
    assert dataset_classes(str(sets)) == ["bunny", "juggle"]
    val = build_dataset(str(sets), cfg, "val")
    assert val.classes == ["bunny", "juggle"] and val.items == [(str(root / "bunny" / BBB.name), 0)]
    tr = build_dataset(str(sets / "train.csv"), cfg, "train")
    assert Path(tr.items[0][0]).resolve() == (root / "juggle" / SOCCER.name).resolve()
    assert tr[0][0].shape == (8, 3, 112, 112)
    with pytest.raises(DatasetError, match="no test.csv"):
        build_dataset(str(sets), cfg, "test")


def test_unknown_labels_are_an_error(clip_tree):
    sets = clip_tree / "sets"
    (sets / "classes.txt").write_text("bunny\n")
    with pytest.raises(DatasetError, match="labels not in the class list: 'juggle'"):
        VideoClipDataset.from_csv(sets / "train.csv", classes=sets / "classes.txt")
    (sets / "bad.csv").write_text("only-one-column\n")
    with pytest.raises(DatasetError, match="bad.csv:1: expected 'path,label'"):
        VideoClipDataset.from_csv(sets / "bad.csv")


# --- errors -------------------------------------------------------------------------------------
def _one_line_error(path, match):
    with pytest.raises(VideoError, match=match) as e:
        probe(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_clear_errors(tmp_path):
    _one_line_error(tmp_path / "missing.mp4", "no such file")
    (tmp_path / "notes.txt").write_text("this is not a video\n")
    _one_line_error(tmp_path / "notes.txt", "cannot open as a video")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _one_line_error(tmp_path / "noise.mp4", "cannot open as a video")
    data = BBB.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])  # its index (moov) is at the end
    _one_line_error(tmp_path / "truncated.mp4", "cannot open as a video")
    wav = tmp_path / "tone.wav"
    with av.open(str(wav), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        for pkt in s.encode(f):
            c.mux(pkt)
    _one_line_error(wav, r"no video stream \(streams found: audio\)")
    _one_line_error(tmp_path, "is a folder")
    # a damaged middle: what can be decoded is read, nothing else leaks out
    bad = bytearray(data)
    bad[len(bad) // 3 : len(bad) // 3 + 3000] = os.urandom(3000)
    (tmp_path / "damaged.mp4").write_bytes(bytes(bad))
    r = VideoReader(tmp_path / "damaged.mp4")
    assert r.read(np.linspace(0, 7.9, 8)).shape == (8, 3, 90, 160)
    # too short: says how many frames there are and how many are needed
    ds = VideoClipDataset([(str(SOCCER), 0)], ["a"], frames=200, transform=ClipTransform(32))
    with pytest.raises(VideoError, match=r"clip too short: 120 frames in 4\.00 s, need at least 200"):
        ds[0]


def test_transcode_small(tmp_path):
    out = transcode(BBB, tmp_path / "small.mp4", short_side=48, fps=12, start=1.0, duration=2.0)
    assert out["frames"] == 24 and (out["width"], out["height"]) == (84, 48)  # even sides for yuv420p
    assert 0 < out["bytes"] == (tmp_path / "small.mp4").stat().st_size
    i = probe(tmp_path / "small.mp4")
    assert i.num_frames == 24 and i.fps == pytest.approx(12.0)
    np.testing.assert_allclose(np.diff(i.times), 1 / 12, atol=1e-3)
    # output frame k is the source frame on screen at 1.0 + k / 12 s
    src = torch.nn.functional.interpolate(VideoReader(BBB).read([1.0 + 5 / 12]).float(), (48, 84), mode="area")
    got = VideoReader(tmp_path / "small.mp4").read([5 / 12]).float()
    assert (src - got).abs().mean() < 8
