"""`inti-edge train` and `inti-edge eval`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from inti_edge.commands import fail


def train(
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Training data: motion:VIDEO[,VIDEO...] | CSV of path,label | folder per class."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file with any of these options (keys as in TrainConfig); options given here win."),
    val_data: Optional[str] = typer.Option(None, "--val-data", help="Evaluation data spec (default: the training spec's val split)."),
    val_split: Optional[str] = typer.Option(None, "--val-split", help="val (held-out blocks) | all (whole videos, for footage never trained on) | test."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="small | vit-b16 | vit-l14."),
    frames: Optional[int] = typer.Option(None, "--frames", "-t"),
    halvings: Optional[int] = typer.Option(None, "--halvings", help="Interpolation steps; 0 trains the naive baseline."),
    head: Optional[str] = typer.Option(None, "--head", help="temporal | mean."),
    pooled_grid: Optional[int] = typer.Option(None, "--pooled-grid", help="Unit embedding: CLS + the patch grid pooled to N x N tokens (default 2)."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="CLIP weights: a local file or an open_clip tag."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Run folder (checkpoints, metrics.jsonl, metrics.png)."),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Clips per optimizer step and process."),
    accum: Optional[int] = typer.Option(None, "--accum", help="Gradient accumulation micro-batches per step."),
    lr: Optional[float] = typer.Option(None, "--lr"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay"),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps"),
    label_smoothing: Optional[float] = typer.Option(None, "--label-smoothing", help="Cross-entropy label smoothing (0 = off)."),
    ema: Optional[float] = typer.Option(None, "--ema", help="Keep an exponential moving average of the weights with this decay per step (e.g. 0.999); evaluation and model.pt use it. 0 = off."),
    max_lost: Optional[float] = typer.Option(None, "--max-lost", help="A video that lost more than this fraction of its time to damage (undecodable packets, gaps, a truncated tail) is skipped, with a warning (default 0.25)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Motion data: apparent (default: the motion a viewer sees, the virtual window composed with the footage's own motion) | virtual (the window's move alone, the rule before issue 17). Recorded in the checkpoint."),
    augment: Optional[str] = typer.Option(None, "--augment", help="Motion data: flip (default) | full (flip, time reversal, colour jitter) | real (full + lower resolution, sensor noise) | none."),
    freeze_backbone: Optional[bool] = typer.Option(None, "--freeze-backbone/--full-finetune", help="Train interpolation + head only, or everything."),
    amp: Optional[str] = typer.Option(None, "--amp", help="auto (bf16 on GPU) | bf16 | fp16 | off."),
    workers: Optional[int] = typer.Option(None, "--workers"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    ckpt_every: Optional[int] = typer.Option(None, "--ckpt-every", help="Optimizer steps between checkpoints."),
    clips_per_epoch: Optional[int] = typer.Option(None, "--clips-per-epoch", help="Generated (motion) data: clips per epoch."),
    eval_clips: Optional[int] = typer.Option(None, "--eval-clips"),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile"),
    data_on_device: Optional[bool] = typer.Option(None, "--data-on-device/--data-on-cpu", help="Motion data: keep the decoded footage on the GPU and cut clips there."),
    half_weights: Optional[bool] = typer.Option(None, "--half-weights", help="Store model.pt weights as float16 (half the file)."),
    stop_after: Optional[int] = typer.Option(None, "--stop-after", help="Stop (with a checkpoint) after this many steps; --resume continues."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue exactly from a last.pt of an earlier run."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train InTI (or the naive baseline) on video; multi-GPU: `torchrun --nproc_per_node=N cli.py train ...`."""
    from inti_edge.train import TrainConfig, TrainError, train as run

    given = {k: v for k, v in locals().items() if k not in ("config", "resume", "run", "TrainConfig", "TrainError") and v is not None}
    try:
        cfg = TrainConfig.from_yaml(config, **given) if config else TrainConfig(**given)
        result = run(cfg, resume=resume)
    except TrainError as e:
        fail(str(e))
    final = result.final
    summary = {"out": str(result.out), "step": result.step, **{k: final[k] for k in ("val_top1", "val_top5", "val_n") if k in final}}
    print(json.dumps(summary))


