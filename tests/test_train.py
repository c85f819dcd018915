"""Training on real clips (CPU): a few steps run, a tiny run overfits, resume is exact, DDP (gloo, 2
processes) matches single-process gradients, eval prints the metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from inti_edge.model import load_checkpoint
from inti_edge.train import EpochSampler, TrainConfig, TrainError, lr_at, train

ROOT = Path(__file__).resolve().parents[1]
CLIPS = sorted(str(p) for p in (ROOT / "tests" / "data").glob("*.mp4"))
MOTION = "motion:" + ",".join(CLIPS)  # Big Buck Bunny, 8 s
OTHER = "motion:" + ",".join(sorted(str(p) for p in (ROOT / "tests" / "data").glob("*.avi")))  # UCF101 clip

# a fast CPU model: small ViT narrowed to 4 blocks at 64 px; the same code path as the real ones
TINY = dict(model="small", frames=4, halvings=1, workers=0, device="cpu", quiet=True, log_every=1, warmup_steps=2)


def _tiny_cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(data=MOTION, val_data=OTHER, val_split="all", out=str(tmp_path / "run"), **TINY)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(autouse=True)
def _small_vit(monkeypatch):
    """Shrink the 'small' preset for these tests (4 blocks, 64 px) so CPU runs take seconds."""
    import dataclasses

    from inti_edge.model import config as mc

    tiny = dataclasses.replace(mc.SMALL, layers=4, image_size=64, width=64, embed_dim=64)
    monkeypatch.setitem(mc.PRESETS, "small", tiny)


def test_clips_are_committed():
    assert len(CLIPS) >= 1, "tests/data must hold real sample clips"


def test_a_few_training_steps_write_checkpoint_metrics_and_plot(tmp_path):
    cfg = _tiny_cfg(tmp_path, epochs=1, steps_per_epoch=3, batch_size=4, clips_per_epoch=16, eval_clips=8, pooled_grid=3)
    res = train(cfg)
    assert res.step == 3
    lines = [json.loads(l) for l in (res.out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [1, 2, 3]
    assert all(r["clips_per_s"] > 0 and r["lr"] > 0 for r in lines if "loss" in r)
    ev = [r for r in lines if "val_top1" in r]
    assert len(ev) == 1 and ev[0]["val_n"] == 8 and 0 <= ev[0]["val_top1"] <= 1
    model, meta = load_checkpoint(res.out / "model.pt")
    assert meta["classes"][0] == "static" and len(meta["classes"]) == model.cfg.num_classes == 7
    assert model.cfg.pooled_grid == 3 and model.cfg.unit_tokens == 10  # --pooled-grid reaches the model
    png = (res.out / "metrics.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_tiny_overfit_run_decreases_the_loss(tmp_path):
    # a Kinetics-style CSV of the two real clips, one class each: a tiny run must learn it
    csv = tmp_path / "clips.csv"
    vids = sorted((ROOT / "tests" / "data").glob("*.mp4")) + sorted((ROOT / "tests" / "data").glob("*.avi"))
    csv.write_text("".join(f"{v},{'cartoon' if v.suffix == '.mp4' else 'football'}\n" for v in vids))
    cfg = _tiny_cfg(tmp_path, data=str(csv), val_data=str(csv), val_split="val", epochs=10, steps_per_epoch=2,
                    batch_size=4, lr=2e-3, warmup_steps=2)
    res = train(cfg)
    losses = [r["loss"] for r in res.metrics if "loss" in r]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.5 * first, (first, last)
    assert res.final["val_top1"] == 1.0


@pytest.mark.parametrize("ema", [0.0, 0.8])
def test_resume_gives_the_same_state_as_an_uninterrupted_run(tmp_path, ema):
    # with --ema, model.pt holds the averaged weights: the average must survive the interruption too
    kw = dict(epochs=2, steps_per_epoch=3, batch_size=4, clips_per_epoch=12, eval_clips=4, ckpt_every=2, ema=ema)
    full = train(_tiny_cfg(tmp_path / "a", **kw))
    # the interrupted run: stops after step 4 (mid-epoch 1), then resumes from its checkpoint
    stopped = train(_tiny_cfg(tmp_path / "b", stop_after=4, **kw))
    assert stopped.step == 4
    state = torch.load(tmp_path / "b" / "run" / "last.pt", weights_only=True)
    assert state["train_state"]["step"] == 4
    resumed = train(_tiny_cfg(tmp_path / "c", workers=0), resume=tmp_path / "b" / "run" / "last.pt")
    assert resumed.step == full.step == 6
    a = torch.load(full.out / "model.pt", weights_only=True)["state_dict"]
    c = torch.load(resumed.out / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        assert torch.equal(a[k], c[k]), k
    losses = lambda r: [m["loss"] for m in r.metrics if "loss" in m]  # noqa: E731
    assert losses(resumed) == losses(full)


def test_ema_weights_are_the_moving_average_of_the_trained_weights(tmp_path):
    kw = dict(epochs=1, steps_per_epoch=3, batch_size=4, clips_per_epoch=12, eval_clips=4, ckpt_every=1)
    raw = []  # the weights after steps 1, 2, 3 of the plain run (last.pt of runs stopped there)
    for k in (1, 2, 3):
        r = train(_tiny_cfg(tmp_path / f"raw{k}", stop_after=k, **kw))
        raw.append(torch.load(r.out / "last.pt", weights_only=True)["state_dict"])
    d = 0.6
    res = train(_tiny_cfg(tmp_path / "ema", ema=d, **kw))
    ckpt = torch.load(res.out / "last.pt", weights_only=True)
    shipped = torch.load(res.out / "model.pt", weights_only=True)["state_dict"]
    assert ckpt["train_state"]["ema"]["n_averaged"].item() == 3
    moved = 0
    for name in raw[0]:
        # averaging does not change training: the raw weights are the plain run's
        assert torch.equal(ckpt["state_dict"][name], raw[2][name]), name
        # the first update copies, then ema = d * ema + (1 - d) * w
        want = d * (d * raw[0][name] + (1 - d) * raw[1][name]) + (1 - d) * raw[2][name]
        torch.testing.assert_close(shipped[name], want, rtol=1e-5, atol=1e-6)
        moved += not torch.equal(shipped[name], raw[2][name])
    assert moved > 0  # the shipped weights are not the last step's
    evals = [m for m in res.metrics if "val_top1" in m]
    assert len(evals) == 1


def test_sampler_and_schedule():
    s = EpochSampler(10, seed=3, rank=0, world=2, per_rank=5)
    s.set_epoch(0)
    a = s.indices()
    s.set_epoch(1)
    assert a != s.indices() and len(a) == 5
    s2 = EpochSampler(10, seed=3, rank=1, world=2, per_rank=5)
    s2.set_epoch(0)
    assert sorted(a + s2.indices()) == list(range(10))  # ranks partition the epoch
    s.set_epoch(0, skip=2)
    assert list(s) == a[2:]
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.0)
    assert lr_at(0, 100, cfg) == pytest.approx(0.1) and lr_at(9, 100, cfg) == pytest.approx(1.0)
    assert lr_at(55, 100, cfg) == pytest.approx(0.5) and lr_at(100, 100, cfg) == pytest.approx(0.0)


def test_bad_options_are_clear(tmp_path):
    with pytest.raises(TrainError, match="no training data"):
        train(TrainConfig(out=str(tmp_path)))
    with pytest.raises(TrainError, match="data"):
        train(_tiny_cfg(tmp_path, data="motion:/nonexistent.mp4"))
    with pytest.raises(TrainError, match="augment must be one of"):
        train(_tiny_cfg(tmp_path, augment="heavy"))
    with pytest.raises(TrainError, match="ema is a decay"):
        train(_tiny_cfg(tmp_path, ema=1.0))
    with pytest.raises(TrainError, match="pooled_grid must lie in 1..4"):  # the tiny model's 4x4 patch grid
        train(_tiny_cfg(tmp_path, pooled_grid=5))
    (tmp_path / "c.yaml").write_text("nonsense_key: 3\n")
    with pytest.raises(TrainError, match="unknown keys"):
        TrainConfig.from_yaml(tmp_path / "c.yaml")


# --- DDP --------------------------------------------------------------------------------------
def _ddp_worker(rank: int, world: int, init_file: str, x: torch.Tensor, y: torch.Tensor, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from inti_edge.model import create_model, make_config

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = create_model(make_config("small", 4, 1, num_classes=7, vision=dict(layers=4, image_size=64, width=64, embed_dim=64)))
    net = DDP(model)
    shard = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
    loss = torch.nn.functional.cross_entropy(net(x[shard]), y[shard])
    loss.backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.named_parameters()}, out)
    dist.destroy_process_group()


def test_ddp_gloo_two_processes_match_single_process_gradients(tmp_path):
    from inti_edge.model import create_model, make_config

    torch.manual_seed(1)
    x, y = torch.randn(4, 4, 3, 64, 64), torch.tensor([0, 3, 5, 6])
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), x, y, str(tmp_path / "g.pt")), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "g.pt", weights_only=True)
    torch.manual_seed(0)
    model = create_model(make_config("small", 4, 1, num_classes=7, vision=dict(layers=4, image_size=64, width=64, embed_dim=64)))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(ddp[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)


def _train_worker(rank: int, world: int, port: int, out: str) -> None:
    """As torchrun starts a rank: the environment only. Trains twice: once opening the group itself, once
    inside a group the caller opened."""
    import dataclasses

    import torch.distributed as dist

    from inti_edge.model import config as mc

    mc.PRESETS["small"] = dataclasses.replace(mc.SMALL, layers=4, image_size=64, width=64, embed_dim=64)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    cfg = dict(data=MOTION, epochs=1, steps_per_epoch=1, batch_size=2, clips_per_epoch=4, eval_clips=4, **TINY)
    train(TrainConfig(out=f"{out}/own", **cfg))
    closed = not dist.is_initialized()  # train opened the group, so train closed it
    dist.init_process_group("gloo", init_method=f"file://{out}/init", rank=rank, world_size=world)  # a new rendezvous
    train(TrainConfig(out=f"{out}/callers", **cfg))
    kept = dist.is_initialized()  # the caller's group is the caller's to close
    dist.destroy_process_group()
    Path(f"{out}/rank{rank}.json").write_text(json.dumps({"closed": closed, "kept": kept}))


def test_training_closes_the_process_group_it_opened_and_only_that(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_train_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    for r in range(2):
        assert json.loads((tmp_path / f"rank{r}.json").read_text()) == {"closed": True, "kept": True}


def test_torchrun_two_process_training_runs(tmp_path):
    """The README's multi-GPU command, on the CPU with gloo: same command, two processes (--standalone: a free port)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(ROOT / "cli.py"),
           "train", "--data", MOTION, "--model", "small", "--frames", "4", "--epochs", "1", "--steps-per-epoch", "2",
           "--batch-size", "2", "--clips-per-epoch", "8", "--eval-clips", "4", "--val-data", OTHER, "--val-split", "all", "--workers", "0", "--device", "cpu",
           "--out", str(tmp_path / "ddp"), "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    # torchrun's own report of a failed rank fills the tail: keep the ranks' lines first
    ranks = "\n".join(ln for ln in p.stderr.splitlines() if "torch/distributed" not in ln)
    assert p.returncode == 0, ranks[-4000:]
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["val_n"] == 4
    st = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert st["train_state"]["world"] == 2


