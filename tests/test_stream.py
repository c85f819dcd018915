"""`inti-edge run`: contracts (artifact, sampling, torch-free preprocessing), the incremental pipeline,
sources (files, network streams on 127.0.0.1, faults), outputs and the command.

The model is the bundled default model (test_export's ``default_checkpoint``) and its ONNX export
(``exported``), run on the committed real clips.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from inti_edge.artifact import ArtifactError, open_artifact, read_info
from inti_edge.data.preprocess import Preprocess, resize_weights
from inti_edge.data.sampling import Sampling
from inti_edge.engines.runtime import open_runtime
from inti_edge.stream import StreamOptions, run
from inti_edge.stream.pipeline import Stream
from inti_edge.stream.sources import Hub, SourceError, SourceSpec, TimeSampler, Unit, parse_source

from test_export import CLIPS, ROOT, cli, cpu_build, default_checkpoint, exported

BBB, SOCCER = CLIPS  # 8 s of Big Buck Bunny (h264, 160x90, 24 fps); 4 s of UCF101 (mpeg4 AVI, 160x120, 29.97 fps)
SERVER = Path(__file__).resolve().parent / "stream_server.py"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return default_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return exported(tmp_path_factory)["model"].parent


def _events(sources, model, **kw):
    evs: list[dict] = []
    opts = StreamOptions(**{"with_logits": True, **kw.pop("opts", {})})
    summary = run([str(s) for s in sources], str(model), opts=opts, on_event=evs.append, **kw)
    return evs, summary


def _windows(evs) -> dict:
    return {(e["source"], e["window"]): e for e in evs if e["event"] == "window"}


# --- contracts ---------------------------------------------------------------------------------------
def test_sampling_travels_in_the_checkpoint_the_export_and_a_build(ckpt, export_dir, tmp_path_factory):
    art = open_artifact(ckpt)
    s = art.model.sampling
    assert (s.frame_step, s.unit_frames, s.window_frames) == (pytest.approx(1 / 6), 2, 8)
    assert (s.units, s.window_seconds) == (4, pytest.approx(8 / 6))
    for form in ("model", "encoder", "head"):
        assert read_info(export_dir / f"{form}.onnx").sampling == s
    build = open_artifact(cpu_build(tmp_path_factory))  # int8 through ModelOpt / ONNX Runtime's quantizer
    assert build.kind == "build" and build.precision == "int8" and build.model.sampling == s
    with pytest.raises(ValueError, match="whole number"):
        Sampling(0.1, 2, 7)


def test_training_stores_its_sampling(tmp_path):
    from inti_edge.train import TrainConfig, train

    clips = ",".join(str(c) for c in CLIPS)
    res = train(TrainConfig(data=f"motion:{clips}", val_data=f"motion:{clips}", val_split="all", model="small",
                            frames=4, epochs=1, steps_per_epoch=1, batch_size=2, clips_per_epoch=4, eval_clips=2,
                            workers=0, out=str(tmp_path / "run"), quiet=True))
    art = open_artifact(res.out)  # a run folder opens as its model.pt
    assert art.kind == "checkpoint" and art.checkpoint.name == "model.pt"
    assert art.model.sampling == Sampling(1 / 6, 2, 4, "motion: fixed step")


def test_open_artifact_reads_every_kind_and_names_what_is_wrong(ckpt, export_dir, tmp_path):
    exp = open_artifact(export_dir)
    assert exp.kind == "export" and set(exp.onnx) == {"model", "encoder", "head"} and exp.streaming
    assert exp.model.classes[0] == "static" and exp.model.preprocessing.image_size == 112
    assert open_artifact(export_dir / "encoder.onnx").onnx == exp.onnx  # one file of a folder: the folder
    assert open_artifact(ckpt).streaming
    cases = {
        "missing": (tmp_path / "nope", "no such file or folder"),
        "empty": (tmp_path / "empty.pt", "empty file"),
        "folder": (tmp_path / "emptydir", "no model.onnx"),
        "no meta": (tmp_path / "plain.onnx", "without inti-edge metadata"),
        "text": (tmp_path / "x.txt", "a text file, not a model"),
        "type": (tmp_path / "x.bin", "unknown artifact type"),
    }
    (tmp_path / "x.bin").write_bytes(bytes(range(256)))
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "x.txt").write_text("hello")
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g), str(tmp_path / "plain.onnx"))
    for name, (path, msg) in cases.items():
        with pytest.raises(ArtifactError, match=msg):
            open_artifact(path)


def test_torch_free_preprocessing_equals_the_training_transform_on_real_frames():
    from inti_edge.data import ClipTransform, VideoReader
    from inti_edge.model.config import CLIP_MEAN, CLIP_STD

    # (clip, model input size): 160x120 -> 112 and 90 -> 64 scale down at decode; 90 -> 112 scales up
    for path, size in ((SOCCER, 112), (BBB, 64), (BBB, 112)):
        tf = ClipTransform(size, CLIP_MEAN, CLIP_STD)
        pre = Preprocess(size, CLIP_MEAN, CLIP_STD)
        reader = VideoReader(path)
        pos = np.array([0, 7, 31, 77])
        ref = tf(reader.read(reader.index.times[pos], tf.decode_short_side)).numpy()
        want = set(reader.index.pts[pos].tolist())
        mine = {}
        with av.open(str(path)) as c:
            for f in c.decode(video=0):
                if f.pts in want:
                    mine[f.pts] = pre.frame(f)
        got = np.stack([mine[int(p)] for p in reader.index.pts[pos]])
        assert got.shape == ref.shape == (4, 3, size, size) and got.dtype == np.float32
        grey = np.abs(got - ref) * np.asarray(CLIP_STD, np.float32).reshape(1, 3, 1, 1) * 255
        if size <= min(reader.index.height, reader.index.width):
            assert np.array_equal(got, ref), path  # bit for bit
        else:  # scaled up: torchvision's uint8 kernel rounds its fixed-point weights
            assert grey.max() <= 1.0 + 1e-3 and (grey > 0.5).mean() < 0.25, path
    w = resize_weights(90, 112)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    assert np.array_equal(resize_weights(112, 112), np.eye(112, dtype=np.float32))


def test_time_sampler_picks_the_frame_on_screen_like_the_frame_index():
    from inti_edge.data import VideoReader

    for path in (BBB, SOCCER):
        index = VideoReader(path).index
        s = TimeSampler(1 / 6)
        picked = []
        with av.open(str(path)) as c:
            for f in c.decode(video=0):
                picked += [(t, fr.pts) for t, fr in s.push(f, float(f.pts * f.time_base))]
        picked += [(t, fr.pts) for t, fr in s.flush()]
        times = np.array([t for t, _ in picked])
        np.testing.assert_allclose(np.diff(times), 1 / 6, atol=1e-9)
        assert [p for _, p in picked] == index.pts[index.position(times)].tolist()
        assert times[-1] > index.times[-1] - 1 / 6 - 1e-6  # sampled to the end


def test_parse_source_knows_files_cameras_and_urls(tmp_path):
    assert parse_source(str(BBB)).kind == "file"
    spec = parse_source("rtsp://127.0.0.1:8554/cam")
    assert (spec.kind, spec.options, spec.live) == ("network", {"rtsp_transport": "tcp"}, True)
    for url in ("http://127.0.0.1/x.ts", "tcp://127.0.0.1:9", "udp://127.0.0.1:1234"):
        assert parse_source(url).kind == "network"
    (tmp_path / "empty.mp4").write_bytes(b"")
    bad = {
        str(tmp_path / "missing.mp4"): "no such file",
        str(tmp_path): "is a folder",
        str(tmp_path / "empty.mp4"): "empty file",
        "gopher://x/y": "unknown scheme",
    }
    camera = "/dev/video97"
    bad[camera] = "no v4l2 camera input" if "v4l2" not in av.formats_available else "no such camera device"
    bad["v4l2://" + camera] = bad[camera]
    for text, msg in bad.items():
        with pytest.raises(SourceError, match=msg):
            parse_source(text)


def test_hub_blocks_files_drops_oldest_of_live_sources_and_takes_round_robin():
    hub = Hub(2, capacity=2)

    def unit(src, i):
        return Unit(src, 0, i, np.zeros(1), np.zeros(1), 0.0, 0.0, 0.0)

    for i in range(3):  # live: the oldest goes
        hub.put(unit(1, i), live=True)
    assert [u.index for u in hub.queues[1]] == [1, 2] and hub.dropped[1] == 1
    hub.put(unit(0, 0), live=False)
    hub.put(unit(0, 1), live=False)
    t = threading.Thread(target=hub.put, args=(unit(0, 2), False))
    t.start()
    time.sleep(0.3)
    assert t.is_alive()  # a file's reader waits for room
    got = hub.take(3, timeout=0.1)
    assert {u.source for u in got} == {0, 1}  # one call takes units of both sources
    t.join(2)
    assert not t.is_alive() and hub.dropped[0] == 0


# --- the pipeline ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_incremental_windows_equal_a_full_rerun_on_real_clips(backend, ckpt, export_dir):
    model = export_dir if backend == "onnxruntime" else ckpt
    runs = {}
    for cache in (True, False):
        evs, summary = _events([BBB, SOCCER], model, backend=backend, opts={"cache": cache})
        assert summary.mode == ("incremental" if cache else "full") and not summary.failed
        runs[cache] = _windows(evs)
    assert runs[True].keys() == runs[False].keys()
    # 8 s and 4 s at 1/6 s: 48 and 24 sampled frames, 24 and 12 units, windows of 4 units at stride 1
    assert sum(1 for s, _ in runs[True] if s == str(BBB)) == 21 and sum(1 for s, _ in runs[True] if s == str(SOCCER)) == 9
    diff = max(np.abs(np.subtract(runs[True][k]["logits"], runs[False][k]["logits"])).max() for k in runs[True])
    assert diff <= 1e-4
    w = runs[True][(str(BBB), 3)]
    assert w["window_start_s"] == pytest.approx(1.0, abs=1e-3) and w["window_end_s"] == pytest.approx(1 + 8 / 6, abs=1e-3)
    assert set(w) >= {"source", "window_start_s", "window_end_s", "label", "score", "top5", "latency_ms", "decode_ms",
                      "preprocess_ms", "encoder_ms", "head_ms"}
    assert len(w["top5"]) == 5 and w["top5"][0]["label"] == w["label"] and w["top5"][0]["score"] == w["score"]


def test_the_stream_equals_the_training_clips_of_the_same_times(ckpt):
    """A window's logits equal the model on the clip that evaluation would read at the window's times."""
    import torch

    from inti_edge.data import ClipTransform, VideoReader
    from inti_edge.model import load_checkpoint

    evs, _ = _events([SOCCER], ckpt, backend="torch", opts={"stride": 3})
    model, _ = load_checkpoint(ckpt)
    tf = ClipTransform.from_config(model.cfg)
    reader = VideoReader(SOCCER)
    wins = [e for e in evs if e["event"] == "window"]
    assert [w["window"] for w in wins] == [0, 1, 2]  # 12 units, stride 3: windows end at units 3, 6, 9
    for w in wins:
        times = w["window_start_s"] + np.arange(8) / 6
        clip = tf(reader.read(times, tf.decode_short_side))
        with torch.no_grad():
            ref = model(clip[None]).numpy()[0]
        np.testing.assert_allclose(w["logits"], ref, atol=1e-4)


def test_units_of_all_sources_share_encoder_calls(export_dir):
    art = open_artifact(export_dir)
    calls: list[set] = []

    class Recording(Stream):
        def _process(self, units):
            calls.append({u.source for u in units})
            time.sleep(0.05)  # let both readers queue units
            return super()._process(units)

    rt = open_runtime(art, "onnxruntime", "cpu", forms=("encoder", "head"))
    specs = [parse_source(str(BBB)), parse_source(str(SOCCER))]
    summary = Recording(specs, rt, art, StreamOptions(), lambda e: None).run()
    assert any(len(c) == 2 for c in calls)
    assert summary.encoder_units == 36 and summary.encoder_calls < 36


def test_a_live_source_that_falls_behind_drops_whole_windows_and_counts_them(export_dir):
    """--realtime reads the file at its rate; an encoder slower than the units come drops the oldest."""
    art = open_artifact(export_dir)
    rt = open_runtime(art, "onnxruntime", "cpu", forms=("encoder", "head"))
    enc = rt.encoder._run
    rt.encoder._run = lambda x: (time.sleep(0.6), enc(x))[1]  # units come every 1/3 s
    evs: list[dict] = []
    opts = StreamOptions(realtime=True, queue_units=1, max_batch=1)
    summary = Stream([parse_source(str(BBB))], rt, art, opts, evs.append).run()
    s = summary.sources[0]
    wins = [e for e in evs if e["event"] == "window"]
    assert s.dropped_units > 0 and s.dropped_windows > 0 and s.windows == len(wins)
    assert s.windows + s.dropped_windows <= 21
    for w in wins:  # every window is 4 consecutive units: no window spans a gap
        assert w["window_end_s"] - w["window_start_s"] == pytest.approx(8 / 6, abs=1e-3)


def test_save_video_draws_the_label_on_every_frame(ckpt, tmp_path):
    out = tmp_path / "labelled.mp4"
    evs, summary = _events([BBB], ckpt, backend="torch", opts={"save_video": str(out)})
    written = [e for e in evs if e["event"] == "video_written"][0]
    assert written["frames"] == summary.sources[0].frames == 192
    with av.open(str(out)) as c, av.open(str(BBB)) as src:
        got = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
        ref = [f.to_ndarray(format="rgb24").astype(np.float32) for f in src.decode(video=0)]
    assert len(got) == 192 and got[0].shape == (90, 160, 3)
    band = 15  # min(h // 6, 48)
    for g, r in ((got[100], ref[100]), (got[10], ref[10])):
        assert g[: band - 4].mean() < 0.6 * r[: band - 4].mean()  # the dark label band
        assert g[band:].mean() == pytest.approx(r[band:].mean(), rel=0.05)  # the picture below it
    # frame 100 (4.17 s) shows a window's label: the band carries more text than frame 10's "waiting" line
    assert not np.array_equal(got[100][:band], got[10][:band])


# --- the command -------------------------------------------------------------------------------------
def test_run_with_no_model_uses_the_bundled_model_and_prints_json_lines(tmp_path):
    out = tmp_path / "windows.jsonl"
    res = cli("run", BBB, "--json", "--out", out)
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]  # nothing but JSON on stdout
    assert lines == [json.loads(x) for x in out.read_text().splitlines()]
    kinds = [e["event"] for e in lines]
    assert kinds[0] == "start" and kinds[-1] == "summary" and kinds.count("window") == 21
    assert "opened" in kinds and "ended" in kinds
    assert lines[0]["model"].endswith("default_motion_small.pt") and lines[0]["mode"] == "incremental"
    summary = lines[-1]
    assert summary["windows"] == 21 and summary["failed"] is False
    src = summary["sources"][0]
    assert src["frames"] == 192 and src["dropped_windows"] == 0 and src["realtime_factor"] > 0
    assert src["latency_p95_ms"] >= src["latency_p50_ms"] > 0
    assert {w["label"] for w in lines if w["event"] == "window"} <= set(lines[0]["classes"]) == {
        "static", "pan_left", "pan_right", "pan_up", "pan_down", "zoom_in", "zoom_out"}


def test_run_text_output_and_summary(export_dir):
    res = cli("run", SOCCER, "-m", export_dir)
    assert res.exit_code == 0, res.output
    assert res.stdout.count(" ms\n") == 9 and "summary" in res.stdout and "incremental" in res.stdout


def test_run_refuses_bad_input_in_one_line(export_dir, ckpt, tmp_path):
    cases = [
        (["run", tmp_path / "nope.mp4"], "no such file"),
        (["run", BBB, "-m", tmp_path / "nomodel"], "no such file or folder"),
        (["run", BBB, "--backend", "tensorflow"], "unknown backend"),
        (["run", BBB, "-m", export_dir, "--backend", "tensorrt"], "no TensorRT plans"),
        (["run", BBB, "-m", export_dir, "--backend", "torch"], "needs a checkpoint"),
        (["run", BBB, "--stride", "0"], "--stride must be >= 1"),
        (["run", BBB, BBB], "named twice"),
        (["run", BBB, "--save-video", tmp_path / "no" / "x.mp4"], "no folder"),
        (["run", "/dev/video97"], "v4l2" if "v4l2" not in av.formats_available else "no such camera"),
        (["run", BBB, "--out", tmp_path / "no" / "x.jsonl"], "cannot write"),
    ]
    for args, msg in cases:
        res = cli(*args)
        assert res.exit_code == 2, (args, res.output)
        assert msg in res.output and "Traceback" not in res.output, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1, res.output


def _has_gpu() -> bool:
    from inti_edge.engines.trt import gpu

    return gpu() is not None


def run_without_torch(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    """`inti-edge run ARGS` in a process where any `import torch` fails (and is checked to have stayed so)."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        f"sys.argv = ['inti-edge', 'run', *{[str(a) for a in args]!r}]\n"
        "import cli\n"
        "try:\n    cli.main()\nexcept SystemExit as e:\n    code = e.code\n"
        "assert sys.modules['torch'] is None\n"
        "sys.exit(code)\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_onnxruntime_path_never_imports_torch(export_dir):
    res = run_without_torch(SOCCER, "-m", export_dir, "--backend", "onnxruntime", "--json")
    assert res.returncode == 0, res.stderr
    assert sum(json.loads(x)["event"] == "window" for x in res.stdout.splitlines()) == 9


