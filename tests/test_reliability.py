"""Every bad, damaged or odd input we know of, through the commands a user types.

Each case names a command, an input (made by tests/corpus.py from the committed clips) and what the
user must get: a one-line error with exit code 2 that names the cause (nothing else runs), a warning
line with the counts while the input is used, or a plain run. No case may print a traceback or
hang. RELIABILITY.md is generated from this same list (`python tests/test_reliability.py` writes
it; a test checks it is current), so the document cannot drift from what is tested.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "RELIABILITY.md"
CKPT = ROOT / "inti_edge" / "assets" / "default_motion_small.pt"
BBB = corpus.BBB


@dataclass(frozen=True)
class Case:
    command: str  # run | train | eval | build | check | cli
    input: str  # what is given, in a user's words
    argv: Callable  # (ctx) -> argument list after `inti-edge`
    code: int  # expected exit code
    says: str  # a fragment the output must hold (the cause, the counts); "xx": any digits (a figure that moved
    #            by a frame between runs: the decoded length of a truncated file)
    outcome: str  # refused | warned | ran | failed
    extra: Callable | None = None  # (ctx, output) -> None: further checks
    subprocess: bool = False  # run as its own process (timeouts, several threads, signals)
    slow: bool = False


class Ctx:
    """Inputs made on first use, in one folder for the whole session."""

    def __init__(self, tmp: Path, export: Path):
        self.tmp, self.export = tmp, export
        self._made: dict[str, Path] = {}

    def __getattr__(self, name: str) -> Path:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._made:
            maker = getattr(corpus, name)
            args = {"onnx_named_pt": (self.export / "model.onnx",), "checkpoint_named_onnx": (CKPT,),
                    "truncated_checkpoint": (CKPT,), "onnx_external_data_outside": (self.export / "model.onnx",)}
            self._made[name] = maker(self.tmp, *args.get(name, ()))
        return self._made[name]

    def class_folders(self, odd: Path) -> Path:
        """root/val/{good,odd}/<video>: a labelled data set with one odd video beside a good one."""
        root = self.tmp / f"classes-{odd.stem}"
        for cls, src in (("good", BBB), ("odd", odd)):
            (root / "val" / cls).mkdir(parents=True, exist_ok=True)
            dst = root / "val" / cls / src.name
            if not dst.exists():
                dst.write_bytes(src.read_bytes())
        return root

    @property
    def labelled_ckpt(self) -> Path:
        """A 2-class checkpoint (random weights) for the class folders: eval needs matching classes."""
        path = self.tmp / "two_classes.pt"
        if not path.exists():
            import torch

            from inti_edge.data.sampling import Sampling
            from inti_edge.model import create_model, make_config, save_checkpoint

            torch.manual_seed(0)
            save_checkpoint(path, create_model(make_config("small", 8, 1, num_classes=2)), ["good", "odd"],
                            sampling=Sampling(0.5, 2, 8, "test").to_dict())
        return path

    def port(self) -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def _m(path) -> str:
    return f"motion:{path}"


def _run(c, *args):
    return ["run", *map(str, args), "-m", str(c.export)]


def _eval(c, data, *more):
    return ["eval", str(CKPT), "--data", data, "--split", "all", "--limit", "4", "--workers", "0", *more]


def _check(c, artifact, data=None, reference=CKPT):
    return ["check", str(artifact), "--reference", str(reference), "--data", data or _m(BBB), "--split", "all",
            "--clips", "4", "-o", str(c.tmp / "check-out")]


def _train(c, data, *more):
    return ["train", "--data", data, "--model", "small", "--frames", "8", "--epochs", "1", "--steps-per-epoch", "1",
            "--batch-size", "2", "--clips-per-epoch", "4", "--eval-clips", "4", "--workers", "0",
            "--out", str(c.tmp / f"train-{abs(hash(data)) % 10**6}"), *more]


def _build(c, out: str, *more, model=None):
    return ["build", str(model or c.export), "-p", "fp16", "-t", "cpu", "--forms", "head", "-o", str(c.tmp / out),
            *map(str, more)]


def _no_canary(c, out):
    assert not (c.tmp / "CANARY").exists(), "unpickling ran code"


def _file_windows_intact(c, out):
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert sum(e["event"] == "window" and e["source"] == str(BBB) for e in lines) == 21


def _no_folder(name):
    def check(c, out):
        assert not (c.tmp / name).exists(), f"a failed build left {name}/"
        assert not any(p.name.startswith(f".{name}.") for p in c.tmp.iterdir()), "a temporary build folder was left"
    return check


def _silent_port(c):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    c._silent = s  # keep it open (accepts, never sends) for the case's lifetime
    return s.getsockname()[1]


CASES: list[Case] = [
    # --- run: files --------------------------------------------------------------------------------
    Case("run", "a file that does not exist", lambda c: _run(c, c.missing), 2, "no such file", "refused"),
    Case("run", "a folder", lambda c: _run(c, c.folder), 2, "is a folder", "refused"),
    Case("run", "an empty file (0 bytes)", lambda c: _run(c, c.empty), 2, "empty file (0 bytes)", "refused"),
    Case("run", "a text file named .mp4", lambda c: _run(c, c.text_as_video), 2, "not a readable video", "refused"),
    Case("run", "random bytes named .mp4", lambda c: _run(c, c.random_bytes), 2, "not a readable video", "refused"),
    Case("run", "an mp4 cut at 50%, its index at the end", lambda c: _run(c, c.truncated_moov_at_end), 2,
         "not a readable video", "refused"),
    Case("run", "a faststart mp4 cut at 50%", lambda c: _run(c, c.truncated_faststart), 0,
         "truncated: 4.xx of 8.00 s announced decoded", "warned"),
    Case("run", "an audio-only file", lambda c: _run(c, c.audio_only), 2, "no video stream (streams found: audio)", "refused"),
    Case("run", "a still image (PNG)", lambda c: _run(c, c.still_image), 2, "too short for one window", "refused"),
    Case("run", "a one-frame video", lambda c: _run(c, c.one_frame), 2, "1 frame(s) over 0.00 s, too short", "refused"),
    Case("run", "a 0.5 s video", lambda c: _run(c, c.half_second), 2, "too short for one window", "refused"),
    Case("run", "h264 with damaged packets (every 5th frame of 110)", lambda c: _run(c, c.corrupt_packets), 0,
         "packet(s) failed to decode", "warned"),
    Case("run", "a 16x16 video", lambda c: _run(c, c.tiny_16px), 0, "16x16 is far below the model's 112 px input", "warned"),
    Case("run", "a video with a 90-degree display rotation", lambda c: _run(c, c.rotated), 0, "ended", "ran"),
    Case("run", "variable frame rate (12-40 fps) in mkv", lambda c: _run(c, c.variable_rate), 0, "ended", "ran"),
    Case("run", "a 2 s gap in the timestamps", lambda c: _run(c, c.time_gap), 0, "1 gap(s) in time (2.00 s)", "warned"),
    Case("run", "10-bit HEVC in mkv", lambda c: _run(c, c.ten_bit), 0, "ended", "ran"),
    Case("run", "MJPEG in AVI", lambda c: _run(c, c.mjpeg_avi), 0, "ended", "ran"),
    # --- run: cameras and network ------------------------------------------------------------------
    Case("run", "an unknown URL scheme", lambda c: _run(c, "gopher://127.0.0.1/x"), 2, "unknown scheme", "refused"),
    Case("run", "a camera that is not there (/dev/video97)", lambda c: _run(c, "/dev/video97"), 2, "/dev/video97", "refused"),
    Case("run", "a URL that refuses the connection", lambda c: [*_run(c, f"tcp://127.0.0.1:{c.port()}"), "--json",
         "--reconnect-attempts", "1"], 1, "Connection refused", "failed", subprocess=True),
    Case("run", "a URL that never answers", lambda c: [*_run(c, f"tcp://127.0.0.1:{_silent_port(c)}"), "--json",
         "--open-timeout", "1", "--reconnect-attempts", "0"], 1, "no answer within 1 s", "failed", subprocess=True),
    Case("run", "a good file and a refused URL together", lambda c: ["run", str(BBB), f"tcp://127.0.0.1:{c.port()}",
         "-m", str(c.export), "--json", "--reconnect-attempts", "0"], 1, "Connection refused", "failed",
         extra=_file_windows_intact, subprocess=True),
    # --- run: the model ----------------------------------------------------------------------------
    Case("run", "--model that does not exist", lambda c: ["run", str(BBB), "-m", str(c.tmp / "nomodel")], 2,
         "no such file or folder", "refused"),
    Case("run", "--model: an ONNX file without inti-edge metadata", lambda c: ["run", str(BBB), "-m", str(c.onnx_without_metadata)],
         2, "without inti-edge metadata", "refused"),
    Case("run", "--model: ONNX weights pointing outside its folder", lambda c: ["run", str(BBB), "-m",
         str(c.onnx_external_data_outside)], 2, "points outside the model's folder", "refused"),
    Case("run", "--model: a text file", lambda c: ["run", str(BBB), "-m", str(c.text_as_checkpoint)], 2, "a text file", "refused"),
    Case("run", "--model: a malicious pickle", lambda c: ["run", str(BBB), "-m", str(c.malicious_pickle)], 2,
         "no code in it ran", "refused", extra=_no_canary),
    Case("run", "--model: an ONNX export named .pt", lambda c: ["run", str(BBB), "-m", str(c.onnx_named_pt)], 0, "ended", "ran"),
    Case("run", "--backend tensorrt for an export without plans", lambda c: [*_run(c, BBB), "--backend", "tensorrt"], 2,
         "no TensorRT plans", "refused"),
    Case("run", "--stride 0", lambda c: [*_run(c, BBB), "--stride", "0"], 2, "--stride must be >= 1", "refused"),
    Case("run", "--save-video into a folder that does not exist", lambda c: [*_run(c, BBB), "--save-video",
         str(c.tmp / "no" / "x.mp4")], 2, "no folder", "refused"),
    # --- eval --------------------------------------------------------------------------------------
    Case("eval", "an ONNX model where a checkpoint is wanted", lambda c: ["eval", str(c.onnx_named_pt), "--data", _m(BBB)],
         2, "is an ONNX model, not a checkpoint", "refused"),
    Case("eval", "a checkpoint cut in half", lambda c: ["eval", str(c.truncated_checkpoint), "--data", _m(BBB)], 2,
         "truncated or damaged", "refused"),
    Case("eval", "another project's PyTorch file", lambda c: ["eval", str(c.foreign_checkpoint), "--data", _m(BBB)], 2,
         "not an inti-edge checkpoint", "refused"),
    Case("eval", "a malicious pickle as the checkpoint", lambda c: ["eval", str(c.malicious_pickle), "--data", _m(BBB)], 2,
         "no code in it ran", "refused", extra=_no_canary),
    Case("eval", "a checkpoint archive with code in its pickle", lambda c: ["eval", str(c.malicious_zip_checkpoint),
         "--data", _m(BBB)], 2, "refused by the safe loader (no code in it ran)", "refused", extra=_no_canary),
    Case("eval", "an empty checkpoint file", lambda c: ["eval", str(c.empty_checkpoint), "--data", _m(BBB)], 2,
         "empty file (0 bytes)", "refused"),
    Case("eval", "--data: a video that does not exist", lambda c: _eval(c, _m(c.missing)), 2, "no such file", "refused"),
    Case("eval", "--data: a faststart mp4 cut at 50% (48% lost)", lambda c: _eval(c, _m(c.truncated_faststart)), 2,
         "over the limit of 25% (--max-lost)", "refused"),
    Case("eval", "--data: the same with --max-lost 0.6", lambda c: _eval(c, _m(c.truncated_faststart), "--max-lost", "0.6"),
         0, "truncated: 4.xx of 8.00 s", "warned"),
    Case("eval", "--data: h264 with damaged packets", lambda c: _eval(c, _m(c.corrupt_packets)), 0,
         "packet(s) failed to decode", "warned"),
    Case("eval", "--data: a 0.5 s video", lambda c: _eval(c, _m(c.half_second)), 2, "evaluate it on footage longer", "refused"),
    Case("eval", "--data: an audio-only file", lambda c: _eval(c, _m(c.audio_only)), 2, "no video stream", "refused"),
    Case("eval", "--data: a 16x16 video", lambda c: _eval(c, _m(c.tiny_16px)), 0, "far below the model's 112 px", "warned"),
    Case("eval", "--data: a class folder holding a faststart mp4 cut at 50%", lambda c: ["eval", str(c.labelled_ckpt),
         "--data", str(c.class_folders(c.truncated_faststart)), "--split", "val", "--workers", "0"], 2,
         "over the limit of 25% (--max-lost)", "refused"),
    Case("eval", "--data: a class folder holding h264 with damaged packets", lambda c: ["eval", str(c.labelled_ckpt),
         "--data", str(c.class_folders(c.corrupt_packets)), "--split", "val", "--workers", "0"], 0,
         "packet(s) failed to decode while reading a clip", "warned"),
    # --- train -------------------------------------------------------------------------------------
    Case("train", "--data: a video that does not exist", lambda c: _train(c, _m(c.missing)), 2, "no such file", "refused"),
    Case("train", "--data: only a video damaged past --max-lost", lambda c: _train(c, _m(c.truncated_faststart)), 2,
         "every video was left out", "refused"),
    Case("train", "--data: a good clip and one damaged past --max-lost", lambda c: _train(c, f"motion:{BBB},{c.truncated_faststart}"),
         0, "skipped", "warned", slow=True),
    Case("train", "--data: an 8 s clip with the default 10 s blocks", lambda c: _train(c, _m(BBB)), 0,
         "split into one block per split", "warned", slow=True),
    Case("train", "--resume: a model.pt with no training state", lambda c: ["train", "--resume", str(CKPT),
         "--out", str(c.tmp / "resume")], 2, "no training state", "refused"),
    Case("train", "--resume: a checkpoint cut in half", lambda c: ["train", "--resume", str(c.truncated_checkpoint),
         "--out", str(c.tmp / "resume")], 2, "truncated or damaged", "refused"),
    # --- build --calib -------------------------------------------------------------------------------
    Case("build", "--calib: a video that does not exist", lambda c: _build(c, "b1", "--calib", _m(c.missing)), 2,
         "no such file", "refused", extra=_no_folder("b1")),
    Case("build", "--calib: a manifest that does not exist", lambda c: _build(c, "b2", "--calib", c.tmp / "none.json"), 2,
         "calibration manifest", "refused"),
    Case("build", "--calib: a good clip and one damaged past --max-lost", lambda c: _build(
         c, "b3", "--calib", f"motion:{BBB},{c.truncated_faststart}", "--calib-clips", "4"), 0, "skipped", "warned", slow=True),
    Case("build", "--calib: only a damaged video (the build fails late)", lambda c: _build(
         c, "b4", "--calib", _m(c.truncated_faststart), "--calib-clips", "4"), 2, "every video was left out", "refused",
         extra=_no_folder("b4"), slow=True),
    Case("build", "--reference: a text file", lambda c: _build(c, "b5", "--reference", c.text_as_checkpoint), 2,
         "a text file", "refused"),
    Case("build", "--reference: an ONNX export", lambda c: _build(c, "b6", "--reference", c.export / "model.onnx"), 2,
         "give the FP32 checkpoint", "refused"),
    Case("build", "-o: a folder of other files", lambda c: _build(c, "not-a-build"), 2, "not a build", "refused"),
    Case("build", "a checkpoint named .onnx", lambda c: _build(c, "b7", model=c.checkpoint_named_onnx), 0, "wrote", "ran",
         slow=True),
    # --- check -------------------------------------------------------------------------------------
    Case("check", "a checkpoint where an artifact is wanted", lambda c: _check(c, CKPT), 2,
         "check takes an exported or built artifact", "refused"),
    Case("check", "an ONNX file without inti-edge metadata", lambda c: _check(c, c.onnx_without_metadata), 2,
         "without inti-edge metadata", "refused"),
    Case("check", "ONNX weights pointing outside its folder", lambda c: _check(c, c.onnx_external_data_outside), 2,
         "points outside the model's folder", "refused"),
    Case("check", "--reference: a malicious pickle", lambda c: _check(c, c.export / "model.onnx", reference=c.malicious_pickle),
         2, "no code in it ran", "refused", extra=_no_canary),
    Case("check", "--data: a faststart mp4 cut at 50% (48% lost)", lambda c: _check(c, c.export / "model.onnx",
         _m(c.truncated_faststart)), 2, "over the limit of 25%", "refused"),
    Case("check", "a plan without the manifest of its build", lambda c: _check(c, c.lone_plan), 2,
         "needs the manifest.json", "refused"),
    # --- the command itself ------------------------------------------------------------------------
    Case("cli", "--version", lambda c: ["--version"], 0, "inti-edge 0.1.0", "ran"),
    Case("cli", "an unknown command", lambda c: ["classify", str(BBB)], 2, "No such command", "usage"),
]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from test_export import exported

    c = Ctx(tmp_path_factory.mktemp("corpus"), exported(tmp_path_factory)["model"].parent)
    # a few inputs that need no maker of their own
    c._made["empty_checkpoint"] = c.tmp / "empty.pt"
    c._made["empty_checkpoint"].write_bytes(b"")
    c._made["folder_with_files"] = c.tmp / "not-a-build"
    c._made["folder_with_files"].mkdir()
    (c._made["folder_with_files"] / "notes.txt").write_text("mine")
    c._made["lone_plan"] = c.tmp / "alone" / "model.plan"
    c._made["lone_plan"].parent.mkdir()
    c._made["lone_plan"].write_bytes(b"ftrt" + bytes(64))
    return c


def says(fragment: str, out: str) -> bool:
    """Whether ``out`` holds ``fragment`` ("xx" in it: any digits)."""
    return re.search(re.escape(fragment).replace("xx", r"\d+"), out) is not None


def _invoke(case: Case, ctx: Ctx) -> tuple[int, str]:
    argv = case.argv(ctx)
    if case.subprocess:
        res = subprocess.run([sys.executable, str(ROOT / "cli.py"), *argv], capture_output=True, text=True, timeout=120,
                             cwd=ROOT)
        return res.returncode, res.stdout + res.stderr
    from test_export import cli

    res = cli(*argv)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        import traceback

        return 99, "".join(traceback.format_exception(res.exception))
    return res.exit_code, res.output


@pytest.mark.parametrize("case", [pytest.param(c, marks=[pytest.mark.slow] if c.slow else [], id=f"{c.command}: {c.input}")
                                  for c in CASES])
def test_input(case: Case, ctx: Ctx):
    t = time.monotonic()
    code, out = _invoke(case, ctx)
    assert "Traceback" not in out, out
    assert code == case.code, (code, out[-2000:])
    assert says(case.says, out), out[-2000:]
    if case.outcome == "refused":  # one error line (the cause and the fix); before it at most the warnings that led to it
        lines = [line for line in out.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("error:"), out
        assert all(line.startswith("warning:") for line in lines[:-1]), out
    if case.outcome == "warned":
        assert "warning:" in out, out
    if case.extra is not None:
        case.extra(ctx, out)
    assert time.monotonic() - t < 120


def test_a_plan_from_another_tensorrt_gpu_or_plugin_is_named_before_tensorrt_tries(tmp_path):
    """The checks `run` and `check` make before handing a plan to TensorRT (which needs a GPU and the
    library to run here): the manifest of the plan's build says what it was built with."""
    from inti_edge.artifact import Manifest, file_sha256
    from inti_edge.engines.trt import plan_mismatch

    plan = tmp_path / "model.plan"
    plan.write_bytes(b"plan bytes")
    lib = tmp_path / "libinti_plugins.so"
    lib.write_bytes(b"the plugin")
    other = tmp_path / "other.so"
    other.write_bytes(b"another build")
    raw = {"plans": {"model": {"path": "model.plan", "sha256": file_sha256(plan)}},
           "device": {"tensorrt": "10.3.0", "sm": "8.7"},
           "build": {"version_compatible": False, "plugin": {"name": lib.name, "sha256": file_sha256(lib)}}}
    m = Manifest(tmp_path / "manifest.json", raw)
    assert plan_mismatch(plan, m, "10.3.0.26", "8.7", lib) is None
    assert "built with TensorRT 10.3.0; this machine has 10.13.0" in plan_mismatch(plan, m, "10.13.0", "8.7", lib)
    assert "SM 8.7; this GPU is SM 9.0" in plan_mismatch(plan, m, "10.3.1", "9.0", lib)
    assert "needs the plugin library libinti_plugins.so" in plan_mismatch(plan, m, "10.3", "8.7", None)
    assert "not the plugin library model.plan was built with" in plan_mismatch(plan, m, "10.3", "8.7", other)
    compat = Manifest(m.file, {**raw, "build": {**raw["build"], "version_compatible": True}})
    assert plan_mismatch(plan, compat, "10.13.0", "8.7", lib) is None  # a version-compatible plan runs on newer TensorRT
    plan.write_bytes(b"rebuilt on the device")  # not the plan this manifest's build made: no claim about it
    assert plan_mismatch(plan, m, "10.13.0", "9.0", None) is None


