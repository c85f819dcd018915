"""The camera-motion task: a virtual camera window moves over real footage; say how it moved.

Classes (in this order): static, pan_left, pan_right, pan_up, pan_down, zoom_in, zoom_out.
The footage plays on at its own pace (frames sampled every ``frame_step`` seconds) while a square
window pans across it or scales about a fixed centre, so the label is known by construction and
the footage's own motion is the noise. The window moves by a clearly visible amount (pans: 25-60%
of the window side over the clip; zooms: 1.4-2.0x), and every class gets the same small handheld
jitter, so "static" is "no deliberate move", not "perfectly still". A horizontal flip mirrors the
clip and swaps pan_left / pan_right. Two more label-aware augmentations, training split only: a
time reversal plays the whole clip backwards (footage and window: pans swap direction, zooms swap
in / out) and a colour jitter scales brightness, contrast and saturation per clip (the same for
every frame, so it adds no motion). ``degrade_p`` adds what real camera footage has and a rendered
film lacks: lower resolution (down- and up-sampled by 1/2 or 3/4) and sensor noise (per pixel and
frame), each on about half of the degraded clips.

Splits are by time: each video is cut into blocks (~10 s), blocks are dealt to train / val / test
in shuffled cycles (8:1:1 by default, so held-out time is spread over the whole film), and clips
keep ``guard`` seconds away from any boundary with another split, so no frame is shared. Split
``all`` uses the whole of every video: out-of-domain testing on footage never trained on.

Short videos (``split_layout``). 10 s blocks leave a video under ~81 s without a val block (seed 0
deals the first cycle train x6, test, train, val, train), so the layout of each video is the first
of these that works, chosen from the video's length T, the clip span (``frames`` at the longest
step) and the config only, never from the split asked for, so its train, val and test always agree:
1. ``blocks``: the configured blocks, when train, val and test each get ``MIN_STARTS`` (1 s) of clip
   starts (summed over their segments: length minus clip span). Long videos keep their split exactly.
2. ``cycle``: one cycle of blocks of T / sum(ratios) s (8:1:1 kept) in the order of the seed's first
   cycle, when each split again gets 1 s of starts (8 frames at 1/6 s: videos of ~24-81 s).
3. ``pieces``: one block per split, in the order the splits first appear in that cycle; each
   held-out block holds one clip span plus r s of starts, r = min(1 s, a third of what the time
   after guards leaves beyond three clip spans), or its ratio's share if that is longer, and train
   gets the rest (8 frames at 1/6 s: down to ~3.9 s).
4. ``whole``: one clip fits but no three-way split does: every split gets the whole video (they
   share frames; a warning says so). In a spec where another video splits, such a video trains only.
5. ``none``: not even one clip fits: the video is skipped with a warning; with no video left the
   error says how long the footage must be and how many frames fit.
Layouts 2 and 3 scale the guard with the block (guard x block / configured block), never above the
configured guard and never below 0.1 s or the store's longest frame interval, so that no frame is on
screen on both sides of a boundary. Layouts 2-5 warn with the same text for every split (so Python
shows it once). Evaluation splits also warn when their clips outnumber the distinct first frames
they can start on more than 4 to 1 (their n then overstates the evidence); training repeats footage
by design (epochs), so it does not.

Labels (``MotionConfig.labels``). ``apparent`` (the default since issue 17): the label is the motion
a viewer sees, the virtual window's move composed with the footage's own camera motion over the
clip (``footage_motion.py``: phase correlation, measured once per video): a still window over footage
that pans right is a pan right. A clip is drawn for the class its index asks for and redrawn (up to
``APPARENT_DRAWS`` times) while the composite reads as another class, lies between classes
(``classify_motion``), or the footage's motion is ambiguous (two competing motions, such as a large
foreground object against the background); a clip that never matches keeps the first clear label it
drew (the classes stay about balanced). ``virtual``: the label is the window's move alone (the rule of
the models trained before; it draws exactly the clips it drew then).

Clips are drawn, not enumerated: an epoch is ``clips_per_epoch`` clips; clip i of an evaluation set
comes from an RNG seeded by (seed, split, epoch, i), so it is the same on every run; training draws
fresh randomness (from torch's RNG, which DataLoader seeds per worker).

Frames come from FrameStores (decoded once, small, in RAM or on a GPU); a batch of clips is cut
with one ``roi_align`` (bilinear, area-averaged when shrinking) on the stores' device.
"""

from __future__ import annotations

import copy
import math
import os
import warnings

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
import torch.nn.functional as F
from torchvision.ops import roi_align

from ..model.config import CLIP_MEAN, CLIP_STD
from .store import FrameStore
from .transforms import normalize
from .video import InputWarning, VideoError

