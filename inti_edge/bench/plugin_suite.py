"""plugin: the TokenInterpolation CUDA kernel against PyTorch eager and torch.compile on one GPU.

Per dtype, every variant is timed with CUDA events around one call, after an L2 flush and with the GPU
kept busy while the host enqueues it (so host launch overhead is not counted), variants interleaved in
every repetition, medians over the repetitions (``event_clock``, a clock of ``core.measure``):
  kernel      inti_edge.plugin.kernels.token_interpolation (the path it picks: split for every dtype;
              the fallback where split cannot run)
  split       the split path, where it is not the default; split-warpw (sp_weights): its warp-per-token
              weights kernel; split-nopdl (no_pdl): plain launches
  fallback    the three-kernel fallback path
  eager       the reference module (inti_edge.model.interpolation.TokenInterpolation) in that dtype
  compile     torch.compile of the reference module
Effective bandwidth = (bytes of x read once + bytes of out written) / time, as a fraction of the
device-to-device copy bandwidth (bytes read + written) measured in the same run.
L2 flush: "read" (default) reads a 256 MiB buffer before each timed call, so L2 holds only clean lines
and no write-back of earlier data is charged to the call; "write" zeroes it (the older method: the L2
is then full of dirty lines that the timed call pays to write back).

    python plugins/token_interpolation/bench.py [--P 128 --grid 14 14 --C 768 --dtypes f16 f32] [--json out.json]

runs this suite alone with the options of the old script (a shim).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

from . import Context
from .core import measure, rnd, summarize

DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def random_module(C, grid, cfg=None, seed=0, device="cuda"):
    from ..model.interpolation import InterpolationConfig, TokenInterpolation

    import torch

    return TokenInterpolation(C, grid, cfg or InterpolationConfig()).randomize_(torch.Generator().manual_seed(seed)).eval().to(device)


def on(module, x, dtype=None):
    """A copy of module on x's device (in dtype, default x's)."""
    return copy.deepcopy(module).to(device=x.device, dtype=dtype or x.dtype)


def reference(module, x):
    import torch

    with torch.no_grad():
        return on(module, x, torch.float64)(x.double())


def l2_flusher(mode: str = "read", nbytes: int = 256 << 20):
    """A function that evicts x / out from L2 before a timed call: "read" reads a buffer (dirty lines are
    written back now, not in the timed call), "write" zeroes it (leaves dirty lines behind)."""
    import torch

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


def event_clock(flush):
    """A ``core.measure`` clock: GPU time (us) of one call alone, L2 flushed first; the GPU is kept busy
    (sleep kernel) while the host enqueues, so launch gaps of multi-kernel variants are not counted."""
    import torch

    def clock(fn, inner: int) -> float:
        ts = []
        for _ in range(inner):
            flush()
            if hasattr(torch.cuda, "_sleep"):
                torch.cuda._sleep(2_000_000)  # ~1 ms of GPU cycles, enough to enqueue every kernel of fn
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            ts.append(start.elapsed_time(end) * 1e3)
        return sum(ts) / len(ts)

    return clock


def copy_bandwidth(flush, nbytes=1 << 30, reps=15) -> tuple[float, float]:
    """Median device-to-device copy time (us) of nbytes and its bandwidth in GB/s (read + written)."""
    import torch

    src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").normal_()
    dst = torch.empty_like(src)
    t = summarize(measure({"copy": lambda: dst.copy_(src)}, reps=reps, warmup=3, clock=event_clock(flush))["copy"])["median"]
    del src, dst
    return t, 2 * nbytes / (t * 1e-6) / 1e9


def measure_dtype(name: str, base, P: int, N: int, C: int, flush, copy_gbs: float, reps: int, compile: bool = True,
                  sp_weights: bool = False, no_pdl: bool = False, log=print, on_rep=None) -> dict:
    import torch

    from ..plugin import kernels

    dtype = getattr(torch, DTYPES[name])
    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(P, 2, N, C, device="cuda", generator=gen).to(dtype)
    m = on(base, x)
    es = x.element_size()
    nbytes = x.numel() * es + P * N * C * es
    plan = kernels.plan(x, base)
    variants = {"kernel": lambda: kernels.token_interpolation(x, base)}

    def split():
        return kernels.token_interpolation(x, base, variant="split")

    split_ok = kernels.plan(x, base, variant="split")["path"] == "split"
    if plan.get("path") != "split" and split_ok:
        variants["split"] = split
    if sp_weights and plan.get("path") == "split":
        variants["split-warpw"] = with_env("INTI_TI_SP_WEIGHTS", "warp", split)
    if no_pdl and split_ok:
        variants["split-nopdl"] = with_env("INTI_TI_PDL", "0", split)
    variants["fallback"] = lambda: kernels.token_interpolation(x, base, path="fallback")
    variants["eager"] = lambda: m(x)
    compile_s = None
    if compile:
        t0 = time.time()
        try:
            mc = torch.compile(m)
            with torch.no_grad():
                mc(x)
            torch.cuda.synchronize()
            variants["compile"] = lambda: mc(x)
        except Exception as e:  # noqa: BLE001 - report, keep the other variants
            log(f"plugin: torch.compile failed for {name}: {type(e).__name__}: {e}")
        compile_s = round(time.time() - t0, 1)
    errs = {}
    with torch.no_grad():  # correctness of every variant against float64; a failing one is reported and dropped
        ref = reference(base, x)
        for k, fn in list(variants.items()):
            try:
                errs[k] = (fn().double() - ref).abs().max().item()
            except Exception as e:  # noqa: BLE001
                log(f"plugin: {name} {k} failed: {type(e).__name__}: {e}")
                del variants[k]
        del ref
        times = measure(variants, reps=reps, warmup=3, clock=event_clock(flush), on_rep=on_rep)
    med = {k: summarize(v)["median"] for k, v in times.items()}
    plan["split_plan"] = kernels.plan(x, base, variant="split")
    d = {"plan": plan, "bytes": nbytes, "ideal_us_at_copy_bw": rnd(nbytes / (copy_gbs * 1e9) * 1e6, 4), "compile_s": compile_s,
         "variants": {}}
    for k in variants:
        gbs = nbytes / (med[k] * 1e-6) / 1e9
        v = {"median_us": round(med[k], 2), "min_us": round(min(times[k]), 2), "p95_us": round(summarize(times[k])["p95"], 2),
             "GBps": round(gbs, 1), "frac_copy_bw": round(gbs / copy_gbs, 3), "max_abs_err_vs_f64": errs[k]}
        if "eager" in med:
            v["speedup_vs_eager"] = round(med["eager"] / med[k], 2)
        if "compile" in med:
            v["speedup_vs_compile"] = round(med["compile"] / med[k], 2)
        d["variants"][k] = v
        log(f"  {name} {k:10} {v['median_us']:8.1f} us {100 * v['frac_copy_bw']:5.1f}% copy "
            f"x{v.get('speedup_vs_eager', float('nan')):.2f} eager, max|err| {v['max_abs_err_vs_f64']:.2e}")
    del x, m
    return d


def run(ctx: Context, P: int = 128, grid=(14, 14), C: int = 768, dtypes=("bf16", "f16", "f32"), reps: int | None = None,
        compile: bool = True, flush: str = "read", sp_weights: bool = False, no_pdl: bool = False) -> dict:
    import torch

    from ..plugin import kernels

    ctx.update("plugin: building the kernels (first use)")
    if not kernels.available():
        return {"suite": "plugin", "title": "TokenInterpolation kernel vs PyTorch",
                "skipped": f"kernels unavailable: {kernels.load_error()}"}
    reps = reps or (10 if ctx.quick else 30)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the eager / compiled reference in true fp32
    torch.backends.cudnn.allow_tf32 = False
    try:
        fl = l2_flusher(flush)
        copy_us, copy_gbs = copy_bandwidth(fl)
        H, W = grid
        N = 1 + H * W
        base = random_module(C, (H, W))
        res = {"device": torch.cuda.get_device_name(), "copy_GBps": round(copy_gbs, 1), "flush": flush,
               "shape": [P, 2, N, C], "cfg": base.cfg.to_dict(), "dtypes": {}}
        for name in dtypes:
            res["dtypes"][name] = measure_dtype(name, base, P, N, C, fl, copy_gbs, reps, compile, sp_weights, no_pdl,
                                                log=ctx.log, on_rep=lambda d, t, n=name: ctx.update(f"plugin: {n}", d, t))
            ctx.save({"suite": "plugin", "data": res})
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    rows = [[name, k, v["median_us"], v["p95_us"], v["GBps"], round(100 * v["frac_copy_bw"], 1), v.get("speedup_vs_eager"),
             v.get("speedup_vs_compile"), float(f"{v['max_abs_err_vs_f64']:.2e}")]
            for name, d in res["dtypes"].items() for k, v in d["variants"].items()]
    names = list(dict.fromkeys(r[1] for r in rows))
    return {"suite": "plugin", "title": "TokenInterpolation kernel vs PyTorch eager and torch.compile",
            "settings": {"shape (P, 2, N, C)": [P, 2, N, C], "reps": reps, "l2_flush": flush, "copy_GBps": res["copy_GBps"]},
            "tables": [{"title": f"one call, P={P} pairs, {H}x{W}+CLS tokens, C={C} (us)",
                        "columns": ["dtype", "variant", "median us", "p95 us", "GB/s", "% copy bw", "x eager", "x compile",
                                    "max abs err vs f64"], "rows": rows,
                        "note": "CUDA events around one call, L2 flushed before each, variants interleaved; GB/s counts x "
                                "read once + out written, against a device-to-device copy measured in the same run."}],
            "plots": [{"name": "plugin-time", "title": f"TokenInterpolation, P={P}, N={N}, C={C}", "kind": "bar",
                       "x": list(res["dtypes"]), "ylabel": "us per call (median)",
                       "series": {k: [res["dtypes"][d]["variants"].get(k, {}).get("median_us") for d in res["dtypes"]]
                                  for k in names}}],
            "data": res}


def main(argv=None) -> None:
    """The old plugins/token_interpolation/bench.py command line: this suite alone, a table, one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--P", type=int, default=128, help="frame pairs (batch 32 x 8 frames -> 128)")
    ap.add_argument("--grid", type=int, nargs=2, default=(14, 14))
    ap.add_argument("--C", type=int, default=768)
    ap.add_argument("--dtypes", nargs="+", default=["f16", "f32"], choices=sorted(DTYPES))
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--json", type=Path, help="also write the JSON result here")
    ap.add_argument("--flush", choices=["read", "write"], default="read", help="how L2 is flushed before each timed call")
    ap.add_argument("--sp-weights", action="store_true", help="also the split path with its warp-per-token weights kernel")
    ap.add_argument("--no-pdl", action="store_true", help="also the split path with plain launches (INTI_TI_PDL=0)")
    a = ap.parse_args(argv)
    from .report import table_md

    res = run(Context(log=print), P=a.P, grid=tuple(a.grid), C=a.C, dtypes=a.dtypes, reps=a.reps, compile=not a.no_compile,
              flush=a.flush, sp_weights=a.sp_weights, no_pdl=a.no_pdl)
    if res.get("skipped"):
        raise SystemExit(res["skipped"])
    print(table_md(res["tables"][0]))
    line = json.dumps(res["data"])
    print(line)
    if a.json:
        a.json.write_text(line + "\n")
