"""The one timing core of `inti-edge bench`: warm-up, repetitions, interleaving, medians / p95, and the
record of where a figure was measured.

    samples = measure({"naive": run_naive, "inti": run_inti}, reps=5, warmup=2, inner=10, clock=wall(sync))
    stats = summarize(samples["inti"])       # {"median", "p95", "min", "max", "mean", "n"} (seconds)

Compared variants run in one process, interleaved: every repetition calls each variant once (``inner``
calls timed together), in an order rotated by one each repetition, so drift of the machine (clocks,
thermals, other load) hits all of them alike. A figure is the median over the repetitions (>= 5).

A clock turns one variant's repetition into a number: ``wall`` (host time around ``inner`` calls, with a
``sync`` before and after, e.g. ``torch.cuda.synchronize``), ``returned`` (the call measures itself and
returns its figure: a stream run's windows/s, CUDA events), or any ``clock(fn, inner) -> float``.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

MIN_REPS = 5  # every figure is the median of at least this many repetitions

Clock = Callable[[Callable[[], object], int], float]


def wall(sync: Callable[[], object] | None = None, timer: Callable[[], float] = time.perf_counter) -> Clock:
    """Seconds per call: host time around ``inner`` calls, ``sync()`` (if any) before and after."""

    def clock(fn, inner: int) -> float:
        if sync:
            sync()
        t = timer()
        for _ in range(inner):
            fn()
        if sync:
            sync()
        return (timer() - t) / inner

    return clock


def returned(fn, inner: int) -> float:
    """The call's own figure (its return value), averaged over ``inner`` calls."""
    return sum(float(fn()) for _ in range(inner)) / inner


def measure(variants: dict[str, Callable[[], object]], *, reps: int = MIN_REPS, warmup: int = 1, inner: int = 1,
            clock: Clock | None = None, on_rep: Callable[[int, int], None] | None = None) -> dict[str, list[float]]:
    """Per variant, ``reps`` figures from ``clock``, after ``warmup`` untimed calls of each; interleaved,
    the order rotated each repetition. ``on_rep(done, total)`` after each repetition (progress bars).
    ``inner`` may be a dict (calls per repetition per variant)."""
    if reps < MIN_REPS:
        raise ValueError(f"reps must be >= {MIN_REPS} (a figure is a median of >= {MIN_REPS} repetitions), got {reps}")
    clock = clock or wall()
    names = list(variants)
    calls = {n: inner.get(n, 1) if isinstance(inner, dict) else inner for n in names}
    for _ in range(warmup):
        for n in names:
            variants[n]()
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names) if names else 0
        for n in names[k:] + names[:k]:  # rotate who goes first
            out[n].append(clock(variants[n], calls[n]))
        if on_rep:
            on_rep(r + 1, reps)
    return out


def percentile(xs: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between order statistics (``numpy.percentile``); nan if empty."""
    import numpy as np

    return float(np.percentile(xs, q)) if len(xs) else math.nan


def summarize(xs: list[float]) -> dict[str, float]:
    """Median, p95, min, max, mean and count of one variant's figures."""
    return {"median": percentile(xs, 50), "p95": percentile(xs, 95), "min": min(xs), "max": max(xs),
            "mean": sum(xs) / len(xs), "n": len(xs)}


def rnd(x: float | None, digits: int = 3) -> float | None:
    """x to ``digits`` significant digits (tables carry what the measurement supports); None stays None."""
    if x is None or not math.isfinite(x) or x == 0:
        return x
    return round(x, max(0, digits - 1 - int(math.floor(math.log10(abs(x))))))


# --- where it was measured --------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - not installed
        return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    """Date, machine, device and versions: recorded with every result."""
    env = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
           "os": platform.platform(), "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
           "commit": _git_commit()}
    if hasattr(os, "getloadavg"):  # other work on the machine while it was measured
        env["load_average_1min"] = round(os.getloadavg()[0], 2)
    for mod, name in (("torch", "torch"), ("numpy", "numpy"), ("onnxruntime", "onnxruntime"), ("av", "av"),
                      ("open_clip_torch", "open_clip"), ("onnx", "onnx"), ("matplotlib", "matplotlib")):
        v = _version(mod)
        if v:
            env[name] = v
    try:
        from inti_edge import __version__

        env["inti_edge"] = __version__
    except ImportError:
        pass
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            env["gpu"] = torch.cuda.get_device_name(0)
            env["gpu_count"] = torch.cuda.device_count()
            env["gpu_memory_gib"] = round(p.total_memory / 2**30, 1)
            env["sm"] = f"{p.major}.{p.minor}"
            env["cuda"] = torch.version.cuda
            env["driver"] = _driver()
    except ImportError:
        pass
    return env


def _driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