def eval_cmd(
    checkpoint: Path = typer.Argument(..., help="A checkpoint (.pt) from `inti-edge train`."),
    data: str = typer.Option(..., "--data", "-d", help="Data spec (motion:VIDEO,... | raw:LABELS.csv | raw:VIDEO,...@LABELS.csv | CSV | folder)."),
    split: str = typer.Option("test", "--split", help="train | val | test | all (generated data)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    workers: int = typer.Option(2, "--workers"),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate at most this many clips."),
    seed: int = typer.Option(1, "--seed", help="Seed of generated evaluation clips."),
    device: str = typer.Option("auto", "--device"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (top1, top5, n, per_class, confusion)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write the confusion matrix as a PNG here."),
    max_lost: float = typer.Option(0.25, "--max-lost", help="Refuse a video that lost more than this fraction of its time to damage (undecodable packets, gaps, a truncated tail)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Motion data: apparent | virtual label rule (default: the one the checkpoint was trained with; virtual for checkpoints from before it was recorded)."),
) -> None:
    """Top-1 / top-5 / per-class accuracy of a checkpoint on a data spec, and per source video."""
    from inti_edge.evaluate import EvalError, evaluate, plot_confusion

    if plot is not None and not plot.resolve().parent.is_dir():  # refuse before the evaluation, not after it
        fail(f"cannot write {plot}: no folder {plot.resolve().parent}")
    try:
        res = evaluate(checkpoint, data, split, batch_size=batch_size, workers=workers, limit=limit, seed=seed,
                       device=device, max_lost=max_lost, progress=not as_json, labels=labels)
    except EvalError as e:
        fail(str(e))
    meta = {"classes": res.pop("classes")}
    if plot is not None:
        try:
            plot_confusion(res, meta["classes"], plot, title=f"{checkpoint.name} on {split}: top-1 {100 * res['top1']:.1f}%, n={res['n']}")
        except ImportError:
            fail("--plot needs matplotlib (the train extra)")
        except OSError as e:
            fail(f"cannot write {plot}: {e.strerror or e}")
    if as_json:
        print(json.dumps(res))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    where = "" if data.startswith("raw:") else f" ({split})"  # raw ranges have no split
    console.print(f"{checkpoint.name} on {data}{where}: top-1 [bold]{100 * res['top1']:.1f}%[/]  "
                  f"top-5 {100 * res['top5']:.1f}%  n={res['n']}" + (f"  labels {res['labels']}" if "labels" in res else ""),
                  highlight=False)
    t = Table()
    t.add_column("class")
    t.add_column("clips", justify="right")
    t.add_column("accuracy", justify="right")
    t.add_column("most often read as", justify="left")
    for i, (c, a) in enumerate(res["per_class"].items()):
        row = res["confusion"][i]
        wrong = max((j for j in range(len(row)) if j != i), key=lambda j: row[j], default=None)
        other = f"{meta['classes'][wrong]} ({row[wrong]})" if wrong is not None and row[wrong] else ""
        t.add_row(c, str(sum(row)), "-" if a is None else f"{100 * a:.1f}%", other)
    console.print(t)
    if res.get("per_source"):
        s = Table(title="per source")
        s.add_column("source", no_wrap=True)
        s.add_column("clips", justify="right")
        s.add_column("top-1", justify="right")
        for c in meta["classes"]:
            s.add_column(c, justify="right")
        for name, r in res["per_source"].items():
            s.add_row(name, str(r["n"]), f"{100 * r['top1']:.1f}%",
                      *("-" if r["per_class"][c] is None else f"{100 * r['per_class'][c]:.0f}" for c in meta["classes"]))
        wide = max(len(n) for n in res["per_source"]) + sum(max(len(c), 4) + 3 for c in meta["classes"]) + 24
        Console(width=max(console.width, wide)).print(s)  # one row per source, never cut short
    if plot is not None:
        console.print(f"confusion matrix: {plot}")
