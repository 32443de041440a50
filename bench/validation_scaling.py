"""Benchmark: how validation time grows with the graph, and what a graph over the limit costs.

Valid layered cad_file graphs of N, 2N, 4N and 8N nodes (one `cad.resolve_step_path` root, then
layers of eight `cad.export_glb` / `cad.compute_bbox` / `cad.extract_objects` nodes, each
depending on two nodes of the layer above: about two edges per node) are validated the way the
API and CLI do it, from parsed JSON (`registry.validation.validate_document`), with node and edge
limits raised above 8N. Then a graph of 8N nodes over the default limits is validated with the
default limits: it is refused as too_many_nodes before anything reads it.

Each size is validated once unmeasured, then R times; the median is reported. Prints a table of
nodes, edges, median milliseconds, microseconds per node and the ratio to the size before (≈2 per
doubling is linear, ≈4 quadratic), then the over-the-limit graph's time, and ends with one line
`ratio worst_doubling VALUE` (the largest of the three ratios), for scripts.

Usage: .venv/bin/python bench/validation_scaling.py [--nodes N] [--runs R] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.catalog import default_catalog
from registry.validation import DEFAULT_LIMITS, DefinitionLimits, validate_document

LAYER_WIDTH = 8
LEAF_STEPS = ("cad.export_glb", "cad.compute_bbox", "cad.extract_objects")
DOUBLINGS = 3


def layered_graph(nodes: int) -> dict[str, Any]:
    """A valid cad_file definition of `nodes` nodes, about two edges per node."""
    ids = ["resolve"] + [f"n{index:06d}" for index in range(1, nodes)]
    steps = ["cad.resolve_step_path"] + [LEAF_STEPS[index % len(LEAF_STEPS)] for index in range(1, nodes)]
    edges = []
    for index in range(1, nodes):
        layer_start = 1 + ((index - 1) // LAYER_WIDTH) * LAYER_WIDTH
        if layer_start == 1:
            parents = {0}
        else:
            above = layer_start - LAYER_WIDTH
            parents = {
                above + (index - layer_start) % LAYER_WIDTH,
                above + (index - layer_start + 1) % LAYER_WIDTH,
            }
        edges += [{"source": ids[parent], "target": ids[index]} for parent in sorted(parents)]
    return {
        "id": f"bench-{nodes}",
        "version": 1,
        "family": "cad_file",
        "name": f"layered graph of {nodes} nodes",
        "nodes": [{"id": node_id, "step": step} for node_id, step in zip(ids, steps, strict=True)],
        "edges": edges,
    }


def timed(document: dict[str, Any], limits: DefinitionLimits, runs: int, expect: set[str]) -> list[float]:
    """Seconds of each of `runs` validations after one unmeasured one; checks the outcome."""
    catalog = default_catalog()
    first = validate_document(document, catalog, limits)
    codes = {problem.code for problem in first.errors}
    assert codes == expect, codes
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        validate_document(document, catalog, limits)
        durations.append(time.perf_counter() - started)
    return durations


def measure(nodes: int, runs: int) -> dict[str, Any]:
    """Durations per size, and for the graph over the default limits."""
    sizes = [nodes * 2**step for step in range(DOUBLINGS + 1)]
    roomy = DefinitionLimits(max_nodes=sizes[-1], max_edges=4 * sizes[-1])
    rows = []
    for size in sizes:
        document = json.loads(json.dumps(layered_graph(size)))
        durations = timed(document, roomy, runs, set())
        rows.append(
            {"nodes": size, "edges": len(document["edges"]), "median_s": statistics.median(durations)}
        )
    over = max(sizes[-1], DEFAULT_LIMITS.max_nodes + 1)
    document = json.loads(json.dumps(layered_graph(over)))
    refused = {"too_many_nodes"} | (
        {"too_many_edges"} if len(document["edges"]) > DEFAULT_LIMITS.max_edges else set()
    )
    over_durations = timed(document, DEFAULT_LIMITS, runs, refused)
    return {
        "runs": runs,
        "sizes": rows,
        "ratios": [
            later["median_s"] / earlier["median_s"] for earlier, later in zip(rows, rows[1:], strict=False)
        ],
        "over_limit": {"nodes": over, "median_s": statistics.median(over_durations)},
    }


def report(result: dict[str, Any]) -> None:
    """The side-by-side table, then the graph over the limit."""
    print(
        f"validate_document on layered cad_file graphs, {result['runs']} runs each after one "
        "unmeasured (median); ratio = time / time of the size before (2 is linear, 4 quadratic)"
    )
    print(f"{'nodes':>7}{'edges':>8}{'median ms':>12}{'us/node':>10}{'ratio':>8}")
    ratios = [None, *result["ratios"]]
    for row, ratio in zip(result["sizes"], ratios, strict=True):
        shown = f"{ratio:>8.3f}" if ratio is not None else f"{'':>8}"
        print(
            f"{row['nodes']:>7}{row['edges']:>8}{row['median_s'] * 1000:>12.2f}"
            f"{row['median_s'] / row['nodes'] * 1e6:>10.2f}{shown}"
        )
    over, largest = result["over_limit"], result["sizes"][-1]
    print(
        f"over the limit: {over['nodes']} nodes (default limit {DEFAULT_LIMITS.max_nodes}) refused in "
        f"{over['median_s'] * 1000:.3f} ms, {over['median_s'] / largest['median_s']:.4f} of validating "
        f"{largest['nodes']} nodes"
    )


def main() -> None:
    """Parse options, measure, print; the last line is for scripts."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500, help="nodes of the smallest graph (default 500)")
    parser.add_argument("--runs", type=int, default=5, help="measured validations per size (default 5)")
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON object")
    args = parser.parse_args()
    if args.nodes < 2 or args.runs < 1:
        parser.error("--nodes must be at least 2 and --runs at least 1")
    result = measure(args.nodes, args.runs)
    report(result)
    if args.json:
        print(json.dumps(result))
    print(f"ratio worst_doubling {max(result['ratios']):.3f}")


if __name__ == "__main__":
    main()
