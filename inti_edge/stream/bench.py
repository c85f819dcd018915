"""Streaming benchmarks: what `inti-edge run` sustains, measured through ``stream.run`` itself.

    python -m inti_edge.stream.bench --suite ratio|rtf|live|gpu|all [--source VIDEO] [--reps 3] [--json OUT]

- ``ratio``: windows/s of the incremental mode against ``--no-cache`` (every window re-run), windows
  of 8 frames at a stride of one unit, 1 and 8 sources, the default model on ONNX Runtime (CPU).
  The two modes alternate within one process; figures are medians over ``--reps`` runs.
- ``rtf``: the real-time factor (wall / media seconds) of `run` with the default model on a
  1080p30 H.264 file, decoding included; the decode-only time of the same file is measured too.
- ``live``: how many 720p30 sources read at their own rate (``--realtime``: live sources) the
  machine keeps in real time (no dropped window, latency p95 <= 500 ms), adding sources.
- ``gpu``: vit-b16 (random weights: no pretrained CLIP here) on the torch backend (bf16, CUDA graphs),
  32 sources: windows/s incremental vs full through the pipeline, and the bare model (encoder on
  32 units + head vs the whole model on 32 windows) in the same process.

The test videos are made from ``--source`` (real footage: the committed clip by default) with PyAV:
its frames re-timed to the wanted rate and scaled to the wanted size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = ROOT / "tests" / "data" / "bbb_8s_160x90.mp4"


def make_video(src: str | Path, dst: str | Path, width: int, height: int, fps: float, seconds: float,
               crf: int = 20, preset: str = "veryfast") -> Path:
    """H.264 video of ``seconds`` at ``fps`` and ``width`` x ``height`` from ``src``'s frames in order
    (``data.transcode.retime``)."""
    from ..data.transcode import retime

    return retime(src, dst, width=width, height=height, fps=fps, seconds=seconds,
                  options={"crf": str(crf), "preset": preset}, gop=int(round(2 * fps)))


def _run(sources, model, **opts) -> dict:
    from . import StreamOptions, run

    backend = opts.pop("backend", "auto")
    device = opts.pop("device", "auto")
    summary = run([str(s) for s in sources], model, backend=backend, device=device, opts=StreamOptions(**opts))
    if summary.failed:
        raise RuntimeError(f"a source failed: {[s.reason for s in summary.sources if s.failed]}")
    return summary.to_dict()


def _copies(src: Path, n: int, tmp: Path) -> list[Path]:
    out = []
    for i in range(n):
        p = tmp / f"src{i}{src.suffix}"
        if not p.exists():
            shutil.copy(src, p)
        out.append(p)
    return out


def suite_ratio(model, source: Path, tmp: Path, reps: int, counts=(1, 8), backend="onnxruntime", device="cpu",
                seconds: float = 16.0, size=(320, 180), fps: float = 24.0) -> list[dict]:
    """Windows/s incremental vs --no-cache, 1 and 8 sources (medians of alternating runs)."""
    clip = make_video(source, tmp / "ratio.mp4", *size, fps, seconds)
    rows = []
    for n in counts:
        srcs = _copies(clip, n, tmp)
        got = {True: [], False: []}
        for _ in range(reps):
            for cache in (True, False):
                s = _run(srcs, model, cache=cache, backend=backend, device=device)
                got[cache].append(s["windows_per_s"])
        inc, full = statistics.median(got[True]), statistics.median(got[False])
        rows.append({"suite": "ratio", "sources": n, "backend": backend, "clip": f"{size[0]}x{size[1]} {fps:g} fps, {seconds:g} s",
                     "incremental_windows_per_s": inc, "full_windows_per_s": full, "ratio": round(inc / full, 2),
                     "runs": got[True] + got[False]})
    return rows


def _decode_seconds(path: Path) -> float:
    import av

    t = time.perf_counter()
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        for _ in c.decode(st):
            pass
    return time.perf_counter() - t


def suite_rtf(model, source: Path, tmp: Path, reps: int, seconds: float = 30.0, backend="onnxruntime",
              device="cpu") -> list[dict]:
    """Real-time factor of `run` on a 1080p30 H.264 file (decode included), and of decoding alone."""
    clip = make_video(source, tmp / "1080p30.mp4", 1920, 1080, 30.0, seconds, crf=21)
    rtf, dec = [], []
    for _ in range(reps):
        dec.append(_decode_seconds(clip) / seconds)
        s = _run([clip], model, backend=backend, device=device)["sources"][0]
        rtf.append(s["realtime_factor"])
    return [{"suite": "rtf", "clip": f"1920x1080 H.264 30 fps, {seconds:g} s ({clip.stat().st_size / 1e6:.1f} MB)",
             "backend": backend, "realtime_factor": statistics.median(rtf), "decode_only_factor": round(statistics.median(dec), 4),
             "runs": rtf}]


def suite_live(model, source: Path, tmp: Path, seconds: float = 20.0, max_sources: int = 32, backend="onnxruntime",
               device="cpu", max_latency_ms: float = 500.0) -> list[dict]:
    """How many 720p30 sources, read at their own rate, are kept in real time: no dropped window and
    every window out within ``max_latency_ms`` of its last frame (p95; readers that fall behind their
    source's rate show as latency, not as drops)."""
    clip = make_video(source, tmp / "720p30.mp4", 1280, 720, 30.0, seconds, crf=21)
    rows, best = [], 0
    for n in [k for k in (1, 2, 4, 6, 8, 12, 16, 24, 32) if k <= max_sources]:
        s = _run(_copies(clip, n, tmp), model, realtime=True, backend=backend, device=device)
        dropped = sum(x["dropped_windows"] for x in s["sources"])
        p95 = max((x["latency_p95_ms"] or 0) for x in s["sources"])
        rtf = max((x["realtime_factor"] or 0) for x in s["sources"])
        ok = dropped == 0 and p95 <= max_latency_ms
        rows.append({"suite": "live", "sources": n, "dropped_windows": dropped, "windows": s["windows"],
                     "latency_p95_ms": p95, "max_realtime_factor": rtf, "kept_real_time": ok,
                     "clip": f"1280x720 H.264 30 fps, {seconds:g} s"})
        if not ok:
            break
        best = n
    for r in rows:
        r["max_sources_in_real_time"] = best
    return rows


def suite_gpu(tmp: Path, reps: int, sources: int = 32, seconds: float = 20.0, source: Path = DEFAULT_SOURCE) -> list[dict]:
    """vit-b16 on the torch backend (bf16, CUDA graphs): windows/s incremental vs full, pipeline and bare model."""
    import numpy as np
    import torch

    from ..model import create_model, make_config, save_checkpoint
    from ..data.sampling import Sampling
    from ..artifact import open_artifact
    from ..engines.runtime import open_runtime

    if not torch.cuda.is_available():
        raise RuntimeError("the gpu suite needs a CUDA device")
    cfg = make_config("vit-b16", 8, 1, num_classes=400)
    torch.manual_seed(0)
    ckpt = tmp / "vitb16.pt"
    save_checkpoint(ckpt, create_model(cfg), [f"c{i}" for i in range(400)], sampling=Sampling(1 / 6, 2, 8, "bench").to_dict())
    clip = make_video(source, tmp / "224p6.mp4", 224, 224, 6.0, seconds)  # every frame is a sampled frame
    srcs = _copies(clip, sources, tmp)
    rows = []
    got = {True: [], False: []}
    for _ in range(reps):
        for cache in (True, False):
            s = _run(srcs, str(ckpt), cache=cache, backend="torch", device="cuda", max_batch=64, queue_units=16)
            got[cache].append(s["windows_per_s"])
    inc, full = statistics.median(got[True]), statistics.median(got[False])
    rows.append({"suite": "gpu-pipeline", "sources": sources, "model": "vit-b16 bf16, CUDA graphs",
                 "incremental_windows_per_s": inc, "full_windows_per_s": full, "ratio": round(inc / full, 2),
                 "runs": got[True] + got[False]})
    # the bare model: one step of 32 sources = encoder on 32 units + head on 32 windows, vs model on 32 windows
    rt = open_runtime(open_artifact(ckpt), "torch", "cuda", forms=("encoder", "head", "model"), max_batch=64)
    rng = np.random.default_rng(0)
    units = rng.standard_normal((sources, 2, 3, 224, 224), dtype=np.float32)
    windows = rng.standard_normal((sources, 4, cfg.unit_tokens, cfg.vision.embed_dim), dtype=np.float32)
    clips = rng.standard_normal((sources, 8, 3, 224, 224), dtype=np.float32)

    def step_inc():
        rt.encoder(units)
        rt.head(windows)

    def step_full():
        rt.model(clips)

    bare = {"inc": [], "full": []}
    for f in (step_inc, step_full):
        for _ in range(5):
            f()
    for _ in range(max(5, reps)):
        for name, f in (("inc", step_inc), ("full", step_full)):
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(20):
                f()
            torch.cuda.synchronize()
            bare[name].append(20 * sources / (time.perf_counter() - t))
    bi, bf = statistics.median(bare["inc"]), statistics.median(bare["full"])
    rows.append({"suite": "gpu-bare", "sources": sources, "model": "vit-b16 bf16, CUDA graphs (host copies included)",
                 "incremental_windows_per_s": round(bi, 1), "full_windows_per_s": round(bf, 1), "ratio": round(bi / bf, 2)})
    # one clip at batch 1, host copies included: eager bf16 against the CUDA-graph replay
    from ..model import load_checkpoint

    eager_model = load_checkpoint(ckpt)[0].to("cuda", torch.bfloat16).eval()

    def eager(x):
        with torch.inference_mode():
            return eager_model(torch.from_numpy(x).to("cuda", torch.bfloat16)).float().cpu().numpy()

    one = clips[:1]
    lat = {"eager": [], "graphs": []}
    for name, f in (("eager", eager), ("graphs", rt.model)):
        for _ in range(10):
            f(one)
    for _ in range(50):
        for name, f in (("eager", eager), ("graphs", rt.model)):
            t = time.perf_counter()
            f(one)
            lat[name].append((time.perf_counter() - t) * 1e3)
    rows.append({"suite": "gpu-latency", "sources": 1, "model": "vit-b16 bf16, one 8-frame clip, host copies included",
                 "eager_ms": round(statistics.median(lat["eager"]), 3), "graphs_ms": round(statistics.median(lat["graphs"]), 3)})
    for r in rows:
        r["device"] = torch.cuda.get_device_name(0)
    return rows


def environment() -> dict:
    import av
    import numpy

    env = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.machine(),
           "processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "python": platform.python_version(), "numpy": numpy.__version__, "av": av.__version__}
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return env


def table(rows: list[dict]) -> str:
    out = []
    for r in rows:
        if r["suite"] in ("ratio", "gpu-pipeline", "gpu-bare"):
            out.append(f"| {r['suite']} | {r['sources']} | {r['incremental_windows_per_s']} | {r['full_windows_per_s']} | {r['ratio']}x |")
        elif r["suite"] == "rtf":
            out.append(f"| rtf | {r['clip']} | real-time factor {r['realtime_factor']} | decode alone {r['decode_only_factor']} | |")
        elif r["suite"] == "gpu-latency":
            out.append(f"| gpu-latency | one clip, batch 1 | CUDA graphs {r['graphs_ms']} ms | eager {r['eager_ms']} ms | |")
        elif r["suite"] == "live":
            out.append(f"| live | {r['sources']} sources | dropped {r['dropped_windows']} | p95 {r['latency_p95_ms']} ms | "
                       f"{'real time' if r['kept_real_time'] else 'behind'} |")
    return "\n".join(["| suite | sources / clip | incremental | full | ratio |", "| --- | --- | --- | --- | --- |", *out])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="all", choices=["ratio", "rtf", "live", "gpu", "all"])
    ap.add_argument("--model", default=None, help="artifact for the CPU suites (default: the bundled model, exported)")
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="real footage the test videos are made from")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=None, help="length of the made videos (per suite default)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = a.model
        if model is None and a.suite in ("ratio", "rtf", "live", "all"):
            from ..defaults import DEFAULT_MODEL
            from ..export import export_checkpoint

            export_checkpoint(DEFAULT_MODEL, tmp / "default")
            model = str(tmp / "default")
        kw = {"seconds": a.seconds} if a.seconds else {}
        if a.suite in ("ratio", "all"):
            rows += suite_ratio(model, a.source, tmp, a.reps, **kw)
        if a.suite in ("rtf", "all"):
            rows += suite_rtf(model, a.source, tmp, a.reps, **kw)
        if a.suite in ("live", "all"):
            rows += suite_live(model, a.source, tmp, **kw)
        if a.suite == "gpu":
            rows += suite_gpu(tmp, a.reps, source=a.source, **kw)
    result = {"environment": environment(), "rows": rows}
    print(table(rows))
    print(json.dumps(result))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
