"""Parity steps of a workflow: compare two runs' sides and record the report; and the calibration
that measures an output type's noise by running its legacy route twice with two sampling seeds."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from activities.artifacts import ArtifactRef
    from activities.parity import (
        CompareInput,
        CompareOutput,
        ParitySide,
        ParityThresholds,
        RecordParityInput,
        StoreCalibrationInput,
        calibrated_thresholds,
    )
    from legacy_adapter.pipeline_plan import LegacyPlan
    from output_profiles.dispatch_plan import EffectiveCall
    from workflows.graph import HEARTBEAT_TIMEOUT
    from workflows.legacy import LegacyPipelineInput, LegacyPipelineWorkflow, LegacyRunResult

#: The parity diff's own timeout (activities/parity.py), and the recording's.
PARITY_TIMEOUT = timedelta(seconds=1800)
RECORD_TIMEOUT = timedelta(seconds=60)
PARITY_RETRY = TemporalRetryPolicy(maximum_attempts=3)
#: The two sampling seeds a calibration renders with.
CALIBRATION_SEEDS = (1, 2)


def parity_side(
    artifacts: list[ArtifactRef], effective: dict[str, EffectiveCall], outputs: dict[str, Any]
) -> ParitySide:
    """One side of a comparison: its files, effective params, and the CAD facts among its outputs."""
    facts = {key: output[key] for output in outputs.values() for key in ("objects", "bbox") if key in output}
    params = {module: call.model_dump() for module, call in effective.items()}
    return ParitySide(artifacts=artifacts, effective=params, **facts)


async def compare_and_record(
    compare: CompareInput, queue: str, output_type: str, *, calibration: bool = False
) -> tuple[CompareOutput, str]:
    """Run the parity diff, then record its report (for the rollout gate): the diff and its id."""
    compared = await workflow.execute_activity(
        "parity.compare",
        compare,
        result_type=CompareOutput,
        task_queue=queue,
        start_to_close_timeout=PARITY_TIMEOUT,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_policy=PARITY_RETRY,
    )
    info = workflow.info()
    record = RecordParityInput(
        order_line_workflow_id=info.workflow_id,
        run_id=info.run_id,
        output_type=output_type,
        owner=workflow.memo_value("owner", None),
        compared=compared,
        calibration=calibration,
    )
    report_id = await workflow.execute_activity(
        "parity.record",
        record,
        result_type=str,
        task_queue=queue,
        start_to_close_timeout=RECORD_TIMEOUT,
        retry_policy=PARITY_RETRY,
    )
    return compared, report_id


class CalibrationInput(BaseModel):
    """An output type's legacy route, to run twice on one STEP file."""

    model_config = ConfigDict(extra="forbid")

    output_type: str
    plan: LegacyPlan
    step_path: str
    task_queues: dict[str, str]


class CalibrationResult(BaseModel):
    """The legacy route compared with itself: its noise, the stored report's id, and the
    thresholds now kept for the output type."""

    compared: CompareOutput
    report_id: str
    thresholds: ParityThresholds


@workflow.defn(name="ParityCalibrationWorkflow")
class ParityCalibrationWorkflow:
    """Run an output type's legacy route twice (two seeds, nothing delivered) and compare them."""

    @workflow.run
    async def run(self, input: CalibrationInput) -> CalibrationResult:
        """Both runs at once, then the diff; a failed run fails the calibration."""
        own_id = workflow.info().workflow_id
        first, second = await asyncio.gather(
            *(self._legacy(input, f"{own_id}-seed-{seed}", seed) for seed in CALIBRATION_SEEDS)
        )
        effective = {
            key: EffectiveCall(params=call.params, param_sources=call.param_sources)
            for key, call in input.plan.steps.items()
        }
        compare = CompareInput(
            legacy=parity_side(input.plan.artifacts(first.outputs), effective, first.outputs),
            graph=parity_side(input.plan.artifacts(second.outputs), effective, second.outputs),
        )
        queue = input.task_queues["default"]
        compared, report_id = await compare_and_record(compare, queue, input.output_type, calibration=True)
        thresholds = calibrated_thresholds(compared.report)
        step_file = first.outputs["cad.resolve_step_path"]["step_file"]
        calibration = StoreCalibrationInput(
            output_type=input.output_type,
            thresholds=thresholds,
            step_sha256=step_file["sha256"],
            report_id=report_id,
        )
        await workflow.execute_activity(
            "parity.store_calibration",
            calibration,
            task_queue=queue,
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=PARITY_RETRY,
        )
        return CalibrationResult(compared=compared, report_id=report_id, thresholds=thresholds)

    async def _legacy(self, input: CalibrationInput, child_id: str, seed: int) -> LegacyRunResult:
        child_input = LegacyPipelineInput(
            plan=input.plan.with_render_params(seed=seed),
            step_path=input.step_path,
            order_line_id=child_id,
            task_queues=input.task_queues,
            deliver=False,
        )
        try:
            return await workflow.execute_child_workflow(LegacyPipelineWorkflow.run, child_input, id=child_id)
        except ChildWorkflowError as failed:
            raise ApplicationError(
                f"the calibration run {child_id} failed: {failed.cause or failed}",
                type="calibration_failed",
                non_retryable=True,
            ) from None
