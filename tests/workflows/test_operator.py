"""Runs that tell the truth and on-call repairs, on a real Temporal server with stand-in modules.

Failed runs are failed executions found by search attributes; failure policies; operator Updates
with validators; abort; re-run from failure; the artifact contract of an order line.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Worker

from activities.artifacts import LocalArtifactStore
from activities.child_process import ChildJobRunner
from activities.parity import ParityActivities
from core.temporal import TemporalSession
from output_profiles.dispatch import plan_dispatch
from output_profiles.dispatch_plan import DispatchPlan, OrderLine
from output_profiles.models import OutputTypeCreate
from persistence.engine import make_engine
from prodgraph import operations
from prodgraph.orders import order_line_outcome, start_order_line
from prodgraph.parity import ParityRecorder, list_reports
from prodgraph.runs import graph_outcome
from registry.catalog import default_catalog
from registry.compiler import compile_intake, compile_plan
from registry.definition import WorkflowDefinition
from registry.starters import INTAKE_STARTER, starter
from support.definitions import with_nodes
from support.processes import alive
from support.stand_ins import StandIns
from workflows.graph import GraphRunInput, GraphWorkflow
from workflows.legacy import LegacyPipelineWorkflow
from workflows.order_line import OrderLineWorkflow

FAST = {"max_attempts": 1}
#: As prodgraph's workers: a cancellation reaches a heartbeating activity within a second or two.
HEARTBEAT_THROTTLE = timedelta(seconds=1)


@asynccontextmanager
async def stand_in_session(client: Client, stand_ins: StandIns, settings) -> AsyncIterator[TemporalSession]:
    """A session whose one worker serves every queue with the stand-ins."""
    queue = f"op-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"default_queue": queue, "cad_queue": queue, "render_queue": queue})
    async with Worker(
        client,
        task_queue=queue,
        workflows=[GraphWorkflow, OrderLineWorkflow, LegacyPipelineWorkflow],
        # A shadow's comparison and its record are real: they never touch the stand-ins' files.
        activities=[*stand_ins.activities(), *parity_activities(settings)],
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    ):
        yield TemporalSession(client, None, settings)


def parity_activities(settings) -> list[Any]:
    """The real parity diff and recorder on this test's store and database."""
    store = LocalArtifactStore(settings.artifact_root())
    compare = ParityActivities(store, ChildJobRunner()).compare
    return [compare, ParityRecorder(make_engine(settings)).record]


async def start_graph(
    session: TemporalSession, definition: WorkflowDefinition, **input: Any
) -> WorkflowHandle:
    plan = compile_plan(definition, default_catalog())
    entry = input.pop("entry", {"step_path": "/x.step"})
    return await session.client.start_workflow(
        GraphWorkflow.run,
        GraphRunInput(plan=plan, entry=entry, task_queues=session.task_queues(), **input),
        id=f"op-{uuid.uuid4().hex[:10]}",
        task_queue=session.settings.default_queue,
    )


async def until(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 15) -> None:
    """Poll until the condition holds (visibility and progress are eventually consistent)."""
    for _ in range(int(seconds / 0.2)):
        if await condition():
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


async def awaiting(handle: WorkflowHandle, node_id: str) -> None:
    async def check() -> bool:
        return (await handle.query(GraphWorkflow.progress))[node_id].status == "awaiting_operator"

    await until(check, f"{node_id} awaiting the operator")


def entry_from_stand_ins() -> dict[str, Any]:
    from support.stand_ins import OUTPUTS

    return {
        "order_line_id": "ol-7",
        "step_file": OUTPUTS["cad.resolve_step_path"]["step_file"],
        "glb": OUTPUTS["cad.export_glb"]["glb"],
        "bbox": OUTPUTS["cad.compute_bbox"]["bbox"],
        "objects": OUTPUTS["cad.extract_objects"]["objects"],
    }


