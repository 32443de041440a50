"""bench/interpreter_overhead.py runs end to end and ends with its line for scripts.

Not a timed test: nothing is asserted about the numbers, only that the script works.
"""

from __future__ import annotations

import re

import pytest

from support.bench import bench_lines

pytestmark = [pytest.mark.e2e]

LAST_LINE = re.compile(r"ratio graph_vs_hardcoded -?\d+\.\d{3}")


def test_the_benchmark_runs_and_ends_with_its_ratio_line():
    lines = bench_lines("interpreter_overhead.py", "--nodes", "3", "--runs", "2")
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]
