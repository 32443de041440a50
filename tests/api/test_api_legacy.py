"""Legacy routes: the adapter over HTTP, and the import of a legacy export as output types."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

pytest_plugins = ["api_fixtures"]


def test_map_reproduces_the_expected_invocations(client: TestClient, legacy_fixture):
    answer = client.post("/api/legacy/map", json=legacy_fixture("output_types_export.json"))
    assert answer.status_code == 200
    entries = answer.json()
    assert [list(entry) for entry in entries] == [
        list(entry) for entry in legacy_fixture("expected_invocations.json")
    ]
    # The expected file states errors by key; the answer adds the message.
    reduced = [{**entry, "error": entry["error"] and {"key": entry["error"]["key"]}} for entry in entries]
    assert reduced == legacy_fixture("expected_invocations.json")
    assert entries[11]["error"]["message"] == "render_settings.resolution: 'hd' is not WIDTHxHEIGHT"


def test_map_refuses_records_that_are_not_objects(client: TestClient):
    answer = client.post("/api/legacy/map", json=[{"slug": "a", "render_settings": {}}, 7])
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "[1]"


def test_import_creates_readable_records_and_reports_the_rest(client: TestClient, legacy_fixture):
    answer = client.post("/api/output-types/import", json=legacy_fixture("output_types_export.json"))
    assert answer.status_code == 200
    report = answer.json()
    assert (report["created"], report["updated"], report["errors"]) == (11, 0, 3)
    errors = {
        entry["slug"]: entry["error"]["key"] for entry in report["records"] if entry["status"] == "error"
    }
    assert errors == {
        "broken-resolution": "resolution",
        "negative-samples": "samples",
        "unknown-renderer": "renderer",
    }
    for slug in errors:
        assert client.get(f"/api/output-types/{slug}").status_code == 404


def test_imported_records_keep_the_adapter_view_and_the_legacy_bag(client: TestClient, legacy_fixture):
    records = legacy_fixture("output_types_export.json")
    expected = {entry["slug"]: entry for entry in legacy_fixture("expected_invocations.json")}
    report = client.post("/api/output-types/import", json=records).json()
    by_slug = {entry["slug"]: entry for entry in report["records"]}
    for record in records:
        want = expected[record["slug"]]
        if want["error"]:
            continue
        stored = client.get(f"/api/output-types/{record['slug']}").json()["output_type"]
        assert stored["rollout"] == "legacy" and stored["family"] == "order_line"
        assert stored["legacy_id"] == record["id"]
        assert stored["legacy_render_settings"] == record["render_settings"]
        assert stored["artifact_kinds"] == [want["artifact_kind"]]
        assert stored["overrides"] == {
            key: value for key, value in want["overrides"].items() if value is not None
        }
        assert stored["pricing_tier"] == record["price_tier"]
        assert stored["is_active"] == record["is_active"]
        assert by_slug[record["slug"]]["ignored_keys"] == want["ignored_keys"]
        assert by_slug[record["slug"]]["artifact_kind"] == want["artifact_kind"]


def test_import_links_existing_workflows_pinned_at_their_latest_version(client: TestClient, legacy_fixture):
    client.post("/api/output-types/import", json=legacy_fixture("output_types_export.json"))
    pilot = client.get("/api/output-types/graph-still-pilot").json()["output_type"]
    assert (pilot["workflow_id"], pilot["workflow_version"]) == ("order-still-v1", 1)
    assert pilot["rollout"] == "legacy"


def test_import_reports_a_missing_workflow_and_keeps_it_unset(client: TestClient):
    record = {
        "id": 99,
        "slug": "orphan",
        "name": "Orphan",
        "workflow_definition_id": "gone-v3",
        "render_settings": {"renderer": "cycles", "halo": 3},
    }
    report = client.post("/api/output-types/import", json=[record]).json()
    entry = report["records"][0]
    assert entry["status"] == "created" and entry["workflow_id"] is None
    assert entry["unknown_keys"] == ["halo"]
    assert any("gone-v3" in warning for warning in entry["warnings"])
    assert any("halo" in warning for warning in entry["warnings"])
    stored = client.get("/api/output-types/orphan").json()["output_type"]
    assert stored["workflow_id"] is None
    assert stored["legacy_render_settings"] == {"renderer": "cycles", "halo": 3}


def test_reimport_updates(client: TestClient, legacy_fixture):
    records = legacy_fixture("output_types_export.json")
    client.post("/api/output-types/import", json=records)
    renamed = [{**record, "name": record["name"] + " v2"} for record in records]
    report = client.post("/api/output-types/import", json=renamed).json()
    assert (report["created"], report["updated"], report["errors"]) == (0, 11, 3)
    stored = client.get("/api/output-types/turntable-hd").json()["output_type"]
    assert stored["name"] == "Turntable HD v2"
    slugs = [entry["slug"] for entry in client.get("/api/output-types").json()]
    assert slugs.count("turntable-hd") == 1


@pytest.mark.parametrize(
    "record, key",
    [
        ("not a record", "record"),
        ({"slug": "no-id", "name": "x", "render_settings": {}}, "id"),
        ({"id": 1, "slug": "Bad Slug", "name": "x", "render_settings": {}}, "slug"),
        ({"id": 1, "slug": "no-name", "render_settings": {}}, "name"),
        ({"id": 1, "slug": "bad-tier", "name": "x", "price_tier": 3, "render_settings": {}}, "price_tier"),
        ({"id": 1, "slug": "bag", "name": "x", "render_settings": "cycles"}, "render_settings"),
    ],
)
def test_import_reports_unusable_records_by_key(client: TestClient, record, key: str):
    report = client.post("/api/output-types/import", json=[record]).json()
    assert report["errors"] == 1
    assert report["records"][0]["error"]["key"] == key


def test_imported_legacy_types_plan_through_the_legacy_pipeline(client: TestClient, legacy_fixture):
    client.post("/api/output-types/import", json=legacy_fixture("output_types_export.json"))
    plan = client.post("/api/output-types/turntable-social/dispatch-plan", json={}).json()
    assert plan["route"] == "legacy"
    turntable = plan["effective"]["render.blender_turntable"]["params"]
    assert (turntable["engine"], turntable["frame_count"], turntable["fps"]) == ("eevee", 48, 30)
    web = client.post("/api/output-types/web-preview/dispatch-plan", json={}).json()
    assert web["route"] == "legacy"
    assert web["artifact_kinds"] == ["still_image", "preview_thumbnail"]


def test_import_never_takes_over_an_output_type_it_did_not_create(client: TestClient):
    record = {"id": 5, "slug": "studio-still", "name": "Impostor", "render_settings": {}}
    report = client.post("/api/output-types/import", json=[record]).json()
    assert report["records"][0]["error"]["key"] == "slug"
    stored = client.get("/api/output-types/studio-still").json()["output_type"]
    assert stored["name"] == "Studio Still" and stored["rollout"] == "graph"


def test_reimport_keeps_a_graph_rollout_chosen_since(client: TestClient, legacy_fixture):
    records = legacy_fixture("output_types_export.json")
    client.post("/api/output-types/import", json=records)
    forced = client.post(
        "/api/output-types/graph-still-pilot/rollout",
        json={"rollout": "graph", "force": True, "reason": "pilot moves without shadow runs"},
    )
    assert forced.status_code == 200, forced.json()
    moved = client.patch(
        "/api/output-types/graph-still-pilot", json={"overrides": {"samples": 200}, "pricing_tier": "A"}
    )
    assert moved.status_code == 200, moved.json()
    report = client.post("/api/output-types/import", json=records).json()
    entry = next(e for e in report["records"] if e["slug"] == "graph-still-pilot")
    assert entry["status"] == "updated"
    assert any("kept" in warning for warning in entry["warnings"])
    stored = client.get("/api/output-types/graph-still-pilot").json()["output_type"]
    assert stored["rollout"] == "graph" and stored["overrides"] == {"samples": 200}
