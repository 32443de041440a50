"""The on-call routes (/api/runs) on a real Temporal dev server, with instant stand-in modules.

TestClient calls block, and the workers answering them run on this test's loop: every call goes
through a thread (`call`) so the workers go on meanwhile.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from api_keys import authorized, bearer, token_for, with_keys
from fastapi.testclient import TestClient
from httpx import Response
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from api.app import create_app
from api.public import scrubbed
from core.settings import Settings
from core.temporal import TemporalSession
from core.vocabulary import Role
from prodgraph.runs import graph_outcome
from registry.catalog import default_catalog
from registry.compiler import compile_plan
from registry.definition import WorkflowDefinition
from support.definitions import OPERATED, intake
from support.stand_ins import StandIns
from workflows.graph import GraphRunInput, GraphRunResult, GraphWorkflow, RunLabels


@dataclass
class Api:
    """A client on the app, the stand-ins behind it, and a way to start runs."""

    http: TestClient
    client: Client
    session: TemporalSession
    stand_ins: StandIns

    async def call(self, method: str, url: str, **kwargs: Any) -> Response:
        """One request, in a thread, so this loop's workers can answer it."""
        return await asyncio.to_thread(self.http.request, method, url, **kwargs)

    async def start(
        self, definition: WorkflowDefinition, labels: RunLabels | None = None
    ) -> WorkflowHandle[Any, GraphRunResult]:
        return await self.client.start_workflow(
            GraphWorkflow.run,
            GraphRunInput(
                plan=compile_plan(definition, default_catalog()),
                entry={"step_path": "/nowhere/part.step"},
                task_queues=self.session.task_queues(),
                labels=labels or RunLabels(),
            ),
            id=f"api-runs-{uuid.uuid4().hex[:10]}",
            task_queue=self.session.settings.default_queue,
        )

    async def awaiting(self, handle: WorkflowHandle[Any, GraphRunResult], node_id: str) -> None:
        for _ in range(100):
            if (await handle.query(GraphWorkflow.progress))[node_id].status == "awaiting_operator":
                return
            await asyncio.sleep(0.1)
        pytest.fail(f"{node_id} never waited for the operator")

    async def listed(self, expected: str, **params: Any) -> list[dict[str, Any]]:
        """GET /api/runs once it shows the run (visibility is eventually consistent)."""
        for _ in range(50):
            answer = await self.call("GET", "/api/runs", params=params)
            assert answer.status_code == 200, answer.json()
            if expected in {run["workflow_id"] for run in answer.json()}:
                return answer.json()
            await asyncio.sleep(0.2)
        pytest.fail(f"{expected} never listed with {params}")


@pytest.fixture
async def api(temporal_env, tmp_path: Path) -> AsyncIterator[Api]:
    queue = f"api-runs-{uuid.uuid4().hex[:8]}"
    settings = with_keys(
        Settings(state_dir=tmp_path, default_queue=queue, cad_queue=queue, render_queue=queue),
        (Role.client, "acme"),
    )
    session = TemporalSession(temporal_env.client, None, settings)
    stand_ins = StandIns()
    app = create_app(settings)
    app.state.temporal = session
    async with Worker(
        temporal_env.client, task_queue=queue, workflows=[GraphWorkflow], activities=stand_ins.activities()
    ):
        with authorized(app) as http:
            yield Api(http, temporal_env.client, session, stand_ins)


async def test_list_and_show_a_failed_run(api: Api):
    api.stand_ins.permanent = {"cad.extract_objects"}
    order_line = f"ol-{uuid.uuid4().hex[:8]}"
    handle = await api.start(intake(), RunLabels(order_line=order_line, output_type="studio-still"))
    assert (await graph_outcome(handle)).status == "failed"

    (run,) = await api.listed(handle.id, order_line=order_line, status="failed")
    assert run["status"] == "failed" and run["workflow_type"] == "GraphWorkflow"
    assert run["search_attributes"]["ProdgraphFailedNode"] == "extract"
    by_family = await api.listed(handle.id, family="cad_file", status="failed", limit=200)
    assert {run["status"] for run in by_family} == {"failed"}
    await api.listed(handle.id, output_type="studio-still", family="cad_file")
    none = await api.call("GET", "/api/runs", params={"order_line": order_line, "status": "running"})
    assert none.json() == []

    shown = await api.call("GET", f"/api/runs/{handle.id}")
    assert shown.status_code == 200, shown.json()
    view = shown.json()
    assert {"workflow_id", "status", "temporal_ui", "search_attributes", "nodes"} <= set(view)
    nodes = {node["id"]: node for node in view["nodes"]}
    assert nodes["resolve"]["status"] == "completed"
    assert nodes["extract"]["status"] == "failed" and nodes["extract"]["error"]["code"] == "invalid_cad_file"

    missing = await api.call("GET", "/api/runs/no-such-run")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    too_many = await api.call("GET", "/api/runs", params={"limit": 201})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "query.limit"
    unknown_status = await api.call("GET", "/api/runs", params={"status": "sleeping"})
    assert unknown_status.status_code == 422


