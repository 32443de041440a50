"""Run routes for on-call: find runs, show one, and repair it (retry, skip, abort, re-run)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import AUTHENTICATED, Caller, CallerDep, require_role
from api.deps import NodeIdPath, SettingsDep, TemporalDep, WorkflowIdPath
from api.errors import ERROR_RESPONSES
from api.public import scrubbed
from api.schemas import (
    AbortRequest,
    AbortResult,
    NodeActionResult,
    RerunRequest,
    RerunStarted,
    RetryRequest,
    SkipRequest,
)
from core.vocabulary import Family, Role
from prodgraph import operations
from prodgraph.operations import MAX_LISTED, RunStatus, RunSummary, RunView

router = APIRouter(prefix="/api/runs", tags=["runs"], responses=ERROR_RESPONSES, dependencies=AUTHENTICATED)
Label = Annotated[str | None, Query(min_length=1, max_length=200, pattern=operations.LABEL_PATTERN)]


@router.get("", response_model=list[RunSummary], dependencies=[require_role(Role.client, Role.operator)])
async def list_runs(
    temporal: TemporalDep,
    caller: CallerDep,
    order_line: Label = None,
    output_type: Label = None,
    family: Family | None = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 50,
) -> list[RunSummary]:
    """Runs matching every given filter, newest first (the Temporal visibility store's view)."""
    return await operations.list_runs(
        temporal,
        order_line=order_line,
        output_type=output_type,
        family=family,
        status=status,
        limit=limit,
        owner=scope(caller),
    )


@router.get("/{workflow_id}", response_model=RunView, dependencies=[require_role(Role.client, Role.operator)])
async def show_run(
    workflow_id: WorkflowIdPath, temporal: TemporalDep, caller: CallerDep, settings: SettingsDep
) -> RunView:
    """A graph run's nodes: status, attempts, last error, timings, params with provenance.

    A client sees no server path in it (store URIs and folders are cut to their last part);
    on-call sees the run as it is.
    """
    view = await operations.show_run(temporal, workflow_id, owner=scope(caller))
    if caller.sees_everything:
        return view
    return RunView.model_validate(scrubbed(view.model_dump(mode="json"), settings))


@router.post(
    "/{workflow_id}/nodes/{node_id}/retry",
    response_model=NodeActionResult,
    dependencies=[require_role(Role.operator)],
)
async def retry_node(
    workflow_id: WorkflowIdPath,
    node_id: NodeIdPath,
    temporal: TemporalDep,
    caller: CallerDep,
    request: RetryRequest | None = None,
) -> NodeActionResult:
    """Retry a node awaiting the operator (409 operator_action_refused when it is not)."""
    request = request or RetryRequest()
    state = await operations.retry_node(
        temporal, workflow_id, node_id, request.params, request.timeout_s, owner=scope(caller)
    )
    return NodeActionResult(workflow_id=workflow_id, node_id=node_id, action="retry", node=state)


@router.post(
    "/{workflow_id}/nodes/{node_id}/skip",
    response_model=NodeActionResult,
    dependencies=[require_role(Role.operator)],
)
async def skip_node(
    workflow_id: WorkflowIdPath,
    node_id: NodeIdPath,
    temporal: TemporalDep,
    caller: CallerDep,
    request: SkipRequest | None = None,
) -> NodeActionResult:
    """Skip a node awaiting the operator; its output must fit the node's output contract."""
    request = request or SkipRequest()
    state = await operations.skip_node(temporal, workflow_id, node_id, request.output, owner=scope(caller))
    return NodeActionResult(workflow_id=workflow_id, node_id=node_id, action="skip", node=state)


@router.post(
    "/{workflow_id}/abort",
    response_model=AbortResult,
    status_code=202,
    dependencies=[require_role(Role.operator)],
)
async def abort_run(
    workflow_id: WorkflowIdPath, request: AbortRequest, temporal: TemporalDep, caller: CallerDep
) -> AbortResult:
    """Abort a running run: its running nodes are cancelled and it fails as `aborted`."""
    status = await operations.abort_run(temporal, workflow_id, request.reason, owner=scope(caller))
    return AbortResult(workflow_id=workflow_id, status=status)


@router.post(
    "/{workflow_id}/rerun",
    response_model=RerunStarted,
    status_code=202,
    dependencies=[require_role(Role.operator)],
)
async def rerun(
    workflow_id: WorkflowIdPath, temporal: TemporalDep, caller: CallerDep, request: RerunRequest | None = None
) -> RerunStarted:
    """Start a new run of a closed run's plan that reuses what completed."""
    request = request or RerunRequest()
    new_id = await operations.rerun(
        temporal, workflow_id, from_node=request.from_node, params=request.params or None, owner=scope(caller)
    )
    return RerunStarted(workflow_id=new_id, rerun_of=workflow_id, temporal_ui=temporal.workflow_url(new_id))


def scope(caller: Caller) -> str | None:
    """The owner whose runs a caller sees: its own, or every run (None) for operators and admins."""
    return None if caller.sees_everything else caller.owner
