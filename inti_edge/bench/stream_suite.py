"""stream: what `inti-edge run` sustains, measured through ``stream.run`` itself.

Parts (``--parts``):
- ``ratio``: windows/s of the incremental mode against ``--no-cache`` (every window re-run), windows of
  8 frames at a stride of one unit, 1 and 8 sources, the default model on ONNX Runtime (CPU); the two
  modes interleaved, medians over >= 5 runs each.
- ``rtf``: the real-time factor (wall / media seconds) of `run` with the default model on a 1080p30
  H.264 file, decoding included; decoding alone is measured too.
- ``live``: how many 720p30 sources read at their own rate (``--realtime``: live sources) the machine
  keeps in real time (no dropped window, latency p95 <= 500 ms), adding sources.
- ``gpu`` (where CUDA is present): vit-b16 (random weights: no pretrained CLIP needed) on the torch
  backend (bf16, CUDA graphs, the plugin kernel), 32 sources: windows/s incremental vs full through
  the pipeline, the bare model in the same process, and one clip at batch 1.

The test videos are made from real footage (the committed clip by default) with PyAV: its frames
re-timed to the wanted rate and scaled to the wanted size.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import Context
from .core import has_cuda, measure, returned, rnd, summarize, wall

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = ROOT / "tests" / "data" / "bbb_8s_160x90.mp4"


def make_video(src, dst, width: int, height: int, fps: float, seconds: float, crf: int = 20, preset: str = "veryfast") -> Path:
    """H.264 video of ``seconds`` at ``fps`` and ``width`` x ``height`` from ``src``'s frames in order
    (``data.transcode.retime``); reused when it exists."""
    from ..data.transcode import retime

    dst = Path(dst)
    if dst.is_file():
        return dst
    tmp = dst.with_name(dst.stem + ".part" + dst.suffix)
    retime(src, tmp, width=width, height=height, fps=fps, seconds=seconds, options={"crf": str(crf), "preset": preset},
           gop=int(round(2 * fps)))
    tmp.replace(dst)
    return dst


def _run(sources, model, **opts) -> dict:
    from ..stream import StreamOptions, run

    backend = opts.pop("backend", "auto")
    device = opts.pop("device", "auto")
    summary = run([str(s) for s in sources], model, backend=backend, device=device, opts=StreamOptions(**opts))
    if summary.failed:
        raise RuntimeError(f"a source failed: {[s.reason for s in summary.sources if s.failed]}")
    return summary.to_dict()


def _copies(src: Path, n: int, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"{src.stem}_{i}{src.suffix}"
        if not p.exists():
            shutil.copy(src, p)
        out.append(p)
    return out


def ratio(ctx: Context, model, source: Path, tmp: Path, reps: int, counts=(1, 8), backend="onnxruntime", device="cpu",
          seconds: float = 16.0, size=(320, 180), fps: float = 24.0) -> list[dict]:
    """Windows/s incremental vs --no-cache (medians of interleaved runs)."""
    clip = make_video(source, tmp / f"ratio_{seconds:g}s.mp4", *size, fps, seconds)
    rows = []
    for n in counts:
        srcs = _copies(clip, n, tmp / f"ratio{n}")
        variants = {m: (lambda cache=(m == "incremental"): _run(srcs, model, cache=cache, backend=backend, device=device)[
            "windows_per_s"]) for m in ("incremental", "full")}
        got = measure(variants, reps=reps, warmup=1, clock=returned,
                      on_rep=lambda d, t, n=n: ctx.update(f"stream ratio: {n} source(s)", d, t))
        inc, full = summarize(got["incremental"])["median"], summarize(got["full"])["median"]
        rows.append({"part": "ratio", "sources": n, "backend": backend, "clip": f"{size[0]}x{size[1]} {fps:g} fps, {seconds:g} s",
                     "incremental_windows_per_s": rnd(inc), "full_windows_per_s": rnd(full), "ratio": rnd(inc / full),
                     "runs": {k: [rnd(x) for x in v] for k, v in got.items()}})
    return rows


def _decode_seconds(path: Path) -> float:
    """Seconds to decode ``path`` as `run` opens it (the project's reader, FFmpeg's threads), frames unused."""
    import time

    from ..data.video import open_video, set_threads

    t = time.perf_counter()
    container, st = open_video(path)
    with container:
        set_threads(st, 0)
        for _ in container.decode(st):
            pass
    return time.perf_counter() - t


def rtf(ctx: Context, model, source: Path, tmp: Path, reps: int, seconds: float = 30.0, backend="onnxruntime",
        device="cpu") -> list[dict]:
    """Real-time factor of `run` on a 1080p30 H.264 file (decode included), and of decoding alone."""
    ctx.update("stream rtf: making a 1080p30 clip")
    clip = make_video(source, tmp / f"1080p30_{seconds:g}s.mp4", 1920, 1080, 30.0, seconds, crf=21)
    got = measure({"decode": lambda: _decode_seconds(clip) / seconds,
                   "run": lambda: _run([clip], model, backend=backend, device=device)["sources"][0]["realtime_factor"]},
                  reps=reps, warmup=0, clock=returned, on_rep=lambda d, t: ctx.update("stream rtf", d, t))
    return [{"part": "rtf", "clip": f"1920x1080 H.264 30 fps, {seconds:g} s ({clip.stat().st_size / 1e6:.1f} MB)",
             "backend": backend, "realtime_factor": rnd(summarize(got["run"])["median"]),
             "decode_only_factor": rnd(summarize(got["decode"])["median"]), "runs": [rnd(x) for x in got["run"]]}]


def live(ctx: Context, model, source: Path, tmp: Path, seconds: float = 20.0, counts=(1, 2, 4, 6, 8, 12, 16, 24, 32),
         backend="onnxruntime", device="cpu", max_latency_ms: float = 500.0) -> list[dict]:
    """How many 720p30 sources, read at their own rate, are kept in real time: no dropped window and
    every window out within ``max_latency_ms`` of its last frame (p95). A search, not a timing: one
    run per source count, stopping at the first that falls behind."""
    clip = make_video(source, tmp / f"720p30_{seconds:g}s.mp4", 1280, 720, 30.0, seconds, crf=21)
    rows, best = [], 0
    for i, n in enumerate(counts):
        ctx.update(f"stream live: {n} sources", i, len(counts))
        s = _run(_copies(clip, n, tmp / "live"), model, realtime=True, backend=backend, device=device)
        dropped = sum(x["dropped_windows"] for x in s["sources"])
        p95 = max((x["latency_p95_ms"] or 0) for x in s["sources"])
        ok = dropped == 0 and p95 <= max_latency_ms
        rows.append({"part": "live", "sources": n, "dropped_windows": dropped, "windows": s["windows"],
                     "latency_p95_ms": rnd(p95), "kept_real_time": ok, "max_latency_ms": max_latency_ms,
                     "clip": f"1280x720 H.264 30 fps, {seconds:g} s"})
        if not ok:
            break
        best = n
    for r in rows:
        r["max_sources_in_real_time"] = best
    return rows


def gpu(ctx: Context, tmp: Path, reps: int, sources: int = 32, seconds: float = 20.0, source: Path = DEFAULT_SOURCE) -> list[dict]:
    """vit-b16 on the torch backend (bf16, CUDA graphs): windows/s incremental vs full, pipeline and bare model."""
    import numpy as np
    import torch

    from ..artifact import open_artifact
    from ..data.sampling import Sampling
    from ..engines.runtime import open_runtime
    from ..model import create_model, load_checkpoint, make_config, save_checkpoint

    cfg = make_config("vit-b16", 8, 1, num_classes=400)
    torch.manual_seed(0)
    ckpt = tmp / "vitb16.pt"
    if not ckpt.is_file():
        save_checkpoint(ckpt, create_model(cfg), [f"c{i}" for i in range(400)], sampling=Sampling(1 / 6, 2, 8, "bench").to_dict())
    clip = make_video(source, tmp / f"224p6_{seconds:g}s.mp4", 224, 224, 6.0, seconds)  # every frame is a sampled frame
    srcs = _copies(clip, sources, tmp / "gpu")
    variants = {m: (lambda cache=(m == "incremental"): _run(srcs, str(ckpt), cache=cache, backend="torch", device="cuda",
                                                           max_batch=64, queue_units=16)["windows_per_s"])
                for m in ("incremental", "full")}
    got = measure(variants, reps=reps, warmup=1, clock=returned, on_rep=lambda d, t: ctx.update("stream gpu: pipeline", d, t))
    inc, full = summarize(got["incremental"])["median"], summarize(got["full"])["median"]
    rows = [{"part": "gpu-pipeline", "sources": sources, "model": "vit-b16 bf16, CUDA graphs",
             "incremental_windows_per_s": rnd(inc), "full_windows_per_s": rnd(full), "ratio": rnd(inc / full)}]
    # the bare model: one step of 32 sources = encoder on 32 units + head on 32 windows, vs model on 32 windows
    rt = open_runtime(open_artifact(ckpt), "torch", "cuda", forms=("encoder", "head", "model"), max_batch=64)
    rng = np.random.default_rng(0)
    units = rng.standard_normal((sources, 2, 3, 224, 224), dtype=np.float32)
    windows = rng.standard_normal((sources, 4, cfg.unit_tokens, cfg.vision.embed_dim), dtype=np.float32)
    clips = rng.standard_normal((sources, 8, 3, 224, 224), dtype=np.float32)
    bare = measure({"incremental": lambda: (rt.encoder(units), rt.head(windows)), "full": lambda: rt.model(clips)},
                   reps=max(5, reps), warmup=5, inner=20, clock=wall(torch.cuda.synchronize))
    bi, bf = (sources / summarize(bare[k])["median"] for k in ("incremental", "full"))
    rows.append({"part": "gpu-bare", "sources": sources, "model": "vit-b16 bf16, CUDA graphs (host copies included)",
                 "incremental_windows_per_s": rnd(bi), "full_windows_per_s": rnd(bf), "ratio": rnd(bi / bf)})
    # one clip at batch 1, host copies included: eager bf16 against the runtime's CUDA-graph replay
    eager_model = load_checkpoint(ckpt)[0].to("cuda", torch.bfloat16).eval()

    def eager():
        with torch.inference_mode():
            return eager_model(torch.from_numpy(clips[:1]).to("cuda", torch.bfloat16)).float().cpu().numpy()

    lat = measure({"eager": eager, "graphs": lambda: rt.model(clips[:1])}, reps=30, warmup=10, clock=wall())
    rows.append({"part": "gpu-latency", "sources": 1, "model": "vit-b16 bf16, one 8-frame clip, host copies included",
                 "eager_ms": rnd(1e3 * summarize(lat["eager"])["median"]),
                 "graphs_ms": rnd(1e3 * summarize(lat["graphs"])["median"])})
    rt.close()
    return rows


def run(ctx: Context, model: str | None = None, source: str | None = None, reps: int = 5) -> dict:
    """The stream suite: the CPU parts on the default model exported to ONNX (``model``: another artifact),
    the gpu part where CUDA is present."""
    src = Path(source) if source else DEFAULT_SOURCE
    tmp = ctx.work / "stream"
    tmp.mkdir(parents=True, exist_ok=True)
    q = ctx.quick
    cpu_parts = [p for p in ("ratio", "rtf", "live") if ctx.want(p)]
    if model is None and cpu_parts:
        from ..defaults import DEFAULT_MODEL
        from ..export import export

        if not (tmp / "default" / "encoder.onnx").is_file():
            ctx.update("stream: exporting the default model")
            export(DEFAULT_MODEL, tmp / "default")
        model = str(tmp / "default")
    rows: list[dict] = []
    errors: list[str] = []

    def part(name, fn, *a, **k):
        try:
            rows.extend(fn(ctx, *a, **k))
        except Exception as e:  # noqa: BLE001 - one part failing must not lose the others
            errors.append(f"{name}: {type(e).__name__}: {e}")
        ctx.save({"suite": "stream", "data": {"rows": rows}, "errors": errors})

    if ctx.want("ratio"):
        part("ratio", ratio, model, src, tmp, reps, counts=(1, 4) if q else (1, 8), seconds=8.0 if q else 16.0)
    if ctx.want("rtf"):
        part("rtf", rtf, model, src, tmp, reps, seconds=10.0 if q else 30.0)
    if ctx.want("live"):
        part("live", live, model, src, tmp, seconds=10.0 if q else 20.0, counts=(1, 2, 4) if q else (1, 2, 4, 6, 8, 12, 16, 24, 32))
    gpu_note = None
    if ctx.want("gpu"):
        if has_cuda():
            part("gpu", gpu, tmp, reps, seconds=10.0 if q else 20.0, source=src)
        elif ctx.parts is not None:
            errors.append("gpu: needs a CUDA GPU (none here)")
        else:
            gpu_note = "the gpu part (vit-b16 on the torch backend, 32 sources) needs a CUDA GPU: skipped here"
    return {"suite": "stream", "title": "`inti-edge run`: incremental vs full re-run, real time, many sources",
            "settings": {"cpu_parts_model": "the default model exported to ONNX, ONNX Runtime on the CPU" if cpu_parts else None,
                         "reps": reps, "source": src.name},
            "tables": tables(rows, gpu_note), "errors": errors, "plots": plots(rows), "data": {"rows": rows}}


def _what(x: dict) -> str:
    if x["part"] == "ratio":
        return f"run, {x['backend']}, {x['clip']}"
    return f"{'run' if x['part'] == 'gpu-pipeline' else 'model alone'}, {x['model']}"


def tables(rows: list[dict], gpu_note: str | None = None) -> list[dict]:
    out = []
    r = [x for x in rows if x["part"] in ("ratio", "gpu-pipeline", "gpu-bare")]
    if r:
        out.append({"title": "windows/s, incremental vs --no-cache (window 8 frames, stride 1 unit)",
                    "columns": ["what", "sources", "incremental", "--no-cache", "ratio"],
                    "rows": [[_what(x), x["sources"],
                              x["incremental_windows_per_s"], x["full_windows_per_s"], x["ratio"]] for x in r],
                    "note": gpu_note})
    for x in rows:
        if x["part"] == "rtf":
            out.append({"title": "real-time factor (wall / media seconds) of run, decode included",
                        "columns": ["clip", "run", "decoding alone"],
                        "rows": [[x["clip"], x["realtime_factor"], x["decode_only_factor"]]]})
        if x["part"] == "gpu-latency":
            out.append({"title": "one 8-frame clip at batch 1 through the torch runtime, host copies included (ms)",
                        "columns": ["model", "eager bf16", "CUDA graphs"], "rows": [[x["model"], x["eager_ms"], x["graphs_ms"]]]})
    lv = [x for x in rows if x["part"] == "live"]
    if lv:
        out.append({"title": f"live sources kept in real time (no drop, p95 <= {lv[0].get('max_latency_ms', 500):g} ms): "
                             f"{lv[0]['max_sources_in_real_time']}",
                    "columns": ["sources", "windows", "dropped", "latency p95 ms", "real time"],
                    "rows": [[x["sources"], x["windows"], x["dropped_windows"], x["latency_p95_ms"], x["kept_real_time"]] for x in lv],
                    "note": f"{lv[0]['clip']} sources read with --realtime."})
    return out


def plots(rows: list[dict]) -> list[dict]:
    r = [x for x in rows if x["part"] in ("ratio", "gpu-pipeline", "gpu-bare")]
    if not r:
        return []
    return [{"name": "stream-ratio", "title": "incremental vs --no-cache", "kind": "bar",
             "x": [f"{x['part']} {x['sources']} src" for x in r], "ylabel": "windows/s",
             "series": {"incremental": [x["incremental_windows_per_s"] for x in r],
                        "--no-cache": [x["full_windows_per_s"] for x in r]}}]