# --- failure is failure in Temporal -----------------------------------------------------------


async def test_a_failed_order_line_is_a_failed_execution_found_by_its_attributes(temporal_env, settings):
    stand_ins = StandIns(permanent={"cad.resolve_step_path"})
    order_line = f"ol-{uuid.uuid4().hex[:8]}"
    catalog = default_catalog()
    plan = DispatchPlan(
        route="graph",
        artifact_kinds=["still_image"],
        intake_plan=compile_intake(starter(INTAKE_STARTER), catalog),
        graph_plan=compile_plan(starter("order-still-v1"), catalog),
    )
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        handle = await start_order_line(
            session, plan, OrderLine(order_line_id=order_line, step_path="/x.step"), "s"
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert failed.value.cause.type == "invalid_cad_file"
        result = await order_line_outcome(handle, plan)
        await keep_history(handle, "order_line_intake_failed")
    assert result.status == "failed" and result.error["node_id"] == "resolve"

    async def ids(query: str) -> set[str]:
        return {execution.id async for execution in temporal_env.client.list_workflows(query)}

    intake_id = f"{handle.id}-intake"
    wanted = {handle.id, intake_id}
    failed_query = f'ExecutionStatus = "Failed" AND ProdgraphOrderLine = "{order_line}"'

    async def listed() -> bool:
        return await ids(failed_query) == wanted

    await until(listed, "both failed runs in visibility")
    assert await ids(f'ProdgraphFailedNode = "resolve" AND ProdgraphOrderLine = "{order_line}"') == {
        intake_id
    }
    assert await ids(f'ProdgraphFamily = "cad_file" AND ProdgraphOrderLine = "{order_line}"') == {intake_id}
    assert await ids(
        f'ProdgraphFailedModule = "cad.resolve_step_path" AND ProdgraphOrderLine = "{order_line}"'
    ) == {intake_id}


async def test_an_order_line_missing_a_sold_artifact_fails_artifact_contract_unmet(temporal_env, settings):
    catalog = default_catalog()
    plan = DispatchPlan(
        route="graph",
        artifact_kinds=["still_image", "preview_thumbnail"],  # sells a thumbnail the still graph never makes
        intake_plan=compile_intake(starter(INTAKE_STARTER), catalog),
        graph_plan=compile_plan(starter("order-still-v1"), catalog),
    )
    async with stand_in_session(temporal_env.client, StandIns(), settings) as session:
        handle = await start_order_line(
            session, plan, OrderLine(order_line_id="ol-c", step_path="/x.step"), "s"
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        result = await order_line_outcome(handle, plan)
    assert failed.value.cause.type == "artifact_contract_unmet"
    assert (
        result.error["code"] == "artifact_contract_unmet" and "preview_thumbnail" in result.error["message"]
    )
    assert {ref.role for ref in result.artifacts} >= {"still", "glb"}


async def test_a_failing_shadow_never_touches_the_customers_result(temporal_env, settings):
    profile = OutputTypeCreate(
        slug="s", name="S", artifact_kinds=["still_image"], rollout="shadow", workflow_id="order-still-v1"
    )
    plan = plan_dispatch(profile, starter("order-still-v1"), default_catalog())
    stand_ins = StandIns(fail_in_runs={"-shadow-"})
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        order = OrderLine(order_line_id=f"ol-{uuid.uuid4().hex[:6]}", step_path="/x.step")
        result = await (await start_order_line(session, plan, order, "s")).result()
    assert result.route == "shadow" and result.status == "completed" and result.error is None
    assert {ref.role for ref in result.artifacts} >= {"still", "manifest"}  # delivered by legacy
    assert result.shadow is not None and result.shadow.status == "failed"
    assert result.shadow.error is not None and result.shadow.error["node_id"] == "resolve"
    assert "cannot go on" in result.shadow.error["message"]
    assert stand_ins.calls["output.publish_asset"] == stand_ins.calls["output.notify"] == 1
    parity = result.shadow.parity
    assert parity is not None and parity.verdict == "shadow_failed", result.shadow.parity_error
    assert "cannot go on" in parity.reason
    with Session(make_engine(settings)) as db:
        (stored,) = list_reports(db, "s")
    assert (stored.id, stored.verdict, stored.order_line_workflow_id) == (
        parity.report_id,
        "shadow_failed",
        f"order-local:s:{order.order_line_id}",
    )


# --- failure policies ------------------------------------------------------------------------------


async def test_fail_run_cancels_running_siblings_and_their_child_processes_die(
    temporal_env, settings, tmp_path
):
    # bbox fails for good once glb's child job is surely running; extract is still busy.
    stand_ins = StandIns(
        permanent={"cad.compute_bbox"},
        hang_in_child={"cad.export_glb"},
        slow={"cad.extract_objects": 60, "cad.compute_bbox": 3},
        pid_dir=tmp_path,
    )
    definition = with_nodes(starter(INTAKE_STARTER), bbox={"retry": FAST})
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        handle = await start_graph(session, definition)
        await until(_async(lambda: bool(stand_ins.pids())), "glb's child process started")
        result = await graph_outcome(handle)
        await keep_history(handle, "graph_fail_run_cancelled")
    assert result.status == "failed" and result.error.node_id == "bbox"
    assert result.nodes["glb"].status == "cancelled" and result.nodes["extract"].status == "cancelled"
    for pid in stand_ins.pids():
        await until(_async(lambda pid=pid: not alive(pid)), f"child {pid} gone", seconds=5)


async def test_continue_finishes_the_rest_and_completes_when_nothing_sold_is_lost(temporal_env, settings):
    definition = with_nodes(
        starter("order-still-thumbnail-v1"), thumbnail={"on_failure": "continue", "retry": FAST}
    )
    stand_ins = StandIns(permanent={"render.thumbnail"})
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        handle = await start_graph(session, definition, entry=entry_from_stand_ins(), sold_roles=["still"])
        result = await graph_outcome(handle)
        assert result.status == "completed"
        assert result.nodes["thumbnail"].status == "failed" and result.nodes["still"].status == "completed"
        assert result.nodes["publish"].status == "skipped"  # it depends on the thumbnail

        sold_thumbnail = await start_graph(
            session, definition, entry=entry_from_stand_ins(), sold_roles=["still", "thumbnail"]
        )
        failed = await graph_outcome(sold_thumbnail)
    assert failed.status == "failed" and failed.error.node_id == "thumbnail"


async def test_wait_for_operator_then_retry_with_changed_params_and_timeout(temporal_env, settings):
    definition = with_nodes(
        starter(INTAKE_STARTER), extract={"on_failure": "wait_for_operator", "retry": FAST}
    )
    stand_ins = StandIns(fail={"cad.extract_objects": 1})
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        handle = await start_graph(session, definition)
        await awaiting(handle, "extract")
        description = await handle.describe()
        assert description.typed_search_attributes.get(_key("ProdgraphAwaitingOperator", bool)) is True
        state = await operations.retry_node(
            session, handle.id, "extract", params={"include_assemblies": False}, timeout_s=42
        )
        assert state.params["include_assemblies"] is False
        result = await graph_outcome(handle)
        await keep_history(handle, "graph_operator_retry_with_params")
    assert result.status == "completed"
    extract = result.nodes["extract"]
    assert (extract.attempts, extract.timeout_s, extract.param_sources["include_assemblies"]) == (
        2,
        42,
        "operator",
    )
    assert stand_ins.inputs["cad.extract_objects"][-1]["params"]["include_assemblies"] is False
    # Nodes that succeeded never run again.
    assert stand_ins.calls["cad.resolve_step_path"] == stand_ins.calls["cad.export_glb"] == 1


@pytest.mark.parametrize(
    ("action", "rule"),
    [
        (lambda s, run: operations.retry_node(s, run, "nope"), "unknown_node"),
        (lambda s, run: operations.retry_node(s, run, "resolve"), "node_not_awaiting_operator"),
        (
            lambda s, run: operations.retry_node(s, run, "extract", params={"include_assemblies": "maybe"}),
            "invalid_params",
        ),
        (lambda s, run: operations.retry_node(s, run, "extract", params={"no_such": 1}), "invalid_params"),
        (
            lambda s, run: operations.skip_node(s, run, "extract", output={"objects": "none"}),
            "invalid_output",
        ),
    ],
    ids=["unknown-node", "wrong-state", "bad-param-value", "unknown-param", "output-off-contract"],
)
async def test_a_refused_update_names_its_rule_and_changes_nothing(temporal_env, settings, action, rule):
    from core.errors import OperatorActionRefusedError

    definition = with_nodes(
        starter(INTAKE_STARTER), extract={"on_failure": "wait_for_operator", "retry": FAST}
    )
    stand_ins = StandIns(fail={"cad.extract_objects": 1})
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        handle = await start_graph(session, definition)
        await awaiting(handle, "extract")
        history_before = len([event async for event in handle.fetch_history_events()])
        with pytest.raises(OperatorActionRefusedError) as refused:
            await action(session, handle.id)
        assert refused.value.problems[0]["code"] == rule
        # A validator rejects before anything is written to history.
        assert len([event async for event in handle.fetch_history_events()]) == history_before
        assert (await handle.query(GraphWorkflow.progress))["extract"].status == "awaiting_operator"
        await operations.abort_run(session, handle.id, "test over")
        await graph_outcome(handle)
        if rule == "invalid_params":
            await keep_history(handle, "graph_update_refused_then_aborted")


async def test_skipping_a_deliverable_needs_an_output_and_a_checked_output_flows_downstream(
    temporal_env, settings
):
    from core.errors import OperatorActionRefusedError
    from support.stand_ins import OUTPUTS

    definition = with_nodes(
        starter("order-still-v1"), still={"on_failure": "wait_for_operator", "retry": FAST}
    )
    stand_ins = StandIns(permanent={"render.blender_still"})
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        handle = await start_graph(session, definition, entry=entry_from_stand_ins())
        await awaiting(handle, "still")
        with pytest.raises(OperatorActionRefusedError) as refused:
            await operations.skip_node(session, handle.id, "still")
        assert refused.value.problems[0]["code"] == "deliverable_needs_output"
        supplied = {**OUTPUTS["render.blender_still"], "render_seconds": 0.0}
        state = await operations.skip_node(session, handle.id, "still", output=supplied)
        assert state.status == "skipped"
        result = await graph_outcome(handle)
        await keep_history(handle, "graph_operator_skip_with_output")
    assert result.status == "completed"
    assert result.outputs["still"] == supplied
    assert stand_ins.inputs["output.publish_asset"][0]["still"] == supplied["still"]


async def test_abort_cancels_running_nodes_and_fails_the_run(temporal_env, settings, tmp_path):
    stand_ins = StandIns(hang_in_child={"cad.export_glb"}, pid_dir=tmp_path)
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        handle = await start_graph(session, starter(INTAKE_STARTER))
        await until(_async(lambda: bool(stand_ins.pids())), "glb's child process started")
        await operations.abort_run(session, handle.id, "customer cancelled the order")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        result = await graph_outcome(handle)
        await keep_history(handle, "graph_aborted")
        with pytest.raises(Exception, match="run_finished|cannot take"):
            await operations.abort_run(session, handle.id, "again")
    assert failed.value.cause.type == "aborted" and "customer cancelled" in failed.value.cause.message
    assert result.nodes["glb"].status == "cancelled"
    for pid in stand_ins.pids():
        await until(_async(lambda pid=pid: not alive(pid)), f"child {pid} gone", seconds=5)


async def test_rerun_from_failure_reuses_what_completed(temporal_env, settings):
    definition = with_nodes(starter(INTAKE_STARTER), bbox={"on_failure": "continue", "retry": FAST})
    stand_ins = StandIns(fail={"cad.compute_bbox": 1})
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        first = await start_graph(session, definition)
        failed = await graph_outcome(first)
        assert failed.status == "failed" and failed.nodes["glb"].status == "completed"
        new_id = await operations.rerun(session, first.id)
        rerun = session.client.get_workflow_handle_for(GraphWorkflow.run, new_id)
        result = await graph_outcome(rerun)
        view = await operations.show_run(session, new_id)
        await keep_history(rerun, "graph_rerun_from_failure")
    assert result.status == "completed"
    assert stand_ins.calls == {
        "cad.resolve_step_path": 1,
        "cad.extract_objects": 1,
        "cad.export_glb": 1,
        "cad.compute_bbox": 2,
    }
    assert {node.id for node in view.nodes if node.reused} == {"resolve", "extract", "glb"}
    assert view.memo["rerun_of"] == first.id
    assert view.search_attributes["ProdgraphRerunOf"] == first.id


# --- helpers ----------------------------------------------------------------------------------------

HISTORY_DIR = Path(__file__).parent / "histories"


async def keep_history(handle: WorkflowHandle, name: str) -> None:
    """With PRODGRAPH_RECORD_HISTORIES=1, store this run's history for the replay test."""
    if not os.environ.get("PRODGRAPH_RECORD_HISTORIES"):
        return
    history = await handle.fetch_history()
    (HISTORY_DIR / f"{name}.json").write_text(history.to_json())
    index_path = HISTORY_DIR / "workflow_ids.json"
    index = json.loads(index_path.read_text())
    index[name] = handle.id
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=1) + "\n")


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped


