"""The API keys tests send: settings that configure them, clients that send them (plain helpers,
so test modules import them without touching the fixture plugin)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.settings import Settings
from core.vocabulary import Role

#: The key every test client sends; `with_test_key` configures it as the admin "tests", who may
#: call every route.
TEST_TOKEN = "test-token-0123456789abcdef"
TEST_OWNER = "tests"
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}


def token_for(role: Role | str, owner: str) -> str:
    """The test token of a role and owner (configure it with `with_keys`)."""
    return f"test-{role}-{owner}-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    """The Authorization header that sends this token."""
    return {"Authorization": f"Bearer {token}"}


def with_keys(settings: Settings, *keys: tuple[Role | str, str]) -> Settings:
    """These settings with the test key and one key per (role, owner) configured (`token_for`)."""
    configured: dict[str, Any] = {**settings.api_keys, TEST_TOKEN: {"owner": TEST_OWNER, "role": "admin"}}
    for role, owner in keys:
        configured[token_for(role, owner)] = {"owner": owner, "role": str(role)}
    return settings.model_copy(update={"api_keys": configured})


def with_test_key(settings: Settings) -> Settings:
    """These settings with the test key configured."""
    return with_keys(settings)


def authorized(app: FastAPI, token: str = TEST_TOKEN, **kwargs: Any) -> TestClient:
    """A TestClient that sends a key on every request (the admin test key unless told)."""
    return TestClient(app, headers=bearer(token), **kwargs)