# --- network streams and faults (127.0.0.1 only) ------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Proc:
    """A subprocess whose stdout lines arrive in a queue (JSON parsed where they are JSON)."""

    def __init__(self, args, **kw):
        self.p = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=ROOT, **kw)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                self.lines.put(line.strip())

    def wait_for(self, pred, timeout: float = 60.0, count: int = 1):
        """Lines until ``count`` of them satisfy ``pred``; fails on timeout."""
        end, hits = time.monotonic() + timeout, 0
        while hits < count:
            try:
                item = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"timed out waiting; seen: {self.seen[-8:]}; stderr: {self.p.stderr.read() if self.p.poll() is not None else ''}")
            self.seen.append(item)
            hits += bool(pred(item))
        return item

    def rest(self, timeout: float = 60.0) -> list:
        self.p.wait(timeout=timeout)
        time.sleep(0.2)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.seen

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=10)


def _server(port: int, *extra) -> _Proc:
    srv = _Proc([sys.executable, SERVER, port, BBB, *extra])
    srv.wait_for(lambda x: x == "listening", timeout=30)
    return srv


def _client(port_or_url, export_dir, *extra) -> _Proc:
    url = port_or_url if isinstance(port_or_url, str) else f"tcp://127.0.0.1:{port_or_url}"
    return _Proc([sys.executable, ROOT / "cli.py", "run", url, "-m", export_dir, "--json", *extra])


