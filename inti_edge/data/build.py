"""One string names a data set, so every command can take ``--data SPEC``.

SPEC is one of
- ``motion:PATH[,PATH...]``: the camera-motion task over those videos (7 classes);
- ``raw:LABELS.csv`` or ``raw:PATH[,PATH...]@LABELS.csv``: untouched footage labelled by time range
  (``raw.py``; the same clips for every split);
- a CSV file of ``path,label`` rows (the same file for every split);
- a folder holding ``<split>.csv`` files (``train.csv``, ``val.csv``, ``test.csv``);
- a folder holding ``<split>/<class>/<videos>``;
- a folder holding ``<class>/<videos>`` (the same videos for every split).
A ``classes.txt`` next to the CSV or in the folder fixes the class order; otherwise the names of the
training split (``train.csv`` / ``train/``), or of the spec itself, sorted. Every split of one spec
gets the same class list, so a checkpoint's class names match its evaluation data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from .clips import VideoClipDataset, read_class_list, read_csv, scan_folder
from .motion import MOTION_CLASSES, MotionConfig, motion_dataset
from .spec import MOTION_PREFIX, RAW_PREFIX, DatasetError, motion_paths, raw_spec
from .transforms import ClipTransform

def _source(spec: str, split: str) -> tuple[str, Path, Path | None]:
    """(kind 'csv' | 'folder', path, class-list file or None) for a non-motion spec and split."""
    p = Path(spec).expanduser()
    if p.is_file():
        cl = p.parent / "classes.txt"
        return "csv", p, cl if cl.is_file() else None
    if not p.is_dir():
        raise DatasetError(f"{spec!r}: no such file or folder (or use motion:VIDEO[,VIDEO...])")
    cl = p / "classes.txt"
    cl = cl if cl.is_file() else None
    if (p / f"{split}.csv").is_file():
        return "csv", p / f"{split}.csv", cl
    if (p / split).is_dir():
        return "folder", p / split, cl
    if any((p / s).exists() for s in ("train.csv", "val.csv", "test.csv", "train", "val", "test")):
        raise DatasetError(f"{spec!r}: has no {split}.csv and no {split}/ folder")
    return "folder", p, cl


def dataset_classes(spec: str) -> list[str]:
    """The class names of a spec, in label order (the same for all its splits): the class-list
    file if there is one, else the training split's names (any split's if it has none), sorted."""
    if spec.startswith((MOTION_PREFIX, RAW_PREFIX)):
        return list(MOTION_CLASSES)
    p = Path(spec).expanduser()
    for split in ("train", "val", "test"):
        try:
            kind, path, cl = _source(spec, split)
        except DatasetError:
            if p.is_dir():
                continue
            raise
        if cl is not None:
            return read_class_list(cl)
        rows = read_csv(path) if kind == "csv" else scan_folder(path)
        return sorted({y for _, y in rows})
    raise DatasetError(f"{spec!r}: no train, val or test split found")


def build_dataset(
    spec: str,
    cfg,
    split: str = "train",
    *,
    classes: Sequence[str] | str | None = None,
    clips_per_epoch: int | None = None,
    seed: int = 0,
    random: bool | None = None,
    short_side: int | None = None,
    store_fps: float | None = None,
    motion: MotionConfig | None = None,
    span: float | None = None,
    threads: int = 1,
    skip_broken: bool = False,
    augment: str = "flip",
    damage: str = "warn",
    max_lost: float | None = None,
    labels: str | None = None,
    frame_step: float | None = None,
):
    """The torch Dataset for ``spec`` and ``split`` ('train', 'val', 'test'; 'all' for motion),
    shaped for the model config ``cfg`` (frames, image size, mean/std). Items: (clip float
    (T, 3, S, S), label int); the dataset has ``.classes``.

    Motion: ``clips_per_epoch``, ``seed``, ``random`` (default: train only), ``short_side`` /
    ``store_fps`` of the in-RAM frame stores, ``motion`` geometry and split. Labelled clips:
    ``classes`` (names or a class-list file; default: the spec's own), ``span`` (s), decoder
    ``threads``, ``skip_broken``; augmentation in the train split only (motion: ``augment`` flip;
    full = flip, time reversal and colour jitter; real = full + lower resolution and sensor noise; none).
    ``damage`` / ``max_lost``: what a damaged motion video does (warn, skip: training and calibration,
    refuse: evaluation and the gate; ``store.screen_stores``). ``labels``: the camera-motion label rule
    (apparent | virtual, ``MotionConfig.labels``; None: ``motion``'s, by default apparent). Raw footage
    (``raw:``): ``frame_step`` s between frames (None: the camera-motion task's), every split alike."""
    train = split == "train"
    if spec.startswith(RAW_PREFIX):
        from .raw import raw_dataset

        if classes is not None:
            names = list(classes) if isinstance(classes, (list, tuple)) else read_class_list(classes)
            if names != list(MOTION_CLASSES):
                raise DatasetError(f"{spec!r} has the camera-motion classes {list(MOTION_CLASSES)}, not {names[:8]}")
        csv_path, videos = raw_spec(spec)
        return raw_dataset(csv_path, videos, cfg.frames, cfg.vision.image_size, frame_step=frame_step, mean=cfg.mean,
                           std=cfg.std, short_side=short_side, damage=damage, max_lost=max_lost)
    if spec.startswith(MOTION_PREFIX):
        if classes is not None:
            names = list(classes) if isinstance(classes, (list, tuple)) else read_class_list(classes)
            if names != list(MOTION_CLASSES):
                raise DatasetError(f"{spec!r} has the camera-motion classes {list(MOTION_CLASSES)}, not {names[:8]}")
        return motion_dataset(
            motion_paths(spec),
            split=split,
            frames=cfg.frames,
            size=cfg.vision.image_size,
            mean=cfg.mean,
            std=cfg.std,
            short_side=short_side,
            store_fps=store_fps,
            clips_per_epoch=clips_per_epoch,
            seed=seed,
            random=random,
            config=_label_rule(motion or MotionConfig(), labels),
            damage=damage,
            max_lost=max_lost,
            **_motion_augment(augment if train else "none"),
        )
    if split == "all":
        raise DatasetError("split 'all' is for motion: specs; labelled clips have train/val/test")
    kind, path, _ = _source(spec, split)
    names = list(classes) if isinstance(classes, (list, tuple)) else (read_class_list(classes) if classes else dataset_classes(spec))
    kw = dict(
        frames=cfg.frames,
        transform=ClipTransform.from_config(cfg, train=train),
        span=span,
        threads=threads,
        skip_broken=skip_broken,
        seed=None if (random or (random is None and train)) else seed,
        damage=damage,
        max_lost=max_lost,
    )
    if kind == "csv":
        ds = VideoClipDataset.from_csv(path, classes=names, **kw)
    else:
        ds = VideoClipDataset.from_folder(path, classes=names, **kw)
    if damage == "refuse":
        ds.check_all()
    return ds


def _label_rule(motion: MotionConfig, labels: str | None) -> MotionConfig:
    """``motion`` with the label rule ``labels`` (None: as it is), checked."""
    import dataclasses

    from .motion import LABEL_RULES

    if labels is None:
        return motion
    if labels not in LABEL_RULES:
        raise DatasetError(f"labels must be one of {', '.join(LABEL_RULES)}, not {labels!r}")
    return dataclasses.replace(motion, labels=labels)


def _motion_augment(augment: str) -> dict:
    """Dataset arguments of a motion augmentation level."""
    levels = {
        "real": dict(flip_p=0.5, reverse_p=0.5, color_jitter=0.3, degrade_p=0.5),
        "full": dict(flip_p=0.5, reverse_p=0.5, color_jitter=0.3),
        "flip": dict(flip_p=0.5, reverse_p=0.0, color_jitter=0.0),
        "none": dict(flip_p=0.0, reverse_p=0.0, color_jitter=0.0),
    }
    if augment not in levels:
        raise DatasetError(f"augment must be one of {', '.join(levels)}, not {augment!r}")
    return levels[augment]


def load_clips(spec: str, cfg, split: str, count: int, seed: int = 0, classes: Sequence[str] | None = None,
               progress: Callable[[int, int], None] | None = None, damage: str = "warn",
               max_lost: float | None = None):
    """``count`` clips of a data spec (inti_edge.data), deterministic for (spec, split, count, seed).

    Returns (clips float32 (n, T, 3, S, S) normalised, labels int64 (n,)) numpy arrays: what calibration
    and the accuracy gate feed ONNX Runtime and TensorRT. Labels are indices into
    ``classes`` (the model's class names) and -1 for a class the model does not have. Labelled-clip
    specs give at most one clip per video (n <= count). ``damage`` / ``max_lost``: what a damaged
    video does (``data.store.screen_stores``: skip for calibration, refuse for the gate).
    """
    import numpy as np
    import torch

    from .video import VideoError

    try:
        ds = build_dataset(spec, cfg, split, clips_per_epoch=count, seed=seed, random=False, damage=damage,
                           max_lost=max_lost)
    except (DatasetError, VideoError, FileNotFoundError, ValueError) as e:
        raise DatasetError(f"data {spec!r} ({split}): {e}") from None
    names = list(getattr(ds, "classes", []))
    if classes is None:
        remap = {i: i for i in range(len(names))}
    else:  # the data's label order may differ from the model's: match by name
        remap = {i: (list(classes).index(n) if n in classes else -1) for i, n in enumerate(names)}
    n = min(count, len(ds))
    if n == 0:
        raise DatasetError(f"data {spec!r} ({split}) holds no clips")
    T, S = cfg.frames, cfg.vision.image_size
    clips = np.empty((n, T, 3, S, S), np.float32)
    labels = np.empty(n, np.int64)
    chunk = 32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # labelled-clip augmentation in a train split: same on every run
        for start in range(0, n, chunk):
            idx = list(range(start, min(n, start + chunk)))
            if hasattr(ds, "get_batch"):
                x, y = ds.get_batch(idx)
            else:
                items = [ds[i] for i in idx]
                x = torch.stack([torch.as_tensor(c) for c, _ in items])
                y = torch.as_tensor([int(lbl) for _, lbl in items])
            clips[idx] = x.float().cpu().numpy()
            labels[idx] = [remap.get(int(v), -1) for v in y]
            if progress:
                progress(idx[-1] + 1, n)
    return clips, labels
