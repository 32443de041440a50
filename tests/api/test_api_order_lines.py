"""Launching order lines through the API onto a real Temporal dev server and real modules."""

from __future__ import annotations

import asyncio

import pytest
from api_keys import TEST_OWNER, authorized, with_test_key
from fastapi.testclient import TestClient

from api.app import create_app
from conftest import STEP_FIXTURES
from core import temporal as attributes
from support.pollers import until_polled

pytestmark = [pytest.mark.e2e]
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
    await until_polled(session)  # the launch's preflight asks Temporal for them
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
        for child_id in result["workflow_ids"]:  # every run of the line is labelled with its owner
            child = await temporal_env.client.get_workflow_handle(child_id).describe()
            assert child.typed_search_attributes.get(attributes.OWNER) == TEST_OWNER

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