def _is(kind):
    return lambda e: isinstance(e, dict) and e.get("event") == kind


@pytest.mark.slow
def test_a_stream_killed_midway_is_reopened_and_goes_on(export_dir):
    port = _free_port()
    srv = _server(port, "--speed", "2")
    client = _client(port, export_dir, "--reconnect-attempts", "30", "--stall-timeout", "3")
    try:
        client.wait_for(_is("opened"))
        client.wait_for(_is("window"), count=3)
        srv.kill()  # SIGKILL: the stream drops
        client.wait_for(lambda e: _is("dropped")(e) or _is("stalled")(e))
        client.wait_for(_is("reconnecting"))
        srv = _server(port, "--speed", "2")
        client.wait_for(_is("reopened"))
        client.wait_for(_is("window"), count=3)
        client.p.send_signal(signal.SIGINT)  # Ctrl-C: a clean end with the summary
        seen = client.rest()
    finally:
        client.kill()
        srv.kill()
    assert client.p.returncode == 0
    kinds = [e["event"] for e in seen if isinstance(e, dict)]
    assert kinds.index("opened") < kinds.index("reconnecting") < kinds.index("reopened")
    summary = [e for e in seen if isinstance(e, dict) and e["event"] == "summary"][0]
    s = summary["sources"][0]
    assert summary["interrupted"] and s["reconnects"] == 1 and s["state"] == "stopped" and s["windows"] >= 6
    # windows after the reopen count on from where the stream was: times only go forward
    starts = [e["window_start_s"] for e in seen if isinstance(e, dict) and e["event"] == "window"]
    assert starts == sorted(starts)


