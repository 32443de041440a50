"""Authentication: every route needs an API key; only the docs and the OpenAPI document are public."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_keys import AUTH, TEST_OWNER, TEST_TOKEN
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.convertors import IntegerConvertor

from api.app import create_app
from api.auth import ANONYMOUS, AUTHENTICATED, CallerDep
from core.settings import Settings
from core.vocabulary import Role

pytest_plugins = ["api_fixtures"]

#: What answers without a key: the docs page, its Swagger UI files and the OpenAPI document.
PUBLIC = {"/docs", "/docs/assets", "/redoc", "/openapi.json"}
SECOND_TOKEN = "second-token-abcdefghijklmnop"


def api_calls(app: FastAPI) -> list[tuple[str, str]]:
    """(method, url) of every route the app serves outside PUBLIC, path parameters filled in.

    FastAPI keeps included routers as lazy entries of `app.routes`; `iter_route_contexts` walks
    them as served (prefix and router dependencies applied).
    """
    calls = []
    for context in iter_route_contexts(app.routes):
        if context.path in PUBLIC:
            continue
        assert isinstance(context.original_route, APIRoute), f"{context.path} is neither API nor public"
        assert context.path and context.path.startswith("/api/"), context.path
        url = context.path
        for name, convertor in context.param_convertors.items():
            url = url.replace(f"{{{name}}}", "1" if isinstance(convertor, IntegerConvertor) else "x")
        calls += [(method, url) for method in sorted(context.methods or ())]
    return calls


@pytest.fixture
def app(api_settings: Settings) -> FastAPI:
    return create_app(api_settings)


@pytest.fixture
def bare(app: FastAPI) -> Iterator[TestClient]:
    """A client that sends no key, on an app that has the test key configured."""
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def assert_unauthorized(answer, message: str = "") -> None:
    assert answer.status_code == 401, (answer.request.method, answer.request.url, answer.text)
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    if answer.request.method == "HEAD":
        return  # headers only
    error = answer.json()["error"]
    assert error["code"] == "unauthorized" and error["field"] == "Authorization"
    assert message in error["message"]


def test_the_walk_finds_every_router(app: FastAPI):
    prefixes = {url.split("/")[2] for _, url in api_calls(app)}
    assert prefixes == {
        "workflows",
        "output-types",
        "cad-files",
        "order-lines",
        "artifacts",
        "runs",
        "legacy",
        "keys",
        "parity",
    }
    assert len(api_calls(app)) >= 25


def test_every_route_refuses_a_request_without_a_key(app: FastAPI, bare: TestClient):
    for method, url in api_calls(app):
        assert_unauthorized(bare.request(method, url), "missing credentials")
        if method in ("POST", "PATCH", "PUT"):
            assert_unauthorized(bare.request(method, url, json={}), "missing credentials")


def test_every_route_refuses_a_wrong_key(app: FastAPI, bare: TestClient):
    for header in (f"Bearer {TEST_TOKEN}x", f"Bearer {TEST_TOKEN[:-1]}", "Bearer " + "z" * 40):
        for method, url in api_calls(app):
            assert_unauthorized(bare.request(method, url, headers={"Authorization": header}), "unknown")


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", TEST_TOKEN, f"Token {TEST_TOKEN}"]
)
def test_a_malformed_authorization_header_is_401(bare: TestClient, header: str):
    assert_unauthorized(bare.get("/api/output-types", headers={"Authorization": header}))


def test_every_route_serves_a_good_key(app: FastAPI, bare: TestClient):
    for method, url in api_calls(app):
        answer = bare.request(method, url, headers=AUTH)
        assert answer.status_code not in (401, 500), (method, url, answer.text)
    assert bare.get("/api/output-types", headers={"authorization": f"bearer {TEST_TOKEN}"}).status_code == 200


def test_no_keys_configured_refuses_everything_and_says_how_to_make_one(tmp_path: Path):
    app = create_app(Settings(state_dir=tmp_path))
    with TestClient(app) as client:
        for method, url in api_calls(app):
            assert_unauthorized(client.request(method, url), "missing credentials")
            assert_unauthorized(client.request(method, url, headers=AUTH), "prodgraph keys create")
        assert_unauthorized(client.get("/api/output-types", headers=AUTH), "PRODGRAPH_API_KEYS")


def test_anonymous_access_is_an_explicit_development_setting(tmp_path: Path):
    app = create_app(Settings(state_dir=tmp_path, api_allow_anonymous=True))
    app.include_router(whoami_router())
    with TestClient(app) as client:
        assert client.get("/api/output-types").status_code == 200
        assert client.get("/api/test/whoami").json() == {
            "owner": ANONYMOUS,
            "role": "admin",
            "anonymous": True,
        }
        assert_unauthorized(client.get("/api/output-types", headers=AUTH), "PRODGRAPH_API_KEYS")

    settings = Settings(state_dir=tmp_path, api_allow_anonymous=True, api_keys={TEST_TOKEN: TEST_OWNER})
    app = create_app(settings)
    app.include_router(whoami_router())
    with TestClient(app) as client:
        assert client.get("/api/test/whoami").json()["owner"] == ANONYMOUS
        assert client.get("/api/test/whoami", headers=AUTH).json()["owner"] == TEST_OWNER
        assert_unauthorized(client.get("/api/test/whoami", headers={"Authorization": "Bearer nope"}))


def whoami_router() -> APIRouter:
    """A router as the app's are built, whose one route answers with its caller."""
    router = APIRouter(prefix="/api/test", dependencies=AUTHENTICATED)

    @router.get("/whoami")
    def whoami(caller: CallerDep) -> dict:
        return {"owner": caller.owner, "role": caller.role, "anonymous": caller.anonymous}

    return router


