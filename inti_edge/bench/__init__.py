"""`inti-edge bench`: every speed figure of the project from one command, as JSON, markdown and PNG.

    from inti_edge.bench import bench
    result = bench("flops,cpu", quick=True, out="bench-out")    # also writes bench.json, bench.md, *.png

Suites (one module each; all time through ``core.measure``):
- ``flops``   counted GMACs, InTI vs naive (vit-b16 / vit-l14, 8 / 16 frames, 1 / 2 halvings)
- ``gpu``     clips/s of naive / InTI-1 / InTI-2, eager / torch.compile / CUDA graphs, kernel on / off,
              fp32 / fp16 / bf16, batch 1..64, MFU against a matmul measured in the same run, peak
              memory, training steps (needs CUDA)
- ``plugin``  the TokenInterpolation kernel vs eager and torch.compile (needs CUDA)
- ``cpu``     the default model: ONNX Runtime fp32 vs int8 vs PyTorch, p50 / p95, batch 1 and 8
- ``data``    decode + preprocess clips/s
- ``stream``  `run`: incremental vs full re-run, real-time factor, live sources (and the GPU part where
              CUDA is present)
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .core import environment, has_cuda

SUITES = ("flops", "gpu", "plugin", "cpu", "data", "stream")
GPU_SUITES = {"gpu": "vit-b16 on the GPU (clips/s, MFU, latency)", "plugin": "the CUDA kernel against PyTorch"}
DEFAULT_WORK = Path(__file__).resolve().parents[2] / "runs" / "bench"


class BenchError(ValueError):
    """The bench cannot run as asked (one line: the cause and the fix)."""


class NeedsGPU(BenchError):
    """A GPU suite was asked for on a machine without CUDA."""


@dataclass
class Context:
    """What a suite gets: the mode, a scratch folder, progress and partial-result hooks."""

    quick: bool = False
    work: Path = DEFAULT_WORK  # exports, builds and made videos, reused across runs
    parts: set[str] | None = None  # only these parts of a suite (None: all)
    update: Callable[..., None] = lambda *a, **k: None  # update(description, done=None, total=None)
    save: Callable[[dict], None] = lambda partial: None  # a suite's partial result (kept if a later step dies)
    log: Callable[[str], None] = lambda line: None  # one line for the user (stderr in the CLI)

    def want(self, part: str) -> bool:
        return self.parts is None or part in self.parts


def parse_suites(spec: str) -> list[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names or names == ["all"]:
        return list(SUITES)
    bad = [n for n in names if n not in SUITES]
    if bad:
        raise BenchError(f"unknown suite {', '.join(bad)}; choose from {', '.join(SUITES)} or all")
    return names


def bench(suites: str = "all", *, quick: bool = False, out: str | Path | None = None, work: str | Path | None = None,
          parts: str | None = None, update: Callable[..., None] | None = None, log: Callable[[str], None] | None = None,
          options: dict | None = None) -> dict:
    """Run ``suites`` ("all" or comma separated names) and return the result; with ``out``, also write
    bench.json (after every suite, so an interrupted run keeps what it measured), bench.md and PNGs.

    A GPU suite asked for by name on a machine without CUDA raises ``NeedsGPU``; under "all" it is
    skipped with a one-line reason. ``parts``: comma-separated parts within suites (e.g. stream's
    "ratio,gpu"). ``options``: suite keyword options, {"gpu": {"batches": [1, 32]}, ...}."""
    names = parse_suites(suites)
    cuda = has_cuda()
    if not cuda:
        asked = [n for n in names if n in GPU_SUITES]
        if asked and suites.strip() != "all":
            raise NeedsGPU(f"suite {', '.join(asked)} needs a CUDA GPU and this machine has none "
                           f"(run it on a GPU machine; --suite all skips it here)")
    result = {"environment": environment(), "quick": quick, "suites": {}}
    out_dir = Path(out) if out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)

    def dump() -> None:
        if out_dir:
            (out_dir / "bench.json").write_text(json.dumps(result, indent=1) + "\n")

    for name in names:
        t0 = time.time()
        if name in GPU_SUITES and not cuda:
            result["suites"][name] = {"suite": name, "title": GPU_SUITES[name], "skipped": "needs a CUDA GPU (none here)"}
            if log:
                log(f"{name}: skipped, needs a CUDA GPU")
            dump()
            continue

        def save(partial: dict, name=name, t0=t0) -> None:
            result["suites"][name] = {**partial, "seconds": round(time.time() - t0, 1), "partial": True}
            dump()

        ctx = Context(quick=quick, work=Path(work) if work else DEFAULT_WORK, update=update or (lambda *a, **k: None),
                      save=save, log=log or (lambda line: None),
                      parts={p.strip() for p in parts.split(",") if p.strip()} if parts else None)
        mod = importlib.import_module(f"inti_edge.bench.{name}_suite")
        res = mod.run(ctx, **(options or {}).get(name, {}))
        res.setdefault("suite", name)
        res["seconds"] = round(time.time() - t0, 1)
        result["suites"][name] = res
        dump()
    if out_dir:
        from .report import write

        write(result, out_dir)
    return result
