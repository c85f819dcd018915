"""Benchmark of the TokenInterpolation CUDA kernel against PyTorch on one GPU.

    python plugins/token_interpolation/bench.py [--P 128 --grid 14 14 --C 768 --dtypes f16 f32] [--json out.json]

Times, per dtype, with CUDA events around each single call (after an L2 flush, and with the GPU kept
busy while the host enqueues it, so host launch overhead is not counted), variants interleaved in
every repetition, medians over the repetitions:
  kernel      inti_edge.plugin.kernels.token_interpolation (the path it picks: the split path for every
              dtype; the fallback where split cannot run)
  split       the split path, where it is not the default (streaming kernels: W_in pack, projection
              on tensor cores, weights, blend + CLS); split-warpw (--sp-weights): with its warp-per-token
              weights kernel; split-nopdl (--no-pdl): with plain launches
  fallback    the three-kernel fallback path
  eager       the reference module (inti_edge.model.interpolation.TokenInterpolation) in that dtype
  compile     torch.compile of the reference module
Effective bandwidth = (bytes of x read once + bytes of out written) / time, as a fraction of the
device-to-device copy bandwidth (bytes read + written) measured in the same run.
L2 flush (--flush): "read" (default) reads a 256 MiB buffer before each timed call, so L2 holds only
clean lines and no write-back of earlier data is charged to the call; "write" zeroes it (the older
method: the L2 is then full of dirty lines that the timed call pays to write back, up to ~50 MB on
an H100 / H200 - a fixed cost that weighs on a 116 MB kernel far more than on the 2 GiB copy).
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from inti_edge.plugin import kernels  # noqa: E402
from inti_edge.model.interpolation import InterpolationConfig, TokenInterpolation  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def random_module(C, grid, cfg: InterpolationConfig, seed=0, device="cuda") -> TokenInterpolation:
    return TokenInterpolation(C, grid, cfg).randomize_(torch.Generator().manual_seed(seed)).eval().to(device)


def on(module: torch.nn.Module, x: torch.Tensor, dtype=None) -> torch.nn.Module:
    """A copy of module on x's device (in dtype, default x's): eager / compile / float64 reference
    never mix devices, whatever device the base module lives on."""
    return copy.deepcopy(module).to(device=x.device, dtype=dtype or x.dtype)


def reference(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return on(module, x, torch.float64)(x.double())


def l2_flusher(mode: str = "read", nbytes: int = 256 << 20):
    """A function that evicts x / out from L2 before a timed call: "read" reads a buffer (dirty lines are
    written back now, not in the timed call), "write" zeroes it (leaves dirty lines behind)."""
    buf = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    return (lambda: buf.sum()) if mode == "read" else buf.zero_


def with_env(name: str, value: str, fn):
    """fn, run with the environment variable name set to value (switches the kernels read at each launch)."""
    def run():
        os.environ[name] = value
        try:
            return fn()
        finally:
            del os.environ[name]
    return run


def time_one(fn, flush) -> float:
    """GPU time of fn() alone: L2 flushed first (``flush()``, from l2_flusher); the GPU is kept busy
    (sleep kernel) while the host enqueues, so launch gaps of multi-kernel variants (eager) are not
    counted against them."""
    flush()
    if hasattr(torch.cuda, "_sleep"):
        torch.cuda._sleep(2_000_000)  # ~1 ms of GPU cycles, enough to enqueue every kernel of fn
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3  # us


def copy_bandwidth(flush, nbytes=1 << 30, reps=15) -> tuple[float, float]:
    """Median device-to-device copy time (us) of nbytes and its bandwidth in GB/s (read + written)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").normal_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    ts = [time_one(lambda: dst.copy_(src), flush) for _ in range(reps)]
    t = statistics.median(ts)
    del src, dst
    return t, 2 * nbytes / (t * 1e-6) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--P", type=int, default=128, help="frame pairs (batch 32 x 8 frames -> 128)")
    ap.add_argument("--grid", type=int, nargs=2, default=(14, 14))
    ap.add_argument("--C", type=int, default=768)
    ap.add_argument("--dtypes", nargs="+", default=["f16", "f32"], choices=sorted(DTYPES))
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--json", type=Path, help="also write the JSON result here")
    ap.add_argument("--flush", choices=["read", "write"], default="read", help="how L2 is flushed before each timed call")
    ap.add_argument("--sp-weights", action="store_true",
                    help="also time the split path with its fallback weights kernel (INTI_TI_SP_WEIGHTS=warp)")
    ap.add_argument("--no-pdl", action="store_true",
                    help="also time the split path with plain launches (INTI_TI_PDL=0: no programmatic dependent launch)")
    args = ap.parse_args()

    if not kernels.available():
        raise SystemExit(f"kernels unavailable: {kernels.load_error()}")
    torch.backends.cuda.matmul.allow_tf32 = False  # the eager / compiled reference in true fp32
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.cuda.get_device_name()
    flush = l2_flusher(args.flush)
    copy_us, copy_gbs = copy_bandwidth(flush)
    print(f"device: {dev}; copy of 1 GiB: {copy_us:.0f} us = {copy_gbs:.0f} GB/s (read + write); L2 flush: {args.flush}")

    H, W = args.grid
    N = 1 + H * W
    cfg = InterpolationConfig()
    base = random_module(args.C, (H, W), cfg)
    results = {"device": dev, "copy_GBps": round(copy_gbs, 1), "flush": args.flush, "shape": [args.P, 2, N, args.C], "cfg": cfg.to_dict(),
               "dtypes": {}}
    rows = []
    for name in args.dtypes:
        dtype = DTYPES[name]
        gen = torch.Generator(device="cuda").manual_seed(1)
        x = torch.randn(args.P, 2, N, args.C, device="cuda", generator=gen).to(dtype)
        m = on(base, x)
        es = x.element_size()
        nbytes = x.numel() * es + args.P * N * args.C * es
        plan = kernels.plan(x, base)
        variants = {"kernel": lambda: kernels.token_interpolation(x, base)}

        def split():
            return kernels.token_interpolation(x, base, variant="split")

        if plan.get("path") != "split" and kernels.plan(x, base, variant="split")["path"] == "split":
            variants["split"] = split
        for wk in ("warp",) if args.sp_weights and plan.get("path") == "split" else ():
            variants[f"split-{wk}w"] = with_env("INTI_TI_SP_WEIGHTS", wk, split)
        if args.no_pdl and kernels.plan(x, base, variant="split")["path"] == "split":
            variants["split-nopdl"] = with_env("INTI_TI_PDL", "0", split)
        variants["fallback"] = lambda: kernels.token_interpolation(x, base, path="fallback")
        variants["eager"] = lambda: m(x)
        compile_s = None
        if not args.no_compile:
            t0 = time.time()
            try:
                mc = torch.compile(m)
                with torch.no_grad():
                    mc(x)
                torch.cuda.synchronize()
                variants["compile"] = lambda: mc(x)
            except Exception as e:  # report, keep the other variants
                print(f"torch.compile failed for {name}: {type(e).__name__}: {e}")
            compile_s = time.time() - t0
        # correctness of every variant against float64
        with torch.no_grad():
            ref = reference(base, x)
            errs = {}
            for k, fn in list(variants.items()):  # a variant that fails is reported and dropped, not fatal
                try:
                    errs[k] = (fn().double() - ref).abs().max().item()
                except Exception as e:
                    print(f"{name} {k} failed: {type(e).__name__}: {e}")
                    del variants[k]
        del ref
        times = {k: [] for k in variants}
        with torch.no_grad():
            for fn in variants.values():  # warm-up
                for _ in range(3):
                    fn()
            torch.cuda.synchronize()
            keys = list(variants)
            for rep in range(args.reps):
                for k in keys[rep % len(keys):] + keys[: rep % len(keys)]:  # interleaved, rotating order
                    times[k].append(time_one(variants[k], flush))
        med = {k: statistics.median(v) for k, v in times.items()}
        plan["split_plan"] = kernels.plan(x, base, variant="split")  # for the record where the default differs
        d = {"plan": plan, "bytes": nbytes, "ideal_us_at_copy_bw": nbytes / (copy_gbs * 1e9) * 1e6,
             "compile_s": compile_s, "variants": {}}
        for k in variants:
            gbs = nbytes / (med[k] * 1e-6) / 1e9
            v = {"median_us": round(med[k], 2), "min_us": round(min(times[k]), 2), "GBps": round(gbs, 1),
                 "frac_copy_bw": round(gbs / copy_gbs, 3), "max_abs_err_vs_f64": errs[k]}
            if "eager" in med:
                v["speedup_vs_eager"] = round(med["eager"] / med[k], 2)
            if "compile" in med:
                v["speedup_vs_compile"] = round(med["compile"] / med[k], 2)
            d["variants"][k] = v
            rows.append((name, k, v))
            print(f"  {name} {k:10} {v['median_us']:8.1f} us {100 * v['frac_copy_bw']:5.1f}% copy "  # early, in case of a timeout
                  f"x{v.get('speedup_vs_eager', float('nan')):.2f} eager, max|err| {v['max_abs_err_vs_f64']:.2e}", flush=True)
        results["dtypes"][name] = d
        del x, m

    print(f"\nP={args.P} N={N} C={args.C} ({', '.join(args.dtypes)}); copy bandwidth {copy_gbs:.0f} GB/s; "
          f"medians of {args.reps} interleaved event-timed runs, L2 flushed before each")
    hdr = f"{'dtype':5} {'variant':10} {'median us':>10} {'GB/s':>7} {'% copy':>7} {'x eager':>8} {'x compile':>9} {'max|err|':>9}"
    print(hdr)
    print("-" * len(hdr))
    for name, k, v in rows:
        print(f"{name:5} {k:10} {v['median_us']:10.1f} {v['GBps']:7.0f} {100 * v['frac_copy_bw']:6.1f}% "
              f"{v.get('speedup_vs_eager', float('nan')):8.2f} {v.get('speedup_vs_compile', float('nan')):9.2f} "
              f"{v['max_abs_err_vs_f64']:9.2e}")
    for name, d in results["dtypes"].items():
        print(f"{name}: plan {d['plan']}; ideal at copy bandwidth {d['ideal_us_at_copy_bw']:.1f} us; "
              f"torch.compile took {d['compile_s'] or 0:.0f} s")
    line = json.dumps(results)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")


if __name__ == "__main__":
    main()