MOTION_CLASSES = ("static", "pan_left", "pan_right", "pan_up", "pan_down", "zoom_in", "zoom_out")
STATIC, PAN_LEFT, PAN_RIGHT, PAN_UP, PAN_DOWN, ZOOM_IN, ZOOM_OUT = range(7)
FLIP_LABEL = (STATIC, PAN_RIGHT, PAN_LEFT, PAN_UP, PAN_DOWN, ZOOM_IN, ZOOM_OUT)  # after a horizontal flip
REVERSE_LABEL = (STATIC, PAN_RIGHT, PAN_LEFT, PAN_DOWN, PAN_UP, ZOOM_OUT, ZOOM_IN)  # after a time reversal
# window centre velocity (x, y) per class, image axes (y down): the window moves the way the camera turns
_PAN_DIR = {PAN_LEFT: (-1, 0), PAN_RIGHT: (1, 0), PAN_UP: (0, -1), PAN_DOWN: (0, 1)}
SPLITS = ("train", "val", "test", "all")
LABEL_RULES = ("apparent", "virtual")  # MotionConfig.labels: the motion a viewer sees | the virtual window's alone
# the apparent rule's classes (classify_motion): the composite move over a clip, translation in window
# sides, scale as log(magnification). The virtual moves alone (pans >= 0.25, zooms >= log 1.4 = 0.34,
# jitter sd 0.01) all land clearly inside their class; what falls between classes is redrawn.
STATIC_SHIFT, STATIC_SCALE = 0.10, 0.15  # static: |shift| and |log scale| at most these
PAN_SHIFT, PAN_OFF_AXIS, PAN_SCALE = 0.18, 0.5, 0.2  # pan: |shift| >= 0.18, the other axis <= half of it, |log scale| <= 0.2
ZOOM_SCALE, ZOOM_SHIFT = 0.25, 0.15  # zoom: |log scale| >= 0.25 and |shift| <= 0.15
AMBIGUOUS = 0.8  # footage whose mean motion ambiguity over the clip (footage_motion) exceeds this: redrawn
APPARENT_DRAWS = 16  # draws for a clip of the asked class before the first clear one is kept
_SPLIT_CODE = {s: i for i, s in enumerate(SPLITS)}


class ClipsTooShortError(VideoError):
    """No video of a motion data set holds one clip. Callers that know the options to pass (train:
    --frames; eval: the model's frames are fixed) phrase the fix from ``need``, ``longest`` (s),
    ``step`` (s between frames) and ``max_frames`` (the most frames a clip of the longest video fits)."""

    def __init__(self, why: str, need: float, longest: float, step: float, max_frames: int):
        self.why, self.need, self.longest, self.step, self.max_frames = why, need, longest, step, max_frames
        fewer = f", or fewer frames (at most {max_frames} fit)" if max_frames >= 2 else ""
        super().__init__(f"{why}: use footage longer than {need:.2f} s{fewer}")


@dataclass(frozen=True)
class MotionConfig:
    """Geometry, timing and time split of the camera-motion clips."""

    frame_step: tuple[float, float] = (1 / 6, 1 / 6)  # s between sampled frames, drawn per clip (~4 frames at 24 fps)
    window: tuple[float, float] = (0.5, 0.7)  # window side / footage short side (zooms: geometric mean of both ends)
    pan: tuple[float, float] = (0.25, 0.60)  # pan travel over the clip / window side (>= ~2 patches at 112 px)
    zoom: tuple[float, float] = (1.4, 2.0)  # window scale factor over the clip
    jitter: float = 0.01  # handheld shake: per-frame offset sd / window side, every class (capped at 2 sd)
    block: float = 10.0  # s per time block of the split (videos too short for it: split_layout)
    ratios: tuple[int, int, int] = (8, 1, 1)  # train : val : test blocks in each cycle
    guard: float = 0.5  # s kept clear on each side of a boundary between two splits
    split_seed: int = 0  # which blocks go where; independent of the sampling seed
    avoid_cuts: bool = True  # redraw a clip that spans a hard scene cut (the move would be ambiguous)
    labels: str = "apparent"  # apparent: the motion a viewer sees (window + footage) | virtual: the window's move alone (before issue 17)

    def span(self, frames: int, step: float | None = None) -> float:
        """Seconds from the first to the last sampled time of a clip (the longest with step None)."""
        return (frames - 1) * (self.frame_step[1] if step is None else step)