# --- the document ------------------------------------------------------------------------------------
WORDS = {"refused": "refused, one line, exit 2", "warned": "used, with a warning line", "ran": "runs",
         "failed": "that source fails (exit 1); others go on", "usage": "Click's usage message, exit 2"}


def render() -> str:
    by_cmd: dict[str, int] = {}
    by_outcome: dict[str, int] = {}
    for c in CASES:
        by_cmd[c.command] = by_cmd.get(c.command, 0) + 1
        by_outcome[c.outcome] = by_outcome.get(c.outcome, 0) + 1
    lines = [
        "# Reliability: every input and fault tried",
        "",
        "Generated by `python tests/test_reliability.py` from the list of cases in tests/test_reliability.py, which",
        "the test suite runs (`tests/test_reliability.py::test_input`); a test fails when this file is not current.",
        "The inputs are made by tests/corpus.py from the committed sample clips. Every case also checks that no",
        "traceback is printed and that the command ends within 120 s. In what the output says, `xx` stands for any",
        "digits: how much of a truncated file decodes moved by one frame between runs (4.08 and 4.12 s of the",
        "same file; likely the decoder's threads meeting the cut).",
        "",
        f"**Totals:** {len(CASES)} cases: " + ", ".join(f"{n} `{k}`" for k, n in by_cmd.items()) + ". "
        + "; ".join(f"{WORDS[k]}: {n}" for k, n in by_outcome.items()) + ".",
        "",
        "| # | command | input | outcome | exit | what the output says |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i, c in enumerate(CASES, 1):
        says = c.says.replace("|", "\\|")
        lines.append(f"| {i} | `{c.command}` | {c.input} | {WORDS[c.outcome]} | {c.code} | `{says}` |")
    lines += [
        "",
        "Also tested elsewhere (they need a server, a kill or minutes):",
        "- a network stream killed mid-way and restarted: reopened with backoff, windows go on "
        "(tests/test_stream.py::test_a_stream_killed_midway_is_reopened_and_goes_on);",
        "- a stream that stalls: detected after --stall-timeout, reconnect tried, the source ends with a status line "
        "(test_a_stalled_stream_is_detected_and_a_refused_reopen_ends_the_source);",
        "- a live source that disappears mid-stream (a camera unplugged, emulated with a FIFO: PyPI's PyAV has no v4l2 "
        "input to test a real one) (test_a_live_source_that_disappears_fails_alone);",
        "- Ctrl-C and SIGTERM: a clean end with the summary (test_ctrl_c_ends_a_realtime_file_with_the_summary);",
        "- a TensorRT plan from another TensorRT version or GPU, a missing or another plugin library: named from the "
        "build's manifest before TensorRT tries, and TensorRT's own load error said in one line "
        "(test_a_plan_from_another_tensorrt_gpu_or_plugin_is_named_before_tensorrt_tries; TensorRT cannot be installed "
        "on these machines, so the check's logic is what is tested);",
        "- `train` killed with SIGKILL at random points, four times, then resumed (tests/test_crash_safe.py);",
        "- long streams: five minutes of footage in CI, the hour by hand (tests/test_soak.py; figures in the README).",
        "",
    ]
    return "\n".join(lines)


def test_reliability_md_is_generated_from_the_cases():
    assert len(CASES) >= 40
    assert DOC.is_file() and DOC.read_text() == render(), "RELIABILITY.md is stale: run `python tests/test_reliability.py`"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC} ({len(CASES)} cases)")


