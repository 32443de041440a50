"""One order line, start to end: legacy pipeline, or intake graph then the order-line graph."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from activities.artifacts import ArtifactRef
    from output_profiles.dispatch_plan import DispatchPlan, InvocationResult, OrderLine
    from registry.families import order_line_entry
    from registry.plan import ExecutionPlan
    from workflows.graph import GraphRunInput, GraphRunResult, GraphWorkflow, NodeError
    from workflows.legacy import LegacyPipelineInput, LegacyPipelineWorkflow


class OrderLineInput(BaseModel):
    """A decided dispatch for one order line."""

    model_config = ConfigDict(extra="forbid")

    dispatch: DispatchPlan
    order: OrderLine
    output_type: str
    task_queues: dict[str, str]


@workflow.defn(name="OrderLineWorkflow")
class OrderLineWorkflow:
    """Parent of the runs that produce one order line; each child shows in the Temporal UI."""

    @workflow.run
    async def run(self, input: OrderLineInput) -> InvocationResult:
        """Run the route the dispatch chose."""
        if input.dispatch.route == "legacy":
            return await self._legacy(input)
        return await self._graph(input)

    async def _legacy(self, input: OrderLineInput) -> InvocationResult:
        child_id = f"{workflow.info().workflow_id}-legacy"
        order = input.order
        plan = input.dispatch.legacy_plan
        assert plan is not None, "a legacy dispatch carries its legacy plan"
        result = await workflow.execute_child_workflow(
            LegacyPipelineWorkflow.run,
            LegacyPipelineInput(
                plan=plan,
                step_path=order.step_path,
                order_line_id=order.order_line_id,
                product_category=order.product_category,
                task_queues=input.task_queues,
            ),
            id=child_id,
        )
        return self._result(input, [child_id], plan.artifacts(result.outputs), result.error)

    async def _graph(self, input: OrderLineInput) -> InvocationResult:
        own_id = workflow.info().workflow_id
        intake_plan, render_plan = input.dispatch.intake_plan, input.dispatch.graph_plan
        assert intake_plan and render_plan, "a graph dispatch carries its intake and render plans"
        intake = await self._child(
            f"{own_id}-intake", intake_plan, {"step_path": input.order.step_path}, input
        )
        intake_artifacts = intake_plan.artifacts(intake.outputs)
        if intake.status != "completed":
            return self._result(input, [f"{own_id}-intake"], intake_artifacts, intake.error)
        entry = order_line_entry(
            intake.outputs, input.order.order_line_id, input.output_type, input.order.product_category
        )
        rendered = await self._child(f"{own_id}-render", render_plan, entry, input)
        return self._result(
            input,
            [f"{own_id}-intake", f"{own_id}-render"],
            intake_artifacts + render_plan.artifacts(rendered.outputs),
            rendered.error,
        )

    async def _child(
        self, child_id: str, plan: ExecutionPlan, entry: dict[str, Any], input: OrderLineInput
    ) -> GraphRunResult:
        return await workflow.execute_child_workflow(
            GraphWorkflow.run,
            GraphRunInput(plan=plan, entry=entry, task_queues=input.task_queues),
            id=child_id,
        )

    def _result(
        self,
        input: OrderLineInput,
        child_ids: list[str],
        artifacts: list[ArtifactRef],
        error: NodeError | None,
    ) -> InvocationResult:
        return InvocationResult(
            route=input.dispatch.route,
            status="failed" if error else "completed",
            workflow_ids=child_ids,
            artifacts=artifacts,
            effective=input.dispatch.effective(),
            error=error.model_dump() if error else None,
        )