def split_segments(
    start: float, end: float, split: str, block: float = 10.0, ratios=(8, 1, 1), guard: float = 0.5, seed: int = 0
) -> list[tuple[float, float]]:
    """The time segments [s, e) of [start, end) that belong to ``split``.

    Blocks of ``block`` s are dealt in cycles of sum(ratios): each cycle holds ratios[i] blocks of
    split i, in an order shuffled by (seed, cycle). Runs of same-split blocks merge; a segment ends
    ``guard`` s short of every boundary with another split (video ends need none)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if split == "all":
        return [(start, end)]
    n = max(1, int(np.ceil((end - start) / block - 1e-9)))
    cycle = np.repeat(np.arange(3), ratios)
    owner = np.concatenate(
        [np.random.default_rng([seed, c]).permutation(cycle) for c in range(-(-n // len(cycle)))]
    )[:n]
    want = _SPLIT_CODE[split]
    segments = []
    i = 0
    while i < n:
        j = i
        while j + 1 < n and owner[j + 1] == owner[i]:
            j += 1
        if owner[i] == want:
            s = start + i * block + (guard if i > 0 else 0.0)
            e = min(end, start + (j + 1) * block) - (guard if j < n - 1 else 0.0)
            if e > s:
                segments.append((s, e))
        i = j + 1
    return segments


MIN_STARTS = 1.0  # s of clip starts each split needs before a layout settles for less (module docstring)
MIN_GUARD = 0.1  # s: the floor of a scaled-down guard
HEAVY_OVERLAP = 4  # evaluation clips per distinct first frame above which samples overlap heavily
TRAIN_CLIPS, EVAL_CLIPS = 7 * 1024, 7 * 200  # clips per epoch unless asked otherwise


@dataclass(frozen=True)
class SplitLayout:
    """How one video is split (``split_layout``): ``kind`` blocks | cycle | pieces | whole | none."""

    kind: str
    start: float
    end: float
    span: float  # s: the clip span the layout was chosen for
    block: float  # s: block length (pieces: the longest held-out block's; whole / none: the video's)
    guard: float  # s kept clear on each side of a boundary between two splits
    segments: dict  # split -> [(s, e)] for train, val and test
    config_block: float = 10.0

    @property
    def duration(self) -> float:
        return self.end - self.start

    def time(self, split: str) -> float:
        """Seconds of ``split`` (its segments summed)."""
        return sum(e - s for s, e in self.segments[split])

    def note(self, name: str, train_only: bool = False) -> str:
        """The one-line warning of an adapted layout ('' for the configured blocks); ``train_only``:
        a ``whole`` video that trains only, since other videos of its spec give val and test."""
        T, sizes = self.duration, ", ".join(f"{s} {self.time(s):.1f} s" for s in SPLITS[:3])
        short = f"{name}: {T:.1f} s is too short for {self.config_block:g} s blocks of {self.span:.2f} s clips"
        if self.kind == "cycle":
            return f"{short}: split into blocks of {self.block:.2f} s ({sizes})"
        if self.kind == "pieces":
            return f"{short}: split into one block per split ({sizes})"
        if self.kind == "whole":
            why = (f"{name}: {T:.2f} s is too short to split into train/val/test for {self.span:.2f} s clips "
                   f"(that needs over {3 * self.span + 4 * self.guard:.2f} s)")
            if train_only:
                return f"{why}: it trains only (the other videos give val and test)"
            return (f"{why}: every split uses the whole video, so they share frames (to ask for that: "
                    "--split all, --val-split all; to validate on other footage: --val-data VIDEO)")
        if self.kind == "none":
            return f"{name}: {T:.2f} s holds no {self.span:.2f} s clip: skipped"
        return ""


def _starts(segments, span: float) -> float:
    """Seconds of clip starts in ``segments``: each segment's length minus the clip span."""
    return sum(max(0.0, e - s - span) for s, e in segments)


def split_layout(
    start: float,
    end: float,
    span: float,
    block: float = 10.0,
    ratios=(8, 1, 1),
    guard: float = 0.5,
    seed: int = 0,
    frame_gap: float = 0.0,
) -> SplitLayout:
    """The time split of one video [start, end) for clips spanning ``span`` s: the first layout of
    the module docstring's list that works. ``frame_gap``: the longest time a frame stays on screen
    (a floor of the scaled guards). Deterministic: the same arguments give the same layout."""
    T = end - start
    held = [i for i in range(3) if ratios[i] > 0]  # splits that get time at all

    def segs(b: float, g: float) -> dict:
        return {s: split_segments(start, end, s, b, ratios, g, seed) for s in SPLITS[:3]}

    def enough(sg: dict) -> bool:
        return all(_starts(sg[SPLITS[i]], span) >= MIN_STARTS - 1e-9 for i in held)

    def layout(kind, b, g, sg) -> SplitLayout:
        return SplitLayout(kind, start, end, span, b, g, sg, block)

    standard = segs(block, guard)
    if enough(standard):
        return layout("blocks", block, guard, standard)
    b = T / sum(ratios)
    g = max(MIN_GUARD, frame_gap, min(guard, guard * b / block))
    cycle = segs(b, g)
    if enough(cycle):
        return layout("cycle", b, g, cycle)
    # one block per split, in the order the seed's first cycle deals them
    first = np.random.default_rng([seed, 0]).permutation(np.repeat(np.arange(3), ratios))
    order = list(dict.fromkeys(int(c) for c in first))
    usable = T - 2 * g * (len(order) - 1)  # after the guards of every inner boundary
    room = min(MIN_STARTS, (usable - len(order) * span) / len(order))
    whole = {s: [(start, end)] for s in SPLITS[:3]}
    if room <= 1e-6:
        return layout("whole" if T > span else "none", T, g, whole)
    rest = max(order, key=lambda i: ratios[i])  # train, with 8:1:1: the others get what they need first
    size = {i: max(usable * ratios[i] / sum(ratios), span + room) for i in order if i != rest}
    size[rest] = usable - sum(size.values())
    if size[rest] < span + room - 1e-9:
        return layout("whole", T, g, whole)
    pieces, t = {s: [] for s in SPLITS[:3]}, start
    for k, i in enumerate(order):
        s = t + (g if k > 0 else 0.0)
        e = s + size[i]
        pieces[SPLITS[i]].append((s, min(e, end)))
        t = e + g
    return layout("pieces", max((v for i, v in size.items() if i != rest), default=T), g, pieces)


