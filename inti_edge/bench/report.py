"""A bench result (JSON) as markdown tables and PNG plots (matplotlib, Agg); the tables of BENCHMARKS.md.

A result is ``{"environment": {...}, "quick": bool, "suites": {name: suite}}``; a suite is

    {"suite": "flops", "title": "...", "skipped": None | "why", "settings": {...}, "seconds": 12.3,
     "tables": [{"title": "...", "columns": [...], "rows": [[...], ...], "note": "..."}],
     "plots":  [{"name": "flops-ratio", "title": "...", "kind": "bar" | "line", "x": [...],
                 "xlabel": "...", "ylabel": "...", "series": {"label": [y, ...]}, "logx": False}],
     "data": {... everything measured, per variant ...}}

Tables carry numbers, not text: the renderer writes each cell with ``cell`` (so a table holds exactly
the JSON's numbers). BENCHMARKS.md's measured sections are filled from results with

    python -m inti_edge.bench.report RESULT.json --into BENCHMARKS.md --section NAME

which replaces the text between ``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def cell(v) -> str:
    """One table cell: numbers as written in the JSON (thousands unseparated), None as '-'."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1000:
        return str(int(v))
    return str(v)


def table_md(t: dict) -> str:
    lines = [f"| {' | '.join(t['columns'])} |", f"| {' | '.join('---' for _ in t['columns'])} |"]
    lines += [f"| {' | '.join(cell(v) for v in row)} |" for row in t["rows"]]
    return "\n".join(lines)


def environment_md(env: dict) -> str:
    dev = env.get("gpu") or env.get("cpu", "?")
    if env.get("gpu"):
        dev += f" (sm {env.get('sm')}, CUDA {env.get('cuda')}, driver {env.get('driver') or '?'}; host CPU {env.get('cpu')})"
    vers = ", ".join(f"{k} {env[k]}" for k in ("python", "torch", "onnxruntime", "av", "open_clip", "numpy") if env.get(k))
    return (f"Measured {env.get('date', '?')} on {dev}, {env.get('cores', '?')} cores; {vers}; "
            f"inti-edge {env.get('inti_edge', '?')} at {env.get('commit') or '?'}"
            + (f"; load average {env['load_average_1min']} at the start" if "load_average_1min" in env else "") + ".")


def suite_md(s: dict, images: dict[str, str] | None = None, level: int = 2) -> str:
    h = "#" * level
    out = [f"{h} {s['suite']}: {s.get('title', '')}".rstrip(": ")]
    if s.get("skipped"):
        out.append(f"Skipped: {s['skipped']}")
        return "\n\n".join(out)
    if s.get("settings"):
        out.append("Settings: " + ", ".join(f"{k} {json.dumps(v) if isinstance(v, (list, dict)) else v}"
                                             for k, v in s["settings"].items()) + ".")
    for t in s.get("tables", []):
        out.append(f"{h}# {t['title']}" if t.get("title") else "")
        out.append(table_md(t))
        if t.get("note"):
            out.append(t["note"])
    for p in s.get("plots", []):
        if images and p["name"] in images:
            out.append(f"![{p.get('title', p['name'])}]({images[p['name']]})")
    for e in s.get("errors", []):
        out.append(f"- not measured: {e}")
    return "\n\n".join(x for x in out if x)


def quick_suites(result: dict, names=None) -> list[str]:
    """The suites (of ``names``, else all) that ran with --quick: a suite's own flag (results merged from
    several runs), else the result's."""
    return [n for n, s in result.get("suites", {}).items()
            if (names is None or n in names) and s.get("quick", result.get("quick", False))]


def _quick_line(result: dict, names=None) -> str:
    q = quick_suites(result, names)
    if not q:
        return ""
    every = len(q) == len([n for n in result.get("suites", {}) if names is None or n in names])
    return "Quick run (`--quick`): fewer calls per repetition, smaller sweeps" + ("." if every else f"; suites {', '.join(q)} (the others full).")


def markdown(result: dict, images: dict[str, str] | None = None) -> str:
    """The whole result as markdown: environment line, then each suite's tables (and plots, if given)."""
    parts = ["# inti-edge bench", environment_md(result.get("environment", {})), _quick_line(result)]
    for s in result.get("suites", {}).values():
        parts.append(suite_md(s, images))
    return "\n\n".join(x for x in parts if x) + "\n"


