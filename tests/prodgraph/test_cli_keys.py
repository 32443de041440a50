"""`prodgraph keys`: a key is printed once, listed without secrets, revoked by id."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path


def keys(state: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `prodgraph keys ARGS` on the database under this state folder, as a user would."""
    env = {**os.environ, "PRODGRAPH_STATE_DIR": str(state)}
    env.pop("PRODGRAPH_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "prodgraph.cli", "keys", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def stored_rows(state: Path) -> list[tuple]:
    """Every row of the keys table, as the database holds it."""
    with sqlite3.connect(state / "prodgraph.db") as db:
        return db.execute("select id, digest, role, owner, revoked_at from api_keys").fetchall()


def test_create_prints_the_key_once_and_stores_only_its_digest(tmp_path: Path):
    created = keys(tmp_path, "create", "--role", "operator", "--owner", "ops-team", "--json")
    assert created.returncode == 0, created.stderr
    answer = json.loads(created.stdout)
    assert set(answer) == {"key", "role", "owner"}
    assert answer["role"] == "operator" and answer["owner"] == "ops-team"
    assert answer["key"].startswith("pgk_") and len(answer["key"]) >= 40

    plain = keys(tmp_path, "create", "--role", "client", "--owner", "acme")
    assert plain.returncode == 0, plain.stderr
    client_key = plain.stdout.strip()
    assert client_key.startswith("pgk_") and "\n" not in client_key
    assert "shown this once" in plain.stderr

    rows = stored_rows(tmp_path)
    assert len(rows) == 2
    digests = {row[1] for row in rows}
    assert digests == {hashlib.sha256(key.encode()).hexdigest() for key in (answer["key"], client_key)}
    stored = repr(rows)
    assert answer["key"] not in stored and client_key not in stored


def test_list_shows_keys_without_secrets_and_revoke_marks_one(tmp_path: Path):
    token = json.loads(keys(tmp_path, "create", "--role", "author", "--owner", "cms", "--json").stdout)["key"]
    listed = json.loads(keys(tmp_path, "list", "--json").stdout)
    assert [(key["role"], key["owner"], key["revoked_at"]) for key in listed] == [("author", "cms", None)]
    assert set(listed[0]) == {"id", "role", "owner", "created_at", "revoked_at"}
    text = keys(tmp_path, "list")
    assert token not in text.stdout and hashlib.sha256(token.encode()).hexdigest() not in text.stdout
    assert listed[0]["id"] in text.stdout and "active" in text.stdout

    revoked = keys(tmp_path, "revoke", listed[0]["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked {listed[0]['id']}" in revoked.stdout
    (after,) = json.loads(keys(tmp_path, "list", "--json").stdout)
    assert after["revoked_at"] is not None
    assert stored_rows(tmp_path)[0][4] is not None


def test_mistakes_exit_non_zero_and_name_the_problem(tmp_path: Path):
    unknown = keys(tmp_path, "revoke", "key_nope", "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["error"]["code"] == "not_found"
    bad_owner = keys(tmp_path, "create", "--role", "client", "--owner", "acme corp")
    assert bad_owner.returncode == 1 and "owner" in bad_owner.stderr
    assert "Traceback" not in bad_owner.stderr
    bad_role = keys(tmp_path, "create", "--role", "king", "--owner", "acme")
    assert bad_role.returncode == 2 and "--role" in bad_role.stderr
    assert stored_rows(tmp_path) == []