@pytest.mark.slow
def test_a_stalled_stream_is_detected_and_a_refused_reopen_ends_the_source(export_dir):
    port = _free_port()
    srv = _server(port, "--speed", "2", "--stall-after", "4")
    client = _client(port, export_dir, "--reconnect-attempts", "1", "--stall-timeout", "1.5")
    try:
        seen = client.rest(timeout=60)
    finally:
        client.kill()
        srv.kill()
    kinds = [e["event"] for e in seen if isinstance(e, dict)]
    assert "window" in kinds and "stalled" in kinds and kinds[-2:] == ["ended", "summary"]
    assert client.p.returncode == 1  # the source failed
    assert [e for e in seen if isinstance(e, dict) and e["event"] == "ended"][0]["state"] == "failed"


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_a_live_source_that_disappears_fails_alone(export_dir, tmp_path):
    """A camera unplugged mid-stream, emulated: PyPI's PyAV has no v4l2 input, so the device is a FIFO
    fed by a writer that the test kills and removes; the reader sees what a vanished device gives
    (the end of the data, then no such file on reopen) and the file beside it goes on."""
    fifo = tmp_path / "camera"
    os.mkfifo(fifo)
    writer = _Proc([sys.executable, SERVER, 0, BBB, "--to", fifo, "--speed", "2"])
    art = open_artifact(export_dir)
    rt = open_runtime(art, "onnxruntime", "cpu", forms=("encoder", "head"))
    camera = SourceSpec("camera", str(fifo), "camera", "mpegts")
    evs: list[dict] = []
    seen = threading.Event()

    def on_event(e):
        evs.append(e)
        if e["event"] == "window" and e["source"] == "camera" and sum(x.get("source") == "camera" and x["event"] == "window" for x in evs) >= 3:
            seen.set()

    def unplug():
        seen.wait(60)
        writer.kill()
        fifo.unlink()

    threading.Thread(target=unplug, daemon=True).start()
    opts = StreamOptions(reconnect_attempts=1, stall_timeout=2)
    try:
        summary = Stream([camera, parse_source(str(BBB))], rt, art, opts, on_event).run()
    finally:
        writer.kill()
    by = {s.source: s for s in summary.sources}
    assert by["camera"].state == "failed" and "No such file" in by["camera"].reason and by["camera"].windows >= 3
    assert by[str(BBB)].state == "ended" and by[str(BBB)].windows == 21
    kinds = [e["event"] for e in evs if e.get("source") == "camera"]
    assert kinds.index("opened") < kinds.index("dropped") < kinds.index("reconnecting") < kinds.index("ended")


