"""Training: AdamW + cosine schedule with warm-up, AMP, gradient accumulation, frozen-backbone or full
fine-tuning, atomic checkpoints with exact resume, per-epoch evaluation, metrics.jsonl + a PNG plot,
and DDP under torchrun (NCCL on GPUs, gloo on CPUs) with the same command.

Exact resume: the sample order of an epoch is a permutation drawn from (seed, epoch) and every
clip's augmentation from (seed, epoch, index) (the datasets' ``set_epoch``), so a run resumed from a
checkpoint at step k sees the same batches as the uninterrupted run from step k on.

Crash safety: a run killed at any point (SIGKILL included) leaves last.pt as the last complete
checkpoint (written atomically, fsynced and checksummed: ``model.factory.save_checkpoint``) and a
metrics.jsonl whose every line parses (one write + fsync per record). ``--resume last.pt`` rewrites
metrics.jsonl from the checkpoint's history, which drops the records of steps the run redoes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from .model import InTIVideoModel, create_model, make_config, read_checkpoint, save_checkpoint
from .model.config import ModelConfig
from .model.factory import write_atomic


AUGMENTS = ("flip", "full", "real", "none")
LABEL_RULES = ("apparent", "virtual")  # = data.motion.LABEL_RULES (kept here so this module imports no data code early)


class TrainError(RuntimeError):
    """A training run cannot start or continue (bad options, bad resume file)."""


@dataclass
class TrainConfig:
    """Everything a run needs; stored in every checkpoint and accepted as YAML (same keys)."""

    data: str = ""  # training data spec: motion:VIDEO[,VIDEO...] | CSV | class folder
    val_data: str | None = None  # evaluation spec (default: the training spec)
    val_split: str = "val"  # its split: val (held-out time blocks) | all (footage never trained on)
    model: str = "small"  # preset: small, vit-b16, vit-l14
    frames: int = 8
    halvings: int = 1  # 0 = the naive baseline
    head: str = "temporal"
    pooled_grid: int = 2  # unit embedding: CLS + the patch grid pooled to pooled_grid x pooled_grid tokens
    pretrained: str | None = None  # CLIP weights file or open_clip tag
    out: str = "runs/train"
    epochs: int = 10
    steps_per_epoch: int | None = None  # optimizer steps per epoch (None: one pass over the data)
    batch_size: int = 32  # clips per optimizer step per process, before accumulation split
    accum: int = 1  # gradient accumulation: micro-batches of batch_size // accum
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the weights per step (0: off; e.g. 0.999): evaluated and shipped
    max_lost: float = 0.25  # a training / val video that lost more of its time to damage is skipped (counted, logged)
    labels: str = "apparent"  # motion data: apparent (the motion a viewer sees: window + footage) | virtual (the window's move alone, before issue 17)
    augment: str = "flip"  # motion data: flip | full (flip, time reversal, colour jitter) | real (full + low resolution, noise) | none
    freeze_backbone: bool = False  # train interpolation + head (+ final norm/projection) only
    amp: str = "auto"  # auto (bf16 on CUDA, off on CPU) | bf16 | fp16 | off
    workers: int = 4
    seed: int = 0
    ckpt_every: int = 200  # optimizer steps between checkpoints
    log_every: int = 10
    eval_clips: int | None = None  # cap on evaluation clips per epoch
    clips_per_epoch: int | None = None  # for generated data (motion): clips per training epoch
    stop_after: int | None = None  # stop (with a checkpoint) after this many steps; --resume continues
    half_weights: bool = False  # model.pt stores float16 weights (half the size; loads as float32)
    data_on_device: bool = False  # generated (motion) data: frame stores on the GPU, clips cut there
    compile: bool = False  # torch.compile the model (GPU)
    device: str = "auto"
    quiet: bool = False

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> "TrainConfig":
        import yaml

        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise TrainError(f"cannot read config {path}: {e}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise TrainError(f"unknown keys in {path}: {', '.join(sorted(unknown))}")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**raw)

    def model_config(self, num_classes: int) -> ModelConfig:
        return make_config(self.model, self.frames, self.halvings, num_classes, head=self.head, pooled_grid=self.pooled_grid)


# --- distributed helpers -----------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # init_distributed opened the group (train closes it when done)

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owned)


class EpochSampler(Sampler[int]):
    """A permutation of the dataset drawn from (seed, epoch), sharded over ranks, every rank the same
    length; ``skip`` drops the first samples of this rank (resume within an epoch)."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True, per_rank: int | None = None):
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.per_rank = per_rank if per_rank is not None else n // world
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        need = self.per_rank * self.world
        while len(order) < need:  # more steps than data: wrap around
            order += order[: need - len(order)]
        return order[self.rank : need : self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.skip :])

    def __len__(self) -> int:
        return self.per_rank - self.skip


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine down to cfg.lr * min_lr_ratio."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def pick_device(name: str, d: Dist = Dist()) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--device cuda asked for, but no CUDA device is available")
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return torch.device(name)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]


