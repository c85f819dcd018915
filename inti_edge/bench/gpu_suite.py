"""gpu: vit-b16 video models on one GPU: naive / InTI-1 / InTI-2, eager / torch.compile / CUDA graphs, the
plugin kernel on / off, fp32 / fp16 / bf16, batch 1..64; MFU against a matmul measured in the same run;
peak memory; training steps. Random weights (timing does not depend on them).

Parts (``--parts``), in the order they run (cheap first, so a time limit costs the least):
- ``infer``: bf16 weights, batch 32 and batch 1: every model x {eager, graphs} (InTI with and without
  the kernel, and with SDPA attention in the blocks: ``sdpa``), interleaved per batch;
- ``sweep``: CUDA graphs, batch 1..64, naive / InTI-1 / InTI-2 (kernel on);
- ``dtypes``: fp32 / fp16 / bf16 at batch 32, CUDA graphs (MFU against that dtype's matmul);
- ``train``: bf16 autocast training steps (forward, backward, AdamW), batch 32;
- ``compile``: torch.compile (default mode) and torch.compile captured in a CUDA graph, batch 32 then 1,
  most telling variants first, until the time budget is spent (each compile costs tens of seconds).
Figures: clips/s = batch / median seconds per call (calls back to back, synchronized at the ends of a
repetition); batch-1 latency = median time of one synchronized call (input already on the GPU); MFU =
counted FLOPs (2 x GMACs of ``model.flops``) x clips/s / the dtype's dense matmul FLOP/s measured here.
"""

from __future__ import annotations

import copy
import time

from . import Context
from .core import measure, rnd, summarize, wall

HALVINGS = {"naive": 0, "InTI-1": 1, "InTI-2": 2}
DEV = "cuda"  # tests set "cpu" to run the suite's plumbing on a tiny model (no graphs, no kernel, no memory figures)


def _sync() -> None:
    import torch

    if DEV == "cuda":
        torch.cuda.synchronize()


def use_sdpa(model) -> bool:
    """Replace each open_clip block's nn.MultiheadAttention (batch_first blocks only) with its self-attention
    as one fused qkv projection + F.scaled_dot_product_attention (flash / memory-efficient kernels), same
    weights."""
    import torch
    import torch.nn.functional as F

    class SDPAAttention(torch.nn.Module):
        def __init__(self, mha):
            super().__init__()
            self.mha, self.h = mha, mha.num_heads

        def forward(self, q, k=None, v=None, need_weights=False, attn_mask=None, **kw):
            B, N, C = q.shape
            qkv = F.linear(q, self.mha.in_proj_weight, self.mha.in_proj_bias).view(B, N, 3, self.h, C // self.h)
            qh, kh, vh = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, N, C/h) each
            o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=attn_mask)
            return self.mha.out_proj(o.transpose(1, 2).reshape(B, N, C)), None

    blocks = model.visual.transformer.resblocks
    if not all(getattr(b.attn, "batch_first", False) for b in blocks):
        return False
    for b in blocks:
        b.attn = SDPAAttention(b.attn)
    return True


def matmul_flops(dtype, n: int = 8192, reps: int = 5) -> float:
    """Dense matmul FLOP/s of this GPU in ``dtype`` (n x n x n), median of interleaved repetitions."""
    import torch

    n = n if DEV == "cuda" else 256
    a = torch.randn(n, n, device=DEV, dtype=dtype)
    b = torch.randn(n, n, device=DEV, dtype=dtype)
    s = measure({"mm": lambda: a @ b}, reps=reps, warmup=3, inner=10, clock=wall(_sync))["mm"]
    return 2 * n**3 / summarize(s)["median"]


def keep_alive(replay, *objs):
    """``replay`` as a function that holds ``objs``: a captured graph replays raw pointers into its model's
    weights and its static input, and each later capture empties the CUDA cache (``torch.cuda.graph``), so a
    model freed while its graph lives hands that memory back to the driver and the next replay reads
    unmapped memory (the illegal memory access of the dtypes group, where only the graphs held the models)."""
    def run():
        return replay()
    run.keep = objs
    return run


