"""Launching order lines through the API onto a real Temporal dev server and real modules."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from api_keys import AUTH, authorized, with_test_key
from fastapi.testclient import TestClient
from temporalio.client import Client

from api.app import create_app, serving
from conftest import STEP_FIXTURES

pytestmark = [pytest.mark.e2e]
pytest_plugins = ["api_fixtures"]
OTHER_TOKEN = "another-owners-token-0123456789"
SMALL = {"width": 160, "height": 120, "samples": 4}


def launch(client: TestClient, output_type: str, **extra) -> dict:
    """POST one order line."""
    body = {
        "output_type": output_type,
        "order_line_id": "ol-7",
        "step_path": str(STEP_FIXTURES / "red_cube_blue_cylinder.step"),
        "invocation_params": SMALL,
        **extra,
    }
    return client.post("/api/order-lines", json=body)


def test_without_temporal_the_answer_is_a_clear_503(tmp_path):
    from core.settings import Settings

    with authorized(create_app(with_test_key(Settings(state_dir=tmp_path)))) as client:
        answer = launch(client, "studio-still")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "temporal_unavailable"


async def test_an_order_line_runs_through_its_output_type(temporal_env, settings, session):
    address = temporal_env.client.service_client.config.target_host
    app_settings = with_test_key(settings.model_copy(update={"temporal_address": address}))
    app_settings.api_keys[OTHER_TOKEN] = "someone-else"
    with authorized(create_app(app_settings)) as client:
        launched = launch(client, "studio-still")
        assert launched.status_code == 202, launched.json()
        body = launched.json()
        assert body["route"] == "graph" and body["artifact_kinds"] == ["still_image"]
        assert body["effective"]["render.blender_still"]["param_sources"]["width"] == "invocation"

        for _ in range(240):
            status = client.get(f"/api/order-lines/{body['workflow_id']}").json()
            if status["status"] != "running":
                break
            await asyncio.sleep(0.5)  # the in-process workers run on this loop
        assert status["status"] == "completed", status
        result = status["result"]
        assert result["status"] == "completed", result["error"]
        assert "still" in {artifact["role"] for artifact in result["artifacts"]}

        unknown = client.get("/api/order-lines/no-such-run")
        assert unknown.status_code == 404

        again = launch(client, "studio-still")  # a client's retry: the same run, not a new one
        assert again.status_code == 202 and again.json()["workflow_id"] == body["workflow_id"]
        other_request = launch(client, "studio-still", invocation_params={"width": 200, "height": 150})
        assert other_request.status_code == 409 and other_request.json()["error"]["field"] == "order_line_id"
        stranger = {"Authorization": f"Bearer {OTHER_TOKEN}"}
        hidden = client.get(f"/api/order-lines/{body['workflow_id']}", headers=stranger)
        assert hidden.status_code == 404  # another owner's order line does not exist for them

        refused = launch(client, "no-such-type")
        assert refused.status_code == 404
        bad = launch(client, "studio-still", invocation_params={"width": 0})
        assert bad.status_code == 422
        assert bad.json()["error"]["problems"][0]["path"] == "params.width"


@pytest.fixture
def launch_settings(api_settings, settings, temporal_env):
    """The API's settings (SQLite, then PostgreSQL) on the session's dev server, this test's queues."""
    return api_settings.model_copy(
        update={
            "temporal_address": temporal_env.client.service_client.config.target_host,
            "default_queue": settings.default_queue,
            "cad_queue": settings.cad_queue,
            "render_queue": settings.render_queue,
            "input_roots": settings.input_roots,
        }
    )


def order_body(order_line_id: str) -> dict:
    """A launch body for one order line of the seeded studio-still output type."""
    return {
        "output_type": "studio-still",
        "order_line_id": order_line_id,
        "step_path": str(STEP_FIXTURES / "red_cube_blue_cylinder.step"),
        "invocation_params": SMALL,
    }


async def runs_on(client: Client, task_queue: str) -> int:
    """How many workflows the dev server's visibility lists on a task queue (once it lists any)."""
    query = f"TaskQueue = '{task_queue}'"
    for _ in range(100):
        if (await client.count_workflows(query)).count:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # a second run, had one started, is listed by now too
    return (await client.count_workflows(query)).count


async def test_50_concurrent_identical_launches_start_one_run(launch_settings, temporal_env):
    line = f"ol-50-{uuid.uuid4().hex[:8]}"  # one dev server serves every test: ids of their own
    async with (
        serving(create_app(launch_settings)) as url,
        httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as http,
    ):
        answers = await asyncio.gather(
            *(http.post("/api/order-lines", json=order_body(line)) for _ in range(50))
        )

    refused = [answer.json() for answer in answers if answer.status_code != 202]
    assert not refused, refused[0]
    workflow_ids = {answer.json()["workflow_id"] for answer in answers}
    assert len(workflow_ids) == 1
    assert await runs_on(temporal_env.client, launch_settings.default_queue) == 1
    await temporal_env.client.get_workflow_handle(workflow_ids.pop()).terminate("test over")


async def test_launches_and_reads_together_all_finish_on_a_small_pool(launch_settings, temporal_env):
    # Two connections for 24 overlapping requests: the API must queue them, never freeze or fail.
    small_pool = launch_settings.model_copy(
        update={"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout_s": 10.0}
    )
    suffix = uuid.uuid4().hex[:8]
    reads = ["/api/output-types", "/api/workflows/definitions", "/api/output-types/studio-still"]
    async with (
        serving(create_app(small_pool)) as url,
        httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as http,
    ):
        launches = [
            http.post("/api/order-lines", json=order_body(f"ol-load-{index}-{suffix}")) for index in range(12)
        ]
        lookups = [http.get(reads[index % len(reads)]) for index in range(12)]
        answers = await asyncio.wait_for(asyncio.gather(*launches, *lookups), timeout=30)

    assert [answer.status_code for answer in answers] == [202] * 12 + [200] * 12
    launched = {answer.json()["workflow_id"] for answer in answers[:12]}
    assert len(launched) == 12
    assert answers[12].json()[0]["slug"]  # the reads answered with the seeded rows
    for workflow_id in launched:
        await temporal_env.client.get_workflow_handle(workflow_id).terminate("test over")