def set_trainable(model: InTIVideoModel, freeze_backbone: bool) -> list[str]:
    """Freeze the ViT except its final norm and projection; the interpolation ops and head train."""
    frozen = []
    for name, p in model.named_parameters():
        train_it = True
        if freeze_backbone and name.startswith("visual.") and not name.startswith(("visual.ln_post", "visual.proj")):
            train_it = False
        p.requires_grad_(train_it)
        if not train_it:
            frozen.append(name)
    return frozen


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms, embeddings and positions."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "embedding" in name or name.endswith(("_pos", "class_embedding")):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# --- RNG state (for exact resume) ---------------------------------------------------------------
def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": _np_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _np_state() -> list:
    s = np.random.get_state()
    return [s[0], torch.from_numpy(s[1].astype(np.int64)), int(s[2]), int(s[3]), float(s[4])]


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate(_tuples(st["python"]))
    n = st["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


# --- evaluation ------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_model(
    model: torch.nn.Module,
    dataset: Dataset,
    classes: list[str],
    batch_size: int = 32,
    workers: int = 0,
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    limit: int | None = None,
    d: Dist = Dist(),
    progress: bool = False,
) -> dict:
    """Top-1 / top-5 / loss / per-class accuracy and the confusion matrix (``confusion[true][predicted]``,
    clip counts) over ``dataset`` (sharded over ranks under DDP). A dataset that says where each clip
    comes from (``source_of(index)``, e.g. the video's file name) also gets ``per_source``: n, top-1 and
    per-class top-1 of each source (one process only: the predictions stay on each rank)."""
    device = torch.device(device)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    idx = list(range(d.rank, n, d.world))
    loader = DataLoader(torch.utils.data.Subset(dataset, idx), batch_size=batch_size, num_workers=workers, shuffle=False)
    C = len(classes)
    correct1 = torch.zeros(C, dtype=torch.float64, device=device)
    correct5 = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros(C, dtype=torch.float64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    confusion = torch.zeros(C * C, dtype=torch.float64, device=device)  # true * C + predicted
    preds, truth = [], []  # per clip, in idx order (per-source accuracy)
    was_training = model.training
    model.eval()
    bar = _progress(progress and d.main)
    task = bar.add_task("eval", total=len(loader), stats="") if bar else None
    try:
        if bar:
            bar.start()
        for clips, labels in loader:
            x = clips.to(device, non_blocking=True)
            y = labels.to(device)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = model(x)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            top = logits.topk(min(5, C), dim=1).indices
            hit1 = (top[:, 0] == y).double()
            correct1.index_add_(0, y, hit1)
            count.index_add_(0, y, torch.ones_like(hit1))
            confusion.index_add_(0, y * C + top[:, 0], torch.ones_like(hit1))
            correct5 += (top == y[:, None]).any(dim=1).double().sum()
            preds.append(top[:, 0].cpu())
            truth.append(y.cpu())
            if bar:
                bar.advance(task)
    finally:
        if bar:
            bar.stop()
        model.train(was_training)
    if d.world > 1:
        for t in (correct1, correct5, count, loss_sum, confusion):
            dist.all_reduce(t)
    total = count.sum().item()
    extra = {}
    if hasattr(dataset, "source_of") and d.world == 1 and preds:
        extra["per_source"] = per_source([dataset.source_of(i) for i in idx], torch.cat(truth).tolist(),
                                         torch.cat(preds).tolist(), classes)
    return {
        "top1": correct1.sum().item() / max(total, 1),
        "top5": correct5.item() / max(total, 1),
        "loss": loss_sum.item() / max(total, 1),
        "n": int(total),
        "per_class": {c: (correct1[i] / count[i]).item() if count[i] else None for i, c in enumerate(classes)},
        "confusion": confusion.view(C, C).round().long().tolist(),
        **extra,
    }


def per_source(sources: list[str], truth: list[int], preds: list[int], classes: list[str]) -> dict:
    """{source: {"n", "top1", "per_class": {class: top-1 or None}}} from per-clip sources, true and
    predicted class indices; sources in first-seen order."""
    out: dict[str, dict] = {}
    for s, y, p in zip(sources, truth, preds):
        r = out.setdefault(s, {"n": 0, "hits": 0, "count": [0] * len(classes), "correct": [0] * len(classes)})
        r["n"] += 1
        r["hits"] += int(p == y)
        r["count"][y] += 1
        r["correct"][y] += int(p == y)
    return {s: {"n": r["n"], "top1": r["hits"] / r["n"],
                "per_class": {c: (r["correct"][i] / r["count"][i] if r["count"][i] else None) for i, c in enumerate(classes)}}
            for s, r in out.items()}


# --- the run ----------------------------------------------------------------------------------------
def _progress(enabled: bool):
    from .progress import progress_bar

    return progress_bar(stats=True, transient=False) if enabled else None


@dataclass
class TrainResult:
    out: Path
    step: int
    metrics: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)


