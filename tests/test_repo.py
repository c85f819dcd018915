"""The repository keeps its promises: CI runs the README's commands, nothing large is committed."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    lines = (ROOT / ".ci/run").read_text().splitlines()
    cmds = [lines[i + 1] for i, line in enumerate(lines) if line.startswith("# setup (README)") or line.startswith("# test (README)")]
    assert len(cmds) == 2
    for cmd in cmds:
        assert cmd in readme, f"README lacks the CI command: {cmd}"


def test_no_large_files_tracked():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:  # not a git checkout (an sdist): nothing to check
        return
    limits = {"inti_edge/assets/": 15_000_000}
    for f in files:
        p = ROOT / f
        if not p.is_file():
            continue
        limit = next((v for k, v in limits.items() if f.startswith(k)), 5_000_000)
        assert p.stat().st_size <= limit, f"{f} is {p.stat().st_size} bytes"
