"""`inti-edge eval`: how well a checkpoint classifies a data spec: top-1, top-5, per class, confusion."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class EvalError(ValueError):
    """The evaluation cannot run as asked (one line: the cause and the fix)."""


def evaluate(checkpoint: str | os.PathLike, data: str, split: str = "test", *, batch_size: int = 32, workers: int = 2,
             limit: int | None = None, seed: int = 1, device: str = "auto", max_lost: float = 0.25,
             progress: bool = False, labels: str | None = None) -> dict:
    """Top-1 / top-5 / per-class accuracy and the confusion matrix of ``checkpoint`` on ``data``
    (``split``; ``limit`` clips at most; ``seed`` picks a generated set's clips), and per source (video)
    where the data says it. A video damaged past ``max_lost`` of its time is refused, before anything is
    evaluated. ``labels``: the camera-motion label rule (apparent | virtual); None: the rule the
    checkpoint was trained with (checkpoints from before the rule was recorded: virtual)."""
    from .data import MOTION_PREFIX, ClipsTooShortError, build_dataset
    from .data.motion import EVAL_CLIPS
    from .model import CheckpointError, load_checkpoint
    from .train import TrainError, amp_dtype, evaluate_model, pick_device

    try:
        model, meta = load_checkpoint(checkpoint)
        dev = pick_device(device)
    except (CheckpointError, TrainError) as e:
        raise EvalError(str(e)) from None
    try:
        # --limit clips are the first clips of the full set; asking for just those lets a motion set's
        # overlap warning count what is evaluated
        rule = labels or trained_labels(meta)
        dataset = build_dataset(data, model.cfg, split, seed=seed, classes=meta["classes"],
                                clips_per_epoch=min(limit, EVAL_CLIPS) if limit else None, damage="refuse",
                                max_lost=max_lost, labels=rule, frame_step=_frame_step(meta))
    except ClipsTooShortError as e:  # the model fixes the frames: only longer footage helps
        raise EvalError(f"data: {e.why}: the model takes {model.cfg.frames} frames every {e.step:.3f} s, "
                        f"so evaluate it on footage longer than {e.need:.2f} s") from None
    except Exception as e:  # noqa: BLE001 - data errors are one-line input errors
        raise EvalError(f"data: {e}") from None
    if dev.type == "cuda":  # the torch backend's fast path: bf16 weights, the plugin kernel for the interpolation
        import torch

        model = model.to(dev, torch.bfloat16)
        model.use_kernels()
    res = evaluate_model(model.to(dev), dataset, meta["classes"], batch_size=batch_size, workers=workers, device=dev,
                         amp=amp_dtype("auto", dev), limit=limit, progress=progress)
    res["checkpoint"] = str(checkpoint)
    if data.startswith(MOTION_PREFIX):
        res["labels"] = rule
    res["classes"] = list(meta["classes"])
    return res


def trained_labels(meta: dict) -> str:
    """The camera-motion label rule a checkpoint was trained with (``virtual`` before it was recorded)."""
    return (meta.get("train_config") or {}).get("labels", "virtual")


def _frame_step(meta: dict) -> float | None:
    """Seconds between the frames the checkpoint was trained on (its sampling record), or None."""
    s = meta.get("sampling") or {}
    return float(s["frame_step"]) if "frame_step" in s else None


def plot_confusion(res: dict, classes: list[str], path: str | os.PathLike, title: str = "") -> Path:
    """The confusion matrix of an ``evaluate`` result as a PNG: rows = true class, columns = predicted,
    each cell the share of its row (clip counts written in)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(res["confusion"], dtype=np.float64)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.6 + 0.75 * n, 1.2 + 0.7 * n), dpi=110)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"top-1 {100 * res['top1']:.1f}%, n={res['n']}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


