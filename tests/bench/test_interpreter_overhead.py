"""bench/interpreter_overhead.py runs end to end and ends with its line for scripts.

Not a timed test: nothing is asserted about the numbers, only that the script works.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e]

LAST_LINE = re.compile(r"ratio graph_vs_hardcoded -?\d+\.\d{3}")


def test_the_benchmark_runs_and_ends_with_its_ratio_line():
    done = subprocess.run(
        [sys.executable, "bench/interpreter_overhead.py", "--nodes", "3", "--runs", "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]