@dataclass(frozen=True)
class ClipPlan:
    """Everything that decides one clip, before any pixel is touched."""

    video: int  # which store
    label: int  # class index (after the flip and the reversal)
    flip: bool  # mirrored left-right
    times: np.ndarray  # (T,) s: sampled times (in playing order: reversed clips count down)
    positions: np.ndarray  # (T,) int: store frames on screen at those times
    boxes: np.ndarray  # (T, 4) float: window x1, y1, x2, y2 in store pixels (before the flip)
    reverse: bool = False  # played backwards (times, positions and boxes are already in that order)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)  # brightness, contrast, saturation factors
    scale: float = 1.0  # resolution degradation: down-sampled by this factor, then up again (1: none)
    noise: float = 0.0  # sd of the additive sensor noise on [0, 1] values (0: none)
    noise_seed: int = 0  # the noise's RNG seed (the batch's noise follows from its plans)
    seen: tuple = ()  # apparent rule: (shift x, shift y in window sides, log scale, footage ambiguity) before flip / reversal


def _frame_gap(store: FrameStore) -> float:
    """The longest time one frame of ``store`` stays on screen (s)."""
    times = np.append(store.times, store.end)
    return float(np.diff(times).max()) if len(times) > 1 else 0.0


@dataclass
class _Source:
    store: FrameStore
    segments: list[tuple[float, float]] = field(default_factory=list)


