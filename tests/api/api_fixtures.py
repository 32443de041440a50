"""API fixtures, loaded through pytest_plugins: a conftest.py here would shadow the root one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_keys import authorized, with_test_key
from fastapi.testclient import TestClient

from api.app import create_app
from core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PRODGRAPH_SHARED_DIR", REPO.parent / "shared")).resolve()
LEGACY = SHARED / "fixtures" / "legacy"


@pytest.fixture(params=["sqlite", "postgresql"])
def api_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings with the test key configured, once on SQLite in this test's tmp dir and once on a
    fresh database of the session's PostgreSQL server: every test built on them runs on both."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return with_test_key(Settings(state_dir=tmp_path, database_url=url))


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    """A client with the test key on a started app (tables created, starters and default output
    types seeded)."""
    with authorized(create_app(api_settings)) as test_client:
        yield test_client


@pytest.fixture
def legacy_fixture():
    """One JSON file of the shared legacy fixture pair, parsed."""

    def load(name: str) -> Any:
        path = LEGACY / name
        assert path.is_file(), f"missing shared fixture {path}"
        return json.loads(path.read_text())

    return load