def _key(name: str, kind: type) -> Any:
    from temporalio.common import SearchAttributeKey

    return SearchAttributeKey.for_bool(name) if kind is bool else SearchAttributeKey.for_keyword(name)


async def test_runs_show_displays_a_running_modules_heartbeat_progress(temporal_env, settings):
    stand_ins = StandIns(slow={"cad.export_glb": 8})
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        handle = await start_graph(session, starter(INTAKE_STARTER))

        async def glb_progress() -> bool:
            view = await operations.show_run(session, handle.id)
            glb = next(node for node in view.nodes if node.id == "glb")
            return glb.status == "running" and "to go" in (glb.progress or "")

        await until(glb_progress, "glb's heartbeat in runs show")
        await operations.abort_run(session, handle.id, "seen enough")
        await graph_outcome(handle)


async def test_an_order_line_id_launches_one_run_however_often_it_is_sent(temporal_env, settings):
    from core.errors import ConflictError

    catalog = default_catalog()
    plan = DispatchPlan(
        route="graph",
        artifact_kinds=["still_image"],
        intake_plan=compile_intake(starter(INTAKE_STARTER), catalog),
        graph_plan=compile_plan(starter("order-still-v1"), catalog),
    )
    order = OrderLine(order_line_id=f"ol-{uuid.uuid4().hex[:8]}", step_path="/x.step")
    stand_ins = StandIns()
    async with stand_in_session(temporal_env.client, stand_ins, settings) as session:
        launches = await asyncio.gather(*(start_order_line(session, plan, order, "s") for _ in range(20)))
        assert len({handle.id for handle in launches}) == 1
        await launches[0].result()
        again = await start_order_line(session, plan, order, "s")  # a retry after it closed
        assert again.id == launches[0].id
        other = order.model_copy(update={"step_path": "/another.step"})
        with pytest.raises(ConflictError) as refused:
            await start_order_line(session, plan, other, "s")
    assert refused.value.field == "order_line_id"
    assert stand_ins.calls["cad.resolve_step_path"] == 1