def train(cfg: TrainConfig, resume: str | os.PathLike | None = None) -> TrainResult:
    """Run (or continue) training as ``cfg`` says; returns where the results are."""
    state: dict | None = None
    # first: a resumed run takes its data and options from the checkpoint, and those are what to check
    if resume:
        try:
            state = read_checkpoint(resume)
        except Exception as e:  # noqa: BLE001
            raise TrainError(str(e)) from None
        if "train_state" not in state:
            raise TrainError(f"{resume} holds a model but no training state to resume")
        # a run from before the label rule was recorded was trained on the virtual window's labels
        saved = TrainConfig(**{"labels": "virtual", **state["train_state"]["config"]})
        # the run continues as it was configured; only where it runs may change
        cfg = dataclasses.replace(saved, out=cfg.out, workers=cfg.workers, device=cfg.device, quiet=cfg.quiet, stop_after=cfg.stop_after)
    _check_options(cfg)
    d = init_distributed("cuda" if (cfg.device in ("auto", "cuda") and torch.cuda.is_available()) else "cpu")
    try:
        return _train(cfg, d, state, resume)
    finally:
        # a process that leaves with its gloo group alive can abort at interpreter exit (SIGABRT while
        # gloo's threads release tensors); the group this call opened is closed here, on every way out; a
        # caller's own group stays open
        if d.owned and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, d: Dist, state: dict | None, resume) -> TrainResult:
    device = pick_device(cfg.device, d)
    out = Path(cfg.out)

    from .data import ClipsTooShortError, Sampling, build_dataset, dataset_classes
    from .data.motion import EVAL_CLIPS

    try:
        classes = dataset_classes(cfg.data)
    except Exception as e:  # noqa: BLE001 - one-line data errors
        raise TrainError(f"data: {e}") from None
    try:
        mcfg = cfg.model_config(len(classes))
    except ValueError as e:
        raise TrainError(f"model: {e}") from None
    def data_set(what: str, footage: str, spec: str, split: str, **kw):
        """build_dataset, its errors as one TrainError line (too short: with the --frames that fit)."""
        try:
            return build_dataset(spec, mcfg, split, damage="skip", max_lost=cfg.max_lost, labels=cfg.labels, **kw)
        except ClipsTooShortError as e:
            raise TrainError(f"{what}: {e.why}: {_too_short_fix(e, mcfg.unit_frames, footage)}") from None
        except Exception as e:  # noqa: BLE001 - one-line data errors
            raise TrainError(f"data: {e}") from None

    # random=False: every clip comes from (seed, epoch, index), which makes --resume exact
    train_set = data_set("data", "footage", cfg.data, "train", seed=cfg.seed, clips_per_epoch=cfg.clips_per_epoch,
                         random=False, augment=cfg.augment)
    # no more clips than are evaluated (the same clips: a clip depends on its index only), so that
    # a motion set's overlap warning counts what is evaluated
    val_set = data_set("val data", "--val-data footage", cfg.val_data or cfg.data, cfg.val_split, seed=cfg.seed + 1,
                       clips_per_epoch=min(cfg.eval_clips, EVAL_CLIPS) if cfg.eval_clips else None)
    renderer = None
    if cfg.data_on_device:
        if not hasattr(train_set, "render") or not hasattr(train_set, "to"):
            raise TrainError("--data-on-device needs generated data (a motion: spec)")
        renderer = train_set.to(device)  # workers plan clips (CPU), the device cuts them
    try:
        step_s, step_origin = train_set.frame_step()
    except Exception as e:  # noqa: BLE001 - one-line data errors
        raise TrainError(f"data: {e}") from None
    sampling = Sampling(step_s, mcfg.unit_frames, mcfg.frames, step_origin).to_dict()
    if state is not None and state["classes"] != classes:
        raise TrainError("the resumed checkpoint was trained on other classes than --data gives")

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = create_model(mcfg, pretrained=cfg.pretrained if state is None else None).to(device)
    set_trainable(model, cfg.freeze_backbone)
    ema = None  # the averaged weights: what each epoch evaluates and model.pt stores
    if cfg.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema))
    amp = amp_dtype(cfg.amp, device)
    micro = cfg.batch_size // cfg.accum
    steps_per_epoch = cfg.steps_per_epoch or max(1, len(train_set) // (cfg.batch_size * d.world))
    total_steps = steps_per_epoch * cfg.epochs
    sampler = EpochSampler(len(train_set), cfg.seed, d.rank, d.world, per_rank=steps_per_epoch * cfg.batch_size)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)

    step, epoch, start_batch, history = 0, 0, 0, []
    if state is not None:
        step, history = _restore(state, str(resume), model, opt, ema, d.world if d.main else None)
        epoch, start_batch = divmod(step, steps_per_epoch)

    net: torch.nn.Module = model
    if cfg.compile:
        net = torch.compile(model)
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)

    metrics_path = out / "metrics.jsonl"
    if d.main:
        _prepare_run_folder(out, cfg, history)

    def checkpoint(path: Path, with_state: bool) -> None:
        if not d.main:
            return
        extra: dict[str, Any] = {"train_config": dataclasses.asdict(cfg), "step": step}
        if with_state:
            extra["train_state"] = {
                "config": dataclasses.asdict(cfg),
                "optimizer": opt.state_dict(),
                "step": step,
                "world": d.world,
                "history": history,
                "rng": rng_state(),
            }
            if ema is not None:
                extra["train_state"]["ema"] = ema.state_dict()
        # last.pt holds the raw weights the run continues from; model.pt the averaged ones where kept
        weights = ema.module if (ema is not None and not with_state) else model
        save_checkpoint(path, weights, classes, extra=extra, half=cfg.half_weights and not with_state, sampling=sampling)

    def log(rec: dict) -> None:
        history.append(rec)
        if d.main:
            _append_line(metrics_path, json.dumps(rec))

    def evaluate_epoch(ep: int) -> None:
        ev = evaluate_model(net if ema is None else ema.module, val_set, classes, batch_size=micro, workers=cfg.workers, device=device, amp=amp, limit=cfg.eval_clips, d=d)
        log({"step": step, "epoch": ep, "val_top1": round(ev["top1"], 5), "val_top5": round(ev["top5"], 5), "val_loss": round(ev["loss"], 5), "val_n": ev["n"]})

    bar = _progress(d.main and not cfg.quiet)
    task = bar.add_task("train", total=total_steps, completed=step, stats="") if bar else None
    if bar:
        bar.start()
    model.train()
    stop_at = min(total_steps, cfg.stop_after or total_steps)
    try:
        if epoch > 0 and start_batch == 0 and not any("val_top1" in r and r["epoch"] == epoch - 1 for r in history):
            # the checkpoint of an epoch's last step precedes the epoch's evaluation: a run killed (or
            # stopped) in between evaluates it now, where the uninterrupted run did, with the same RNG
            evaluate_epoch(epoch - 1)
        while step < stop_at:
            if hasattr(train_set, "set_epoch"):
                train_set.set_epoch(epoch)
            sampler.set_epoch(epoch, skip=start_batch * cfg.batch_size)
            it = _batches(train_set, renderer, sampler, micro, cfg.workers, device)
            t0, clips_seen, loss_acc = time.perf_counter(), 0, []
            for _ in range(start_batch, steps_per_epoch):
                lr = lr_at(step, total_steps, cfg)
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                step_loss = 0.0
                for k in range(cfg.accum):
                    clips, labels = next(it)
                    x = clips.to(device, non_blocking=True)
                    y = labels.to(device, non_blocking=True)
                    sync = k == cfg.accum - 1 or d.world == 1
                    ctx = net.no_sync() if (d.world > 1 and not sync) else contextlib.nullcontext()
                    with ctx, torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                        loss = F.cross_entropy(net(x).float(), y, label_smoothing=cfg.label_smoothing) / cfg.accum
                    scaler.scale(loss).backward()
                    step_loss += loss.detach()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(opt)
                scaler.update()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                clips_seen += cfg.batch_size * d.world
                loss_acc.append(step_loss)
                if step % cfg.log_every == 0 or step == total_steps:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    dt = time.perf_counter() - t0
                    loss_v = torch.stack([torch.as_tensor(v, device=device) for v in loss_acc]).mean()
                    if d.world > 1:
                        dist.all_reduce(loss_v)
                        loss_v /= d.world
                    rec = {"step": step, "epoch": epoch, "loss": round(loss_v.item(), 5), "lr": lr, "clips_per_s": round(clips_seen / dt, 1)}
                    log(rec)
                    if bar:
                        bar.update(task, completed=step, stats=f"loss {rec['loss']:.4f}  lr {lr:.2e}  {rec['clips_per_s']:.0f} clips/s")
                    t0, clips_seen, loss_acc = time.perf_counter(), 0, []
                elif bar:
                    bar.update(task, completed=step)
                if step % cfg.ckpt_every == 0:
                    checkpoint(out / "last.pt", with_state=True)
                if step >= stop_at:
                    break
            if step >= stop_at and step < total_steps:
                break  # stopped mid-run: no evaluation of a half epoch
            start_batch = 0
            evaluate_epoch(epoch)
            epoch += 1
    finally:
        if bar:
            bar.stop()
    checkpoint(out / "last.pt", with_state=True)
    if step >= total_steps:
        checkpoint(out / "model.pt", with_state=False)
    if d.main:
        try:
            plot_metrics(history, out / "metrics.png", title=f"{mcfg.name} {mcfg.variant} {mcfg.frames}f")
        except ImportError:  # matplotlib is in the train extra; a bare runtime still trains
            print("note: matplotlib is not installed, no metrics.png")
    final = next((r for r in reversed(history) if "val_top1" in r), {})
    return TrainResult(out=out, step=step, metrics=history, final=final)