def plot(p: dict, path: Path) -> Path:
    """One plot of a suite as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    series = p["series"]
    if p.get("kind", "bar") == "bar":
        n = max(len(series), 1)
        w = 0.8 / n
        for i, (label, ys) in enumerate(series.items()):
            xs = [j + (i - (n - 1) / 2) * w for j in range(len(p["x"]))]
            vals = [float("nan") if y is None else y for y in ys]
            bars = ax.bar(xs, vals, w, label=label)
            ax.bar_label(bars, labels=[cell(y) for y in ys], fontsize=6, rotation=90 if len(ys) * n > 12 else 0)
        ax.set_xticks(range(len(p["x"])), [str(x) for x in p["x"]], rotation=30 if len(p["x"]) > 5 else 0,
                      ha="right" if len(p["x"]) > 5 else "center", fontsize=8)
    else:
        for label, ys in series.items():
            pts = [(x, y) for x, y in zip(p["x"], ys) if y is not None]
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label)
        if p.get("logx"):
            ax.set_xscale("log", base=2)
            ax.set_xticks(p["x"], [str(x) for x in p["x"]])
    ax.set_xlabel(p.get("xlabel", ""))
    ax.set_ylabel(p.get("ylabel", ""))
    ax.set_title(p.get("title", ""), fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write(result: dict, out: str | Path) -> dict[str, Path]:
    """bench.json, bench.md and one PNG per plot into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "md": out / "bench.md"}
    paths["json"].write_text(json.dumps(result, indent=1) + "\n")
    images = {}
    for s in result.get("suites", {}).values():
        for p in s.get("plots", []):
            try:
                images[p["name"]] = plot(p, out / f"{p['name']}.png").name
            except ImportError:  # a deploy-only install: tables without plots
                break
    paths.update({k: out / v for k, v in images.items()})
    paths["md"].write_text(markdown(result, images))
    return paths


def fill(md_path: str | Path, section: str, result: dict, suites: list[str] | None = None) -> str:
    """Replace BENCHMARKS.md's generated section ``section`` with ``result``'s tables (all suites, or
    ``suites``); returns the new text. The markers must be there already (the prose around them is
    written by hand)."""
    md_path = Path(md_path)
    text = md_path.read_text()
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"{md_path} has no section {section!r} (markers {begin} ... {end})")
    body = [environment_md(result.get("environment", {})), _quick_line(result, suites)]
    for name, s in result.get("suites", {}).items():
        if suites is None or name in suites:
            body.append(suite_md(s, level=3))
    new = f"{begin}\n<!-- generated by `python -m inti_edge.bench.report`; do not edit by hand -->\n\n" + \
        "\n\n".join(x for x in body if x) + f"\n\n{end}"
    text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: new, text, flags=re.S)
    md_path.write_text(text)
    return text


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m inti_edge.bench.report", description="Render bench results.")
    ap.add_argument("results", nargs="+", type=Path, help="bench.json files (their suites are merged in order)")
    ap.add_argument("--into", type=Path, help="a markdown file with <!-- bench:SECTION:begin/end --> markers")
    ap.add_argument("--section", help="which marked section to replace")
    ap.add_argument("--suites", default=None, help="only these suites (comma separated)")
    ap.add_argument("-o", "--out", type=Path, help="write bench.md + PNGs of the merged result here")
    a = ap.parse_args(argv)
    merged: dict = {"suites": {}}
    for p in a.results:
        r = json.loads(p.read_text())
        merged.setdefault("environment", r.get("environment", {}))
        merged["quick"] = merged.get("quick", False) or r.get("quick", False)
        merged["suites"].update({n: {"quick": r.get("quick", False), **s} for n, s in r.get("suites", {}).items()})
    if a.into:
        if not a.section:
            ap.error("--into needs --section")
        fill(a.into, a.section, merged, a.suites.split(",") if a.suites else None)
        print(f"wrote section {a.section} of {a.into}")
    if a.out:
        print(f"wrote {write(merged, a.out)['md']}")
    if not a.into and not a.out:
        print(markdown(merged))


if __name__ == "__main__":
    main()