def test_a_refused_url_fails_that_source_while_a_file_goes_on(export_dir):
    url = f"tcp://127.0.0.1:{_free_port()}"
    res = cli("run", BBB, url, "-m", export_dir, "--json", "--reconnect-attempts", "1")
    assert res.exit_code == 1, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert sum(e["event"] == "window" and e["source"] == str(BBB) for e in lines) == 21
    ended = {e["source"]: e for e in lines if e["event"] == "ended"}
    assert ended[str(BBB)]["state"] == "ended" and ended[url]["state"] == "failed"
    assert "Connection refused" in ended[url]["reason"] and "gave up after 1" in ended[url]["reason"]
    assert [e["attempt"] for e in lines if e["event"] == "reconnecting"] == [1]


def test_a_url_that_never_answers_times_out(export_dir):
    with socket.socket() as silent:  # accepts, never sends
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        t = time.monotonic()
        res = cli("run", url, "-m", export_dir, "--json", "--open-timeout", "1", "--reconnect-attempts", "0")
        took = time.monotonic() - t
    assert res.exit_code == 1 and took < 20, res.output
    ended = [json.loads(x) for x in res.stdout.splitlines() if '"ended"' in x][0]
    assert "no answer within 1 s" in ended["reason"]


def test_ctrl_c_ends_a_realtime_file_with_the_summary(export_dir):
    client = _Proc([sys.executable, ROOT / "cli.py", "run", BBB, "-m", export_dir, "--json", "--realtime"])
    try:
        client.wait_for(_is("window"))
        client.p.send_signal(signal.SIGINT)
        seen = client.rest(timeout=30)
    finally:
        client.kill()
    assert client.p.returncode == 0
    summary = seen[-1]
    assert summary["event"] == "summary" and summary["interrupted"] and 1 <= summary["windows"] < 21