_RUN_FILES = ("last.pt", "model.pt", "config.json", "metrics.jsonl", "metrics.png")


def _check_options(cfg: TrainConfig) -> None:
    """Options that cannot work, refused before any data is read."""
    if not cfg.data:
        raise TrainError("no training data: pass --data SPEC (motion:VIDEO,... | CSV | class folder)")
    if cfg.batch_size % cfg.accum:
        raise TrainError(f"batch size {cfg.batch_size} is not divisible by accum {cfg.accum}")
    if cfg.augment not in AUGMENTS:
        raise TrainError(f"augment must be one of {', '.join(AUGMENTS)}, not {cfg.augment!r}")
    if cfg.labels not in LABEL_RULES:
        raise TrainError(f"labels must be one of {', '.join(LABEL_RULES)}, not {cfg.labels!r}")
    if not 0.0 <= cfg.ema < 1.0:
        raise TrainError(f"ema is a decay in [0, 1) (0: off), not {cfg.ema}")


def _restore(state: dict, resume: str, model, opt, ema, world: int | None) -> tuple[int, list]:
    """A resumed run's weights, optimizer, averaged weights and RNG; returns (step, history). ``world``: the
    number of processes now (main process only: it says when that differs from the run's)."""
    ts = state["train_state"]
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["state_dict"].items()})
    opt.load_state_dict(ts["optimizer"])
    if ema is not None:
        if "ema" not in ts:
            raise TrainError(f"{resume} was trained with ema {ts['config'].get('ema')} but holds no averaged weights")
        ema.load_state_dict(ts["ema"])
    set_rng_state(ts["rng"])
    if world is not None and world != ts.get("world", 1):
        print(f"note: resuming a run of {ts.get('world', 1)} processes on {world}; "
              "data order from here follows the new sharding")
    return ts["step"], ts["history"]


