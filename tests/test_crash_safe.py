"""Crash-safe training: checkpoints are written atomically and durably and carry a sha256 that loading
verifies; metrics.jsonl holds whole lines only; `train` killed with SIGKILL at random points (several
times, once in the middle of a checkpoint write) resumes from its last complete checkpoint to the same
result as an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from inti_edge.model import CheckpointError, create_model, load_checkpoint, make_config, read_checkpoint, save_checkpoint
from inti_edge.model import factory
from inti_edge.model.factory import preprocess_info
from inti_edge.train import TrainConfig, TrainError, train

ROOT = Path(__file__).resolve().parents[1]
MOTION = "motion:" + ",".join(sorted(str(p) for p in (ROOT / "tests" / "data").glob("*.mp4")))
OTHER = "motion:" + ",".join(sorted(str(p) for p in (ROOT / "tests" / "data").glob("*.avi")))
SEAL = b"inti-edge sha256:"
TINY_VISION = dict(layers=4, image_size=64, width=64, embed_dim=64)


@pytest.fixture
def tiny_ckpt(tmp_path) -> Path:
    torch.manual_seed(0)
    model = create_model(make_config("small", 4, 1, num_classes=3, vision=TINY_VISION))
    return save_checkpoint(tmp_path / "m.pt", model, ["a", "b", "c"], extra={"step": 5})


def _refusal(path: Path) -> str:
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


# --- checksums --------------------------------------------------------------------------------------
def test_checkpoint_is_a_sealed_zip_that_plain_torch_load_still_reads(tiny_ckpt):
    comment = zipfile.ZipFile(tiny_ckpt).comment
    assert comment.startswith(SEAL) and len(comment) == len(SEAL) + 64
    assert torch.load(tiny_ckpt, weights_only=True)["step"] == 5  # other tools keep reading it
    assert read_checkpoint(tiny_ckpt)["step"] == 5


def test_truncated_or_bit_flipped_checkpoint_is_refused_in_one_line(tiny_ckpt):
    data = tiny_ckpt.read_bytes()
    bad = tiny_ckpt.with_name("bad.pt")
    # cut anywhere: in the tensors (no zip directory left), in the end record, in the seal
    for keep in (len(data) // 2, len(data) - 90, len(data) - 30, len(data) - 1):
        bad.write_bytes(data[:keep])
        msg = _refusal(bad)
        assert "truncated or damaged" in msg and "or retrain" in msg, (keep, msg)
    # one flipped bit in the weights (torch.load alone reads such a file without complaint), in the
    # pickled metadata, in the seal's digest
    for at in (len(data) // 2, 200, len(data) - 5):
        flipped = bytearray(data)
        flipped[at] ^= 0x08
        bad.write_bytes(bytes(flipped))
        msg = _refusal(bad)
        assert "truncated or damaged (checksum mismatch)" in msg, (at, msg)
    assert read_checkpoint(tiny_ckpt)["step"] == 5  # the original is untouched and whole


def test_checkpoint_without_checksum_still_loads(tmp_path, tiny_ckpt):
    # an older inti-edge wrote the same dict with a plain torch.save: no seal, nothing to verify
    obj = torch.load(tiny_ckpt, weights_only=True)
    old = tmp_path / "old.pt"
    torch.save(obj, old)
    assert zipfile.ZipFile(old).comment == b""
    model, meta = load_checkpoint(old)
    assert meta["step"] == 5 and meta["preprocess"] == preprocess_info(model.cfg)
    for k, v in load_checkpoint(tiny_ckpt)[0].state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    # but an old file cut short is still refused as damaged, not as "not a checkpoint"
    old.write_bytes(old.read_bytes()[:-100])
    assert "truncated or damaged" in _refusal(old)


def test_save_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    # the file's blocks must be on disk before its name points at them, and the new name on disk too
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell a folder's fd from a file's")
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def replace(a, b):
        events.append("rename")
        real_replace(a, b)

    monkeypatch.setattr(factory.os, "fsync", fsync)
    monkeypatch.setattr(factory.os, "replace", replace)
    model = create_model(make_config("small", 4, 1, num_classes=3, vision=TINY_VISION))
    save_checkpoint(tmp_path / "m.pt", model, ["a", "b", "c"])
    assert events == ["fsync file", "rename", "fsync folder"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


# --- metrics.jsonl and resume (in process, the tiny model) -----------------------------------------
@pytest.fixture
def _small_vit(monkeypatch):
    """The 'small' preset shrunk as in test_train.py, so in-process runs take seconds."""
    import dataclasses

    from inti_edge.model import config as mc

    monkeypatch.setitem(mc.PRESETS, "small", dataclasses.replace(mc.SMALL, **TINY_VISION))


def _tiny_cfg(out: Path, **kw) -> TrainConfig:
    base = dict(data=MOTION, val_data=OTHER, val_split="all", out=str(out), model="small", frames=4, workers=0,
                device="cpu", quiet=True, log_every=1, warmup_steps=2, epochs=1, steps_per_epoch=4, batch_size=2,
                clips_per_epoch=8, eval_clips=2)
    return TrainConfig(**{**base, **kw})


def test_resume_drops_what_a_kill_left_after_the_checkpoint(tmp_path, _small_vit):
    out = tmp_path / "run"
    train(_tiny_cfg(out, stop_after=2, ckpt_every=1))
    # what a kill after step 3 could leave: a record the checkpoint never saw, a temp file of a write
    with (out / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 3, "epoch": 0, "loss": 9.0, "lr": 1.0, "clips_per_s": 1.0}) + "\n" + '{"step": 4, "ep')
    (out / "last.pt.0123abcd.tmp").write_bytes(b"PK\x03\x04 half a checkpoint")
    res = train(_tiny_cfg(out), resume=out / "last.pt")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records == res.metrics  # the file is the run's history, nothing more
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert 9.0 not in [r["loss"] for r in records if "loss" in r]
    assert not list(out.glob("*.tmp"))


def test_resume_at_an_epoch_end_runs_the_evaluation_the_interruption_skipped(tmp_path, _small_vit):
    # last.pt of an epoch's last step is written before that epoch's evaluation: a run killed in the
    # evaluation (here: stopped right there) must evaluate it when resumed, as the whole run did
    kw = dict(epochs=2, steps_per_epoch=2, ckpt_every=1)
    full = train(_tiny_cfg(tmp_path / "full", **kw))
    stopped = train(_tiny_cfg(tmp_path / "cut", stop_after=2, **kw))
    assert not [r for r in stopped.metrics if "val_top1" in r]
    resumed = train(_tiny_cfg(tmp_path / "cut"), resume=tmp_path / "cut" / "last.pt")
    same = lambda h: [{k: v for k, v in r.items() if k != "clips_per_s"} for r in h]  # noqa: E731
    assert [(r["step"], r["epoch"]) for r in resumed.metrics if "val_top1" in r] == [(2, 0), (4, 1)]
    assert same(resumed.metrics) == same(full.metrics)


def test_resume_from_a_damaged_checkpoint_is_a_one_line_error(tmp_path, tiny_ckpt):
    data = tiny_ckpt.read_bytes()
    bad = tmp_path / "last.pt"
    bad.write_bytes(data[: len(data) - 40])
    with pytest.raises(TrainError, match=r"last\.pt is truncated or damaged .*earlier checkpoint"):
        train(TrainConfig(data=MOTION, out=str(tmp_path / "run"), device="cpu"), resume=bad)


# --- SIGKILL at random points (subprocess, the real 'small' preset) --------------------------------
STEPS = 12  # 2 epochs of 6 steps: the kills can land in training, in a checkpoint write or in an evaluation
CONFIG = f"""\
data: {MOTION}
val_data: {OTHER}
val_split: all
model: small
frames: 4
epochs: 2
steps_per_epoch: {STEPS // 2}
batch_size: 2
clips_per_epoch: 12
eval_clips: 2
workers: 0
device: cpu
ckpt_every: 1
log_every: 1
warmup_steps: 2
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), "train", *args, "--quiet"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _train_steps(out: Path) -> list[int]:
    """The steps of metrics.jsonl's training records; every line must be whole JSON."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    text = path.read_text()
    assert text == "" or text.endswith("\n"), f"cut-off last line: {text[-80:]!r}"
    return [r["step"] for r in (json.loads(line) for line in text.splitlines()) if "loss" in r]


def _last_step_now(out: Path) -> int:
    """The last training step in metrics.jsonl while the run writes it (a read may catch an append
    half done, so lines that do not parse are skipped here)."""
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [0]
    for line in lines:
        try:
            steps.append(json.loads(line).get("step", 0))
        except ValueError:
            pass
    return max(steps)


def _check_after_kill(out: Path) -> int:
    """Every checkpoint in the folder is sealed and whole, metrics.jsonl parses and runs 1..k without
    gaps or repeats, and last.pt's history is the head of it. Returns last.pt's step (0: none yet)."""
    for ckpt in out.glob("*.pt"):
        assert zipfile.ZipFile(ckpt).comment.startswith(SEAL), ckpt
        read_checkpoint(ckpt)  # raises on a half-written or damaged file
    steps = _train_steps(out)
    assert steps == list(range(1, len(steps) + 1)), steps
    if not (out / "last.pt").exists():
        return 0
    ts = torch.load(out / "last.pt", weights_only=True)["train_state"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[: len(ts["history"])] == ts["history"]
    return ts["step"]


def _wait_for(p: subprocess.Popen, ready, poll: float, timeout: float = 180.0) -> bool:
    """Wait until ``ready()``; False if the run ended first."""
    end = time.monotonic() + timeout
    while not ready():
        if p.poll() is not None:
            return False
        assert time.monotonic() < end, "the run made no progress"
        time.sleep(poll)
    return True


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_reaches_the_uninterrupted_result(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "killed"
    rng = random.Random(20240611)
    kills, torn_writes = 0, 0
    # kills 2 and 4 wait for a checkpoint write in flight; 1 and 3 come at a random time after the run
    # passed all its killed predecessor had logged
    for i in range(4):
        start = _check_after_kill(out)
        # the run has moved on once it logs a step beyond all an earlier run logged before its kill
        seen = max(_train_steps(out), default=0)
        resume = ["--resume", str(out / "last.pt")] if start else []
        p = subprocess.Popen(_cli("--config", str(cfg), "--out", str(out), *resume), env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if i % 2:
            # a checkpoint follows every step: catch its temp file (a write takes tens of ms)
            alive = _wait_for(p, lambda: _last_step_now(out) > seen, poll=0.01)
            alive = alive and _wait_for(p, lambda: any(out.glob("last.pt.*.tmp")), poll=0.0005)
        else:
            # a random point within a step or two past it: in a step, a checkpoint write or an evaluation
            # (bounded in steps, so that every kill finds the run still going whatever the CPU's speed)
            target = seen + rng.randint(1, 3)
            alive = _wait_for(p, lambda: _last_step_now(out) >= target, poll=0.01)
            time.sleep(rng.uniform(0.0, 0.4))
            alive = alive and p.poll() is None
        assert alive, f"the run ended before kill {i + 1}: {p.stderr.read().decode()[-2000:]}"
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stderr.close()
        kills += 1
        torn_writes += i % 2 == 1 and any(out.glob("last.pt.*.tmp"))
        assert _check_after_kill(out) >= start
    assert kills == 4
    assert torn_writes >= 1  # at least one kill left a half-written temp file behind

    # a damaged last.pt: the resume refuses in one line (exit 2), it does not train from garbage
    bad = tmp_path / "bad.pt"
    data = (out / "last.pt").read_bytes()
    bad.write_bytes(data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1 :])
    p = subprocess.run(_cli("--resume", str(bad), "--out", str(tmp_path / "x")), env=_env(), capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "error:" in p.stderr and "truncated or damaged (checksum mismatch)" in p.stderr, p.stderr

    # resume to the end, and the same run uninterrupted
    p = subprocess.run(_cli("--resume", str(out / "last.pt"), "--out", str(out)), env=_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1])["step"] == STEPS
    ref = tmp_path / "ref"
    p = subprocess.run(_cli("--config", str(cfg), "--out", str(ref)), env=_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]

    assert not list(out.glob("*.tmp"))  # the restarts cleared what the kills left
    assert _check_after_kill(out) == STEPS
    history = torch.load(out / "last.pt", weights_only=True)["train_state"]["history"]
    assert [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] == history
    assert [r["step"] for r in history if "loss" in r] == list(range(1, STEPS + 1))
    assert [(r["step"], r["epoch"]) for r in history if "val_top1" in r] == [(STEPS // 2, 0), (STEPS, 1)]
    # the killed and resumed run is the uninterrupted one, record for record (throughput aside)
    same = lambda h: [{k: v for k, v in r.items() if k != "clips_per_s"} for r in h]  # noqa: E731
    assert same(history) == same(torch.load(ref / "last.pt", weights_only=True)["train_state"]["history"])
    a = load_checkpoint(out / "model.pt")[0].state_dict()
    b = load_checkpoint(ref / "model.pt")[0].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
