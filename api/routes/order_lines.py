"""Order-line routes: launch an invocation through its output type, and follow it."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import AUTHENTICATED, CallerDep
from api.deps import CatalogDep, SessionDep, TemporalDep, WorkflowIdPath
from api.errors import ERROR_RESPONSES
from api.public import ArtifactLink, link, public_error
from output_profiles.dispatch_plan import EffectiveCall, OrderLine, OrderLineId
from prodgraph.cad_files import own_file, step_reference
from prodgraph.grants import grant
from prodgraph.orders import dispatch_order_line, order_line_state, start_order_line

router = APIRouter(
    prefix="/api/order-lines", tags=["order lines"], responses=ERROR_RESPONSES, dependencies=AUTHENTICATED
)


class OrderLineRequest(BaseModel):
    """An order line to produce: the output type sold on it and the uploaded CAD file it renders."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    order_line_id: OrderLineId
    """The client's id of the order line; it launches one run (a retry answers that run)."""
    output_type: str
    """Slug of the output type sold on the line."""
    cad_file_id: str = Field(max_length=40, pattern=r"^cad_[0-9a-f]{32}$")
    """An id `POST /api/cad-files` answered (the caller's own file)."""
    product_category: str | None = None
    invocation_params: dict[str, Any] = {}
    """Per-order parameter values; they win over the output type's overrides."""


class OrderLineLaunched(BaseModel):
    """A started invocation."""

    workflow_id: str
    route: Literal["legacy", "graph"]
    artifact_kinds: list[str]
    temporal_ui: str | None
    effective: dict[str, EffectiveCall]


class OrderLineResult(BaseModel):
    """How an ended invocation went (its artifacts are listed beside it, as download links)."""

    route: Literal["legacy", "graph"]
    status: Literal["completed", "failed"]
    workflow_ids: list[str]
    effective: dict[str, EffectiveCall]
    error: dict[str, Any] | None = None


class OrderLineStatus(BaseModel):
    """Where an invocation stands; the result and the artifacts to download once it has ended."""

    workflow_id: str
    status: str
    temporal_ui: str | None
    artifacts: list[ArtifactLink] = []
    result: OrderLineResult | None = None


@router.post("", response_model=OrderLineLaunched, status_code=202)
async def launch_order_line(
    request: OrderLineRequest,
    session: SessionDep,
    catalog: CatalogDep,
    temporal: TemporalDep,
    caller: CallerDep,
) -> OrderLineLaunched:
    """Dispatch through the output type (legacy, graph; shadow is refused) and start the run.

    The order line id is the idempotency key, per caller: sending the same line again answers the
    run it started; the same id with another request is 409.
    """
    # The database is synchronous: off the event loop, so one slow query never stalls the API.
    output_type, plan = await run_in_threadpool(
        dispatch_order_line, session, catalog, request.output_type, request.invocation_params
    )
    cad_file = await run_in_threadpool(own_file, session, caller.owner, request.cad_file_id)
    order = OrderLine(
        **request.model_dump(exclude={"output_type", "cad_file_id"}), step_path=step_reference(cad_file)
    )
    handle = await start_order_line(temporal, plan, order, output_type.slug, owner=caller.owner)
    return OrderLineLaunched(
        workflow_id=handle.id,
        route=plan.route,
        artifact_kinds=plan.artifact_kinds,
        temporal_ui=temporal.workflow_url(handle.id),
        effective=plan.effective(),
    )


@router.get("/{workflow_id}", response_model=OrderLineStatus)
async def order_line_status(
    workflow_id: WorkflowIdPath, http: Request, session: SessionDep, temporal: TemporalDep, caller: CallerDep
) -> OrderLineStatus:
    """Status of one of the caller's order lines, with its result and artifacts when it has ended."""
    status, result = await order_line_state(temporal, workflow_id, owner=caller.owner)
    answer = OrderLineStatus(
        workflow_id=workflow_id, status=status.name.lower(), temporal_ui=temporal.workflow_url(workflow_id)
    )
    if result is None:
        return answer
    # Shown, so downloadable: the owner's grant of each artifact is recorded with the answer.
    await run_in_threadpool(grant, session, caller.owner, result.artifacts, workflow_id)
    error = public_error(result.error, http.app.state.settings)
    return answer.model_copy(
        update={
            "artifacts": [link(ref) for ref in result.artifacts],
            "result": OrderLineResult(**result.model_dump(exclude={"artifacts", "error"}), error=error),
        }
    )
