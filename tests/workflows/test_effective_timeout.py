"""A node's effective timeout is its child job's wall clock, on a real Temporal server."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from pydantic import BaseModel
from temporalio.worker import Worker

from activities.child_process import REPORT_MARGIN_MAX_S, ChildJobRunner
from activities.module import production_module
from core.temporal import TemporalSession
from core.vocabulary import RetryPolicy
from prodgraph.runs import graph_outcome, run_plan
from prodgraph.workers import build_workers
from registry.catalog import default_catalog
from registry.compiler import compile_plan
from registry.plan import ExecutionPlan, PlanNode
from registry.starters import INTAKE_STARTER, starter
from support.misbehaving_job import Probe
from workflows.graph import GraphRunInput, GraphWorkflow

JOB = "tests.support.misbehaving_job"


class HangParams(BaseModel):
    """No parameters."""


class HangInput(BaseModel):
    """Nothing but params."""

    params: HangParams = HangParams()


class HangOutput(BaseModel):
    """Never produced."""


@production_module("test.hang_in_child", families=("cad_file",), label="Hang", category="test")
async def hang_in_child(input: HangInput) -> HangOutput:
    """A module whose child job never ends; it passes no timeout of its own."""
    await ChildJobRunner(heartbeat_every_s=0.5).run(JOB, "hang", Probe())
    return HangOutput()


def _plan(timeout_s: float) -> ExecutionPlan:
    node = PlanNode(
        id="hang",
        step="test.hang_in_child",
        module_key="test.hang_in_child",
        task_queue="default",
        depends_on=[],
        inputs={},
        params={},
        param_sources={},
        retry=RetryPolicy(max_attempts=1),
        timeout_s=timeout_s,
        on_failure="fail_run",
    )
    return ExecutionPlan(
        workflow_id="hang", workflow_version=1, family="cad_file", catalog_version="test", nodes=[node]
    )


async def test_the_child_is_killed_at_the_nodes_timeout_with_a_typed_error(temporal_env):
    queue = f"timeout-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_env.client, task_queue=queue, workflows=[GraphWorkflow], activities=[hang_in_child]
    ):
        started = time.monotonic()
        handle = await temporal_env.client.start_workflow(
            GraphWorkflow.run,
            GraphRunInput(plan=_plan(6), entry={}, task_queues={"default": queue}),
            id=f"hang-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        result = await graph_outcome(handle)
        elapsed = time.monotonic() - started
    assert result.status == "failed"
    # The child's own clock fired (a typed job_timeout), not Temporal's start-to-close timer.
    assert result.error.code == "job_timeout", result.error
    assert "ran past 6s" in result.error.message
    assert 5 < elapsed < 30


@pytest.mark.occt
async def test_a_node_timeout_reaches_the_real_step_job(temporal_env, settings, step_fixture):
    """The intake's extract node with timeout_s=45: its OCP child's clock is 45 s less the
    reporting margin; the glb node keeps its module's 600 s."""
    seen: dict[str, float] = {}

    class RecordingRunner(ChildJobRunner):
        async def run(self, job, op, request, timeout_s=None):
            seen[op] = self.wall_clock_s()
            return await super().run(job, op, request, timeout_s)

    definition = starter(INTAKE_STARTER)
    nodes = [
        node.model_copy(update={"timeout_s": 45.0}) if node.step == "cad.extract_objects" else node
        for node in definition.nodes
    ]
    plan = compile_plan(definition.model_copy(update={"nodes": nodes}), default_catalog())
    workers = build_workers(temporal_env.client, settings, jobs=RecordingRunner())
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        session = TemporalSession(temporal_env.client, None, settings)
        _, result = await run_plan(
            session, plan, {"step_path": str(step_fixture("red_cube_blue_cylinder.step"))}
        )
    finally:
        await asyncio.gather(*(worker.shutdown() for worker in workers))
        await asyncio.gather(*tasks, return_exceptions=True)
    assert result.status == "completed"
    assert seen == {
        "extract": 45 - REPORT_MARGIN_MAX_S,
        "glb": 600 - REPORT_MARGIN_MAX_S,
        "bbox": 300 - REPORT_MARGIN_MAX_S,
    }