def test_eval_cli_prints_top1_top5_n(tmp_path):
    res = train(_tiny_cfg(tmp_path, epochs=1, steps_per_epoch=1, batch_size=2, clips_per_epoch=4, eval_clips=2))
    p = subprocess.run([sys.executable, str(ROOT / "cli.py"), "eval", str(res.out / "model.pt"), "--data", OTHER,
                        "--split", "all", "--limit", "6", "--workers", "0", "--json", "--plot", str(tmp_path / "cm.png")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    classes = load_checkpoint(res.out / "model.pt")[1]["classes"]
    assert r["n"] == 6 and 0 <= r["top1"] <= r["top5"] <= 1 and set(r["per_class"]) == set(classes)
    # the confusion matrix: rows = true class (motion clips cycle through the classes), columns = predicted
    cm = r["confusion"]
    assert [sum(row) for row in cm] == [1, 1, 1, 1, 1, 1, 0]
    assert sum(cm[i][i] for i in range(7)) == round(r["top1"] * 6)
    assert [cm[i][i] for i in range(6)] == [round(r["per_class"][c]) for c in classes[:6]]
    png = (tmp_path / "cm.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    unwritable = subprocess.run([sys.executable, str(ROOT / "cli.py"), "eval", str(res.out / "model.pt"), "--data", OTHER,
                                 "--split", "all", "--limit", "2", "--workers", "0", "--json", "--plot", str(tmp_path / "no" / "cm.png")],
                                capture_output=True, text=True)
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr and "Traceback" not in unwritable.stderr
    table = subprocess.run([sys.executable, str(ROOT / "cli.py"), "eval", str(res.out / "model.pt"), "--data", OTHER,
                            "--split", "all", "--limit", "4", "--workers", "0"], capture_output=True, text=True)
    assert table.returncode == 0 and "top-1" in table.stdout and "zoom_out" in table.stdout, table.stderr[-2000:]
    bad = subprocess.run([sys.executable, str(ROOT / "cli.py"), "eval", str(tmp_path / "nope.pt"), "--data", MOTION],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no checkpoint" in bad.stderr and "Traceback" not in bad.stderr


def test_data_on_device_path_gives_the_same_batches(tmp_path):
    """--data-on-device (workers plan, the device cuts) trains on exactly the clips of the plain path."""
    kw = dict(epochs=1, steps_per_epoch=2, batch_size=4, clips_per_epoch=8, eval_clips=4)
    a = train(_tiny_cfg(tmp_path / "a", **kw))
    b = train(_tiny_cfg(tmp_path / "b", data_on_device=True, **kw))
    la = [m["loss"] for m in a.metrics if "loss" in m]
    lb = [m["loss"] for m in b.metrics if "loss" in m]
    assert la == pytest.approx(lb, rel=1e-5)


def test_bundled_default_model_sees_camera_motion_in_committed_clips():
    """The default model on real footage it never trained on (the committed Big Buck Bunny clip lies
    in a test block; the UCF101 clip is another domain): far above chance (14%)."""
    from inti_edge.data import build_dataset
    from inti_edge.defaults import DEFAULT_MODEL
    from inti_edge.train import evaluate_model as evaluate

    model, meta = load_checkpoint(DEFAULT_MODEL)
    for spec, floor in ((MOTION, 0.7), (OTHER, 0.55)):
        ds = build_dataset(spec, model.cfg, "all", seed=1, clips_per_epoch=70)
        res = evaluate(model, ds, meta["classes"], batch_size=35)
        assert res["n"] == 70 and res["top1"] >= floor, (spec, res["top1"])


@pytest.mark.parametrize("rule", ["virtual", "apparent"])
def test_the_label_rule_is_recorded_and_eval_uses_it(tmp_path, rule):
    from inti_edge.evaluate import evaluate

    kw = {} if rule == "apparent" else {"labels": rule}  # apparent is the default
    res = train(_tiny_cfg(tmp_path, epochs=1, steps_per_epoch=1, batch_size=2, clips_per_epoch=4, eval_clips=2, **kw))
    meta = load_checkpoint(res.out / "model.pt")[1]
    assert meta["train_config"]["labels"] == rule
    assert evaluate(res.out / "model.pt", OTHER, "all", limit=2, workers=0, device="cpu")["labels"] == rule
    other = "apparent" if rule == "virtual" else "virtual"
    assert evaluate(res.out / "model.pt", OTHER, "all", limit=2, workers=0, device="cpu", labels=other)["labels"] == other
    with pytest.raises(TrainError, match="labels must be one of apparent, virtual"):
        train(_tiny_cfg(tmp_path, labels="seen"))
