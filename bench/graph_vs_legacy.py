"""Benchmark: the generic graph interpreter vs the hard-coded legacy workflow, same activities.

Both run the full order-line chain (intake, materials, template, still, publish, notify) against
the embedded Temporal dev server, with instant stand-in activities under the production module
names, so the numbers measure orchestration overhead only. Prints both side by side and the ratio.

Usage: .venv/bin/python bench/graph_vs_legacy.py [--runs N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio import activity  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from core.settings import Settings  # noqa: E402
from core.temporal import (
    TemporalSession,  # noqa: E402
    connect,  # noqa: E402
)
from output_profiles.dispatch import plan_dispatch  # noqa: E402
from output_profiles.models import OutputTypeCreate  # noqa: E402
from prodgraph.embedded import embedded_temporal  # noqa: E402
from prodgraph.runs import run_plan  # noqa: E402
from registry.catalog import default_catalog  # noqa: E402
from registry.compiler import compile_plan  # noqa: E402
from registry.families import order_line_entry  # noqa: E402
from registry.starters import starter  # noqa: E402
from workflows.graph import GraphWorkflow  # noqa: E402
from workflows.legacy import LegacyPipelineInput, LegacyPipelineWorkflow  # noqa: E402

REF = {"uri": "file:///bench", "sha256": "0" * 64, "size": 1, "media_type": "x/y"}
OUTPUTS = {
    "cad.resolve_step_path": {"step_file": {**REF, "role": "step_file"}, "source_name": "b.step"},
    "cad.extract_objects": {"objects": [{"name": "p", "path": "p", "kind": "part"}], "source_unit": "mm"},
    "cad.export_glb": {"glb": {**REF, "role": "glb"}, "node_names": ["p"]},
    "cad.compute_bbox": {"bbox": {"min": [0, 0, 0], "max": [1, 1, 1], "unit": "m"}},
    "materials.auto_populate": {"material_assignments": {}},
    "materials.resolve_map": {"material_map": {}},
    "render.resolve_template": {
        "render_template": {"name": "studio_grey", "background": "#bfc3c7", "light_strength": 1.0}
    },
    "render.blender_still": {"still": {**REF, "role": "still"}, "render_seconds": 0.0},
    "output.publish_asset": {"published": [], "manifest": {**REF, "role": "manifest"}},
    "output.notify": {"notification_id": "n"},
}


def stand_in(key: str):
    """An instant activity under a production module name."""

    @activity.defn(name=key)
    async def run(input: dict) -> dict:
        return OUTPUTS[key]

    return run


async def graph_run(session: TemporalSession, intake_plan, order_plan) -> None:
    """Intake graph, then the order-line graph: what graph rollout runs."""
    _, intake = await run_plan(session, intake_plan, {"step_path": "/bench.step"})
    entry = order_line_entry(intake.outputs, "b")
    _, result = await run_plan(session, order_plan, entry)
    assert intake.status == result.status == "completed"


async def legacy_run(session: TemporalSession, legacy_plan) -> None:
    """The hard-coded legacy chain."""
    result = await session.client.execute_workflow(
        LegacyPipelineWorkflow.run,
        LegacyPipelineInput(
            plan=legacy_plan, step_path="/bench.step", order_line_id="b", task_queues=session.task_queues()
        ),
        id=f"bench-legacy-{uuid.uuid4().hex}",
        task_queue=session.settings.default_queue,
    )
    assert result.status == "completed"


async def timed(label: str, runs: int, concurrency: int, make) -> list[float]:
    """Wall seconds per run, `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)
    durations: list[float] = []

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            await make()
            durations.append(time.perf_counter() - started)

    await asyncio.gather(*(one() for _ in range(runs)))
    return durations


async def main(runs: int, concurrency: int) -> None:
    """Warm up, measure both, print side by side."""
    catalog = default_catalog()
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        state_dir=Path(tempfile.mkdtemp()), default_queue=queue, cad_queue=queue, render_queue=queue
    )
    intake_plan = compile_plan(starter("cad-intake-v1"), catalog)
    order_plan = compile_plan(starter("order-still-v1"), catalog)
    legacy_plan = plan_dispatch(
        OutputTypeCreate(slug="b", name="b", artifact_kinds=["still_image"]), None, catalog
    ).legacy_plan
    async with embedded_temporal(settings.state_dir) as endpoint:
        client = await connect(endpoint.address, settings)
        session = TemporalSession(client, None, settings)
        async with Worker(
            client,
            task_queue=queue,
            workflows=[GraphWorkflow, LegacyPipelineWorkflow],
            activities=[stand_in(key) for key in OUTPUTS],
            max_concurrent_activities=50,
        ):
            await graph_run(session, intake_plan, order_plan)
            await legacy_run(session, legacy_plan)
            graph = await timed(
                "graph", runs, concurrency, lambda: graph_run(session, intake_plan, order_plan)
            )
            legacy = await timed("legacy", runs, concurrency, lambda: legacy_run(session, legacy_plan))
    g, lg = statistics.median(graph), statistics.median(legacy)
    print(f"{'':24}{'graph':>12}{'legacy':>12}{'graph/legacy':>15}")
    print(f"{'median s per order line':24}{g:>12.3f}{lg:>12.3f}{g / lg:>15.2f}")
    print(
        f"{'p90 s per order line':24}{_p90(graph):>12.3f}{_p90(legacy):>12.3f}"
        f"{_p90(graph) / _p90(legacy):>15.2f}"
    )
    print(
        f"({runs} runs each, {concurrency} at a time, 10 activities per order line, "
        "graph = intake workflow then order workflow)"
    )


def _p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.concurrency))
    os._exit(0)
