"""Workflow routes: palette with ETag, families, starters, validation, versioned definitions."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from persistence.tables import CatalogSnapshot
from registry.catalog import default_catalog
from registry.starters import starter

pytest_plugins = ["api_fixtures"]

CATALOG = default_catalog()


def still_document(**changes: Any) -> dict[str, Any]:
    """The order-still starter as raw JSON, with top-level changes."""
    return {**starter("order-still-v1").model_dump(mode="json"), **changes}


def test_node_definitions_carry_catalog_version_and_etag(client: TestClient):
    answer = client.get("/api/workflows/node-definitions")
    assert answer.status_code == 200
    body = answer.json()
    assert body["catalog_version"] == CATALOG.version
    assert answer.headers["etag"] == f'"{CATALOG.version}"'
    assert [node["step"] for node in body["node_definitions"]] == sorted(CATALOG.definitions)


def test_node_definitions_of_one_family(client: TestClient):
    body = client.get("/api/workflows/node-definitions", params={"family": "cad_file"}).json()
    assert body["node_definitions"]
    assert all("cad_file" in node["families"] for node in body["node_definitions"])


def test_node_definitions_not_modified_when_etag_matches(client: TestClient):
    etag = client.get("/api/workflows/node-definitions").headers["etag"]
    answer = client.get("/api/workflows/node-definitions", headers={"If-None-Match": etag})
    assert answer.status_code == 304
    assert answer.headers["etag"] == etag


def test_unknown_family_is_not_found(client: TestClient):
    answer = client.get("/api/workflows/node-definitions", params={"family": "video"})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert answer.json()["error"]["field"] == "family"


def test_families(client: TestClient):
    families = {family["name"]: family for family in client.get("/api/workflows/families").json()}
    assert set(families) == {"cad_file", "order_line"}
    assert "still_image" in families["order_line"]["artifact_kinds"]
    assert "step_path" in families["cad_file"]["entry_context_schema"]["properties"]


def test_family_descriptions_reach_the_api_whole(client: TestClient):
    from registry.catalog import default_catalog

    answered = {family["name"]: family for family in client.get("/api/workflows/families").json()}
    for name, family in default_catalog().families.items():
        assert answered[name] == family.describe()
    assert any("cycles" in rule for rule in answered["order_line"]["validation_rules"])


def test_starters(client: TestClient):
    ids = {definition["id"] for definition in client.get("/api/workflows/starters").json()}
    assert {
        "cad-intake-v1",
        "order-still-v1",
        "order-turntable-v1",
        "order-blend-v1",
        "order-still-thumbnail-v1",
    } <= ids


def test_validate_a_starter(client: TestClient):
    report = client.post("/api/workflows/validate", json=still_document()).json()
    assert report["valid"] is True
    assert report["catalog_version"] == CATALOG.version
    assert report["catalog_changed"] is None


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b""])
def test_validate_reports_unparseable_bodies(client: TestClient, content: bytes):
    answer = client.post(
        "/api/workflows/validate", content=content, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200
    assert answer.json()["valid"] is False
    assert answer.json()["errors"][0]["code"] == "invalid_json"


@pytest.mark.parametrize(
    "garbage", ["garbage", 42, None, [1, 2], {"nodes": "many"}, {"id": 3, "nodes": [{"id": 7}]}]
)
def test_validate_reports_any_shape(client: TestClient, garbage: Any):
    answer = client.post(
        "/api/workflows/validate", content=json.dumps(garbage), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200
    report = answer.json()
    assert report["valid"] is False
    assert {problem["code"] for problem in report["errors"]} == {"invalid_shape"}


def test_validate_reports_graph_problems(client: TestClient):
    document = still_document()
    document["edges"].append({"source": "notify", "target": "auto_materials"})
    report = client.post("/api/workflows/validate", json=document).json()
    assert not report["valid"]
    assert "cycle" in {problem["code"] for problem in report["errors"]}


def test_definitions_are_seeded_from_starters(client: TestClient):
    summaries = {entry["id"]: entry for entry in client.get("/api/workflows/definitions").json()}
    assert summaries["order-still-v1"]["versions"] == [1]
    assert summaries["order-still-v1"]["catalog_version"] == CATALOG.version
    only_cad = client.get("/api/workflows/definitions", params={"family": "cad_file"}).json()
    assert [entry["id"] for entry in only_cad] == ["cad-intake-v1"]


def test_get_definition_latest_and_version(client: TestClient):
    latest = client.get("/api/workflows/definitions/order-still-v1").json()
    assert latest["version"] == 1 and latest["catalog_current"] is True
    assert latest["definition"]["nodes"][0]["id"] == "auto_materials"
    pinned = client.get("/api/workflows/definitions/order-still-v1/versions/1").json()
    assert pinned == latest


@pytest.mark.parametrize(
    "path, field",
    [
        ("/api/workflows/definitions/nope", "id"),
        ("/api/workflows/definitions/order-still-v1/versions/9", "version"),
    ],
)
def test_missing_definition_is_not_found(client: TestClient, path: str, field: str):
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.json()["error"] == {
        "code": "not_found",
        "message": answer.json()["error"]["message"],
        "node_id": None,
        "field": field,
    }


def test_save_creates_immutable_versions(client: TestClient):
    first = client.post("/api/workflows/definitions", json=still_document(id="my-still", name="Mine"))
    assert first.status_code == 201
    assert first.json()["definition"]["version"] == 1
    assert first.json()["definition"]["definition"]["catalog_version"] == CATALOG.version
    changed = still_document(id="my-still", name="Mine, sharper", version=1)
    changed["nodes"][3]["params"] = {"samples": 256}
    second = client.post("/api/workflows/definitions", json=changed)
    assert second.status_code == 201
    assert second.json()["definition"]["version"] == 2
    old = client.get("/api/workflows/definitions/my-still/versions/1").json()
    assert old["name"] == "Mine" and old["definition"]["nodes"][3]["params"] == {}
    latest = client.get("/api/workflows/definitions/my-still").json()
    assert latest["version"] == 2 and latest["definition"]["nodes"][3]["params"] == {"samples": 256}
    summaries = {entry["id"]: entry for entry in client.get("/api/workflows/definitions").json()}
    assert summaries["my-still"]["versions"] == [1, 2]


def test_save_accepts_a_definition_without_version(client: TestClient):
    document = still_document(id="no-version")
    del document["version"]
    answer = client.post("/api/workflows/definitions", json=document)
    assert answer.status_code == 201
    assert answer.json()["definition"]["version"] == 1


def test_save_refuses_an_invalid_definition_with_its_problems(client: TestClient):
    document = still_document(id="broken")
    document["nodes"][3]["params"] = {"width": -1}
    document["nodes"].append({"id": "ghost", "step": "render.teleport"})
    answer = client.post("/api/workflows/definitions", json=document)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_definition"
    codes = {(problem["code"], problem["node_id"]) for problem in error["problems"]}
    assert {("invalid_params", "still"), ("unknown_step", "ghost")} <= codes
    assert client.get("/api/workflows/definitions/broken").status_code == 404


def test_save_refuses_a_wrong_shape(client: TestClient):
    answer = client.post("/api/workflows/definitions", json=["not", "a", "definition"])
    assert answer.status_code == 422
    assert answer.json()["error"]["problems"][0]["code"] == "invalid_shape"


# --- catalogue changes ------------------------------------------------------------------------

OLD_VERSION = "0ld0ld0ld0ld0ld0"


@pytest.fixture
def old_catalog(client: TestClient) -> str:
    """A snapshot of a fake older catalogue: still had another width limit and a lost step."""
    definitions = [definition.model_dump(mode="json") for definition in CATALOG.list()]
    old = copy.deepcopy(definitions)
    still = next(node for node in old if node["step"] == "render.blender_still")
    still["param_schema"]["properties"]["width"]["maximum"] = 4096
    still["param_schema"]["properties"]["tonemap"] = {"type": "string"}
    old.append({**copy.deepcopy(still), "step": "render.legacy_glow", "module_key": "render.legacy_glow"})
    old = [node for node in old if node["step"] != "render.thumbnail"]
    with Session(client.app.state.engine) as session:
        session.add(CatalogSnapshot(version=OLD_VERSION, node_definitions=old))
        session.commit()
    return OLD_VERSION


def test_snapshot_of_current_catalog_is_recorded_on_startup(client: TestClient):
    with Session(client.app.state.engine) as session:
        snapshot = session.get(CatalogSnapshot, CATALOG.version)
    assert snapshot is not None
    assert len(snapshot.node_definitions) == len(CATALOG.definitions)


def test_validate_explains_a_catalog_change(client: TestClient, old_catalog: str):
    report = client.post("/api/workflows/validate", json=still_document(catalog_version=old_catalog)).json()
    change = report["catalog_changed"]
    assert report["valid"] is True
    assert change["from_version"] == old_catalog and change["to_version"] == CATALOG.version
    assert change["known"] is True
    assert change["added"] == ["render.thumbnail"]
    assert change["removed"] == ["render.legacy_glow"]
    assert change["changed"] == [
        {
            "step": "render.blender_still",
            "fields": ["param_schema"],
            "params": {"added": [], "removed": ["tonemap"], "changed": ["width"]},
        }
    ]
    assert change["affected_nodes"] == ["still"]


def test_save_with_an_old_catalog_version_is_refused_with_the_change(client: TestClient, old_catalog: str):
    document = still_document(id="stale-still", catalog_version=old_catalog)
    answer = client.post("/api/workflows/definitions", json=document)
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "catalog_changed" and error["field"] == "catalog_version"
    assert error["catalog_changed"]["changed"][0]["step"] == "render.blender_still"
    assert error["validation"]["valid"] is True
    assert client.get("/api/workflows/definitions/stale-still").status_code == 404
    resent = client.post("/api/workflows/definitions", json={**document, "catalog_version": CATALOG.version})
    assert resent.status_code == 201


def test_save_with_a_stale_if_match_fails_the_precondition(client: TestClient, old_catalog: str):
    answer = client.post(
        "/api/workflows/definitions", json=still_document(id="x"), headers={"If-Match": f'"{old_catalog}"'}
    )
    assert answer.status_code == 412
    assert answer.json()["error"]["catalog_changed"]["removed"] == ["render.legacy_glow"]
    current = client.post(
        "/api/workflows/definitions",
        json=still_document(id="x"),
        headers={"If-Match": f'"{CATALOG.version}"'},
    )
    assert current.status_code == 201


def test_an_unknown_catalog_version_is_reported_without_a_diff(client: TestClient):
    report = client.post("/api/workflows/validate", json=still_document(catalog_version="never-seen")).json()
    assert report["catalog_changed"]["known"] is False
    assert "never-seen" in report["catalog_changed"]["message"]
