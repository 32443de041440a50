"""bench/api_launch.py runs end to end: both columns printed, its line for scripts last.

Not a timed test: nothing is asserted about the numbers, only that the script works.
"""

from __future__ import annotations

import re

import pytest

from support.bench import bench_lines

pytestmark = [pytest.mark.e2e]

NUMBER = r"\d+\.\d"
ROW = re.compile(rf"p(50|99) ms\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}")
LAST_LINE = re.compile(rf"p99 3_clients_ms {NUMBER} target (met|missed)")


def test_the_benchmark_prints_1_client_against_3_side_by_side():
    lines = bench_lines("api_launch.py", "--launches", "2", "--clients", "3")
    assert re.fullmatch(r"clients\s+1\s+3\s+1\s+3", lines[2]), lines[2]
    assert [ROW.fullmatch(line).group(1) for line in lines if ROW.fullmatch(line)] == ["50", "99"], lines
    assert "target: 3-client p99 through the API under 1000 ms: " in "\n".join(lines)
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]
