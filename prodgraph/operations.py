"""On-call use cases: find runs, show one, and repair it (retry, skip, abort, re-run from failure).

The CLI and the API both call these; every refusal is a core error naming what is wrong. With an
`owner`, a use case sees only that owner's runs (an API client's view): another owner's run is
answered exactly as a run that does not exist. Without one it sees every run (on-call's view).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributeKey, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core import temporal as attributes
from core.errors import NotFoundError, OperatorActionRefusedError, ProdgraphError, first_problem
from core.temporal import TemporalSession
from prodgraph.runs import described
from registry.catalog import default_catalog
from registry.plan import ExecutionPlan, PlanNode
from workflows.graph import (
    AbortRun,
    GraphRunInput,
    GraphRunResult,
    GraphWorkflow,
    NodeState,
    RetryNode,
    SkipNode,
)

RunStatus = Literal[
    "running", "failed", "completed", "awaiting_operator", "cancelled", "terminated", "timed_out"
]
#: Filters of `runs list` → the search attribute each one queries.
FILTERS: dict[str, SearchAttributeKey[Any]] = {
    "order_line": attributes.ORDER_LINE,
    "output_type": attributes.OUTPUT_TYPE,
    "family": attributes.FAMILY,
}
MAX_LISTED = 200
#: What a filter value may hold: order-line ids and output-type slugs use no more. Temporal's SQL
#: visibility store breaks on a NUL inside a query string (answered as "unavailable", after
#: seconds of client retries), so free text never reaches the query.
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
CLOSED = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


class RunSummary(BaseModel):
    """One run as `runs list` shows it."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str
    workflow_type: str
    status: RunStatus
    started_at: datetime | None
    temporal_ui: str | None
    search_attributes: dict[str, Any]


class NodeView(BaseModel):
    """One node as `runs show` shows it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    module: str
    status: str
    attempts: int
    error: dict[str, Any] | None
    params: dict[str, Any]
    param_sources: dict[str, str]
    started_at: datetime | None
    ended_at: datetime | None
    reused: bool
    progress: str | None = None
    """The module's last heartbeat (e.g. frames rendered), while it runs."""


class RunView(RunSummary):
    """A run in full: its nodes, their attempts, errors, params with provenance."""

    nodes: list[NodeView]
    error: dict[str, Any] | None = None
    memo: dict[str, Any] = {}


async def list_runs(
    session: TemporalSession,
    *,
    order_line: str | None = None,
    output_type: str | None = None,
    family: str | None = None,
    status: RunStatus | None = None,
    limit: int = 50,
    owner: str | None = None,
) -> list[RunSummary]:
    """Runs matching every given filter, newest first."""
    for name, value in (("order_line", order_line), ("output_type", output_type), ("family", family)):
        if value and not re.fullmatch(LABEL_PATTERN, value):
            raise ProdgraphError(f"{name} {value!r} may hold only letters, digits and . _ : -", field=name)
    clauses = [
        f'{key.name} = "{_quoted(value)}"'
        for key, value in (
            (FILTERS["order_line"], order_line),
            (FILTERS["output_type"], output_type),
            (FILTERS["family"], family),
            (attributes.OWNER, owner),
        )
        if value
    ]
    clauses += _status_clause(status)
    query = " AND ".join(clauses) or None
    found: list[RunSummary] = []
    async for execution in session.client.list_workflows(query, limit=min(limit, MAX_LISTED)):
        found.append(
            RunSummary(
                workflow_id=execution.id,
                workflow_type=execution.workflow_type,
                status=_status(execution.status, execution.typed_search_attributes),
                started_at=execution.start_time,
                temporal_ui=session.workflow_url(execution.id),
                search_attributes=_attributes(execution.typed_search_attributes),
            )
        )
    return found


async def show_run(session: TemporalSession, workflow_id: str, owner: str | None = None) -> RunView:
    """A graph run's per-node state, attempts, last error, timings, params with provenance."""
    handle, description = await _described(session, workflow_id, owner)
    run_input = await _graph_input(session, handle, description)
    plan = run_input.plan
    if description.status == WorkflowExecutionStatus.RUNNING:
        states, error = await handle.query(GraphWorkflow.progress), None
    else:
        from prodgraph.runs import graph_outcome

        outcome = await graph_outcome(handle)
        states, error = outcome.nodes, outcome.error.model_dump() if outcome.error else None
    heartbeats = {
        activity.activity_id: activity for activity in (description.raw_description.pending_activities or [])
    }
    return RunView(
        workflow_id=workflow_id,
        workflow_type=description.workflow_type,
        status=_status(description.status, description.typed_search_attributes),
        started_at=description.start_time,
        temporal_ui=session.workflow_url(workflow_id),
        search_attributes=_attributes(description.typed_search_attributes),
        nodes=[_node_view(node.id, node.module_key, states.get(node.id), heartbeats) for node in plan.nodes],
        error=error,
        memo=await description.memo(),
    )