class CameraMotionDataset(Dataset):
    """Camera-motion clips over FrameStores; items are (clip float (T, 3, S, S), label int)."""

    classes = MOTION_CLASSES

    def __init__(
        self,
        stores: Sequence[FrameStore],
        split: str = "train",
        frames: int = 8,
        size: int = 112,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        clips_per_epoch: int | None = None,
        seed: int = 0,
        random: bool | None = None,
        flip_p: float | None = None,
        reverse_p: float = 0.0,
        color_jitter: float = 0.0,
        degrade_p: float = 0.0,
        config: MotionConfig = MotionConfig(),
    ):
        if not stores:
            raise ValueError("no videos given")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        if config.labels not in LABEL_RULES:
            raise ValueError(f"motion labels must be one of {', '.join(LABEL_RULES)}, not {config.labels!r}")
        self.split, self.frames, self.size = split, frames, size
        self.mean, self.std = tuple(mean), tuple(std)
        self.cfg = config
        self.seed, self.epoch = seed, 0
        self.random = (split == "train") if random is None else random  # fresh randomness per draw
        self.flip_p = (0.5 if split == "train" else 0.0) if flip_p is None else flip_p
        self.reverse_p, self.color_jitter = reverse_p, color_jitter
        self.degrade_p = degrade_p
        if not (0.0 <= self.flip_p <= 1.0 and 0.0 <= self.reverse_p <= 1.0 and 0.0 <= self.degrade_p <= 1.0
                and 0.0 <= self.color_jitter < 1.0):
            raise ValueError("flip_p, reverse_p and degrade_p must lie in [0, 1] and color_jitter in [0, 1)")
        self.clips_per_epoch = clips_per_epoch or (TRAIN_CLIPS if split == "train" else EVAL_CLIPS)
        need = config.span(frames)
        self.sources: list[_Source] = []
        # one layout per video, from the video alone (not from ``split``): train, val and test agree
        self.layouts = [
            split_layout(st.start, st.end, need, config.block, config.ratios, config.guard, config.split_seed,
                         frame_gap=_frame_gap(st))
            for st in stores
        ]
        splits_somewhere = any(lay.kind in ("blocks", "cycle", "pieces") for lay in self.layouts)
        for st, lay in zip(stores, self.layouts):
            if split == "all" or lay.kind == "none":
                segs = [(st.start, st.end)]
            elif lay.kind == "whole":  # in a spec where other videos split, keep held-out time clean
                segs = [(st.start, st.end)] if split == "train" or not splits_somewhere else []
            else:
                segs = lay.segments[split]
            if split != "all" and lay.kind in ("cycle", "pieces", "whole"):
                warnings.warn(lay.note(st.path or "?", train_only=splits_somewhere), InputWarning, stacklevel=2)
            self.sources.append(_Source(st, [(s, e) for s, e in segs if e - s > need]))
        # every usable segment of every video, flat: a clip start is uniform over all usable time,
        # so longer videos give more clips
        flat = [(v, s, e) for v, src in enumerate(self.sources) for s, e in src.segments]
        if not flat:
            step = config.frame_step[1]
            longest = max(st.duration for st in stores)
            if any(lay.kind != "none" for lay in self.layouts):  # clips fit, the ratios give this split nothing
                raise VideoError(f"split {split!r} gets no time: the motion ratios (train:val:test) are {config.ratios}")
            raise ClipsTooShortError(
                f"clips too short for split {split!r}: a clip of {frames} frames every {step:.3f} s needs {need:.2f} s "
                f"of unbroken footage, the longest piece is {longest:.2f} s "
                f"(videos: {', '.join(st.path or '?' for st in stores)})",
                need=need, longest=longest, step=step, max_frames=int(np.ceil(longest / step - 1e-9)),
            )
        for st, lay in zip(stores, self.layouts):
            if lay.kind == "none":  # only now: with no video left, the error says it instead
                warnings.warn(lay.note(st.path or "?"), InputWarning, stacklevel=2)
        for src in self.sources:  # once, before DataLoader workers fork
            if config.avoid_cuts:
                src.store.cuts()
            if config.labels == "apparent":
                src.store.motion()
        self._seg_video = np.array([v for v, _, _ in flat], dtype=np.int64)
        self._seg_start = np.array([s for _, s, _ in flat], dtype=np.float64)
        self._seg_len = np.array([e - s for _, s, e in flat], dtype=np.float64)
        self._room = self._cum = None  # the fixed step's usable time per segment, made at the first draw
        self._k = np.arange(frames, dtype=np.float64)
        starts = self.first_frames()
        if split != "train" and self.clips_per_epoch > HEAVY_OVERLAP * starts:
            warnings.warn(
                f"{split}: {starts} distinct clip positions for {self.clips_per_epoch} evaluation clips: "
                f"samples overlap heavily ({', '.join(os.path.basename(st.path or '?') for st in stores)})",
                InputWarning, stacklevel=2,
            )

    def first_frames(self) -> int:
        """Distinct store frames a clip can start on (at the longest step), over all usable segments."""
        need = self.cfg.span(self.frames)
        n = 0
        for src in self.sources:
            for s, e in src.segments:
                n += int(src.store.position(e - need) - src.store.position(s)) + 1
        return n

    # -- Dataset ------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(MOTION_CLASSES)

    def __len__(self) -> int:
        return self.clips_per_epoch

    def frame_step(self) -> tuple[float, str]:
        """Seconds between sampled frames that a stream should use, and where it comes from."""
        lo, hi = self.cfg.frame_step
        if lo == hi:
            return float(lo), "motion: fixed step"
        return (lo + hi) / 2, f"motion: mid of the drawn range {lo:.4g}-{hi:.4g} s"

    def set_epoch(self, epoch: int) -> None:
        """Evaluation sets draw clips from (seed, split, epoch, index): keep epoch fixed for them."""
        self.epoch = int(epoch)

    def to(self, device) -> "CameraMotionDataset":
        """A copy whose footage is on ``device``: its ``render`` / ``get_batch`` cut clips there.
        Plans (``plan``) need no pixels, so DataLoader workers can plan from the CPU copy."""
        moved = copy.copy(self)
        moved.sources = [_Source(src.store.to(device), src.segments) for src in self.sources]
        return moved

    def __getitem__(self, index: int):
        clips, labels = self.render([self.plan(index)])
        return clips[0], int(labels[0])

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch at once, on the stores' device (GPU training without a DataLoader):
        (clips float (B, T, 3, S, S), labels long (B,))."""
        return self.render([self.plan(int(i)) for i in indices])

    # -- planning -----------------------------------------------------------------------------
    def rng(self, index: int) -> np.random.Generator:
        key = [self.seed, _SPLIT_CODE.get(self.split, 9), self.epoch, int(index)]
        if self.random:
            key.append(int(torch.randint(0, 2**62, ()).item()))  # torch's RNG: seeded per DataLoader worker
        return np.random.default_rng(key)

    def plan(self, index: int) -> ClipPlan:
        """The clip at ``index``: class index % 7 (balanced), everything else from ``rng(index)``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = self.rng(index)
        label = index % len(MOTION_CLASSES)
        seen: tuple = ()
        if self.cfg.labels == "virtual":
            v, times, positions = self._draw_span(rng)
            store = self.sources[v].store
            boxes = window_path(label, store.height, store.width, self.frames, self.cfg, rng)
        else:
            v, times, positions, boxes, label, seen = self._draw_apparent(label, rng)
        flip = bool(rng.random() < self.flip_p)
        if flip:
            label = FLIP_LABEL[label]
        # augmentations drawn after everything above, so a set without them keeps its clips
        reverse = bool(self.reverse_p > 0 and rng.random() < self.reverse_p)
        if reverse:
            label = REVERSE_LABEL[label]
            times, positions, boxes = times[::-1].copy(), positions[::-1].copy(), boxes[::-1].copy()
        color = (1.0, 1.0, 1.0)
        if self.color_jitter > 0:
            color = tuple(float(f) for f in 1.0 + self.color_jitter * (2.0 * rng.random(3) - 1.0))
        scale, noise, noise_seed = 1.0, 0.0, 0
        if self.degrade_p > 0 and rng.random() < self.degrade_p:
            d = rng.random(4)
            if d[0] < 0.5:
                scale = 0.5 if d[1] < 0.5 else 0.75
            if d[2] < 0.5 or scale == 1.0:  # a degraded clip gets at least one of the two
                noise = 0.01 + 0.04 * d[3]
            noise_seed = int(rng.integers(0, 2**62))
        return ClipPlan(v, label, flip, times, positions, boxes, reverse, color, scale, noise, noise_seed, seen)

    def _draw_span(self, rng: np.random.Generator) -> tuple[int, np.ndarray, np.ndarray]:
        """(video, sampled times (T,), store positions (T,)) of one clip, redrawn a few times while it
        spans a scene cut."""
        cfg = self.cfg
        lo, hi = cfg.frame_step
        for _ in range(32):
            r = rng.random(2)
            step = lo + (hi - lo) * r[0]
            if lo == hi:  # a fixed step: the usable time per segment is the same for every clip
                if self._room is None:
                    self._room = np.maximum(self._seg_len - (self.frames - 1) * step, 0.0)
                    self._cum = np.cumsum(self._room)
                room, cum = self._room, self._cum
            else:
                room = np.maximum(self._seg_len - (self.frames - 1) * step, 0.0)
                cum = np.cumsum(room)
            x = r[1] * cum[-1]  # a point of all usable time: segment j, then the offset in it
            j = min(int(np.searchsorted(cum, x, side="right")), len(cum) - 1)
            times = self._seg_start[j] + (x - (cum[j] - room[j])) + self._k * step
            v = int(self._seg_video[j])
            store = self.sources[v].store
            positions = store.position(times)
            if not cfg.avoid_cuts:
                break
            cuts = store.cuts()
            c = np.searchsorted(cuts, positions[0], side="right")
            if c == len(cuts) or cuts[c] > positions[-1]:
                break
        return v, times, positions

    def _draw_apparent(self, target: int, rng: np.random.Generator):
        """A clip whose apparent motion is ``target`` (module docstring, Labels): (video, times,
        positions, boxes, label, seen)."""
        first = last = None
        for _ in range(APPARENT_DRAWS):
            v, times, positions = self._draw_span(rng)
            store = self.sources[v].store
            boxes = window_path(target, store.height, store.width, self.frames, self.cfg, rng)
            seen = apparent_motion(boxes, store.motion(), int(positions[0]), int(positions[-1]))
            got = classify_motion(*seen)
            last = (v, times, positions, boxes, got, seen)
            if got == target:
                return last
            if got >= 0 and first is None:
                first = last
        if first is not None:
            return first
        v, times, positions, boxes, _, seen = last  # nothing clear in all the draws: the nearest class
        return v, times, positions, boxes, classify_motion(*seen, nearest=True), seen

    def source_of(self, index: int) -> str:
        """The file name of the video that clip ``index`` comes from (per-source accuracy)."""
        return os.path.basename(self.sources[self.plan(index).video].store.path or "?")

    # -- rendering ----------------------------------------------------------------------------
    def render(self, plans: Sequence[ClipPlan]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cut the clips of ``plans``: (clips float32 (B, T, 3, S, S) normalised, labels long (B,))."""
        T, S = self.frames, self.size
        device = self.sources[plans[0].video].store.device
        out = torch.empty((len(plans), T, 3, S, S), dtype=torch.float32, device=device)
        by_video: dict[int, list[int]] = {}
        for b, p in enumerate(plans):
            by_video.setdefault(p.video, []).append(b)
        for v, members in by_video.items():
            store = self.sources[v].store
            pos = np.concatenate([plans[b].positions for b in members])
            uniq, inverse = np.unique(pos, return_inverse=True)  # each store frame once
            frames = store.frames[torch.as_tensor(uniq, device=store.device)].float()  # (F, 3, H, W)
            boxes = np.concatenate([plans[b].boxes for b in members])  # (n*T, 4)
            rois = torch.as_tensor(np.concatenate([inverse[:, None], boxes], 1), dtype=torch.float32, device=device)
            # (n*T, 3, S, S); sampling_ratio 0: as many samples per output pixel as the box needs
            crops = roi_align(frames, rois, output_size=(S, S), spatial_scale=1.0, sampling_ratio=0, aligned=True)
            out[torch.as_tensor(members, device=device)] = crops.view(len(members), T, 3, S, S)
        flips = torch.as_tensor([p.flip for p in plans], device=device)
        if flips.any():
            out[flips] = out[flips].flip(-1)
        out.div_(255.0)
        if any(p.color != (1.0, 1.0, 1.0) for p in plans):
            out = color_jitter(out, torch.as_tensor([p.color for p in plans], dtype=torch.float32, device=device))
        if any(p.scale != 1.0 or p.noise > 0 for p in plans):
            out = degrade(out, plans)
        out = normalize(out, self.mean, self.std)
        return out, torch.as_tensor([p.label for p in plans], dtype=torch.long)


def color_jitter(clips: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Per-clip photometric jitter of (B, T, 3, S, S) values in [0, 1]; factors (B, 3): brightness,
    contrast (about the clip's mean grey) and saturation (about each pixel's grey). Same for every
    frame of a clip. Returns values clamped to [0, 1]."""
    b, c, s = (factors[:, i].view(-1, 1, 1, 1, 1) for i in range(3))
    luma = torch.as_tensor((0.299, 0.587, 0.114), dtype=clips.dtype, device=clips.device).view(1, 1, 3, 1, 1)
    x = clips * b
    grey = (x * luma).sum(2, keepdim=True)  # (B, T, 1, S, S)
    x = (x - grey.mean((1, 3, 4), keepdim=True)) * c + grey.mean((1, 3, 4), keepdim=True)
    grey = (x * luma).sum(2, keepdim=True)
    x = grey + (x - grey) * s
    return x.clamp_(0.0, 1.0)


def degrade(clips: torch.Tensor, plans: Sequence[ClipPlan]) -> torch.Tensor:
    """Lower resolution and sensor noise of (B, T, 3, S, S) values in [0, 1], as ``plans`` say
    (``scale``, ``noise``); the noise comes from a generator seeded by the batch's plans, so the same
    plans give the same pixels. Returns values clamped to [0, 1]."""
    B, T, _, S, _ = clips.shape
    out = clips.clone()
    for scale in sorted({p.scale for p in plans if p.scale != 1.0}):
        idx = torch.as_tensor([b for b, p in enumerate(plans) if p.scale == scale], device=clips.device)
        x = clips[idx].flatten(0, 1)  # (n*T, 3, S, S)
        small = F.interpolate(x, size=max(1, round(S * scale)), mode="bilinear", antialias=True, align_corners=False)
        out[idx] = F.interpolate(small, size=S, mode="bilinear", align_corners=False).view(len(idx), T, 3, S, S)
    sd = torch.as_tensor([p.noise for p in plans], dtype=clips.dtype, device=clips.device)
    if bool((sd > 0).any()):
        gen = torch.Generator(device=clips.device).manual_seed(sum(p.noise_seed for p in plans) % (2**63))
        noise = torch.randn(out.shape, generator=gen, device=clips.device, dtype=clips.dtype)
        out += noise * sd.view(B, 1, 1, 1, 1)
    return out.clamp_(0.0, 1.0)


def window_path(label: int, height: int, width: int, frames: int, cfg: MotionConfig, rng: np.random.Generator) -> np.ndarray:
    """The window over a (height, width) footage for each of ``frames`` frames: (T, 4) x1, y1, x2, y2.

    Moves are linear in time (pans: constant speed; zooms: constant rate, i.e. geometric in size)."""
    short = min(height, width)
    a = rng.random(4)  # window size, amount of the move, centre x, centre y
    u = np.arange(frames) / max(frames - 1, 1)  # (T,) progress through the clip
    size = (cfg.window[0] + (cfg.window[1] - cfg.window[0]) * a[0]) * short
    if label in (ZOOM_IN, ZOOM_OUT):
        z = cfg.zoom[0] + (cfg.zoom[1] - cfg.zoom[0]) * a[1]
        big = min(size * z**0.5, short)  # size is the geometric mean of both ends
        small = big / z
        s0, s1 = (big, small) if label == ZOOM_IN else (small, big)
        side = s0 * (s1 / s0) ** u  # (T,)
        cx = np.full(frames, big / 2 + a[2] * (width - big))
        cy = np.full(frames, big / 2 + a[3] * (height - big))
    else:
        f = cfg.pan[0] + (cfg.pan[1] - cfg.pan[0]) * a[1] if label != STATIC else 0.0
        dx, dy = _PAN_DIR.get(label, (0, 0))
        s = min(size, (width if dx else height) / (1 + f), short)  # the whole path fits
        travel = f * s
        x0 = s / 2 + max(0.0, -dx * travel)
        y0 = s / 2 + max(0.0, -dy * travel)
        x0 += a[2] * (width - s - abs(dx) * travel)
        y0 += a[3] * (height - s - abs(dy) * travel)
        cx, cy = x0 + u * (dx * travel), y0 + u * (dy * travel)
        side = np.full(frames, s)
    shake = np.minimum(np.maximum(rng.standard_normal((2, frames)), -2.0), 2.0) * (cfg.jitter * side)
    half = side / 2
    # keep every window inside the footage (the jitter may push one out)
    cx = np.minimum(np.maximum(cx + shake[0], half), width - half)
    cy = np.minimum(np.maximum(cy + shake[1], half), height - half)
    return np.stack([cx - half, cy - half, cx + half, cy + half], 1)


def apparent_motion(boxes: np.ndarray, footage, p0: int, p1: int) -> tuple[float, float, float, float]:
    """The move a viewer sees in the window ``boxes`` (T, 4) over footage whose own motion is
    ``footage`` (``FootageMotion``), from store frame p0 to p1: (shift x, shift y in window sides, the
    way the camera appears to move; log of the magnification, > 0 a zoom in; the footage's ambiguity).

    The window moves by w and scales by s1 / s0; the footage's content moves by its own translation
    plus its scale change about the picture centre, evaluated at the window's centre. What the viewer
    sees is the window's move relative to the content."""
    dx, dy, log_scale, amb = footage.between(p0, p1)
    x0, y0, x1, _ = boxes[0].tolist()
    u0, v0, u1, _ = boxes[-1].tolist()
    s0, s1 = x1 - x0, u1 - u0
    grow = math.expm1(log_scale)
    # content move at the window's first centre, px
    cx = grow * (x0 + s0 / 2 - footage.width / 2) + dx
    cy = grow * (y0 + s0 / 2 - footage.height / 2) + dy
    side = math.sqrt(s0 * s1)
    sx = ((u0 + s1 / 2) - (x0 + s0 / 2) - cx) / side
    sy = ((v0 + s1 / 2) - (y0 + s0 / 2) - cy) / side
    return sx, sy, log_scale - math.log(s1 / s0), amb


# the nearest class of a composite (classify_motion(nearest=True)): a typical move of each class
_PROTOTYPES = np.array([(0, 0, 0), (-0.4, 0, 0), (0.4, 0, 0), (0, -0.4, 0), (0, 0.4, 0), (0, 0, 0.5), (0, 0, -0.5)])


def classify_motion(sx: float, sy: float, log_scale: float, ambiguity: float = 0.0, nearest: bool = False) -> int:
    """The class of an apparent move (``apparent_motion``), or -1 where it lies between classes or the
    footage's motion is ambiguous; ``nearest``: always the nearest class."""
    if nearest:
        return int(np.argmin(((_PROTOTYPES - (sx, sy, log_scale)) ** 2).sum(1)))
    if ambiguity > AMBIGUOUS:
        return -1
    shift, zoom = math.hypot(sx, sy), abs(log_scale)
    if shift <= STATIC_SHIFT and zoom <= STATIC_SCALE:
        return STATIC
    if zoom >= ZOOM_SCALE and shift <= ZOOM_SHIFT:
        return ZOOM_IN if log_scale > 0 else ZOOM_OUT
    major, minor = (abs(sx), abs(sy)) if abs(sx) >= abs(sy) else (abs(sy), abs(sx))
    if zoom <= PAN_SCALE and major >= PAN_SHIFT and minor <= PAN_OFF_AXIS * major:
        if abs(sx) >= abs(sy):
            return PAN_RIGHT if sx > 0 else PAN_LEFT
        return PAN_DOWN if sy > 0 else PAN_UP
    return -1


def motion_dataset(
    paths: Sequence[str],
    split: str = "train",
    frames: int = 8,
    size: int = 112,
    short_side: int | None = None,
    store_fps: float | None = None,
    damage: str = "warn",
    max_lost: float | None = None,
    **kw,
) -> CameraMotionDataset:
    """A CameraMotionDataset over video files (stores decoded once per process, see ``load_store``).
    ``short_side`` None: about size / 0.7 (112 -> 160, 224 -> 320), so the window seldom upsamples.
    ``damage``: what a video that lost more than ``max_lost`` of its time to damage does (warn / skip /
    refuse, ``store.screen_stores``); every damaged video gets one warning line."""
    from .store import MAX_LOST, load_store, screen_stores

    short_side = short_side or auto_short_side(size)
    stores = [load_store(p, short_side=short_side, fps=store_fps) for p in paths]
    stores = screen_stores(stores, damage, MAX_LOST if max_lost is None else max_lost, size)
    return CameraMotionDataset(stores, split=split, frames=frames, size=size, **kw)


def auto_short_side(size: int) -> int:
    """Footage short side for a model input of ``size`` px: the mid window (0.7) is ``size`` px."""
    return int(16 * round(size / 0.7 / 16))
