"""Use cases of order lines: dispatch one through its stored output type, start it, follow it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

from core.errors import NotFoundError
from core.temporal import TemporalSession
from output_profiles.dispatch import plan_dispatch
from output_profiles.dispatch_plan import DispatchPlan, InvocationResult, OrderLine
from persistence.repositories import require_output_type, workflow_for
from persistence.tables import OutputType
from prodgraph.runs import failure_code, failure_details
from registry.catalog import Catalog
from workflows.order_line import OrderLineInput, OrderLineWorkflow


def dispatch_order_line(
    db: Session, catalog: Catalog, output_type_slug: str, invocation_params: dict[str, Any] | None = None
) -> tuple[OutputType, DispatchPlan]:
    """The stored output type and the dispatch it decides for one order line."""
    output_type = require_output_type(db, output_type_slug)
    return output_type, plan_dispatch(output_type, workflow_for(db, output_type), catalog, invocation_params)


async def start_order_line(
    session: TemporalSession, plan: DispatchPlan, order: OrderLine, output_type_slug: str
) -> WorkflowHandle[Any, InvocationResult]:
    """Start the parent workflow of one order line; return its handle."""
    workflow_id = f"order-{order.order_line_id}-{uuid.uuid4().hex[:8]}"
    return await session.client.start_workflow(
        OrderLineWorkflow.run,
        OrderLineInput(
            dispatch=plan, order=order, output_type=output_type_slug, task_queues=session.task_queues()
        ),
        id=workflow_id,
        task_queue=session.settings.default_queue,
    )


async def order_line_outcome(
    handle: WorkflowHandle[Any, InvocationResult], plan: DispatchPlan | None = None
) -> InvocationResult:
    """An order line's result; a failed one's comes from its failure's details."""
    try:
        return await handle.result()
    except WorkflowFailureError as failed:
        details = failure_details(failed)
        if details is not None:
            return InvocationResult.model_validate(details)
        error = {"code": failure_code(failed), "message": str(failed.cause or failed), "node_id": None}
        return InvocationResult(
            route=plan.route if plan else "graph",
            status="failed",
            workflow_ids=[handle.id],
            artifacts=[],
            effective=plan.effective() if plan else {},
            error=error,
        )


async def order_line_state(
    session: TemporalSession, workflow_id: str
) -> tuple[WorkflowExecutionStatus, InvocationResult | None]:
    """Where a launched order line stands, with its result once it has completed."""
    handle = session.client.get_workflow_handle_for(OrderLineWorkflow.run, workflow_id)
    try:
        description = await handle.describe()
    except RPCError:
        raise NotFoundError(f"no order-line run {workflow_id!r}", field="workflow_id") from None
    status = description.status or WorkflowExecutionStatus.RUNNING
    if status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
        return status, await order_line_outcome(handle)
    return status, None
