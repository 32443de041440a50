"""Launching order lines through the API onto a real Temporal dev server and real modules."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from api_keys import AUTH, TEST_OWNER, authorized, with_test_key
from fastapi.testclient import TestClient
from temporalio.client import Client
from temporalio.worker import Worker

from api.app import create_app, serving
from conftest import STEP_FIXTURES
from core import temporal as attributes
from core.temporal import TemporalSession, connect
from imaging import colour_fractions
from support.pollers import until_polled
from support.stand_ins import StandIns
from workflows.graph import GraphWorkflow
from workflows.legacy import LegacyPipelineWorkflow
from workflows.order_line import OrderLineWorkflow

pytestmark = [pytest.mark.e2e]
pytest_plugins = ["api_fixtures"]
PART = STEP_FIXTURES / "red_cube_blue_cylinder.step"
OTHER_TOKEN = "another-owners-token-0123456789"
SMALL = {"width": 160, "height": 120, "samples": 4}


def launch(
    client: TestClient,
    output_type: str,
    cad_file_id: str = "cad_" + "0" * 32,
    headers: dict[str, str] | None = None,
    **extra,
):
    """POST one order line."""
    body = {
        "output_type": output_type,
        "order_line_id": "ol-7",
        "cad_file_id": cad_file_id,
        "invocation_params": SMALL,
        **extra,
    }
    return client.post("/api/order-lines", json=body, headers=headers)


async def poll(client: TestClient, url: str, running: Callable[[dict], bool]) -> dict:
    """GET url until the answer no longer reads as running (the in-process workers run on this loop)."""
    for _ in range(480):
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        if not running(answer.json()):
            return answer.json()
        await asyncio.sleep(0.5)
    raise AssertionError(f"{url} still running: {answer.json()}")


def test_without_temporal_the_answer_is_a_clear_503(tmp_path):
    from core.settings import Settings

    with authorized(create_app(with_test_key(Settings(state_dir=tmp_path)))) as client:
        answer = launch(client, "studio-still")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "temporal_unavailable"


async def test_the_whole_path_over_http(temporal_env, settings, session, tmp_path):
    """Upload a shared fixture, its intake completes, an order line renders it, the PNG downloads."""
    address = temporal_env.client.service_client.config.target_host
    app_settings = with_test_key(settings.model_copy(update={"temporal_address": address}))
    app_settings.api_keys[OTHER_TOKEN] = "someone-else"
    await until_polled(session)  # the launch's preflight asks Temporal for them
    answers = []
    with authorized(create_app(app_settings)) as client:
        client.event_hooks["response"].append(lambda response: answers.append(response))
        uploaded = client.post("/api/cad-files", files={"file": (PART.name, PART.read_bytes())})
        assert uploaded.status_code == 201, uploaded.text
        file_id = uploaded.json()["id"]
        cad_file = await poll(
            client, f"/api/cad-files/{file_id}", lambda it: it["intake"]["status"] == "running"
        )
        intake = cad_file["intake"]
        assert intake["status"] == "completed", intake
        assert len([item for item in intake["objects"] if item["kind"] == "part"]) == 2
        assert intake["bbox"]["unit"] == "m"
        glb = client.get(intake["glb"]["url"])
        assert glb.status_code == 200 and glb.content[:4] == b"glTF"
        assert glb.headers["content-type"] == "model/gltf-binary"

        launched = launch(client, "studio-still", file_id)
        assert launched.status_code == 202, launched.json()
        body = launched.json()
        assert body["route"] == "graph" and body["artifact_kinds"] == ["still_image"]
        assert body["effective"]["render.blender_still"]["param_sources"]["width"] == "invocation"

        status = await poll(
            client, f"/api/order-lines/{body['workflow_id']}", lambda it: it["status"] == "running"
        )
        assert status["status"] == "completed", status
        assert status["result"]["status"] == "completed", status["result"]["error"]
        links = {artifact["role"]: artifact for artifact in status["artifacts"]}
        assert {"step_file", "glb", "still"} <= set(links)
        still = links["still"]
        assert still["url"] == f"/api/artifacts/{still['sha256']}" and still["media_type"] == "image/png"
        png = client.get(still["url"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert (
            hashlib.sha256(png.content).hexdigest() == still["sha256"] and len(png.content) == still["size"]
        )
        (tmp_path / "still.png").write_bytes(png.content)
        fractions = colour_fractions(tmp_path / "still.png")
        assert fractions["red"] > 0.005 and fractions["blue"] > 0.005, (
            fractions
        )  # the red cube, the blue cylinder
        for child_id in status["result"]["workflow_ids"]:  # every run of the line carries its owner
            child = await temporal_env.client.get_workflow_handle(child_id).describe()
            assert child.typed_search_attributes.get(attributes.OWNER) == TEST_OWNER

        unknown = client.get("/api/order-lines/no-such-run")
        assert unknown.status_code == 404

        again = launch(client, "studio-still", file_id)  # a client's retry: the same run, not a new one
        assert again.status_code == 202 and again.json()["workflow_id"] == body["workflow_id"]
        other_request = launch(
            client, "studio-still", file_id, invocation_params={"width": 200, "height": 150}
        )
        assert other_request.status_code == 409 and other_request.json()["error"]["field"] == "order_line_id"
        stranger = {"Authorization": f"Bearer {OTHER_TOKEN}"}
        hidden = client.get(f"/api/order-lines/{body['workflow_id']}", headers=stranger)
        assert hidden.status_code == 404  # another owner's order line does not exist for them
        assert client.get(still["url"], headers=stranger).status_code == 404  # nor its artifacts
        assert client.get(f"/api/cad-files/{file_id}", headers=stranger).status_code == 404
        theirs = launch(client, "studio-still", file_id, headers=stranger, order_line_id="ol-8")
        assert theirs.status_code == 404 and theirs.json()["error"]["field"] == "cad_file_id"

        refused = launch(client, "no-such-type", file_id)
        assert refused.status_code == 404
        bad = launch(client, "studio-still", file_id, invocation_params={"width": 0})
        assert bad.status_code == 422
        assert bad.json()["error"]["problems"][0]["path"] == "params.width"

    assert (
        len([answer for answer in answers if answer.headers.get("content-type") == "application/json"]) > 10
    )
    for answer in answers:  # no answer names a server path or a file:// URI
        text = answer.text if "json" in answer.headers.get("content-type", "") else ""
        assert "file://" not in text and str(tmp_path) not in text, (answer.request.url, text[:300])


def test_clients_name_files_by_id_never_by_path(api_settings):
    app = create_app(api_settings)
    app.state.temporal = object()  # refused before anything starts
    with authorized(app) as client:
        by_path = launch(client, "studio-still", step_path=str(PART))
        assert by_path.status_code == 422 and by_path.json()["error"]["field"] == "step_path"
        for bad in ("../../etc/passwd", "/etc/shadow", "cad_../../x", "cad_" + "0" * 31 + "/"):
            refused = launch(client, "studio-still", bad)
            assert refused.status_code == 422 and refused.json()["error"]["field"] == "cad_file_id", bad
        unknown = launch(client, "studio-still")
        assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "cad_file_id"


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


def order_body(order_line_id: str, cad_file_id: str) -> dict:
    """A launch body for one order line of the seeded studio-still output type."""
    return {
        "output_type": "studio-still",
        "order_line_id": order_line_id,
        "cad_file_id": cad_file_id,
        "invocation_params": SMALL,
    }


@asynccontextmanager
async def api_with_stand_ins(settings) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The real API served over HTTP, stand-in workers polling its queues (so preflight passes and
    runs end at once), and an uploaded CAD file: the client and the file's id."""
    session = TemporalSession(await connect(settings.temporal_address, settings), None, settings)
    workers = [
        Worker(
            session.client,
            task_queue=queue,
            workflows=[OrderLineWorkflow, GraphWorkflow, LegacyPipelineWorkflow],
            activities=StandIns().activities(),
        )
        for queue in {settings.default_queue, settings.cad_queue, settings.render_queue}
    ]
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        url = await stack.enter_async_context(serving(create_app(settings)))
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60))
        await until_polled(session)
        uploaded = await http.post("/api/cad-files", files={"file": (PART.name, PART.read_bytes())})
        assert uploaded.status_code == 201, uploaded.json()
        yield http, uploaded.json()["id"]


