"""Start a compiled plan on Temporal, follow its progress, and collect the result."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from core.settings import Settings
from core.temporal import TemporalSession, connect
from prodgraph.embedded import ensure_dev_server
from prodgraph.workers import build_workers
from registry.plan import ExecutionPlan
from workflows.graph import GraphRunInput, GraphRunResult, GraphWorkflow, NodeState

ProgressCallback = Callable[[str, str, NodeState], None]


@asynccontextmanager
async def temporal_session(settings: Settings) -> AsyncIterator[TemporalSession]:
    """Connect to the configured server, or use the embedded one with in-process workers."""
    if settings.temporal_address:
        client = await connect(settings.temporal_address, settings)
        yield TemporalSession(client, settings.temporal_ui_url, settings)
        return
    endpoint = await ensure_dev_server(settings.state_dir, settings.temporal_namespace)
    client = await connect(endpoint.address, settings)
    workers = build_workers(client, settings)
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield TemporalSession(client, endpoint.ui_url, settings)
    finally:
        await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_plan(
    session: TemporalSession,
    plan: ExecutionPlan,
    entry: dict[str, Any],
    on_progress: ProgressCallback | None = None,
    workflow_id: str | None = None,
) -> tuple[str, GraphRunResult]:
    """Run a plan to the end; report each node's status change through on_progress."""
    workflow_id = workflow_id or f"{plan.workflow_id}-{uuid.uuid4().hex[:12]}"
    handle = await session.client.start_workflow(
        GraphWorkflow.run,
        GraphRunInput(plan=plan, entry=entry, task_queues=session.task_queues()),
        id=workflow_id,
        task_queue=session.settings.default_queue,
    )
    result_task = asyncio.ensure_future(handle.result())
    seen: dict[str, str] = {}
    while not result_task.done():
        await asyncio.wait([result_task], timeout=0.3)
        if on_progress and not result_task.done():
            try:
                states = await handle.query(GraphWorkflow.progress)
            except Exception:  # noqa: BLE001 - a query racing completion is harmless
                continue
            _report(states, seen, workflow_id, on_progress)
    result = result_task.result()
    if on_progress:
        _report(result.nodes, seen, workflow_id, on_progress)
    return workflow_id, result


def _report(
    states: dict[str, NodeState], seen: dict[str, str], workflow_id: str, on_progress: ProgressCallback
) -> None:
    for node_id, state in sorted(states.items()):
        if seen.get(node_id) != state.status:
            seen[node_id] = state.status
            on_progress(workflow_id, node_id, state)