async def retry_node(
    session: TemporalSession,
    workflow_id: str,
    node_id: str,
    params: dict[str, Any] | None = None,
    timeout_s: float | None = None,
    owner: str | None = None,
) -> NodeState:
    """Retry a node awaiting the operator, with params and timeout changed for this retry only."""
    handle = await _visible_handle(session, workflow_id, owner)
    request = _request(RetryNode, node_id=node_id, params=params or {}, timeout_s=timeout_s)
    return await _update(handle, GraphWorkflow.retry_node, request)


async def skip_node(
    session: TemporalSession,
    workflow_id: str,
    node_id: str,
    output: dict[str, Any] | None = None,
    owner: str | None = None,
) -> NodeState:
    """Skip a node awaiting the operator; its output is checked against its output contract."""
    handle = await _visible_handle(session, workflow_id, owner)
    return await _update(handle, GraphWorkflow.skip_node, _request(SkipNode, node_id=node_id, output=output))


async def abort_run(session: TemporalSession, workflow_id: str, reason: str, owner: str | None = None) -> str:
    """Abort a running graph run: its running nodes are cancelled and it fails as aborted."""
    handle = await _visible_handle(session, workflow_id, owner)
    return await _update(handle, GraphWorkflow.abort, _request(AbortRun, reason=reason))


async def rerun(
    session: TemporalSession,
    workflow_id: str,
    *,
    from_node: str | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    owner: str | None = None,
) -> str:
    """Start a new run of a closed run's pinned plan that reuses what completed; its id.

    Nodes that completed keep their outputs, except `from_node`, any node with changed params,
    and everything downstream of them. The new run is linked to the original through its memo
    and the ProdgraphRerunOf search attribute (Temporal cannot change a closed run's memo, so the
    original's reruns are found with `ProdgraphRerunOf = "<id>"`).

    Args:
        session: the Temporal session.
        workflow_id: the closed graph run.
        from_node: run this node again even if it completed.
        params: node id → changed params, validated against the node's param schema.
        owner: act only on this owner's run (an API client), None for on-call.
    """
    handle, description = await _described(session, workflow_id, owner)
    if description.status == WorkflowExecutionStatus.RUNNING:
        raise _refused("run_still_running", f"run {workflow_id!r} is still running; retry its node instead")
    original = await _graph_input(session, handle, description)
    from prodgraph.runs import graph_outcome

    outcome = await graph_outcome(handle)
    plan = _with_params(original.plan, params or {})
    again = {node_id for node_id in [*(params or {}), *([from_node] if from_node else [])]}
    for node_id in again:
        _require_node(plan, node_id)
    redo = plan.with_descendants(again)
    reuse = {
        node_id: output
        for node_id, output in outcome.outputs.items()
        if outcome.nodes.get(node_id, NodeState()).status == "completed" and node_id not in redo
    }
    new_id = f"{workflow_id.split('-rerun-')[0]}-rerun-{uuid.uuid4().hex[:6]}"
    await session.client.start_workflow(
        GraphWorkflow.run,
        original.model_copy(
            update={
                "plan": plan,
                "reuse": reuse,
                "rerun_of": workflow_id,
                "task_queues": session.task_queues(),
            }
        ),
        id=new_id,
        task_queue=session.settings.default_queue,
        memo={"rerun_of": workflow_id, "reused_nodes": sorted(reuse)},
    )
    return new_id


# --- helpers --------------------------------------------------------------------------------


async def _described(
    session: TemporalSession, workflow_id: str, owner: str | None = None
) -> tuple[WorkflowHandle[Any, GraphRunResult], WorkflowExecutionDescription]:
    """A run's handle and description; another owner's run is not found, like a missing one."""
    handle = session.client.get_workflow_handle_for(GraphWorkflow.run, workflow_id)
    missing = NotFoundError(f"no run {workflow_id!r}", field="workflow_id")
    description = await described(handle, missing)
    if owner is not None and await run_owner(session, description) != owner:
        raise missing
    return handle, description


async def _visible_handle(
    session: TemporalSession, workflow_id: str, owner: str | None
) -> WorkflowHandle[Any, GraphRunResult]:
    """A run's handle, after checking the owner sees it (no describe for on-call)."""
    if owner is None:
        return session.client.get_workflow_handle_for(GraphWorkflow.run, workflow_id)
    return (await _described(session, workflow_id, owner))[0]


async def run_owner(session: TemporalSession, description: WorkflowExecutionDescription) -> str | None:
    """Whom a run works for: its ProdgraphOwner label, else its root run's (an order line's)."""
    owner = description.typed_search_attributes.get(attributes.OWNER)
    if owner or not description.root_id or description.root_id == description.id:
        return owner
    try:
        root = await session.client.get_workflow_handle(description.root_id).describe()
    except RPCError:
        return None
    return root.typed_search_attributes.get(attributes.OWNER)


