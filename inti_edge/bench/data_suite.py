"""data: how many clips a second the CPU decodes and preprocesses, to set against the model's clips/s.

- ``clips``: the labelled-clip path (VideoClipDataset: probe, seek, decode, transform), one clip at a
  time on one torch thread (a DataLoader worker's share), and a DataLoader of N workers;
- ``motion``: the camera-motion path: decoding each video into a FrameStore once (frames/s), then clips
  cut from RAM one at a time on one thread, and whole batches with ``get_batch``.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import Context
from .core import measure, rnd, summarize

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VIDEOS = (ROOT / "tests" / "data" / "bbb_8s_160x90.mp4", ROOT / "tests" / "data" / "soccer_juggling_4s_160x120.avi")


def _one_thread(fn):
    import torch

    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)

    return run


def run(ctx: Context, videos=None, model: str = "small", frames: int = 8, mode: str = "train", batch_size: int = 16,
        workers=None, device: str = "cpu") -> dict:
    import time

    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from ..data.clips import VideoClipDataset
    from ..data.motion import CameraMotionDataset, auto_short_side
    from ..data.store import FrameStore
    from ..data.transforms import ClipTransform
    from ..model.config import make_config

    videos = [str(v) for v in (videos or DEFAULT_VIDEOS)]
    cfg = make_config(model, frames=frames, halvings=1)
    workers = workers if workers is not None else ([] if ctx.quick else [2])
    inner = 4 if ctx.quick else 16
    # the labelled-clip path
    ds = VideoClipDataset([(v, 0) for v in videos], ["any"], frames=cfg.frames,
                          transform=ClipTransform.from_config(cfg, train=mode == "train"), decode_short_side="auto")
    order = iter(RandomSampler(ds, replacement=True, num_samples=10**9, generator=torch.Generator().manual_seed(0)))
    # the motion path: decode once into RAM
    short = auto_short_side(cfg.vision.image_size)
    stores, loads = [], []
    for v in videos:
        ctx.update(f"data: FrameStore of {Path(v).name}")
        t0 = time.perf_counter()
        st = FrameStore.from_video(v, short_side=short)
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        st.motion()  # the footage's own motion, measured once per video for the apparent-motion labels
        own = time.perf_counter() - t0
        loads.append({"video": Path(v).name, "frames": len(st), "size": [st.width, st.height], "seconds": rnd(dt),
                      "frames_per_s": rnd(len(st) / dt), "own_motion_seconds": rnd(own)})
        stores.append(st.to(device))
    mds = CameraMotionDataset(stores, "train", frames=cfg.frames, size=cfg.vision.image_size, mean=cfg.mean, std=cfg.std)
    k = iter(range(10**9))

    def batch():
        x, _ = mds.get_batch([next(k) % len(mds) for _ in range(batch_size)])
        if x.is_cuda:
            torch.cuda.synchronize()

    cases = {"clip path, 1 thread": (_one_thread(lambda: ds[next(order)]), 1),  # (call, clips per call)
             "motion clip plan, 1 thread": (_one_thread(lambda: mds.plan(next(k) % len(mds))), 1),
             "motion clip from RAM, 1 thread": (_one_thread(lambda: mds[next(k) % len(mds)]), 1),
             f"motion get_batch({batch_size}), {device}": (batch, batch_size)}
    samples = measure({name: fn for name, (fn, _) in cases.items()}, reps=5, warmup=2, inner=inner,
                      on_rep=lambda d, t: ctx.update("data: clips", d, t))
    rows, data = [], {"stores": loads, "variants": {}}
    for name, s in samples.items():
        rates = [cases[name][1] / x for x in s]
        st = summarize(rates)
        data["variants"][name] = {"clips_per_s": rnd(st["median"]), "min_clips_per_s": rnd(st["min"]), "n": st["n"]}
        rows.append([name, rnd(st["median"]), rnd(1e3 / st["median"])])
    for n in workers:
        sampler = RandomSampler(ds, replacement=True, num_samples=10**9, generator=torch.Generator().manual_seed(1))
        it = iter(DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=n, prefetch_factor=4))
        s = measure({"loader": lambda: next(it)}, reps=5, warmup=n + 1, inner=2,
                    on_rep=lambda d, t, n=n: ctx.update(f"data: DataLoader {n} workers", d, t))["loader"]
        med = summarize([batch_size / x for x in s])["median"]
        data["variants"][f"DataLoader, {n} workers"] = {"clips_per_s": rnd(med)}
        rows.append([f"clip path, DataLoader of {n} workers", rnd(med), rnd(1e3 / med)])
        del it
    return {"suite": "data", "title": "decode + preprocess clips/s on the CPU",
            "settings": {"model": model, "image_size": cfg.vision.image_size, "frames": frames, "mode": mode,
                         "videos": [Path(v).name for v in videos], "cores": os.cpu_count()},
            "tables": [{"title": f"{model} input ({frames} x {cfg.vision.image_size} px), {mode} transform",
                        "columns": ["path", "clips/s", "ms per clip"], "rows": rows,
                        "note": "FrameStore decoding: " + "; ".join(f"{x['video']} {x['frames']} frames at "
                                                                  f"{x['frames_per_s']} frames/s, own motion measured in "
                                                                  f"{x['own_motion_seconds']} s" for x in loads) + "."}],
            "plots": [{"name": "data-rate", "title": "decode + preprocess", "kind": "bar", "x": [r[0] for r in rows],
                       "ylabel": "clips/s", "series": {"clips/s": [r[1] for r in rows]}}],
            "data": data}
