"""Use cases of order lines: dispatch one through its stored output type, start it, follow it."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core import temporal as attributes
from core.errors import ConflictError, NotFoundError
from core.temporal import TemporalSession
from output_profiles.dispatch import plan_dispatch
from output_profiles.dispatch_plan import DispatchPlan, InvocationResult, OrderLine
from persistence.repositories import require_output_type, workflow_for
from persistence.tables import OutputType
from prodgraph.parity import with_calibration
from prodgraph.runs import described, outcome
from registry.catalog import Catalog
from workflows.order_line import OrderLineInput, OrderLineWorkflow

#: Owner of order lines launched from this machine's CLI (API callers are their own owners).
LOCAL_OWNER = "local"
FINGERPRINT_MEMO = "request_fingerprint"


def dispatch_order_line(
    db: Session, catalog: Catalog, output_type_slug: str, invocation_params: dict[str, Any] | None = None
) -> tuple[OutputType, DispatchPlan]:
    """The stored output type and the dispatch it decides for one order line."""
    output_type = require_output_type(db, output_type_slug)
    plan = plan_dispatch(output_type, workflow_for(db, output_type), catalog, invocation_params)
    return output_type, with_calibration(db, plan, output_type.slug)


async def start_order_line(
    session: TemporalSession,
    plan: DispatchPlan,
    order: OrderLine,
    output_type_slug: str,
    owner: str = LOCAL_OWNER,
    idempotency_key: str | None = None,
) -> WorkflowHandle[Any, InvocationResult]:
    """Start the parent workflow of one order line, once: its handle.

    The order line id (or the client's idempotency key, when it sends one) with the output type is
    the idempotency key. Launching the same order line again (a client's retry) answers the run
    already started for it, running or closed; launching it again with another request is a
    conflict. A re-render is a new order line id (or key), asked for explicitly.
    """
    workflow_id = order_line_workflow_id(owner, output_type_slug, idempotency_key or order.order_line_id)
    run_input = OrderLineInput(
        dispatch=plan, order=order, output_type=output_type_slug, task_queues=session.task_queues()
    )
    fingerprint = request_fingerprint(run_input)
    try:
        return await session.client.start_workflow(
            OrderLineWorkflow.run,
            run_input,
            id=workflow_id,
            task_queue=session.settings.default_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={FINGERPRINT_MEMO: fingerprint, "owner": owner},
            search_attributes=TypedSearchAttributes([SearchAttributePair(attributes.OWNER, owner)]),
        )
    except WorkflowAlreadyStartedError:
        existing = session.client.get_workflow_handle_for(OrderLineWorkflow.run, workflow_id)
        memo = await (await existing.describe()).memo()
        if memo.get(FINGERPRINT_MEMO) != fingerprint:
            raise ConflictError(
                f"order line {order.order_line_id!r} was launched before with another request; "
                "an order line id launches one run",
                field="order_line_id",
            ) from None
        return existing


def order_line_workflow_id(owner: str, output_type: str, key: str) -> str:
    """The one workflow id of an owner's order line of an output type (its id or idempotency key).

    Neither owners nor output type slugs hold a `:`, so the first two end them: no two owners'
    (or output types') ids can collide.
    """
    return f"order-{owner}:{output_type}:{key}"


async def launched_before(session: TemporalSession, workflow_id: str) -> bool:
    """Whether a run with this workflow id exists (a client's retry of a launched line)."""
    try:
        await session.client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def request_fingerprint(run_input: OrderLineInput) -> str:
    """A hash of what a launch asks for, to tell a client's retry from a different request."""
    return hashlib.sha256(run_input.model_dump_json().encode()).hexdigest()[:32]


async def order_line_outcome(
    handle: WorkflowHandle[Any, InvocationResult], plan: DispatchPlan | None = None
) -> InvocationResult:
    """An order line's result; a failed one's comes from its failure's details."""

    def failed(code: str, message: str) -> InvocationResult:
        return InvocationResult(
            route=plan.route if plan else "graph",
            status="failed",
            workflow_ids=[handle.id],
            artifacts=[],
            effective=plan.effective() if plan else {},
            error={"code": code, "message": message, "node_id": None},
        )

    return await outcome(handle, InvocationResult, failed)


async def order_line_state(
    session: TemporalSession, workflow_id: str, owner: str | None = None
) -> tuple[WorkflowExecutionStatus, InvocationResult | None]:
    """Where a launched order line stands, with its result once it has completed.

    With an owner, another owner's order line is answered as not found (no hint it exists).
    """
    handle = session.client.get_workflow_handle_for(OrderLineWorkflow.run, workflow_id)
    missing = NotFoundError(f"no order-line run {workflow_id!r}", field="workflow_id")
    description = await described(handle, missing)
    if description.workflow_type != "OrderLineWorkflow":
        raise missing
    if owner is not None and (await description.memo()).get("owner") != owner:
        raise missing
    status = description.status or WorkflowExecutionStatus.RUNNING
    if status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
        return status, await order_line_outcome(handle)
    return status, None
