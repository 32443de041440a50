"""Start a compiled plan on Temporal, follow its progress, and collect the result."""

from __future__ import annotations

import asyncio
import shlex
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import WorkflowExecutionDescription, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from core.errors import NotFoundError
from core.settings import Settings
from core.temporal import TemporalSession, connect
from core.vocabulary import DELIVERABLE_ROLES
from prodgraph.embedded import ensure_dev_server
from prodgraph.workers import build_workers
from registry.plan import ExecutionPlan, PlanNode
from workflows.graph import GraphRunInput, GraphRunResult, GraphWorkflow, NodeError, NodeState, RunLabels

Outcome = TypeVar("Outcome", bound=BaseModel)
ProgressCallback = Callable[[str, str, NodeState], None]
#: (workflow id, node id, the commands that repair it): a node began to wait for the operator.
AwaitingCallback = Callable[[str, str, list[str]], None]
POLL_S = 0.3


@asynccontextmanager
async def temporal_session(settings: Settings) -> AsyncIterator[TemporalSession]:
    """Connect to the configured server, or use the embedded one with in-process workers."""
    if settings.temporal_address:
        client = await connect(settings.temporal_address, settings)
        yield TemporalSession(client, settings.temporal_ui_url, settings)
        return
    endpoint = await ensure_dev_server(settings.state_dir, settings.temporal_namespace)
    client = await connect(endpoint.address, settings)
    # In-process workers end with the command: a node they were running is retried elsewhere.
    workers = build_workers(client, settings, shutdown_grace_s=0)
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield TemporalSession(client, endpoint.ui_url, settings)
    finally:
        await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)


async def described(handle: WorkflowHandle[Any, Any], missing: NotFoundError) -> WorkflowExecutionDescription:
    """A run's description, or `missing` when Temporal knows no such run."""
    try:
        return await handle.describe()
    except RPCError:
        raise missing from None


async def run_plan(
    session: TemporalSession,
    plan: ExecutionPlan,
    entry: dict[str, Any],
    on_progress: ProgressCallback | None = None,
    labels: RunLabels | None = None,
    on_awaiting: AwaitingCallback | None = None,
) -> tuple[str, GraphRunResult]:
    """Run a plan to the end; report each node change in plan order through on_progress."""
    handle = await start_plan(session, plan, entry, labels)
    return handle.id, await follow(handle, plan, on_progress, on_awaiting)


async def start_plan(
    session: TemporalSession,
    plan: ExecutionPlan,
    entry: dict[str, Any],
    labels: RunLabels | None = None,
    workflow_id: str | None = None,
) -> WorkflowHandle[Any, GraphRunResult]:
    """Start a graph run of the plan; its handle.

    Args:
        workflow_id: a fixed id, which starts at most one run ever (a second start raises
            WorkflowAlreadyStartedError); by default a fresh one from the plan's definition.
    """
    return await session.client.start_workflow(
        GraphWorkflow.run,
        GraphRunInput(
            plan=plan, entry=entry, task_queues=session.task_queues(), labels=labels or RunLabels()
        ),
        id=workflow_id or f"{plan.workflow_id}-{uuid.uuid4().hex[:12]}",
        task_queue=session.settings.default_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )


async def follow(
    handle: WorkflowHandle[Any, GraphRunResult],
    plan: ExecutionPlan,
    on_progress: ProgressCallback | None = None,
    on_awaiting: AwaitingCallback | None = None,
) -> GraphRunResult:
    """Wait for a graph run's end, reporting each node change in plan order as it happens.

    A node's status or attempt changing is news; pending is not. When a node begins to wait for
    the operator, on_awaiting hears the commands that repair it.
    """
    outcome = asyncio.ensure_future(graph_outcome(handle))
    seen: dict[str, tuple[str, int]] = {}

    def report(states: dict[str, NodeState]) -> None:
        for node in plan.nodes:
            state = states.get(node.id)
            if (
                state is None
                or state.status == "pending"
                or seen.get(node.id) == (state.status, state.attempts)
            ):
                continue
            seen[node.id] = (state.status, state.attempts)
            if on_progress:
                on_progress(handle.id, node.id, state)
            if on_awaiting and state.status == "awaiting_operator":
                on_awaiting(handle.id, node.id, repair_commands(handle.id, node))

    while not outcome.done():
        await asyncio.wait([outcome], timeout=POLL_S)
        if (on_progress or on_awaiting) and not outcome.done():
            try:
                states = await handle.query(GraphWorkflow.progress)
            except Exception:  # noqa: BLE001 - a query racing completion is harmless
                continue
            report(states)
    result = outcome.result()
    report(result.nodes)
    return result


def repair_commands(workflow_id: str, node: PlanNode) -> list[str]:
    """The commands an operator runs to repair a node awaiting them: retry, skip, or abort."""
    run, node_id = shlex.quote(workflow_id), shlex.quote(node.id)
    deliverable = set(node.artifact_outputs) & set(DELIVERABLE_ROLES)
    return [
        f"prodgraph runs retry {run} {node_id}",
        f"prodgraph runs skip {run} {node_id}" + (" --output FILE.json" if deliverable else ""),
        f"prodgraph runs abort {run} --reason TEXT",
    ]


async def outcome(
    handle: WorkflowHandle[Any, Outcome], model: type[Outcome], without_details: Callable[[str, str], Outcome]
) -> Outcome:
    """A prodgraph run's result: what it returned or, when it failed, what its failure carries.

    Args:
        handle: the run.
        model: the result model, which a failed run leaves in its ApplicationError's details.
        without_details: builds a failed result from (code, message) when the failure carries
            none (a run terminated or timed out from outside).
    """
    try:
        return await handle.result()
    except WorkflowFailureError as failed:
        details = failure_details(failed)
        if details is not None:
            return model.model_validate(details)
        return without_details(failure_code(failed), str(failed.cause or failed))


async def graph_outcome(handle: WorkflowHandle[Any, GraphRunResult]) -> GraphRunResult:
    """A graph run's result; a failed run's comes from its failure's details."""

    def failed(code: str, message: str) -> GraphRunResult:
        error = NodeError(code=code, message=message, node_id="")
        return GraphRunResult(status="failed", nodes={}, outputs={}, error=error)

    return await outcome(handle, GraphRunResult, failed)


def failure_details(failed: WorkflowFailureError) -> dict[str, Any] | None:
    """The result a failed prodgraph workflow left in its ApplicationError's details, if any."""
    cause = failed.cause
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
        return cause.details[0]
    return None


def failure_code(failed: WorkflowFailureError) -> str:
    """The error code of a failed workflow (its ApplicationError type), else what ended it."""
    cause = failed.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type
    return type(cause).__name__ if cause else "workflow_failed"