async def runs_on(client: Client, query: str) -> int:
    """How many workflows the dev server's visibility lists for a query (once it lists any)."""
    for _ in range(100):
        if (await client.count_workflows(query)).count:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # a second run, had one started, is listed by now too
    return (await client.count_workflows(query)).count


async def test_50_concurrent_identical_launches_start_one_run(launch_settings, temporal_env):
    line = f"ol-50-{uuid.uuid4().hex[:8]}"  # one dev server serves every test: ids of their own
    async with api_with_stand_ins(launch_settings) as (http, cad_file):
        answers = await asyncio.gather(
            *(http.post("/api/order-lines", json=order_body(line, cad_file)) for _ in range(50))
        )

    refused = [answer.json() for answer in answers if answer.status_code != 202]
    assert not refused, refused[0]
    workflow_ids = {answer.json()["workflow_id"] for answer in answers}
    assert len(workflow_ids) == 1
    query = f"TaskQueue = '{launch_settings.default_queue}' AND WorkflowType = 'OrderLineWorkflow'"
    assert await runs_on(temporal_env.client, query) == 1


async def test_launches_and_reads_together_all_finish_on_a_small_pool(launch_settings, temporal_env):
    # Two connections for 24 overlapping requests: the API must queue them, never freeze or fail.
    small_pool = launch_settings.model_copy(
        update={"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout_s": 10.0}
    )
    suffix = uuid.uuid4().hex[:8]
    reads = ["/api/output-types", "/api/workflows/definitions", "/api/output-types/studio-still"]
    async with api_with_stand_ins(small_pool) as (http, cad_file):
        launches = [
            http.post("/api/order-lines", json=order_body(f"ol-load-{index}-{suffix}", cad_file))
            for index in range(12)
        ]
        lookups = [http.get(reads[index % len(reads)]) for index in range(12)]
        answers = await asyncio.wait_for(asyncio.gather(*launches, *lookups), timeout=30)

    assert [answer.status_code for answer in answers] == [202] * 12 + [200] * 12
    launched = {answer.json()["workflow_id"] for answer in answers[:12]}
    assert len(launched) == 12
    assert answers[12].json()[0]["slug"]  # the reads answered with the seeded rows


async def test_an_idempotency_key_fixes_the_run_in_place_of_the_order_line_id(launch_settings):
    async with api_with_stand_ins(launch_settings) as (http, cad_file):
        body = order_body(f"ol-key-{uuid.uuid4().hex[:8]}", cad_file)
        key = {"Idempotency-Key": f"client-{uuid.uuid4()}"}
        first = await http.post("/api/order-lines", json=body, headers=key)
        again = await http.post("/api/order-lines", json=body, headers=key)
        assert first.status_code == again.status_code == 202, first.json()
        assert again.json()["workflow_id"] == first.json()["workflow_id"]
        assert first.json()["workflow_id"].endswith(f":studio-still:{key['Idempotency-Key']}")
        other = await http.post(
            "/api/order-lines", json={**body, "invocation_params": {"width": 200}}, headers=key
        )
        assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
        unkeyed = await http.post("/api/order-lines", json=body)
        assert unkeyed.status_code == 202 and unkeyed.json()["workflow_id"] != first.json()["workflow_id"]
        bad = await http.post("/api/order-lines", json=body, headers={"Idempotency-Key": "a b"})
        assert bad.status_code == 422