# --- GPU ---------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_torch_backend_on_a_gpu_replays_cuda_graphs_in_bf16(ckpt):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    art = open_artifact(ckpt)
    rt = open_runtime(art, "torch", "cuda", forms=("encoder", "head", "model"), max_batch=8)
    cpu = open_runtime(art, "torch", "cpu", forms=("encoder", "head"))
    units = np.random.default_rng(0).standard_normal((5, 2, 3, 112, 112)).astype(np.float32)
    a, b = rt.encoder(units), rt.encoder(units)
    assert np.array_equal(a, b) and a.shape == (5, 5, 192)  # graph replays are deterministic
    ref = cpu.encoder(units)
    cos = (a * ref).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.min() > 0.99  # bf16 against fp32
    runs = {}
    for cache in (True, False):
        evs, summary = _events([BBB, SOCCER], ckpt, backend="torch", device="cuda", opts={"cache": cache})
        assert summary.backend.startswith("torch on cuda")
        runs[cache] = _windows(evs)
    assert runs[True].keys() == runs[False].keys() and len(runs[True]) == 30
    a = np.array([runs[True][k]["logits"] for k in sorted(runs[True])])
    b = np.array([runs[False][k]["logits"] for k in sorted(runs[True])])
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.999 and (a.argmax(1) == b.argmax(1)).mean() >= 0.9  # bf16: incremental vs full


