"""One order line, start to end: legacy pipeline, or intake graph then the order-line graph."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from activities.artifacts import refs_in
    from output_profiles.dispatch_plan import DispatchPlan, InvocationResult, OrderLine
    from workflows.graph import GraphRunInput, GraphRunResult, GraphWorkflow
    from workflows.legacy import LegacyPipelineInput, LegacyPipelineWorkflow


class OrderLineInput(BaseModel):
    """A decided dispatch for one order line."""

    model_config = ConfigDict(extra="forbid")

    dispatch: DispatchPlan
    order: OrderLine
    output_type: str
    task_queues: dict[str, str]


def order_line_entry(intake_outputs: dict[str, dict[str, Any]], order_line_id: str,
                     output_type: str | None = None, product_category: str | None = None
                     ) -> dict[str, Any]:
    """The order_line entry context, from the outputs of the cad-intake starter's nodes."""
    return {"order_line_id": order_line_id, "output_type": output_type,
            "product_category": product_category,
            "step_file": intake_outputs["resolve"]["step_file"],
            "glb": intake_outputs["glb"]["glb"], "bbox": intake_outputs["bbox"]["bbox"],
            "objects": intake_outputs["extract"]["objects"]}


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
        result = await workflow.execute_child_workflow(
            LegacyPipelineWorkflow.run,
            LegacyPipelineInput(plan=input.dispatch.legacy_plan, step_path=order.step_path,
                                order_line_id=order.order_line_id,
                                product_category=order.product_category,
                                task_queues=input.task_queues), id=child_id)
        return self._result(input, [child_id], [result.outputs], result.error)

    async def _graph(self, input: OrderLineInput) -> InvocationResult:
        own_id = workflow.info().workflow_id
        intake = await self._child(f"{own_id}-intake", input.dispatch.intake_plan,
                                   {"step_path": input.order.step_path}, input)
        if intake.status != "completed":
            return self._result(input, [f"{own_id}-intake"], [intake.outputs], intake.error)
        entry = order_line_entry(intake.outputs, input.order.order_line_id, input.output_type,
                                 input.order.product_category)
        rendered = await self._child(f"{own_id}-render", input.dispatch.graph_plan, entry, input)
        return self._result(input, [f"{own_id}-intake", f"{own_id}-render"],
                            [intake.outputs, rendered.outputs], rendered.error)

    async def _child(self, child_id: str, plan, entry: dict, input: OrderLineInput
                     ) -> GraphRunResult:
        return await workflow.execute_child_workflow(
            GraphWorkflow.run, GraphRunInput(plan=plan, entry=entry,
                                             task_queues=input.task_queues), id=child_id)

    def _result(self, input: OrderLineInput, child_ids: list[str],
                outputs: list[dict[str, dict[str, Any]]], error) -> InvocationResult:
        artifacts = [ref for run in outputs for ref in refs_in(run)]
        return InvocationResult(
            route=input.dispatch.route, status="failed" if error else "completed",
            workflow_ids=child_ids, artifacts=artifacts, effective=input.dispatch.effective(),
            error=error.model_dump() if error else None)