def _prepare_run_folder(out: Path, cfg: TrainConfig, history: list) -> None:
    """The run folder with config.json and metrics.jsonl as the run (or its checkpoint) says."""
    out.mkdir(parents=True, exist_ok=True)
    for name in _RUN_FILES:  # write_atomic temp files (NAME.<8 hex>.tmp) a kill left: never read, only in the way
        for stale in out.glob(f"{name}.????????.tmp"):
            stale.unlink(missing_ok=True)
    write_atomic(out / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2).encode())
    # the history (empty, or the checkpoint's) is the truth: records a killed run wrote after its
    # last checkpoint, a cut-off last line, or an earlier run's records in this folder go
    write_atomic(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history).encode())


def _batches(train_set, renderer, sampler, micro: int, workers: int, device: torch.device):
    """One epoch's (clips, labels) batches: from DataLoader workers, or (``renderer``: data on the device)
    clip plans from the workers that the device cuts."""
    loader = DataLoader(
        _Plans(train_set) if renderer is not None else train_set,
        batch_size=micro,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda" and renderer is None,
        drop_last=True,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        collate_fn=_as_list if renderer is not None else None,
    )
    return iter(loader) if renderer is None else (renderer.render(plans) for plans in loader)


def _append_line(path: Path, line: str) -> None:
    """Append one record with one write and an fsync: a kill leaves it whole or absent, so no reader
    ever sees a line run into the next record."""
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
    try:
        while data:  # a regular file takes a short record in one write; the loop covers a full disk's short write
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _too_short_fix(e, unit: int, footage: str) -> str:
    """What fixes a ClipsTooShortError in training: longer ``footage``, or the most --frames that fit
    (a multiple of the model's unit of frames)."""
    longer = f"{footage} longer than {e.need:.2f} s"
    k = e.max_frames // unit * unit
    if k < unit:
        return f"use {longer}"
    return f"pass --frames {k} (the most that fit {e.longest:.2f} s at {e.step:.3f} s steps, in units of {unit}) or use {longer}"


class _Plans(Dataset):
    """The clip plans of a generated data set (no pixels: cheap to make in DataLoader workers)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return self.ds.plan(i)


def _as_list(batch: list) -> list:
    return batch




def plot_metrics(history: list[dict], path: Path, title: str = "") -> Path:
    """Training loss and validation top-1 against steps, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [r for r in history if "loss" in r]
    ev = [r for r in history if "val_top1" in r]
    fig, ax1 = plt.subplots(figsize=(7, 4), dpi=110)
    if tr:
        ax1.plot([r["step"] for r in tr], [r["loss"] for r in tr], color="tab:blue", label="train loss")
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("train loss", color="tab:blue")
    ax2 = ax1.twinx()
    if ev:
        ax2.plot([r["step"] for r in ev], [100 * r["val_top1"] for r in ev], "o-", color="tab:green", label="val top-1")
    ax2.set_ylabel("val top-1 (%)", color="tab:green")
    ax2.set_ylim(0, 100)
    ax1.set_title(title)
    fig.tight_layout()
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path