def test_the_live_view_shows_label_score_rate_and_dropped_per_source():
    import io

    from rich.console import Console

    from inti_edge.commands.run import _LiveView

    console = Console(file=io.StringIO(), force_terminal=True, width=140)
    view = _LiveView(console)

    class _Stream:  # the two counts the view asks a running stream for
        def dropped_windows(self, i):
            return [0, 3][i]

    with view:
        view.attach(_Stream())
        view.event({"event": "start", "model": "m", "backend": "onnxruntime on cpu", "mode": "incremental",
                    "sources": ["cam0", "rtsp://cam/1"]})
        view.event({"event": "opened", "source": "cam0"})
        view.event({"event": "window", "source": "cam0", "window": 0, "label": "pan_left", "score": 0.91,
                    "latency_ms": 12.5})
        view.event({"event": "reconnecting", "source": "rtsp://cam/1"})
    text = console.file.getvalue()
    for want in ("cam0", "pan_left", "0.91", "12.5", "rtsp://cam/1", "reconnecting", "dropped", "windows/s"):
        assert want in text, want
    last = text[text.rindex("cam0"):]
    assert "live" in last.splitlines()[0] and " 3 " in last.split("rtsp://cam/1")[1].splitlines()[0]


@pytest.mark.tensorrt
def test_tensorrt_plans_stream_without_torch(export_dir, tmp_path):
    pytest.importorskip("tensorrt")
    if not _has_gpu():
        pytest.skip("no CUDA GPU")
    out = tmp_path / "gpu"
    res = cli("build", export_dir, "-p", "fp16", "-t", "gpu", "--forms", "encoder,head", "--batch", "1,8,32", "-o", out)
    assert res.exit_code == 0, res.output
    assert (out / "encoder.plan").is_file() and (out / "head.plan").is_file()
    res = run_without_torch(BBB, "-m", out, "--backend", "tensorrt", "--json", timeout=300)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert lines[0]["backend"].startswith("tensorrt") and sum(e["event"] == "window" for e in lines) == 21
    ref, _ = _events([BBB], export_dir, backend="onnxruntime")
    want = [e["label"] for e in ref if e["event"] == "window"]
    got = [e["label"] for e in lines if e["event"] == "window"]
    assert np.mean(np.array(want) == np.array(got)) >= 0.95  # fp16 plans against the fp32 ONNX