async def test_retry_refused_then_retried_with_params(api: Api):
    api.stand_ins.fail = {"cad.extract_objects": 1}
    handle = await api.start(intake(**OPERATED))
    await api.awaiting(handle, "extract")
    url = f"/api/runs/{handle.id}/nodes"

    shown = (await api.call("GET", f"/api/runs/{handle.id}")).json()
    assert shown["status"] == "awaiting_operator"

    refused = await api.call("POST", f"{url}/no-such-node/retry", json={})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "operator_action_refused" and error["problems"][0]["code"] == "unknown_node"
    wrong_node = await api.call("POST", f"{url}/resolve/retry")
    assert wrong_node.json()["error"]["problems"][0]["code"] == "node_not_awaiting_operator"
    off_schema = await api.call("POST", f"{url}/extract/retry", json={"params": {"include_assemblies": "x"}})
    assert off_schema.status_code == 409
    assert off_schema.json()["error"]["problems"][0]["code"] == "invalid_params"
    extra = await api.call("POST", f"{url}/extract/retry", json={"params": {}, "force": True})
    assert extra.status_code == 422 and extra.json()["error"]["field"] == "force"
    no_time = await api.call("POST", f"{url}/extract/retry", json={"timeout_s": 0})
    assert no_time.status_code == 422

    retried = await api.call(
        "POST", f"{url}/extract/retry", json={"params": {"include_assemblies": False}, "timeout_s": 30}
    )
    assert retried.status_code == 200, retried.json()
    assert retried.json()["action"] == "retry"
    assert retried.json()["node"]["param_sources"]["include_assemblies"] == "operator"
    result = await graph_outcome(handle)
    assert result.status == "completed" and result.nodes["extract"].params["include_assemblies"] is False


async def test_skip_with_an_output(api: Api):
    api.stand_ins.fail = {"cad.extract_objects": 1}
    handle = await api.start(intake(**OPERATED))
    await api.awaiting(handle, "extract")
    output = {"objects": [], "source_unit": "mm"}
    skipped = await api.call("POST", f"/api/runs/{handle.id}/nodes/extract/skip", json={"output": output})
    assert skipped.status_code == 200, skipped.json()
    assert skipped.json()["node"]["status"] == "skipped"
    result = await graph_outcome(handle)
    assert result.status == "completed" and result.outputs["extract"] == output


async def test_abort_and_rerun(api: Api):
    api.stand_ins.fail = {"cad.extract_objects": 1}
    handle = await api.start(intake(**OPERATED))
    await api.awaiting(handle, "extract")
    url = f"/api/runs/{handle.id}"

    for body in ({}, {"reason": ""}, {"reason": "x" * 501}, {"reason": "x", "now": True}):
        invalid = await api.call("POST", f"{url}/abort", json=body)
        assert invalid.status_code == 422, body
    aborted = await api.call("POST", f"{url}/abort", json={"reason": "customer withdrew the order"})
    assert aborted.status_code == 202, aborted.json()
    assert aborted.json() == {"workflow_id": handle.id, "status": "aborting"}
    result = await graph_outcome(handle)
    assert result.error is not None and result.error.code == "aborted"
    again = await api.call("POST", f"{url}/abort", json={"reason": "twice"})
    assert again.status_code == 409
    unknown = await api.call("POST", "/api/runs/no-such-run/abort", json={"reason": "x"})
    assert unknown.status_code == 404

    rerun = await api.call("POST", f"{url}/rerun", json={"params": {"glb": {"relative_deflection": 0.01}}})
    assert rerun.status_code == 202, rerun.json()
    assert rerun.json()["rerun_of"] == handle.id
    new = api.client.get_workflow_handle_for(GraphWorkflow.run, rerun.json()["workflow_id"])
    again_result = await graph_outcome(new)
    assert again_result.status == "completed", again_result.error
    assert again_result.nodes["resolve"].reused and again_result.nodes["bbox"].reused
    assert not again_result.nodes["glb"].reused
    assert again_result.nodes["glb"].params["relative_deflection"] == 0.01
    bad = await api.call("POST", f"{url}/rerun", json={"from_node": "nope"})
    assert bad.status_code == 409 and bad.json()["error"]["problems"][0]["code"] == "unknown_node"


async def test_a_client_sees_only_its_own_runs_and_cannot_repair_them(api: Api):
    """Runs carry their owner (ProdgraphOwner): another owner's run is a 404 to a client, and
    operator actions are the operator's (on-call sees and repairs every run)."""
    api.stand_ins.permanent = {"cad.extract_objects"}
    order_line = f"ol-{uuid.uuid4().hex[:8]}"
    own = await api.start(intake(**OPERATED), RunLabels(order_line=order_line, owner="acme"))
    other = await api.start(intake(**OPERATED), RunLabels(order_line=order_line, owner="globex"))
    await api.awaiting(other, "extract")
    await api.awaiting(own, "extract")
    await api.listed(other.id, order_line=order_line)  # the admin test key sees both
    acme = bearer(token_for(Role.client, "acme"))

    listed = await api.call("GET", "/api/runs", params={"order_line": order_line}, headers=acme)
    assert [run["workflow_id"] for run in listed.json()] == [own.id]
    shown = await api.call("GET", f"/api/runs/{own.id}", headers=acme)
    assert shown.status_code == 200 and shown.json()["nodes"][0]["status"] == "completed"
    assert "file://" not in shown.text and str(api.session.settings.state_dir) not in shown.text
    hidden = await api.call("GET", f"/api/runs/{other.id}", headers=acme)
    assert hidden.status_code == 404 and hidden.json()["error"]["message"] == f"no run {other.id!r}"
    refused = await api.call("POST", f"/api/runs/{own.id}/nodes/extract/skip", json={}, headers=acme)
    assert refused.status_code == 403  # even its own run: repairs are on-call's
    assert (await other.query(GraphWorkflow.progress))["extract"].status == "awaiting_operator"
    await other.terminate("test over")
    await own.terminate("test over")


def test_a_clients_view_of_a_run_cuts_server_paths(tmp_path: Path):
    settings = Settings(state_dir=tmp_path)
    store = settings.artifact_root()
    view = {
        "nodes": [
            {"error": {"message": f"cannot read {store}/ab/abcd.step"}, "params": [f"file://{store}/x.png"]}
        ]
    }
    assert scrubbed(view, settings) == {
        "nodes": [{"error": {"message": "cannot read abcd.step"}, "params": ["x.png"]}]
    }
