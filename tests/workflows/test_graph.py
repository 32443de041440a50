"""The graph interpreter on a real Temporal server, with stand-ins under production names."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.worker import Worker

from prodgraph.runs import graph_outcome
from registry.catalog import default_catalog
from registry.compiler import compile_plan
from registry.definition import WorkflowDefinition
from registry.starters import starter
from support.stand_ins import StandIns
from workflows.graph import GraphRunInput, GraphWorkflow, RetryNode, SkipNode


async def run_intake(env, stand_ins: StandIns, definition: WorkflowDefinition | None = None, decide=None):
    queue = f"graph-{uuid.uuid4().hex[:8]}"
    plan = compile_plan(definition or starter("cad-intake-v1"), default_catalog())
    queues = {"default": queue, "cad": queue, "render": queue}
    async with Worker(
        env.client, task_queue=queue, workflows=[GraphWorkflow], activities=stand_ins.activities()
    ):
        handle = await env.client.start_workflow(
            GraphWorkflow.run,
            GraphRunInput(plan=plan, entry={"step_path": "/x.step"}, task_queues=queues),
            id=f"test-{uuid.uuid4().hex}",
            task_queue=queue,
        )
        if decide:
            await decide(handle)
        return await graph_outcome(handle)


def with_node(definition: WorkflowDefinition, node_id: str, **changes) -> WorkflowDefinition:
    """A copy of the definition with one node changed."""
    document = definition.model_dump()
    for node in document["nodes"]:
        if node["id"] == node_id:
            node.update(changes)
    return WorkflowDefinition.model_validate(document)


async def test_intake_runs_every_node_and_branches_in_parallel(temporal_env):
    stand_ins = StandIns()
    result = await run_intake(temporal_env, stand_ins)
    assert result.status == "completed"
    assert {state.status for state in result.nodes.values()} == {"completed"}
    assert result.outputs["bbox"]["bbox"]["max"] == [1, 1, 1]
    assert stand_ins.started[0] == "cad.resolve_step_path"
    assert sorted(stand_ins.started[1:]) == ["cad.compute_bbox", "cad.export_glb", "cad.extract_objects"]
    assert stand_ins.max_in_flight == 3  # the three branches ran at the same time


async def test_a_permanent_failure_fails_the_run_naming_the_node(temporal_env):
    stand_ins = StandIns(permanent={"cad.resolve_step_path"})
    result = await run_intake(temporal_env, stand_ins)
    assert result.status == "failed"
    assert result.error.node_id == "resolve"
    assert result.error.code == "invalid_cad_file"
    assert stand_ins.calls["cad.resolve_step_path"] == 1  # non-retryable: no retry
    assert result.nodes["glb"].status == "cancelled"


async def test_node_retry_policy_comes_from_the_definition(temporal_env):
    fast = {"max_attempts": 3, "initial_interval_s": 0.1}
    definition = with_node(starter("cad-intake-v1"), "bbox", retry=fast)
    stand_ins = StandIns(fail={"cad.compute_bbox": 2})
    result = await run_intake(temporal_env, stand_ins, definition)
    assert result.status == "completed"
    assert stand_ins.calls["cad.compute_bbox"] == 3

    once = with_node(starter("cad-intake-v1"), "bbox", retry={"max_attempts": 1})
    stand_ins = StandIns(fail={"cad.compute_bbox": 1})
    result = await run_intake(temporal_env, stand_ins, once)
    assert result.status == "failed"
    assert result.error.node_id == "bbox"
    assert stand_ins.calls["cad.compute_bbox"] == 1


@pytest.mark.parametrize("action, final", [("retry", "completed"), ("skip", "skipped")])
async def test_operator_retries_or_skips_a_failed_node(temporal_env, action, final):
    definition = with_node(
        starter("cad-intake-v1"), "extract", on_failure="wait_for_operator", retry={"max_attempts": 1}
    )
    stand_ins = StandIns(fail={"cad.extract_objects": 1})

    async def operator(handle):
        for _ in range(100):
            states = await handle.query(GraphWorkflow.progress)
            if states["extract"].status == "awaiting_operator":
                assert states["extract"].error.code == "flaky"
                request = RetryNode(node_id="extract") if action == "retry" else SkipNode(node_id="extract")
                update = GraphWorkflow.retry_node if action == "retry" else GraphWorkflow.skip_node
                await handle.execute_update(update, request)
                return
            await asyncio.sleep(0.1)
        pytest.fail("extract never waited for the operator")

    result = await run_intake(temporal_env, stand_ins, definition, decide=operator)
    assert result.nodes["extract"].status == final
    assert result.status == "completed"
    assert stand_ins.calls["cad.extract_objects"] == (2 if action == "retry" else 1)
