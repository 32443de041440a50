"""Order-line routes: launch an invocation through its output type, and follow it."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from api.auth import AUTHENTICATED, CallerDep
from api.deps import CatalogDep, SessionDep, TemporalDep, WorkflowIdPath, off_loop
from api.errors import ERROR_RESPONSES
from output_profiles.dispatch_plan import EffectiveCall, InvocationResult, OrderLine
from prodgraph.orders import dispatch_order_line, order_line_state, start_order_line

router = APIRouter(
    prefix="/api/order-lines", tags=["order lines"], responses=ERROR_RESPONSES, dependencies=AUTHENTICATED
)


class OrderLineRequest(OrderLine):
    """An order line to produce, and the output type sold on it."""

    model_config = ConfigDict(extra="forbid")

    output_type: str


class OrderLineLaunched(BaseModel):
    """A started invocation."""

    workflow_id: str
    route: Literal["legacy", "graph"]
    artifact_kinds: list[str]
    temporal_ui: str | None
    effective: dict[str, EffectiveCall]


class OrderLineStatus(BaseModel):
    """Where an invocation stands; the result once it has ended."""

    workflow_id: str
    status: str
    temporal_ui: str | None
    result: InvocationResult | None = None


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
    output_type, plan = await off_loop(
        session, dispatch_order_line, catalog, request.output_type, request.invocation_params
    )
    order = OrderLine(**request.model_dump(exclude={"output_type"}))
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
    workflow_id: WorkflowIdPath, temporal: TemporalDep, caller: CallerDep
) -> OrderLineStatus:
    """Status of one of the caller's order lines, with its result when it has ended."""
    status, result = await order_line_state(temporal, workflow_id, owner=caller.owner)
    return OrderLineStatus(
        workflow_id=workflow_id,
        status=status.name.lower(),
        temporal_ui=temporal.workflow_url(workflow_id),
        result=result,
    )
