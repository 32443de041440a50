"""Order-line routes: launch an invocation through its output type, and follow it."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.auth import AUTHENTICATED, CallerDep, require_role
from api.deps import CatalogDep, SessionDep, TemporalDep, WorkflowIdPath
from api.errors import ERROR_RESPONSES
from api.ratelimit import RATE_LIMITED_RESPONSES, rate_limited
from core.temporal import TemporalSession
from core.vocabulary import Role
from output_profiles.dispatch_plan import EffectiveCall, InvocationResult, OrderLine
from prodgraph.orders import order_line_state, start_order_line
from prodgraph.preflight import PlannedOrderLine, PreflightReport, plan_order_line, run_preflight
from registry.catalog import Catalog

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
    route: Literal["legacy", "graph", "shadow"]
    artifact_kinds: list[str]
    temporal_ui: str | None
    effective: dict[str, EffectiveCall]


class OrderLineStatus(BaseModel):
    """Where an invocation stands; the result once it has ended."""

    workflow_id: str
    status: str
    temporal_ui: str | None
    result: InvocationResult | None = None


def requested_cad_file(request: OrderLineRequest) -> str | None:
    """The uploaded CAD file the request names (None while the body names a server path)."""
    return getattr(request, "cad_file_id", None)


async def preflight_of(
    request: OrderLineRequest, session: Session, catalog: Catalog, temporal: TemporalSession, owner: str
) -> tuple[PlannedOrderLine, PreflightReport]:
    """The order line planned (its database work off the event loop) and its preflight checks."""
    planned = await run_in_threadpool(
        plan_order_line,
        session,
        catalog,
        request.output_type,
        request.invocation_params,
        requested_cad_file(request),
        owner,
    )
    report = await run_preflight(temporal, catalog, planned, request.product_category, owner)
    return planned, report


@router.post("/preflight", response_model=PreflightReport, dependencies=[require_role(Role.client)])
async def preflight_order_line(
    request: OrderLineRequest,
    session: SessionDep,
    catalog: CatalogDep,
    temporal: TemporalDep,
    caller: CallerDep,
) -> PreflightReport:
    """Check an order line without starting it: each check answers pass, warn or fail with a
    reason; ok is false when one failed (a launch of it would be refused with them)."""
    _, report = await preflight_of(request, session, catalog, temporal, caller.owner)
    return report


@router.post(
    "",
    response_model=OrderLineLaunched,
    status_code=202,
    responses=RATE_LIMITED_RESPONSES,
    dependencies=[require_role(Role.client), rate_limited],
)
async def launch_order_line(
    request: OrderLineRequest,
    session: SessionDep,
    catalog: CatalogDep,
    temporal: TemporalDep,
    caller: CallerDep,
) -> OrderLineLaunched:
    """Dispatch through the output type (legacy, graph or shadow) and start the run.

    The order line id is the idempotency key, per caller: sending the same line again answers the
    run it started; the same id with another request is 409. The preflight checks run first: when
    one fails nothing starts, and the answer is 422 `preflight_failed` with every check.
    """
    planned, report = await preflight_of(request, session, catalog, temporal, caller.owner)
    output_type = planned.require_output_type()
    report.raise_if_failed()
    plan = planned.require_plan()
    order = OrderLine(**request.model_dump(exclude={"output_type"}))
    handle = await start_order_line(temporal, plan, order, output_type.slug, owner=caller.owner)
    return OrderLineLaunched(
        workflow_id=handle.id,
        route=plan.route,
        artifact_kinds=plan.artifact_kinds,
        temporal_ui=temporal.workflow_url(handle.id),
        effective=plan.effective(),
    )


@router.get(
    "/{workflow_id}", response_model=OrderLineStatus, dependencies=[require_role(Role.client, Role.operator)]
)
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