def test_a_display_rotation_is_applied_wherever_frames_become_pixels(tmp_path):
    """A phone's portrait clip (pixels stored landscape plus a rotation): training's stores, the eval
    reader and run's preprocessing all see it upright, i.e. turned as the display matrix says."""
    import av
    import numpy as np

    from inti_edge.data import FrameStore, VideoReader
    from inti_edge.data.preprocess import Preprocess
    from inti_edge.model.config import CLIP_MEAN, CLIP_STD

    plain = corpus.encode(tmp_path / "plain.mp4", seconds=2)
    turned = corpus.encode(tmp_path / "turned.mp4", seconds=2, rotate=90)
    a, b = FrameStore.from_video(plain, short_side=90), FrameStore.from_video(turned, short_side=90)
    assert b.frames.shape[-2:] == (160, 90) and a.frames.shape[-2:] == (90, 160)
    assert np.array_equal(b.frames.numpy(), np.rot90(a.frames.numpy(), 1, axes=(2, 3)))  # counter-clockwise, as ffmpeg shows it
    ra, rb = VideoReader(plain).read([0.5]), VideoReader(turned).read([0.5])
    assert np.array_equal(rb.numpy(), np.rot90(ra.numpy(), 1, axes=(2, 3)))
    pre = Preprocess(64, CLIP_MEAN, CLIP_STD)
    with av.open(str(plain)) as ca, av.open(str(turned)) as cb:
        fa, fb = next(ca.decode(video=0)), next(cb.decode(video=0))
        assert np.array_equal(pre.rgb(fb), np.rot90(pre.rgb(fa), 1))
