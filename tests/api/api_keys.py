"""The API key tests send: settings that configure it, a client that sends it (plain helpers,
so test modules import them without touching the fixture plugin)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.settings import Settings

#: The key every test client sends; `with_test_key` configures it for the owner "tests".
TEST_TOKEN = "test-token-0123456789abcdef"
TEST_OWNER = "tests"
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}


def with_test_key(settings: Settings) -> Settings:
    """These settings with the test key configured."""
    return settings.model_copy(update={"api_keys": {TEST_TOKEN: TEST_OWNER}})


def authorized(app: FastAPI, **kwargs: Any) -> TestClient:
    """A TestClient that sends the test key on every request."""
    return TestClient(app, headers=AUTH, **kwargs)
