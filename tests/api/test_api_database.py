"""What differs between the databases stays a client's mistake on both: numbers too large for a
column are refused by name, never a 500 from the driver (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

pytest_plugins = ["api_fixtures"]


@pytest.mark.parametrize("legacy_id", [2**31, 2**63, -(2**31) - 1])
def test_a_legacy_id_too_large_for_the_database_is_reported_by_name(client: TestClient, legacy_id: int):
    record = {"id": legacy_id, "slug": "huge-id", "name": "Huge id", "render_settings": {}}

    answer = client.post("/api/output-types/import", json=[record])

    assert answer.status_code == 200, answer.json()
    entry = answer.json()["records"][0]
    assert entry["status"] == "error" and entry["error"]["key"] == "id"
    assert client.get("/api/output-types/huge-id").status_code == 404


def test_the_largest_legacy_id_the_database_holds_is_imported(client: TestClient):
    record = {"id": 2**31 - 1, "slug": "big-id", "name": "Big id", "render_settings": {}}

    answer = client.post("/api/output-types/import", json=[record])

    assert answer.json()["records"][0]["status"] == "created", answer.json()
    assert client.get("/api/output-types/big-id").status_code == 200
