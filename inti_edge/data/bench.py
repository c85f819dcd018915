"""How many clips a second the CPU can decode and preprocess, to set against the model's clips/s.

    python -m inti_edge.data.bench VIDEO [VIDEO ...] [--model small] [--frames 8] [--mode train]
        [--workers 0,2,4] [--batch-size 16] [--seconds 10] [--decode-short-side auto] [--motion]

Measures (prints one JSON object):
- ``clips``: the labelled-clip path (VideoClipDataset: probe, seek, decode, transform) over VIDEO,
  one process with one torch thread as in a worker (``per_worker``), then a DataLoader of N workers
  for each N in ``--workers``.
- ``motion`` (with --motion): the camera-motion path: decoding each VIDEO into a FrameStore once
  (frames/s) and measuring its own motion once (``--labels apparent``, the default), then clips/s cut
  from RAM: clip plans alone on one thread (what a worker does with ``--data-on-device``), one clip at a
  time on one thread (a DataLoader worker's share) and whole batches with ``get_batch`` on ``--device``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch


def _rate(fn, seconds: float, warmup: int = 2, threads: int | None = None) -> dict:
    """Call ``fn`` (returns clips done) until ``seconds`` pass; clips/s after ``warmup`` calls.
    ``threads``: torch threads meanwhile (1 = as in a DataLoader worker, which torch sets so)."""
    if threads is not None:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return _rate(fn, seconds, warmup)
        finally:
            torch.set_num_threads(before)
    for _ in range(warmup):
        fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += fn()
    dt = time.perf_counter() - t0
    return {"clips": n, "seconds": round(dt, 2), "clips_per_s": round(n / dt, 1)}


def bench_clips(videos, cfg, train: bool, workers, batch_size: int, seconds: float, decode_short_side, span, threads) -> dict:
    from torch.utils.data import DataLoader, RandomSampler

    from .clips import VideoClipDataset
    from .transforms import ClipTransform

    ds = VideoClipDataset(
        [(v, 0) for v in videos],
        ["any"],
        frames=cfg.frames,
        transform=ClipTransform.from_config(cfg, train=train),
        span=span,
        decode_short_side=decode_short_side,
        threads=threads,
    )
    g = torch.Generator().manual_seed(0)
    order = iter(RandomSampler(ds, replacement=True, num_samples=10**9, generator=g))

    def one():
        ds[next(order)]
        return 1

    out = {"per_worker": _rate(one, seconds, threads=1), "decode_short_side": ds.decode_short_side, "dataloader": []}
    for n in workers:
        if n == 0:
            continue
        sampler = RandomSampler(ds, replacement=True, num_samples=10**9, generator=g)
        loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=n, prefetch_factor=4)
        it = iter(loader)

        def batch():
            x, _ = next(it)
            return x.shape[0]

        r = _rate(batch, seconds, warmup=n + 1)
        out["dataloader"].append({"workers": n, **r})
        del it, loader
    return out


def bench_motion(videos, cfg, batch_size: int, seconds: float, short_side, device: str, labels: str = "apparent") -> dict:
    from .motion import CameraMotionDataset, MotionConfig, auto_short_side
    from .store import FrameStore

    short_side = short_side or auto_short_side(cfg.vision.image_size)
    stores, loads = [], []
    for v in videos:
        t0 = time.perf_counter()
        st = FrameStore.from_video(v, short_side=short_side)
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        if labels == "apparent":
            st.motion()
        measured = time.perf_counter() - t0
        loads.append({"video": os.path.basename(v), "frames": len(st), "size": [st.width, st.height],
                      "mib": round(st.nbytes / 2**20), "seconds": round(dt, 2), "frames_per_s": round(len(st) / dt, 1),
                      "own_motion_seconds": round(measured, 2)})
        stores.append(st.to(device))
    ds = CameraMotionDataset(stores, "train", frames=cfg.frames, size=cfg.vision.image_size, mean=cfg.mean, std=cfg.std,
                             config=MotionConfig(labels=labels))
    k = iter(range(10**9))

    def plan():
        ds.plan(next(k) % len(ds))
        return 1

    def one():
        ds[next(k) % len(ds)]
        return 1

    def batch():
        x, _ = ds.get_batch([next(k) % len(ds) for _ in range(batch_size)])
        if x.is_cuda:
            torch.cuda.synchronize()
        return batch_size

    return {"short_side": short_side, "device": device, "labels": labels, "stores": loads,
            "plans_one_thread": _rate(plan, seconds, threads=1), "per_clip_one_thread": _rate(one, seconds, threads=1), "get_batch": _rate(batch, seconds)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m inti_edge.data.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("videos", nargs="+", metavar="VIDEO")
    ap.add_argument("--model", default="small", help="model preset: small, vit-b16, vit-l14 (input size)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--mode", choices=("train", "eval"), default="train")
    ap.add_argument("--workers", default="0,2", help="DataLoader worker counts, comma separated")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    ap.add_argument("--decode-short-side", default="auto", help="'auto' (the transform's need), 'full', or pixels")
    ap.add_argument("--span", type=float, default=None, help="seconds a clip covers (default: whole video)")
    ap.add_argument("--threads", type=int, default=1, help="decoder threads per worker")
    ap.add_argument("--motion", action="store_true", help="also the camera-motion FrameStore path")
    ap.add_argument("--motion-only", action="store_true")
    ap.add_argument("--short-side", type=int, default=None, help="FrameStore short side (default: auto)")
    ap.add_argument("--device", default="cpu", help="where motion clips are cut (cpu, cuda)")
    ap.add_argument("--labels", default="apparent", choices=("apparent", "virtual"), help="motion label rule")
    a = ap.parse_args(argv)

    from ..model.config import make_config

    cfg = make_config(a.model, frames=a.frames, halvings=0 if a.frames % 2 else 1)
    dss = {"auto": "auto", "full": None}.get(a.decode_short_side)
    dss = dss if a.decode_short_side in ("auto", "full") else int(a.decode_short_side)
    workers = [int(w) for w in a.workers.split(",") if w.strip()]
    report = {
        "settings": {"model": a.model, "image_size": cfg.vision.image_size, "frames": cfg.frames, "mode": a.mode,
                     "batch_size": a.batch_size, "span": a.span, "threads": a.threads, "videos": a.videos},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
    }
    if not a.motion_only:
        report["clips"] = bench_clips(a.videos, cfg, a.mode == "train", workers, a.batch_size, a.seconds, dss, a.span, a.threads)
    if a.motion or a.motion_only:
        report["motion"] = bench_motion(a.videos, cfg, a.batch_size, a.seconds, a.short_side, a.device, a.labels)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
