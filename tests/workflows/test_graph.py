"""The graph interpreter on a real Temporal server, with stand-ins under production names."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from registry.catalog import default_catalog
from registry.compiler import compile_plan
from registry.definition import WorkflowDefinition
from registry.starters import starter
from workflows.graph import GraphRunInput, GraphWorkflow, OperatorDecision

REF = {"uri": "file:///x", "sha256": "0" * 64, "size": 1, "media_type": "model/step"}


class StandIns:
    """Records calls; fails on demand."""

    def __init__(self, fail: dict[str, int] | None = None, permanent: set[str] = frozenset()):
        self.calls: Counter[str] = Counter()
        self.fail = dict(fail or {})
        self.permanent = permanent
        self.started: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def _enter(self, key: str) -> None:
        self.calls[key] += 1
        self.started.append(key)
        if key in self.permanent:
            raise ApplicationError(f"{key} cannot go on", type="invalid_cad_file", non_retryable=True)
        if self.fail.get(key, 0) > 0:
            self.fail[key] -= 1
            raise ApplicationError(f"{key} flaked", type="flaky")

    async def _work(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.3)
        self.in_flight -= 1

    def activities(self) -> list:
        @activity.defn(name="cad.resolve_step_path")
        async def resolve(input: dict) -> dict:
            self._enter("cad.resolve_step_path")
            return {"step_file": {**REF, "role": "step_file"}, "source_name": "x.step"}

        @activity.defn(name="cad.extract_objects")
        async def extract(input: dict) -> dict:
            self._enter("cad.extract_objects")
            assert input["step_file"]["role"] == "step_file"
            await self._work()
            return {"objects": [{"name": "part", "path": "part", "kind": "part"}], "source_unit": "mm"}

        @activity.defn(name="cad.export_glb")
        async def glb(input: dict) -> dict:
            self._enter("cad.export_glb")
            await self._work()
            return {"glb": {**REF, "role": "glb"}, "node_names": ["part"]}

        @activity.defn(name="cad.compute_bbox")
        async def bbox(input: dict) -> dict:
            self._enter("cad.compute_bbox")
            await self._work()
            return {"bbox": {"min": [0, 0, 0], "max": [1, 1, 1], "unit": "m"}}

        return [resolve, extract, glb, bbox]


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
        return await handle.result()


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
    assert result.nodes["glb"].status == "pending"


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
                await handle.signal(GraphWorkflow.decide, OperatorDecision(node_id="extract", action=action))
                return
            await asyncio.sleep(0.1)
        pytest.fail("extract never waited for the operator")

    result = await run_intake(temporal_env, stand_ins, definition, decide=operator)
    assert result.nodes["extract"].status == final
    assert result.status == "completed"
    assert stand_ins.calls["cad.extract_objects"] == (2 if action == "retry" else 1)
