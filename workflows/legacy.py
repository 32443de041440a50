"""The legacy pipeline: a hard-coded order-line chain over the very same module activities."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from core import temporal as attributes
    from core.temporal import temporal_retry
    from core.vocabulary import DELIVERABLE_ROLES, RetryPolicy
    from legacy_adapter.pipeline_plan import LegacyPlan
    from workflows.graph import HEARTBEAT_TIMEOUT, OPERATOR_PATCH, NodeError, node_error

#: The legacy system's own fixed policy, the same for every step.
LEGACY_RETRY = RetryPolicy(max_attempts=3, initial_interval_s=2.0, backoff=2.0, max_interval_s=30.0)


class LegacyPipelineInput(BaseModel):
    """One order line for the legacy chain."""

    model_config = ConfigDict(extra="forbid")

    plan: LegacyPlan
    step_path: str
    order_line_id: str
    product_category: str | None = None
    task_queues: dict[str, str]
    deliver: bool = True
    """Publish and notify at the end; a parity calibration's runs deliver nothing."""


class LegacyRunResult(BaseModel):
    """What the chain produced, and the effective parameters of every call."""

    status: Literal["completed", "failed"]
    outputs: dict[str, dict[str, Any]]
    """Module key → its output."""
    error: NodeError | None = None


class _StepFailed(Exception):
    def __init__(self, error: NodeError):
        self.error = error


@workflow.defn(name="LegacyPipelineWorkflow")
class LegacyPipelineWorkflow:
    """resolve → extract → glb → bbox → materials → template → render → publish → notify."""

    @workflow.run
    async def run(self, input: LegacyPipelineInput) -> LegacyRunResult:
        """Run the fixed chain; stop at the first step that fails for good."""
        self._input = input
        self._outputs: dict[str, dict[str, Any]] = {}
        fails = workflow.patched(OPERATOR_PATCH)
        if fails:
            workflow.upsert_search_attributes(
                [attributes.ORDER_LINE.value_set(input.order_line_id), attributes.ROUTE.value_set("legacy")]
            )
        try:
            await self._chain(input)
        except _StepFailed as failed:
            result = LegacyRunResult(status="failed", outputs=self._outputs, error=failed.error)
            if not fails:
                return result
            workflow.upsert_search_attributes(
                [
                    attributes.FAILED_NODE.value_set(failed.error.node_id),
                    attributes.FAILED_MODULE.value_set(failed.error.node_id),
                ]
            )
            raise ApplicationError(
                f"{failed.error.node_id} failed: {failed.error.code}: {failed.error.message}",
                result.model_dump(mode="json"),
                type=failed.error.code,
                non_retryable=True,
            ) from None
        return LegacyRunResult(status="completed", outputs=self._outputs)

    async def _chain(self, input: LegacyPipelineInput) -> None:
        resolved = await self._call("cad.resolve_step_path", step_path=input.step_path)
        step_file = resolved["step_file"]
        objects = (await self._call("cad.extract_objects", step_file=step_file))["objects"]
        glb = (await self._call("cad.export_glb", step_file=step_file))["glb"]
        bbox = (await self._call("cad.compute_bbox", step_file=step_file))["bbox"]
        auto = await self._call("materials.auto_populate", objects=objects)
        materials = await self._call(
            "materials.resolve_map", objects=objects, material_assignments=auto["material_assignments"]
        )
        template = await self._call("render.resolve_template", product_category=input.product_category)
        rendered = await self._call(
            input.plan.render_step,
            glb=glb,
            bbox=bbox,
            material_map=materials["material_map"],
            render_template=template["render_template"],
        )
        deliverables = {key: value for key, value in rendered.items() if key in DELIVERABLE_ROLES}
        if input.plan.thumbnail and "still" in deliverables:
            thumbnail = await self._call("render.thumbnail", still=deliverables["still"])
            deliverables["thumbnail"] = thumbnail["thumbnail"]
        if not input.deliver:
            return
        published = await self._call(
            "output.publish_asset", order_line_id=input.order_line_id, **deliverables
        )
        await self._call("output.notify", order_line_id=input.order_line_id, published=published["published"])

    async def _call(self, module_key: str, **inputs: Any) -> dict[str, Any]:
        call = self._input.plan.call(module_key)
        try:
            output = await workflow.execute_activity(
                module_key,
                {**inputs, "params": call.params},
                result_type=dict,
                task_queue=self._input.task_queues[call.task_queue],
                start_to_close_timeout=timedelta(seconds=call.timeout_s),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=temporal_retry(LEGACY_RETRY),
            )
        except ActivityError as error:
            raise _StepFailed(node_error(module_key, error)) from None
        self._outputs[module_key] = output
        return output