def capture(fn, x):
    """``fn(x)`` captured in a CUDA graph (warm-up on a side stream first); returns the replay, which keeps
    ``fn`` and ``x`` alive as long as it lives."""
    import torch

    if DEV != "cuda":
        raise RuntimeError("CUDA graphs need a CUDA device")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn(x)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, capture_error_mode="thread_local"):
        fn(x)
    return keep_alive(g.replay, fn, x)


def run(ctx: Context, preset: str = "vit-b16", frames: int = 8, batch: int = 32, sweep=(1, 2, 4, 8, 16, 32, 64),
        reps: int = 5, budget_s: float | None = None, inner: int | None = None) -> dict:
    import torch

    from ..model import create_model, make_config
    from ..model.flops import flops as count_flops
    from ..plugin import kernels

    t_start = time.time()
    budget_s = budget_s or (150.0 if ctx.quick else 330.0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    ctx.update("gpu: building the plugin kernels (first use)")
    kernel_ok = DEV == "cuda" and kernels.available()
    kernel_err = None if kernel_ok else kernels.load_error()
    flops = {k: 2e9 * (count_flops(preset, frames, h)["naive_gflops" if h == 0 else "inti_gflops"]) for k, h in HALVINGS.items()}
    peak = {}
    for name, dt in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32)):
        ctx.update(f"gpu: {name} matmul peak")
        peak[name] = matmul_flops(dt)
    data = {"preset": preset, "frames": frames, "flops_per_clip": {k: rnd(v, 4) for k, v in flops.items()},
            "matmul_tflops": {k: rnd(v / 1e12, 4) for k, v in peak.items()}, "kernel": kernel_ok, "kernel_error": kernel_err,
            "results": [], "errors": [], "skipped": []}
    S = make_config(preset, frames, 1).vision.image_size
    base = {}
    for k, h in HALVINGS.items():
        torch.manual_seed(0)
        m = create_model(make_config(preset, frames, h, num_classes=400))
        for op in m.interps:
            op.randomize_(torch.Generator().manual_seed(1))
        base[k] = m.eval()

    def model(key: str, kernel: bool, dtype, sdpa: bool = False):
        m = copy.deepcopy(base[key]).to(DEV, dtype).eval()
        if kernel:
            m.use_kernels()
        if sdpa:
            use_sdpa(m)
        return m

    def variants_for(dtype, sdpa=True):
        """(label, model key, kernel, sdpa) of the inference variants."""
        out = [("naive", "naive", False, False)]
        for k in ("InTI-1", "InTI-2"):
            out.append((k, k, False, False))
            if kernel_ok:
                out.append((f"{k} kernel", k, True, False))
        if sdpa:
            out.append(("naive sdpa", "naive", False, True))
            out.append(("InTI-1 kernel sdpa" if kernel_ok else "InTI-1 sdpa", "InTI-1", kernel_ok, True))
        return out

    def record(part, label, key, mode, dtype_name, b, secs, mem=None, extra=None):
        med = summarize(secs)["median"]
        r = {"part": part, "variant": label, "model": key, "mode": mode, "dtype": dtype_name, "batch": b,
             "ms": rnd(1e3 * med, 4), "p95_ms": rnd(1e3 * summarize(secs)["p95"], 4), "clips_per_s": rnd(b / med, 4),
             "mfu": rnd(flops[key] * b / med / peak[dtype_name], 3), "peak_mem_mib": mem, **(extra or {})}
        data["results"].append(r)
        return r

    def peak_mem(fn) -> float:
        if DEV != "cuda":
            fn()
            return None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return rnd(torch.cuda.max_memory_allocated() / 2**20, 4)

    def timed_group(part, entries, b, dtype_name):
        """entries: {label: (key, mode, fn, mem)}; measured interleaved."""
        sync_each = b == 1  # batch-1 latency: every call synchronized
        fns = {k: ((lambda f=f: (f(), _sync())) if sync_each else f) for k, (_, _, f, _) in entries.items()}
        calls = inner or (20 if b == 1 else max(2, (8 if not ctx.quick else 4) * 32 // max(b, 1)))
        secs = measure(fns, reps=reps, warmup=2, inner=calls, clock=wall(_sync),
                       on_rep=lambda d, t: ctx.update(f"gpu {part}: batch {b} {dtype_name}", d, t))
        for label, (key, mode, _, mem) in entries.items():
            record(part, label.rsplit(" | ", 1)[0], key, mode, dtype_name, b, secs[label], mem)
        ctx.save(report(data, batch))  # tables so far: a run cut short still renders

    def attempt(what, fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - one variant failing must not lose the others
            data["errors"].append(f"{what}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            return None

    def add_graphs(entries, name, key, m, x, what, mem=None) -> None:
        """``m`` captured in a CUDA graph at ``x``'s shape as the entry ``name | graphs`` (a failed capture is
        noted by ``attempt`` and leaves the entry out); ``mem``: measure its peak memory too."""
        g = attempt(what, lambda: capture(m, x))
        if g is not None:
            entries[f"{name} | graphs"] = (key, "graphs", g, peak_mem(lambda: m(x)) if mem else None)

    bf16 = torch.bfloat16
    with torch.inference_mode():
        # --- infer: batch 32 and batch 1, eager and graphs ------------------------------------------------
        if ctx.want("infer"):
            for b in (batch, 1):
                x = torch.randn(b, frames, 3, S, S, device=DEV, dtype=bf16)
                entries = {}
                for label, key, kern, sdpa in variants_for(bf16):
                    m = attempt(f"{label} build", lambda: model(key, kern, bf16, sdpa))
                    if m is None:
                        continue
                    ran = attempt(f"{label} b{b} eager", lambda: [peak_mem(lambda: m(x))])  # None: it failed
                    if ran is not None:
                        entries[f"{label} | eager"] = (key, "eager", (lambda m=m, x=x: m(x)), ran[0])
                    add_graphs(entries, label, key, m, x, f"{label} b{b} graphs")
                timed_group("infer", entries, b, "bf16")
                del entries
                _sync()
        # --- sweep: batch 1..64, graphs ---------------------------------------------------------------
        if ctx.want("sweep"):
            ms = {k: model(k, kernel_ok and k != "naive", bf16) for k in HALVINGS}
            for b in sweep:
                x = torch.randn(b, frames, 3, S, S, device=DEV, dtype=bf16)
                entries = {}
                for k, m in ms.items():
                    add_graphs(entries, f"{k}{' kernel' if kernel_ok and k != 'naive' else ''}", k, m, x, f"sweep {k} b{b}")
                timed_group("sweep", entries, b, "bf16")
            del ms
            _sync()
        # --- dtypes: fp32 / fp16 / bf16 at batch 32, graphs -------------------------------------------
        if ctx.want("dtypes"):
            for name, dt in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", bf16)):
                x = torch.randn(batch, frames, 3, S, S, device=DEV, dtype=dt)
                entries = {}
                for k in HALVINGS:
                    m = attempt(f"{name} {k}", lambda: model(k, kernel_ok and k != "naive", dt))
                    if m is not None:
                        add_graphs(entries, f"{k}{' kernel' if kernel_ok and k != 'naive' else ''}", k, m, x,
                                   f"{name} {k} graphs", mem=True)
                timed_group("dtypes", entries, batch, name)
                del entries
                _sync()
    # --- train: bf16 autocast steps ---------------------------------------------------------------------
    if ctx.want("train"):
        attempt("train", lambda: _train(ctx, base, batch, frames, S, reps, record, data, inner))
        ctx.save(report(data, batch))
    # --- compile: within the budget ---------------------------------------------------------------------
    if ctx.want("compile"):
        plan = []
        for b in (batch, 1):
            for label, key, kern, sdpa in [("InTI-1 kernel" if kernel_ok else "InTI-1", "InTI-1", kernel_ok, False),
                                           ("naive", "naive", False, False),
                                           ("InTI-2 kernel" if kernel_ok else "InTI-2", "InTI-2", kernel_ok, False),
                                           ("InTI-1", "InTI-1", False, False)][: None if kernel_ok else 3]:
                plan.append((b, label, key, kern, sdpa))
        compiled: dict[int, dict] = {}
        for b, label, key, kern, sdpa in plan:
            if time.time() - t_start > budget_s:
                data["skipped"].append(f"compile {label} batch {b}: time budget ({budget_s:.0f} s) spent")
                continue
            ctx.update(f"gpu compile: {label} batch {b}")

            def build(b=b, key=key, kern=kern, sdpa=sdpa):
                m = model(key, kern, bf16, sdpa)
                mc = torch.compile(m, dynamic=False)
                x = torch.randn(b, frames, 3, S, S, device=DEV, dtype=bf16)
                t0 = time.time()
                with torch.inference_mode():
                    mc(x)
                    _sync()
                    cs = time.time() - t0
                    g = attempt(f"compile+graphs {label} b{b}", lambda: capture(mc, x))
                return mc, x, g, cs

            got = attempt(f"compile {label} b{b}", build)
            if got is None:
                continue
            mc, x, g, cs = got
            compiled.setdefault(b, {})[f"{label} | compile"] = (key, "compile", (lambda mc=mc, x=x: mc(x)), cs)
            if g is not None:
                compiled[b][f"{label} | compile+graphs"] = (key, "compile+graphs", g, cs)
        with torch.inference_mode():
            for b, entries in compiled.items():
                timed_group("compile", {k: (key, mode, f, None) for k, (key, mode, f, _) in entries.items()}, b, "bf16")
                for k, (_, _, _, cs) in entries.items():  # compile seconds on the rows just recorded
                    for r in data["results"][-len(entries):]:
                        if f"{r['variant']} | {r['mode']}" == k:
                            r["compile_s"] = rnd(cs)
    data["seconds"] = round(time.time() - t_start, 1)
    return report(data, batch)


def _train(ctx, base, batch, frames, S, reps, record, data, inner=None):
    import torch
    import torch.nn.functional as F

    from ..train import param_groups

    variants = {}
    for k, m0 in base.items():
        m = copy.deepcopy(m0).to(DEV).train()
        opt = torch.optim.AdamW(param_groups(m, 0.05), lr=1e-4, fused=DEV == "cuda")
        x = torch.randn(batch, frames, 3, S, S, device=DEV)
        y = torch.randint(0, 400, (batch,), device=DEV)

        def step(m=m, opt=opt, x=x, y=y):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(DEV, dtype=torch.bfloat16):
                loss = F.cross_entropy(m(x).float(), y)
            loss.backward()
            opt.step()

        variants[k] = step
    if DEV == "cuda":
        torch.cuda.reset_peak_memory_stats()
    secs = measure(variants, reps=reps, warmup=1 if inner else 3, inner=inner or 3, clock=wall(_sync),
                   on_rep=lambda d, t: ctx.update("gpu train: bf16 autocast steps", d, t))
    mem = rnd(torch.cuda.max_memory_allocated() / 2**20, 4) if DEV == "cuda" else None
    for k in variants:
        r = record("train", k, k, "eager", "bf16", batch, secs[k], None, {"peak_mem_mib_all_variants": mem})
        r["mfu"] = rnd(r["mfu"] * 3, 3)  # forward + backward = 3x the forward's FLOPs
    del variants


def _row(r, naive):
    ratio = rnd(r["clips_per_s"] / naive["clips_per_s"], 3) if naive else None
    return [r["variant"], r["mode"], r["dtype"], r["batch"], r["clips_per_s"], r["ms"], ratio,
            rnd(100 * r["mfu"], 3) if r["mfu"] is not None else None, r.get("peak_mem_mib"), r.get("compile_s")]


def report(data: dict, batch: int) -> dict:
    res = data["results"]
    cols = ["variant", "mode", "dtype", "batch", "clips/s", "ms per call", "x naive (same mode)", "MFU %", "peak MiB",
            "compile s"]

    def naive_of(r):
        return next((n for n in res if n["variant"] == "naive" and n["mode"] == r["mode"] and n["dtype"] == r["dtype"]
                     and n["batch"] == r["batch"] and n["part"] == r["part"]), None)

    tables = []
    for part, title in (("infer", "inference, bf16 weights"), ("compile", "torch.compile (default mode) and compile + CUDA graphs, bf16"),
                        ("sweep", "batch sweep, CUDA graphs, bf16"), ("dtypes", f"fp32 / fp16 / bf16 weights, batch {batch}, CUDA graphs"),
                        ("train", f"training steps, bf16 autocast, batch {batch} (forward, backward, AdamW)")):
        rows = [_row(r, naive_of(r)) for r in res if r["part"] == part]
        if rows:
            tables.append({"title": title, "columns": cols, "rows": rows})
    # the goals, from the rows measured
    def best(variant_prefix, b, kernel=True):
        rs = [r for r in res if r["part"] in ("infer", "compile") and r["batch"] == b and r["dtype"] == "bf16"
              and r["variant"].startswith(variant_prefix) and ("kernel" in r["variant"]) == kernel and "sdpa" not in r["variant"]]
        return max(rs, key=lambda r: r["clips_per_s"], default=None)

    goals = []
    nb = best("naive", batch, kernel=False)
    for v, goal in (("InTI-1", 1.55), ("InTI-2", 1.85)):
        r = best(v, batch, kernel=data["kernel"])
        n = naive_of(r) if r else None
        if r and n:
            got = rnd(r["clips_per_s"] / n["clips_per_s"], 3)
            goals.append([f"{v} / naive at batch {batch} (best mode: {r['mode']})", f">= {goal}", got, got >= goal])
    r1 = best("InTI-1", batch, kernel=data["kernel"])
    if r1:
        goals.append([f"InTI-1 MFU at batch {batch} ({r1['mode']})", ">= 55%", rnd(100 * r1["mfu"], 3), r1["mfu"] >= 0.55])
    lat = [r for r in res if r["batch"] == 1 and r["variant"].startswith("InTI-1") and r["part"] in ("infer", "compile")]
    if lat:
        l1 = min(lat, key=lambda r: r["ms"])
        goals.append([f"InTI-1 batch-1 latency ({l1['variant']}, {l1['mode']})", "<= 0.8 ms", l1["ms"], l1["ms"] <= 0.8])
    if goals:
        tables.insert(0, {"title": "goals (H200, vit-b16, 8 frames, vs naive in the same run)",
                          "columns": ["what", "goal", "measured", "met"], "rows": goals,
                          "note": f"best naive at batch {batch}: {nb['clips_per_s']} clips/s ({nb['mode']})." if nb else None})
    plots = []
    sw = [r for r in res if r["part"] == "sweep"]
    if sw:
        bs = sorted({r["batch"] for r in sw})
        plots.append({"name": "gpu-sweep", "title": "clips/s vs batch, CUDA graphs, bf16", "kind": "line", "x": bs, "logx": True,
                      "xlabel": "batch", "ylabel": "clips/s",
                      "series": {v: [next((r["clips_per_s"] for r in sw if r["variant"] == v and r["batch"] == b), None) for b in bs]
                                 for v in dict.fromkeys(r["variant"] for r in sw)}})
    inf = [r for r in res if r["part"] in ("infer", "compile") and r["batch"] == batch]
    if inf:
        modes = list(dict.fromkeys(r["mode"] for r in inf))
        vs = list(dict.fromkeys(r["variant"] for r in inf))
        plots.append({"name": "gpu-batch", "title": f"clips/s at batch {batch}, bf16", "kind": "bar", "x": vs, "ylabel": "clips/s",
                      "series": {m: [next((r["clips_per_s"] for r in inf if r["variant"] == v and r["mode"] == m), None) for v in vs]
                                 for m in modes}})
    return {"suite": "gpu", "title": f"{data['preset']}, {data['frames']} frames: InTI vs naive on the GPU",
            "settings": {"matmul TFLOP/s (measured)": data["matmul_tflops"], "kernel": data["kernel"],
                         "GFLOPs per clip (2 x GMACs)": {k: rnd(v / 1e9, 4) for k, v in data["flops_per_clip"].items()}},
            "tables": tables, "plots": plots, "errors": data["errors"] + data["skipped"], "data": data}