def test_routes_know_their_caller(tmp_path: Path):
    keys = {TEST_TOKEN: {"owner": TEST_OWNER, "role": "admin"}, SECOND_TOKEN: "ci-bot"}
    settings = Settings(state_dir=tmp_path, api_keys=keys)
    app = create_app(settings)
    app.include_router(whoami_router())
    with TestClient(app) as client:
        first = client.get("/api/test/whoami", headers=AUTH)
        assert first.json() == {"owner": TEST_OWNER, "role": "admin", "anonymous": False}
        second = client.get("/api/test/whoami", headers={"Authorization": f"Bearer {SECOND_TOKEN}"})
        assert second.json()["owner"] == "ci-bot"
        assert_unauthorized(client.get("/api/test/whoami"))


def test_keys_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(
        "PRODGRAPH_API_KEYS",
        json.dumps({SECOND_TOKEN: "ci-bot", TEST_TOKEN: {"owner": "ops", "role": "operator"}}),
    )
    settings = Settings(state_dir=tmp_path)
    assert settings.api_keys[SECOND_TOKEN] == "ci-bot"
    assert SECOND_TOKEN not in repr(settings) and SECOND_TOKEN not in str(settings)
    app = create_app(settings)
    app.include_router(whoami_router())
    with TestClient(app) as client:
        answer = client.get("/api/output-types", headers={"Authorization": f"Bearer {SECOND_TOKEN}"})
        assert answer.status_code == 200
        # A plain owner string is a client key; the object form names the role.
        client_key = client.get("/api/test/whoami", headers={"Authorization": f"Bearer {SECOND_TOKEN}"})
        assert client_key.json() == {"owner": "ci-bot", "role": "client", "anonymous": False}
        operator_key = client.get("/api/test/whoami", headers=AUTH)
        assert operator_key.json() == {"owner": "ops", "role": "operator", "anonymous": False}


def test_an_unknown_role_in_the_environment_refuses_to_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PRODGRAPH_API_KEYS", json.dumps({TEST_TOKEN: {"owner": "ops", "role": "king"}}))
    with pytest.raises(ValueError, match="api_keys"):
        Settings(state_dir=tmp_path)


@pytest.mark.parametrize(
    "keys",
    [
        {"short": "someone"},
        {"short": {"owner": "someone", "role": "admin"}},
        {TEST_TOKEN: " "},
        {TEST_TOKEN: {"owner": "ops", "role": "king"}},
        {TEST_TOKEN: {"role": "admin"}},
    ],
)
def test_guessable_ownerless_or_roleless_keys_refuse_to_start(tmp_path: Path, keys: dict[str, Any]):
    with pytest.raises(ValueError, match="PRODGRAPH_API_KEYS"):
        create_app(Settings(state_dir=tmp_path).model_copy(update={"api_keys": keys}))


def test_the_app_keeps_digests_not_tokens(app: FastAPI):
    assert TEST_TOKEN not in repr(vars(app.state.api_keys))
    grant = app.state.api_keys.grant_of(TEST_TOKEN)
    assert (grant.owner, grant.role) == (TEST_OWNER, Role.admin)
    assert app.state.api_keys.grant_of(TEST_TOKEN + "x") is None


def test_the_docs_and_openapi_are_public_and_document_the_scheme(app: FastAPI, bare: TestClient):
    served = {context.path for context in iter_route_contexts(app.routes)}
    assert PUBLIC <= served
    document = bare.get("/openapi.json")
    assert document.status_code == 200
    schemes = document.json()["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["ApiKey"]["description"],
    }
    for path, operations in document.json()["paths"].items():
        for method, operation in operations.items():
            assert operation["security"] == [{"ApiKey": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
    assert bare.get("/docs").status_code == 200


def test_the_shared_test_client_sends_the_key(client: TestClient):
    assert client.get("/api/output-types").status_code == 200
    assert re.fullmatch(r"Bearer \S{16,}", client.headers["Authorization"])
