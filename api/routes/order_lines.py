"""Order-line routes: launch an invocation through its output type, and follow it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.auth import AUTHENTICATED, CallerDep, require_role
from api.deps import CatalogDep, SessionDep, TemporalDep, WorkflowIdPath, off_loop
from api.errors import ERROR_RESPONSES
from api.public import ArtifactLink, link, public_error
from api.ratelimit import RATE_LIMITED_RESPONSES, rate_limited
from core.temporal import TemporalSession
from core.vocabulary import Role
from output_profiles.dispatch_plan import EffectiveCall, OrderLine, OrderLineId
from prodgraph.cad_files import step_reference
from prodgraph.grants import grant
from prodgraph.orders import launched_before, order_line_state, order_line_workflow_id, start_order_line
from prodgraph.preflight import PlannedOrderLine, PreflightReport, plan_order_line, run_preflight
from registry.catalog import Catalog

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="The client's own key for this launch; it replaces the order line id as the key.",
    ),
]

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
    route: Literal["legacy", "graph", "shadow"]
    artifact_kinds: list[str]
    temporal_ui: str | None
    effective: dict[str, EffectiveCall]


class OrderLineResult(BaseModel):
    """How an ended invocation went (its artifacts are listed beside it, as download links)."""

    route: Literal["legacy", "graph", "shadow"]
    """In a shadow, the legacy run's: the graph beside it is on-call's to see (/api/parity)."""
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


async def planned_of(
    request: OrderLineRequest, session: Session, catalog: Catalog, owner: str
) -> PlannedOrderLine:
    """The order line planned: output type, workflow, CAD file, dispatch (off the event loop)."""
    return await off_loop(
        session,
        plan_order_line,
        catalog,
        request.output_type,
        request.invocation_params,
        request.cad_file_id,
        owner,
    )


async def preflight_of(
    request: OrderLineRequest, session: Session, catalog: Catalog, temporal: TemporalSession, owner: str
) -> tuple[PlannedOrderLine, PreflightReport]:
    """The order line planned and its preflight checks."""
    planned = await planned_of(request, session, catalog, owner)
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
    idempotency_key: IdempotencyKey = None,
) -> OrderLineLaunched:
    """Dispatch through the output type (legacy, graph or shadow) and start the run.

    The order line id (or an `Idempotency-Key` header), with the output type, is the idempotency
    key, per caller: sending the same line again answers the run it started, running or ended;
    the same key with another request is 409. A re-render is a new order line id, asked for
    explicitly. The preflight checks run first: when one fails nothing starts, and the answer is
    422 `preflight_failed` with every check.
    """
    planned = await planned_of(request, session, catalog, caller.owner)
    output_type = planned.require_output_type()
    cad_file = planned.require_cad_file()
    workflow_id = order_line_workflow_id(
        caller.owner, request.output_type, idempotency_key or request.order_line_id
    )
    # A client's retry of a line already launched answers its run, whatever workers do now.
    if not await launched_before(temporal, workflow_id):
        report = await run_preflight(temporal, catalog, planned, request.product_category, caller.owner)
        report.raise_if_failed()
    plan = planned.require_plan()
    order = OrderLine(
        **request.model_dump(exclude={"output_type", "cad_file_id"}), step_path=step_reference(cad_file)
    )
    handle = await start_order_line(
        temporal, plan, order, output_type.slug, owner=caller.owner, idempotency_key=idempotency_key
    )
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
    await off_loop(session, grant, caller.owner, result.artifacts, workflow_id)
    error = public_error(result.error, http.app.state.settings)
    return answer.model_copy(
        update={
            "artifacts": [link(ref) for ref in result.artifacts],
            "result": OrderLineResult(**result.model_dump(exclude={"artifacts", "error"}), error=error),
        }
    )
