"""inti-edge bench: the timing core, the renderer, and the CLI's suites on the CPU (no timed assertions)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from inti_edge.bench import core, report

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def test_measure_interleaves_rotates_and_takes_medians():
    log, clock_t = [], [0.0]
    costs = {"a": [5, 1, 9, 3, 7], "b": [2, 2, 2, 100, 2], "c": [4, 6, 5, 4, 6]}
    calls = {k: 0 for k in costs}

    def make(k):
        def fn():
            log.append(k)
            i = calls[k] - 2  # two warm-up calls first
            calls[k] += 1
            if i >= 0:
                clock_t[0] += costs[k][i]
        return fn

    samples = core.measure({k: make(k) for k in costs}, reps=5, warmup=2, clock=core.wall(timer=lambda: clock_t[0]))
    assert samples == {k: [float(v) for v in vs] for k, vs in costs.items()}
    assert log[:6] == ["a", "b", "c"] * 2  # warm-up, each variant in turn
    reps = [log[6 + 3 * r: 9 + 3 * r] for r in range(5)]
    assert reps[0] == ["a", "b", "c"] and reps[1] == ["b", "c", "a"] and reps[2] == ["c", "a", "b"]  # rotated
    st = {k: core.summarize(v) for k, v in samples.items()}
    assert st["a"]["median"] == 5 and st["b"]["median"] == 2 and st["c"]["median"] == 5  # an outlier does not move it
    assert st["b"]["p95"] > 50 and st["b"]["n"] == 5


def test_measure_refuses_fewer_than_five_reps_and_accepts_returned_figures():
    with pytest.raises(ValueError, match=">= 5"):
        core.measure({"a": lambda: None}, reps=3)
    it = iter(range(100))
    got = core.measure({"x": lambda: next(it)}, reps=5, warmup=1, inner=2, clock=core.returned)
    assert got["x"] == [1.5, 3.5, 5.5, 7.5, 9.5]  # warm-up call 0, then pairs averaged
    assert core.percentile([1, 2, 3, 4], 50) == 2.5


RESULT = {
    "environment": {"date": "2026-12-03T00:00:00+00:00", "cpu": "Test CPU", "cores": 2, "torch": "2.x"},
    "quick": True,
    "suites": {"gpu": {"suite": "gpu", "title": "skipped one", "skipped": "needs a CUDA GPU (none here)"},
               "cpu": {"suite": "cpu", "title": "fake", "settings": {"threads": 2},
                       "tables": [{"title": "latency", "columns": ["batch", "runtime", "p50 ms", "p95 ms"],
                                   "rows": [[1, "ORT int8", 12.34, 20.5], [8, "ORT fp32", 101.0, 1234.0]]}],
                       "plots": [{"name": "cpu-latency", "title": "t", "kind": "bar", "x": ["batch 1", "batch 8"],
                                  "ylabel": "ms", "series": {"ORT int8": [12.34, None], "ORT fp32": [30.1, 101.0]}},
                                 {"name": "cpu-line", "title": "t", "kind": "line", "x": [1, 8], "logx": True,
                                  "series": {"a": [1.0, 2.0]}}],
                       "data": {}}},
}


def test_report_renders_the_json_numbers_and_plots(tmp_path):
    paths = report.write(RESULT, tmp_path)
    md = paths["md"].read_text()
    assert "| 1 | ORT int8 | 12.34 | 20.5 |" in md and "| 8 | ORT fp32 | 101.0 | 1234 |" in md
    for row in RESULT["suites"]["cpu"]["tables"][0]["rows"]:
        for v in row:
            assert report.cell(v) in md
    assert "Skipped: needs a CUDA GPU" in md and "Test CPU" in md
    for name in ("cpu-latency", "cpu-line"):
        png = tmp_path / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"({name}.png)" in md
    assert json.loads(paths["json"].read_text()) == RESULT


def test_report_fills_a_marked_section(tmp_path):
    doc = tmp_path / "B.md"
    doc.write_text("intro\n<!-- bench:cpu-ci:begin -->\nold\n<!-- bench:cpu-ci:end -->\nafter\n")
    report.fill(doc, "cpu-ci", RESULT, suites=["cpu"])
    text = doc.read_text()
    assert "old" not in text and text.startswith("intro") and text.rstrip().endswith("after")
    assert "| 1 | ORT int8 | 12.34 | 20.5 |" in text and "skipped one" not in text
    with pytest.raises(ValueError, match="no section"):
        report.fill(doc, "nope", RESULT)


def test_report_merges_runs_and_names_only_the_quick_suites(tmp_path):
    full = {**RESULT, "quick": False, "suites": {"cpu": RESULT["suites"]["cpu"]}}
    quick = {**RESULT, "quick": True, "suites": {"gpu": RESULT["suites"]["gpu"]}}
    (tmp_path / "full.json").write_text(json.dumps(full))
    (tmp_path / "quick.json").write_text(json.dumps(quick))
    doc = tmp_path / "B.md"
    doc.write_text("<!-- bench:s:begin -->\n<!-- bench:s:end -->\n")
    report.main([str(tmp_path / "full.json"), str(tmp_path / "quick.json"), "--into", str(doc), "--section", "s"])
    text = doc.read_text()
    assert "suites gpu (the others full)" in text and "| 1 | ORT int8 | 12.34 | 20.5 |" in text
    report.main([str(tmp_path / "full.json"), str(tmp_path / "quick.json"), "--into", str(doc), "--section", "s", "--suites", "cpu"])
    assert "Quick run" not in doc.read_text()  # the one suite shown ran full
    assert "Quick run (`--quick`): fewer calls per repetition, smaller sweeps." in report.markdown(RESULT)


def test_a_captured_replay_keeps_its_model_and_input_alive():
    """The gpu suite's dtypes group kept only the graphs; the models they read were freed, the next capture
    emptied the CUDA cache and a replay hit unmapped memory. A replay now holds what it reads."""
    import gc
    import weakref

    from inti_edge.bench.gpu_suite import keep_alive

    class Model:
        def __call__(self, x):
            return x

    model, x, calls = Model(), [1.0], []
    replay = keep_alive(lambda: calls.append(1) or "ran", model, x)
    ref_m, ref_x = weakref.ref(model), weakref.ref(Model())  # a second, unheld object dies at once
    del model
    gc.collect()
    assert ref_m() is not None and ref_x() is None
    assert replay() == "ran" and calls == [1]
    del replay
    gc.collect()
    assert ref_m() is None


def test_gpu_report_states_the_goals_from_rows():
    from inti_edge.bench.gpu_suite import report as gpu_report

    def r(variant, mode, b, cps, mfu, part="infer"):
        return {"part": part, "variant": variant, "model": variant.split()[0], "mode": mode, "dtype": "bf16", "batch": b,
                "ms": round(1e3 * b / cps, 4), "p95_ms": None, "clips_per_s": cps, "mfu": mfu, "peak_mem_mib": None}

    data = {"preset": "vit-b16", "frames": 8, "flops_per_clip": {}, "matmul_tflops": {}, "kernel": True, "errors": [],
            "skipped": [], "results": [r("naive", "graphs", 32, 1000.0, 0.5), r("InTI-1 kernel", "graphs", 32, 1600.0, 0.56),
                                       r("InTI-2 kernel", "graphs", 32, 1800.0, 0.5), r("InTI-1 kernel", "graphs", 1, 1300.0, 0.1)]}
    out = gpu_report(data, 32)
    goals = out["tables"][0]
    assert goals["rows"][0][2] == 1.6 and goals["rows"][0][3] is True  # 1600 / 1000
    assert goals["rows"][1][2] == 1.8 and goals["rows"][1][3] is False
    assert goals["rows"][3][2] == round(1e3 / 1300, 4)


def test_cli_flops_json_matches_the_counter():
    from inti_edge.model.flops import flops as count_flops

    p = _cli("bench", "--suite", "flops", "--json", timeout=300)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    reps = res["suites"]["flops"]["data"]["reports"]
    assert {(r["model"], r["frames"], r["halvings"]) for r in reps} >= {("vit-b16", 8, 1), ("vit-l14", 16, 2)}
    want = count_flops("vit-b16", 8, 2)
    got = next(r for r in reps if (r["model"], r["frames"], r["halvings"]) == ("vit-b16", 8, 2))
    assert got["ratio"] == want["ratio"] and got["inti_gflops"] == want["inti_gflops"]
    row = next(x for x in res["suites"]["flops"]["tables"][0]["rows"] if x[:3] == ["vit-b16", 8, 2])
    assert row[5] == want["ratio"]
    assert res["environment"]["date"] and res["environment"]["cores"]


def test_cli_gpu_suite_without_a_gpu_exits_2_with_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    p = _cli("bench", "--suite", "gpu")
    assert p.returncode == 2
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "needs a CUDA GPU" in lines[0] and not p.stdout.strip()


@pytest.mark.slow
def test_cli_cpu_suite_quick_reports_int8_vs_fp32(tmp_path):
    p = _cli("bench", "--suite", "cpu", "--quick", "--json", "-o", str(tmp_path / "o"), "--work", str(tmp_path / "w"))
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout)["suites"]["cpu"]
    for b in ("batch1", "batch8"):
        d = s["data"][b]
        assert d["int8_vs_fp32"] > 0 and d["ort_int8"]["median"] > 0 and d["ort_int8"]["p95"] >= d["ort_int8"]["median"]
    runtimes = {row[1] for row in s["tables"][0]["rows"]}
    assert {"ORT int8 (build -t cpu)", "ORT fp32 (build -t cpu)", "PyTorch fp32"} <= runtimes
    md = (tmp_path / "o" / "bench.md").read_text()
    assert re.search(r"\| 1 \| ORT int8 \(build -t cpu\) \| [\d.]+ \|", md)
    assert (tmp_path / "o" / "cpu-latency.png").is_file()


def test_gpu_suite_plumbing_on_a_tiny_model_on_the_cpu(monkeypatch):
    """The gpu suite's code paths (variants, records, tables, goals) on the CPU with the small preset: no
    CUDA graphs, no kernel, no compile (its budget is spent at once); what cannot run is listed, not fatal."""
    from inti_edge.bench import Context, gpu_suite

    monkeypatch.setattr(gpu_suite, "DEV", "cpu")
    saved = []
    res = gpu_suite.run(Context(parts={"infer", "sweep", "train", "compile"}, save=saved.append), preset="small",
                        batch=2, sweep=(1, 2), inner=1, budget_s=1e-3)
    rows = res["data"]["results"]
    assert {r["variant"] for r in rows if r["part"] == "infer"} >= {"naive", "InTI-1", "InTI-2", "naive sdpa", "InTI-1 sdpa"}
    assert {r["batch"] for r in rows if r["part"] == "infer"} == {1, 2}
    assert {r["variant"] for r in rows if r["part"] == "train"} == {"naive", "InTI-1", "InTI-2"}
    assert all(r["clips_per_s"] > 0 and r["mfu"] > 0 for r in rows)
    assert any("graphs" in e for e in res["errors"]) and any("compile" in e and "budget" in e for e in res["errors"])
    titles = [t["title"] for t in res["tables"]]
    assert titles[0].startswith("goals") and any(t.startswith("inference") for t in titles)
    assert saved and saved[-1]["tables"]