async def _graph_input(
    session: TemporalSession, handle: WorkflowHandle[Any, Any], description: WorkflowExecutionDescription
) -> GraphRunInput:
    """The pinned input a graph run started with, read from its first history event."""
    if description.workflow_type != "GraphWorkflow":
        raise _refused(
            "not_a_graph_run", f"run {handle.id!r} is a {description.workflow_type}; show its graph children"
        )
    async for event in handle.fetch_history_events():
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        (decoded,) = await session.client.data_converter.decode(payloads, [GraphRunInput])
        return decoded
    raise NotFoundError(f"run {handle.id!r} has no history", field="workflow_id")


async def _update(handle: WorkflowHandle[Any, Any], update: Any, request: BaseModel) -> Any:
    try:
        return await handle.execute_update(update, request)
    except WorkflowUpdateFailedError as failed:
        cause = failed.cause
        rule = cause.type if isinstance(cause, ApplicationError) and cause.type else "refused"
        raise _refused(rule, getattr(cause, "message", None) or str(cause)) from None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND and "already completed" not in error.message:
            raise NotFoundError(f"no run {handle.id!r}", field="workflow_id") from None
        raise _refused("run_not_open", f"run {handle.id!r} cannot take operator actions: {error}") from None


def _request(model: type[BaseModel], **fields: Any) -> Any:
    try:
        return model(**fields)
    except ValidationError as exc:
        field, words = first_problem(exc)
        raise _refused("invalid_request", f"{field}: {words}") from None


def _refused(rule: str, message: str) -> OperatorActionRefusedError:
    return OperatorActionRefusedError(f"{rule}: {message}", problems=[{"code": rule, "message": message}])


def _require_node(plan: ExecutionPlan, node_id: str) -> None:
    if node_id not in {node.id for node in plan.nodes}:
        known = ", ".join(node.id for node in plan.nodes)
        raise _refused("unknown_node", f"no node {node_id!r} in this run; nodes: {known}")


def _with_params(plan: ExecutionPlan, changes: dict[str, dict[str, Any]]) -> ExecutionPlan:
    """The plan with operator params applied (provenance `invocation`), each validated."""
    catalog = default_catalog()
    nodes = []
    for node in plan.nodes:
        change = changes.get(node.id)
        if change:
            params = {**node.params, **change}
            try:
                catalog.specs[node.module_key].params_model.model_validate(params)
            except ValidationError as exc:
                field, words = first_problem(exc)
                raise _refused("invalid_params", f"node {node.id!r}: params.{field}: {words}") from None
            # Validated whole, so a plan the interpreter could not decode is refused here.
            sources = {**node.param_sources, **{name: "operator" for name in change}}
            node = PlanNode.model_validate({**node.model_dump(), "params": params, "param_sources": sources})
        nodes.append(node)
    return plan.model_copy(update={"nodes": nodes})


def _node_view(node_id: str, module: str, state: NodeState | None, heartbeats: dict[str, Any]) -> NodeView:
    state = state or NodeState()
    return NodeView(
        id=node_id,
        module=module,
        status=state.status,
        attempts=state.attempts,
        error=state.error.model_dump() if state.error else None,
        params=state.params,
        param_sources=state.param_sources,
        started_at=state.started_at,
        ended_at=state.ended_at,
        reused=state.reused,
        progress=_heartbeat_of(module, heartbeats) if state.status in ("running", "retrying") else None,
    )


def _heartbeat_of(module: str, heartbeats: dict[str, Any]) -> str | None:
    """The last heartbeat detail of the pending activity of this module, as text."""
    for activity in heartbeats.values():
        if activity.activity_type.name == module and activity.heartbeat_details.payloads:
            return activity.heartbeat_details.payloads[0].data.decode(errors="replace").strip('"')
    return None


def _attributes(typed: TypedSearchAttributes) -> dict[str, Any]:
    return {pair.key.name: pair.value for pair in typed if pair.key.name.startswith("Prodgraph")}


def _status(status: WorkflowExecutionStatus | None, typed: TypedSearchAttributes) -> RunStatus:
    if status in CLOSED:
        return CLOSED[status]  # type: ignore[return-value]
    return "awaiting_operator" if typed.get(attributes.AWAITING_OPERATOR) else "running"


def _status_clause(status: RunStatus | None) -> list[str]:
    if status is None:
        return []
    awaiting = attributes.AWAITING_OPERATOR.name
    if status == "awaiting_operator":
        return ['ExecutionStatus = "Running"', f"{awaiting} = true"]
    if status == "running":  # as listed: a run awaiting the operator is not `running`
        return ['ExecutionStatus = "Running"', f"({awaiting} IS NULL OR {awaiting} = false)"]
    names = {
        "failed": "Failed",
        "completed": "Completed",
        "cancelled": "Canceled",
        "terminated": "Terminated",
        "timed_out": "TimedOut",
    }
    return [f'ExecutionStatus = "{names[status]}"']


def _quoted(value: str) -> str:
    """A value safe inside a visibility query's double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
