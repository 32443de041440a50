"""One order line, start to end: legacy pipeline, or intake graph then the order-line graph."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from activities.artifacts import ArtifactRef
    from activities.parity import (
        CompareInput,
        ParityThresholds,
        RunFailure,
    )
    from core import temporal as attributes
    from core.vocabulary import ARTIFACT_KIND_ROLES, ArtifactKind
    from output_profiles.dispatch_plan import (
        DispatchPlan,
        InvocationResult,
        OrderLine,
        ParityOutcome,
        ShadowResult,
    )
    from registry.families import order_line_entry
    from registry.plan import ExecutionPlan
    from workflows.graph import (
        OPERATOR_PATCH,
        OWNER_PATCH,
        GraphRunInput,
        GraphRunResult,
        GraphWorkflow,
        NodeError,
        RunLabels,
    )
    from workflows.legacy import LegacyPipelineInput, LegacyPipelineWorkflow, LegacyRunResult
    from workflows.parity import compare_and_record, parity_side


class OrderLineInput(BaseModel):
    """A decided dispatch for one order line."""

    model_config = ConfigDict(extra="forbid")

    dispatch: DispatchPlan
    order: OrderLine
    output_type: str
    task_queues: dict[str, str]


@workflow.defn(name="OrderLineWorkflow")
class OrderLineWorkflow:
    """Parent of the runs that produce one order line; each child shows in the Temporal UI.

    It fails when a child it depends on fails, or when the runs did not produce every artifact
    kind its output type sells (`artifact_contract_unmet`).
    """

    @workflow.run
    async def run(self, input: OrderLineInput) -> InvocationResult:
        """Run the route the dispatch chose."""
        self._fails = workflow.patched(OPERATOR_PATCH)
        if self._fails:
            workflow.upsert_search_attributes(
                [
                    attributes.FAMILY.value_set("order_line"),
                    attributes.ORDER_LINE.value_set(input.order.order_line_id),
                    attributes.OUTPUT_TYPE.value_set(input.output_type),
                    attributes.ROUTE.value_set(input.dispatch.route),
                ]
            )
        if input.dispatch.route == "legacy":
            result = await self._legacy(input)
        elif input.dispatch.route == "shadow":
            result = await self._shadow(input)
        else:
            result = await self._graph(input)
        if self._fails:
            _raise_if_failed(_with_contract(result, input.dispatch.artifact_kinds))
        return result

    async def _legacy(self, input: OrderLineInput) -> InvocationResult:
        return (await self._legacy_run(input))[0]

    async def _legacy_run(self, input: OrderLineInput) -> tuple[InvocationResult, dict[str, Any]]:
        """The legacy pipeline as a child: the order line's result, and the pipeline's outputs."""
        child_id = f"{workflow.info().workflow_id}-legacy"
        order = input.order
        plan = input.dispatch.legacy_plan
        assert plan is not None, "a legacy dispatch carries its legacy plan"
        child_input = LegacyPipelineInput(
            plan=plan,
            step_path=order.step_path,
            order_line_id=order.order_line_id,
            product_category=order.product_category,
            task_queues=input.task_queues,
        )
        try:
            result = await workflow.execute_child_workflow(
                LegacyPipelineWorkflow.run, child_input, id=child_id
            )
        except ChildWorkflowError as failed:
            result = LegacyRunResult.model_validate(_failure_details(failed, child_id))
        return self._result(input, [child_id], plan.artifacts(result.outputs), result.error), result.outputs

    async def _graph(self, input: OrderLineInput) -> InvocationResult:
        child_ids, artifacts, error, _ = await self._graph_runs(input, workflow.info().workflow_id, "graph")
        return self._result(input, child_ids, artifacts, error)

    async def _shadow(self, input: OrderLineInput) -> InvocationResult:
        """Legacy for the customer and the graph beside it, at once; the graph never decides."""
        own_id = workflow.info().workflow_id
        (primary, legacy_outputs), (child_ids, artifacts, error, graph_outputs) = await asyncio.gather(
            self._legacy_run(input), self._graph_runs(input, f"{own_id}-shadow", "shadow")
        )
        shadow = ShadowResult(
            status="failed" if error else "completed",
            workflow_ids=child_ids,
            artifacts=artifacts,
            effective=input.dispatch.graph_effective(),
            error=error.model_dump() if error else None,
        )
        compare = CompareInput(
            legacy=parity_side(primary.artifacts, primary.effective, legacy_outputs),
            graph=parity_side(artifacts, shadow.effective, graph_outputs),
            graph_failure=RunFailure.model_validate(shadow.error) if shadow.error else None,
            thresholds=input.dispatch.parity_thresholds or ParityThresholds(),
        )
        try:
            shadow.parity = await self._compare(input, compare)
        except ActivityError as failed:  # the diff failing never touches the customer's result
            shadow.parity_error = str(failed.cause or failed)
        return primary.model_copy(update={"shadow": shadow})

    async def _compare(self, input: OrderLineInput, compare: CompareInput) -> ParityOutcome:
        """The parity diff, then its report recorded for the rollout gate: the outcome."""
        compared, report_id = await compare_and_record(
            compare, input.task_queues["default"], input.output_type
        )
        report = compared.report
        return ParityOutcome(
            report_id=report_id,
            verdict=report.verdict,
            reason=report.reason,
            differences=report.differences,
            report_file=compared.report_file,
            pictures=compared.pictures,
        )

    async def _graph_runs(
        self, input: OrderLineInput, prefix: str, route: Literal["graph", "shadow"]
    ) -> tuple[list[str], list[ArtifactRef], NodeError | None, dict[str, Any]]:
        """Intake, then render (ids `<prefix>-intake`, `<prefix>-render`): ids, artifacts, error
        and the intake's outputs."""
        intake_plan, render_plan = input.dispatch.intake_plan, input.dispatch.graph_plan
        assert intake_plan and render_plan, "a graph dispatch carries its intake and render plans"
        intake = await self._child(
            f"{prefix}-intake", intake_plan, {"step_path": input.order.step_path}, input, route
        )
        intake_artifacts = intake_plan.artifacts(intake.outputs)
        if intake.status != "completed":
            return [f"{prefix}-intake"], intake_artifacts, intake.error, intake.outputs
        entry = order_line_entry(
            intake.outputs, input.order.order_line_id, input.output_type, input.order.product_category
        )
        rendered = await self._child(f"{prefix}-render", render_plan, entry, input, route)
        return (
            [f"{prefix}-intake", f"{prefix}-render"],
            intake_artifacts + render_plan.artifacts(rendered.outputs),
            rendered.error,
            intake.outputs,
        )

    async def _child(
        self,
        child_id: str,
        plan: ExecutionPlan,
        entry: dict[str, Any],
        input: OrderLineInput,
        route: Literal["graph", "shadow"],
    ) -> GraphRunResult:
        # Runs launched before OWNER_PATCH replay without the label they were started without.
        owner = workflow.memo_value("owner", None) if workflow.patched(OWNER_PATCH) else None
        labels = RunLabels(
            order_line=input.order.order_line_id, output_type=input.output_type, route=route, owner=owner
        )
        sold = [ARTIFACT_KIND_ROLES[ArtifactKind(kind)] for kind in input.dispatch.artifact_kinds]
        child_input = GraphRunInput(plan=plan, entry=entry, task_queues=input.task_queues)
        if self._fails:
            child_input = child_input.model_copy(update={"labels": labels, "sold_roles": sold})
        try:
            return await workflow.execute_child_workflow(GraphWorkflow.run, child_input, id=child_id)
        except ChildWorkflowError as failed:
            return GraphRunResult.model_validate(_failure_details(failed, child_id))

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


