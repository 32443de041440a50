"""bench/validation_scaling.py runs end to end and ends with its line for scripts.

Not a timed test: nothing is asserted about the numbers, only that the script works.
"""

from __future__ import annotations

import re

from support.bench import bench_lines

LAST_LINE = re.compile(r"ratio worst_doubling \d+\.\d{3}")
ROW = re.compile(r"\s*(\d+)\s+(\d+)\s+\d+\.\d{2}\s+\d+\.\d{2}(\s+\d+\.\d{3})?\s*")


def test_the_benchmark_runs_every_size_and_ends_with_its_ratio_line():
    lines = bench_lines("validation_scaling.py", "--nodes", "20", "--runs", "1", timeout_s=120)
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]
    rows = [match for line in lines if (match := ROW.fullmatch(line))]
    assert [int(row.group(1)) for row in rows] == [20, 40, 80, 160]
    assert any(line.startswith("over the limit: 201 nodes") for line in lines), lines
