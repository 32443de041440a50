"""API keys in the database: admins create, list and revoke them over HTTP; the CLI's keys work."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from api_keys import bearer, token_for, with_keys
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.app import create_app
from api.auth import StoredKeys
from core.settings import Settings
from core.vocabulary import Role
from persistence.engine import make_engine, prepare_database
from persistence.tables import ApiKeyRecord
from prodgraph.keys import KeyCreate, create_key, digest_of, revoke_key
from registry.catalog import default_catalog

pytest_plugins = ["api_fixtures"]
RUN: dict[str, Any] = {"capture_output": True, "text": True, "timeout": 120, "check": True}


def status_with(client: TestClient, token: str) -> int:
    """The status a key gets on a route every role may call."""
    return client.get("/api/output-types", headers=bearer(token)).status_code


def test_an_admin_creates_lists_and_revokes_keys(client: TestClient):
    created = client.post("/api/keys", json={"role": "client", "owner": "acme"})
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["role"] == "client" and body["owner"] == "acme" and body["revoked_at"] is None
    token = body["key"]
    assert token.startswith("pgk_") and status_with(client, token) == 200
    # A client key may read output types but not manage keys.
    assert client.get("/api/keys", headers=bearer(token)).status_code == 403

    listed = client.get("/api/keys").json()
    assert [(key["id"], key["owner"]) for key in listed] == [(body["id"], "acme")]
    assert set(listed[0]) == {"id", "role", "owner", "created_at", "revoked_at"}
    assert token not in str(listed) and digest_of(token) not in str(listed)

    revoked = client.delete(f"/api/keys/{body['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = client.get("/api/output-types", headers=bearer(token))
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    assert client.get("/api/keys").json()[0]["revoked_at"] is not None


def test_key_requests_are_checked(client: TestClient):
    for body, field in [
        ({"role": "king", "owner": "acme"}, "role"),
        ({"role": "client", "owner": "acme corp"}, "owner"),
        ({"role": "client", "owner": "a" * 65}, "owner"),
        ({"role": "client"}, "owner"),
        ({"role": "client", "owner": "acme", "key": "chosen-by-me-0123456789"}, "key"),
    ]:
        answer = client.post("/api/keys", json=body)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == field, answer.json()
    missing = client.delete("/api/keys/key_nope")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "key_id"
    assert client.delete(f"/api/keys/{'k' * 33}").status_code == 422
    assert client.get("/api/keys").json() == []


def test_only_digests_are_stored(client: TestClient):
    token = client.post("/api/keys", json={"role": "author", "owner": "cms"}).json()["key"]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        (record,) = session.exec(select(ApiKeyRecord)).all()
    assert record.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(record.model_dump())


def test_keys_made_by_the_cli_work_and_a_cli_revocation_holds_within_the_cache_time(tmp_path: Path):
    env = {**os.environ, "PRODGRAPH_STATE_DIR": str(tmp_path)}
    env.pop("PRODGRAPH_DATABASE_URL", None)
    cli = [sys.executable, "-m", "prodgraph.cli", "keys"]
    made = subprocess.run([*cli, "create", "--role", "client", "--owner", "acme"], env=env, **RUN)
    token = made.stdout.strip()
    settings = Settings(state_dir=tmp_path, api_key_cache_s=1.0)
    with TestClient(create_app(settings)) as client:
        assert status_with(client, token) == 200
        (listed,) = json.loads(subprocess.run([*cli, "list", "--json"], env=env, **RUN).stdout)
        key_id = listed["id"]
        subprocess.run([*cli, "revoke", key_id], env=env, **RUN)
        revoked_at = time.monotonic()
        deadline = revoked_at + settings.api_key_cache_s + 0.5
        while status_with(client, token) == 200:
            assert time.monotonic() < deadline, "a revoked key kept working past the cache time"
            time.sleep(0.1)
        assert status_with(client, token) == 401


async def test_stored_keys_are_remembered_for_the_cache_time_only(tmp_path: Path):
    engine = make_engine(Settings(state_dir=tmp_path))
    prepare_database(engine, default_catalog())
    with Session(engine) as session:
        created = create_key(session, KeyCreate(role=Role.operator, owner="ops"))
    now = [100.0]
    stored = StoredKeys(engine, ttl_s=2.0, clock=lambda: now[0])
    grant = await stored.grant_of(created.key)
    assert grant is not None and (grant.role, grant.owner, grant.revoked) == (Role.operator, "ops", False)
    with Session(engine) as session:
        revoke_key(session, created.id)
    now[0] += 1.9
    assert not (await stored.grant_of(created.key)).revoked  # type: ignore[union-attr]  # remembered
    now[0] += 0.2
    assert (await stored.grant_of(created.key)).revoked  # type: ignore[union-attr]  # looked up again
    assert await stored.grant_of(created.key + "x") is None
    assert stored._remembered.keys() == {digest_of(created.key)}  # unknown tokens are not remembered


def test_bootstrap_keys_name_their_role(tmp_path: Path):
    settings = with_keys(Settings(state_dir=tmp_path), (Role.client, "acme"), (Role.author, "cms"))
    with TestClient(create_app(settings)) as client:
        author = bearer(token_for(Role.author, "cms"))
        assert client.post("/api/legacy/map", json=[], headers=author).status_code == 200
        refused = client.post("/api/legacy/map", json=[], headers=bearer(token_for(Role.client, "acme")))
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["code"] == "forbidden" and error["field"] == "Authorization"
        assert "author or admin role" in error["message"] and "client" in error["message"]