def _failure_details(failed: ChildWorkflowError, child_id: str) -> dict[str, Any]:
    """The result a failed child left in its failure's details (its node states and outputs)."""
    cause = failed.cause
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
        return cause.details[0]
    error = {
        "code": getattr(cause, "type", None) or "child_failed",
        "message": str(cause or failed),
        "node_id": child_id,
    }
    return {"status": "failed", "nodes": {}, "outputs": {}, "error": error}


def _with_contract(result: InvocationResult, artifact_kinds: list[str]) -> InvocationResult:
    """The result, failed with artifact_contract_unmet when a sold artifact kind is missing."""
    if result.status != "completed":
        return result
    produced = {ref.role for ref in result.artifacts}
    missing = [kind for kind in artifact_kinds if ARTIFACT_KIND_ROLES[ArtifactKind(kind)] not in produced]
    if not missing:
        return result
    message = f"the order line sells {', '.join(missing)} but no run produced it"
    return result.model_copy(
        update={
            "status": "failed",
            "error": {"code": "artifact_contract_unmet", "message": message, "node_id": None},
        }
    )


def _raise_if_failed(result: InvocationResult) -> None:
    """A failed order line fails its execution; its result travels in the failure's details."""
    if result.status == "completed" or result.error is None:
        return
    error = result.error
    raise ApplicationError(
        f"{error['code']}: {error['message']}",
        result.model_dump(mode="json"),
        type=error["code"],
        non_retryable=True,
    )
