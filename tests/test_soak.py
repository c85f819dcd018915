"""Long streams: `run` over minutes of real footage (a committed clip looped with --loop) keeps its
resident memory and its latency flat.

CI runs five minutes of footage as fast as it decodes; INTI_SOAK_MINUTES=60 runs the hour,
INTI_SOAK_REALTIME=1 at the footage's own rate, as a camera delivers it (INTI_SOAK_REPORT=FILE writes
the per-minute figures as JSON). Memory is read from /proc while the command runs; footage time
comes from its window events.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from test_export import ROOT, exported

CLIP = ROOT / "tests" / "data" / "bbb_8s_160x90.mp4"  # 8 s
MINUTES = float(os.environ.get("INTI_SOAK_MINUTES", "5"))
REALTIME = os.environ.get("INTI_SOAK_REALTIME") == "1"


def _rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc")
def test_a_long_stream_keeps_memory_and_latency_flat(tmp_path_factory):
    model = exported(tmp_path_factory)["model"].parent
    loops = math.ceil(MINUTES * 60 / 8) - 1
    p = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "run", str(CLIP), "-m", str(model), "--json",
                          "--loop", str(loops), *(["--realtime"] if REALTIME else [])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    now = {"t": 0.0}
    samples: list[tuple[float, float]] = []  # (footage s, RSS MiB)
    windows: list[tuple[float, float]] = []  # (footage s, latency ms)

    def sample():
        while p.poll() is None:
            rss = _rss_mib(p.pid)
            if rss is not None:
                samples.append((now["t"], rss))
            time.sleep(0.1)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    summary = None
    for line in p.stdout:
        ev = json.loads(line)
        if ev["event"] == "window":
            now["t"] = ev["window_end_s"]
            windows.append((ev["window_end_s"], ev["latency_ms"]))
        elif ev["event"] == "summary":
            summary = ev
    p.wait(timeout=120)
    watcher.join(2)
    assert p.returncode == 0, p.stderr.read()
    s = summary["sources"][0]
    assert s["dropped_windows"] == 0 and s["media_seconds"] >= MINUTES * 60 - 1
    base_at = 5.0 if MINUTES >= 30 else 1.0  # the hour: minute 5; five minutes: minute 1
    base = max(r for t, r in samples if t <= base_at * 60)
    late = [r for t, r in samples if t >= (MINUTES - 1) * 60]
    per_minute = []
    w = np.array(windows)
    for m in range(int(MINUTES)):
        lat = w[(w[:, 0] >= m * 60) & (w[:, 0] < (m + 1) * 60), 1]
        mem = [r for t, r in samples if m * 60 <= t < (m + 1) * 60]
        per_minute.append({"minute": m + 1, "windows": int(len(lat)), "latency_p50_ms": float(np.percentile(lat, 50)),
                           "latency_p95_ms": float(np.percentile(lat, 95)), "rss_max_mib": max(mem) if mem else None})
    report = {"minutes": MINUTES, "realtime": REALTIME, "windows": summary["windows"], "rss_baseline_mib": base, "rss_end_max_mib": max(late),
              "wall_seconds": summary["wall_seconds"], "per_minute": per_minute}
    if os.environ.get("INTI_SOAK_REPORT"):
        Path(os.environ["INTI_SOAK_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")
    assert max(late) - base <= 50, report  # resident memory within 50 MB of its early level
    # no creeping latency: the last quarter's typical per-minute p95 within 1.5x (+5 ms) of the first quarter's.
    # Medians over minutes, so one minute slowed by another job on a shared machine is not read as a trend
    # (the hour on the CI machine: one minute at 55 ms while other test suites ran, the rest 11-35 ms)
    p95 = [m["latency_p95_ms"] for m in per_minute]
    q = max(1, len(p95) // 4)
    first, last = float(np.median(p95[:q])), float(np.median(p95[-q:]))
    assert last <= 1.5 * first + 5.0, report
