"""Run a benchmark script as a user would, for the tests that check it works (never its numbers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def bench_lines(script: str, *args: str, timeout_s: float = 300) -> list[str]:
    """The lines a bench script printed; it must exit 0 and print something."""
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return lines
