"""The app as a whole: one error shape for every failure, startup seeding, OpenAPI, the server entry."""

from __future__ import annotations

import pytest
from api_keys import authorized
from fastapi.testclient import TestClient

from api import app as app_module
from api.app import create_app
from core.settings import Settings

pytest_plugins = ["api_fixtures"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/output-types",
        "/api/workflows/definitions",
        "/api/legacy/map",
        "/api/output-types/import",
        "/api/output-types/studio-still/dispatch-plan",
    ],
)
def test_malformed_json_is_422_json_not_500(client: TestClient, path: str):
    answer = client.post(path, content=b'{"slug": "x", ', headers={"content-type": "application/json"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_json" and error["field"] == "body"


def test_wrong_body_type_names_the_field(client: TestClient):
    answer = client.post(
        "/api/output-types", json={"slug": "x", "name": "X", "overrides": {"width": 9}, "categories": 3}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "categories"
    assert answer.json()["error"]["problems"][0]["field"] == "categories"


def test_bad_path_parameter_names_the_field(client: TestClient):
    answer = client.get("/api/workflows/definitions/order-still-v1/versions/latest")
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "path.version"


@pytest.mark.parametrize(
    "method, path, status, code",
    [
        ("get", "/api/nothing-here", 404, "not_found"),
        ("delete", "/api/output-types", 405, "method_not_allowed"),
    ],
)
def test_routing_errors_share_the_shape(client: TestClient, method: str, path: str, status: int, code: str):
    answer = client.request(method, path)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code


def test_unexpected_errors_are_500_without_a_traceback(api_settings: Settings):
    app = create_app(api_settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals at /srv/prodgraph/db.py line 12")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500
    assert answer.json() == {
        "error": {
            "code": "internal_error",
            "message": answer.json()["error"]["message"],
            "field": None,
            "node_id": None,
        }
    }
    assert "secret" not in answer.text and "Traceback" not in answer.text


def test_seeding_happens_only_on_empty_tables(api_settings: Settings):
    with authorized(create_app(api_settings)) as client:
        client.post(
            "/api/workflows/definitions",
            json={
                **client.get("/api/workflows/definitions/order-still-v1").json()["definition"],
                "name": "edited",
            },
        )
        client.patch("/api/output-types/studio-still", json={"name": "Renamed"})
    with authorized(create_app(api_settings)) as client:
        assert len(client.get("/api/output-types").json()) == 5
        assert client.get("/api/output-types/studio-still").json()["output_type"]["name"] == "Renamed"
        assert client.get("/api/workflows/definitions/order-still-v1").json()["version"] == 2
        summaries = client.get("/api/workflows/definitions").json()
        assert [entry["versions"] for entry in summaries if entry["id"] == "order-still-v1"] == [[1, 2]]


def test_openapi_documents_every_route(client: TestClient):
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert {
        "/api/workflows/node-definitions",
        "/api/workflows/families",
        "/api/workflows/starters",
        "/api/workflows/validate",
        "/api/workflows/definitions",
        "/api/workflows/definitions/{definition_id}",
        "/api/workflows/definitions/{definition_id}/versions/{version}",
        "/api/output-types",
        "/api/output-types/{slug}",
        "/api/output-types/{slug}/validate",
        "/api/output-types/schema/options",
        "/api/output-types/{slug}/dispatch-plan",
        "/api/output-types/import",
        "/api/legacy/map",
        "/api/order-lines",
        "/api/order-lines/{workflow_id}",
        "/api/cad-files",
        "/api/cad-files/{cad_file_id}",
        "/api/artifacts/{sha256}",
    } <= set(paths)
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert {"200", "201", "202"} & set(operation["responses"]), (method, path)
            assert "ErrorResponse" in str(operation["responses"]["422"]), (method, path)
    assert "requestBody" in paths["/api/workflows/validate"]["post"]


def test_main_serves_the_app_with_uvicorn(monkeypatch: pytest.MonkeyPatch, api_settings: Settings):
    import uvicorn

    calls = {}
    monkeypatch.setattr(app_module, "get_settings", lambda: api_settings)
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: calls.update(app=app, host=host, port=port))
    assert app_module.main(["--host", "0.0.0.0", "--port", "8123"]) == 0
    assert (calls["host"], calls["port"]) == ("0.0.0.0", 8123)
    assert calls["app"].title == "prodgraph"
