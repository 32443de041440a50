"""Edge limits: a client's mistake (a huge body, JSON nested absurdly deep, an over-long id) is a 4xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_keys import authorized, with_test_key
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from api.app import create_app
from api.limits import MIB, RequestLimits, nesting_exceeds
from core.settings import Settings

pytest_plugins = ["api_fixtures"]

#: Every route that reads a JSON body, with a path whose resource exists.
JSON_ROUTES = [
    ("POST", "/api/workflows/validate"),
    ("POST", "/api/workflows/definitions"),
    ("POST", "/api/output-types"),
    ("PATCH", "/api/output-types/studio-still"),
    ("POST", "/api/output-types/studio-still/validate"),
    ("POST", "/api/output-types/studio-still/dispatch-plan"),
    ("POST", "/api/output-types/import"),
    ("POST", "/api/legacy/map"),
    ("POST", "/api/order-lines"),
    ("POST", "/api/runs/some-run/nodes/some-node/retry"),
    ("POST", "/api/runs/some-run/nodes/some-node/skip"),
    ("POST", "/api/runs/some-run/abort"),
    ("POST", "/api/runs/some-run/rerun"),
]


def nested(depth: int, leaf: str = "1") -> str:
    """Arrays and objects alternating, `depth` levels deep."""
    text = leaf
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"k": {text}}}'
    return text


@pytest.fixture
def edge(api_settings: Settings) -> Iterator[TestClient]:
    """A client with the key, 500s answered rather than raised, Temporal stood in for (an
    unreachable one would answer 503 before the request is validated; no route gets past
    validation here)."""
    app = create_app(api_settings)
    app.state.temporal = object()
    with authorized(app, raise_server_exceptions=False) as client:
        yield client


def assert_error(answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, (answer.request.method, answer.request.url, answer.text[:300])
    error = answer.json()["error"]
    assert error["code"] == code and set(error) >= {"code", "message", "field", "node_id"}
    return error


# --- body size ------------------------------------------------------------------------------


def test_a_body_over_the_default_limit_is_413(edge: TestClient):
    assert Settings().max_body_mb == 2
    body = b"[" + b'"x",' * (2 * MIB // 4) + b'"x"]'
    for method, url in JSON_ROUTES:
        answer = edge.request(method, url, content=body, headers={"content-type": "application/json"})
        error = assert_error(answer, 413, "payload_too_large")
        assert error["field"] == "body" and "2 MiB" in error["message"]


def test_the_limit_is_a_setting_and_a_body_within_it_passes(tmp_path: Path):
    settings = with_test_key(Settings(state_dir=tmp_path, max_body_mb=0.01))
    with authorized(create_app(settings)) as client:
        records = [{"slug": f"legacy-{index}", "render_settings": {}} for index in range(10)]
        assert len(json.dumps(records)) < 0.01 * MIB
        assert client.post("/api/legacy/map", json=records).status_code == 200
        too_many = [{"slug": f"legacy-{index}", "render_settings": {}} for index in range(400)]
        assert_error(client.post("/api/legacy/map", json=too_many), 413, "payload_too_large")


def test_a_body_without_content_length_is_counted_as_it_streams(tmp_path: Path):
    settings = with_test_key(Settings(state_dir=tmp_path, max_body_mb=0.01))

    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(2000):
            yield b'{"slug": "x"},'
        yield b"{}]"

    with authorized(create_app(settings)) as client:
        answer = client.post(
            "/api/legacy/map", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in answer.request.headers
        assert_error(answer, 413, "payload_too_large")


async def run_middleware(
    middleware: RequestLimits, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    """One request through the middleware alone: the status and body answered."""
    incoming: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    await middleware(scope, receive, send)
    status = next(message["status"] for message in sent if message["type"] == "http.response.start")
    return status, b"".join(
        message.get("body", b"") for message in sent if message["type"] == "http.response.body"
    )


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that answers 200 with the body it read."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_the_middleware_counts_chunks_whatever_content_length_claims():
    middleware = RequestLimits(echo, max_body_bytes=10, max_json_depth=4, skip_prefixes=("/uploads",))
    json_type = (b"content-type", b"application/json")
    lying = [(b"content-length", b"3"), json_type]
    assert asyncio.run(run_middleware(middleware, "/api/x", [b"[1,", b"2,", b"3]"], lying)) == (
        200,
        b"[1,2,3]",
    )
    status, body = asyncio.run(run_middleware(middleware, "/api/x", [b"[1,2,", b"3,4,5", b",6]"], lying))
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
    declared = [(b"content-length", b"11"), json_type]
    assert asyncio.run(run_middleware(middleware, "/api/x", [b"[]"], declared))[0] == 413
    big = [b"x" * 8] * 4
    assert asyncio.run(run_middleware(middleware, "/uploads/cad", big, [json_type])) == (200, b"x" * 32)
    deep = [b"[[[[[", b"]]]]]"]
    status, body = asyncio.run(run_middleware(middleware, "/api/x", deep, [json_type]))
    assert status == 422 and json.loads(body)["error"]["code"] == "json_too_deep"
    assert (
        asyncio.run(run_middleware(middleware, "/api/x", deep, [(b"content-type", b"text/plain")]))[0] == 200
    )


# --- JSON depth -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["[" * 10_000 + "]" * 10_000, nested(10_000), '{"a":' * 10_000 + "1" + "}" * 10_000]
)
def test_json_nested_ten_thousand_deep_is_422_on_every_json_route(edge: TestClient, text: str):
    for method, url in JSON_ROUTES:
        answer = edge.request(method, url, content=text, headers={"content-type": "application/json"})
        error = assert_error(answer, 422, "json_too_deep")
        assert error["field"] == "body" and "32 levels" in error["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-anything", None])
def test_validate_refuses_deep_json_whatever_the_content_type(edge: TestClient, content_type: str | None):
    headers = {"content-type": content_type} if content_type else {}
    answer = edge.post("/api/workflows/validate", content="[" * 10_000 + "]" * 10_000, headers=headers)
    assert_error(answer, 422, "json_too_deep")


def test_json_as_deep_as_the_limit_is_served(edge: TestClient):
    document = edge.get("/api/workflows/definitions/order-still-v1").json()["definition"]
    deep_value = json.loads(nested(28))
    document["nodes"][0]["params"]["extra"] = deep_value
    assert not nesting_exceeds(json.dumps(document).encode(), 32)
    report = edge.post("/api/workflows/validate", json=document)
    assert report.status_code == 200 and report.json()["valid"] is False
    for method, url in JSON_ROUTES:
        answer = edge.request(method, url, content=nested(32), headers={"content-type": "application/json"})
        assert answer.status_code < 500 and answer.status_code != 413, (method, url, answer.text[:300])
        if answer.status_code == 422:
            assert answer.json()["error"]["code"] != "json_too_deep", (method, url)


def test_the_depth_limit_is_a_setting(tmp_path: Path):
    settings = with_test_key(Settings(state_dir=tmp_path, max_json_depth=3))
    with authorized(create_app(settings)) as client:
        assert client.post("/api/legacy/map", json=[{"slug": "a", "render_settings": {}}]).status_code == 200
        answer = client.post("/api/legacy/map", json=[{"slug": "a", "render_settings": {"x": []}}])
        assert_error(answer, 422, "json_too_deep")


def depth_of(value: Any) -> int:
    """Nesting depth of a parsed JSON value, iteratively."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


tricky_text = st.text(alphabet='ab[]{}"\\/,:é\n', max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, limit=st.integers(min_value=1, max_value=12), ascii_only=st.booleans())
def test_nesting_exceeds_agrees_with_the_parsed_depth(value: Any, limit: int, ascii_only: bool):
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nesting_exceeds(text, limit) == (depth_of(value) > limit)


def test_nesting_exceeds_is_quick_on_the_worst_bodies_the_size_limit_lets_through():
    import time

    worst = [
        b"[" * (2 * MIB),
        b'"' + b'\\"' * MIB,
        b"[[]," * (MIB // 2),
        (b"[1," * 31 + b"[]" + b"]" * 31) * (2 * MIB // 98),
    ]
    for body in worst:
        started = time.perf_counter()
        nesting_exceeds(body, 32)
        assert time.perf_counter() - started < 2.0


# --- path parameters ------------------------------------------------------------------------

LONG = "x" * 10_000


@pytest.mark.parametrize(
    "method, url, field",
    [
        ("GET", f"/api/order-lines/{LONG}", "path.workflow_id"),
        ("GET", f"/api/output-types/{LONG}", "path.slug"),
        ("PATCH", f"/api/output-types/{LONG}", "path.slug"),
        ("POST", f"/api/output-types/{LONG}/validate", "path.slug"),
        ("POST", f"/api/output-types/{LONG}/dispatch-plan", "path.slug"),
        ("GET", f"/api/workflows/definitions/{LONG}", "path.definition_id"),
        ("GET", f"/api/workflows/definitions/{LONG}/versions/1", "path.definition_id"),
        ("GET", f"/api/runs/{LONG}", "path.workflow_id"),
        ("POST", f"/api/runs/{LONG}/abort", "path.workflow_id"),
        ("POST", f"/api/runs/{LONG}/rerun", "path.workflow_id"),
        ("POST", f"/api/runs/run-1/nodes/{LONG}/retry", "path.node_id"),
        ("POST", f"/api/runs/{LONG}/nodes/extract/skip", "path.workflow_id"),
        ("GET", f"/api/workflows/node-definitions?family={LONG}", "query.family"),
        ("GET", f"/api/workflows/definitions?family={LONG}", "query.family"),
    ],
)
def test_over_long_ids_are_422_naming_the_parameter(edge: TestClient, method: str, url: str, field: str):
    answer = edge.request(method, url, json={"reason": "r"} if url.endswith("/abort") else None)
    error = assert_error(answer, 422, "invalid_request")
    assert error["field"] == field
    assert LONG not in answer.text


@pytest.mark.parametrize("version", ["0", "-1", str(2**63), "9" * 30, "9" * 5000])
def test_out_of_range_versions_are_422_not_a_database_overflow(edge: TestClient, version: str):
    answer = edge.get(f"/api/workflows/definitions/order-still-v1/versions/{version}")
    assert assert_error(answer, 422, "invalid_request")["field"] == "path.version"


@pytest.mark.parametrize(
    "method, url", [("POST", "/api/output-types"), ("PATCH", "/api/output-types/studio-still")]
)
def test_an_absurd_workflow_version_is_422_not_a_database_overflow(edge: TestClient, method: str, url: str):
    body: dict[str, Any] = {"name": "Big", "workflow_version": 10**30}
    if method == "POST":
        body["slug"] = "big-version"
    answer = edge.request(method, url, json=body)
    assert assert_error(answer, 422, "invalid_request")["field"] == "workflow_version"


def test_ids_as_long_as_their_models_allow_reach_the_route(edge: TestClient):
    from output_profiles.models import OutputTypeBase
    from registry.definition import WorkflowDefinition

    slug_limit = next(
        m.max_length for m in OutputTypeBase.model_fields["slug"].metadata if hasattr(m, "max_length")
    )
    id_limit = next(
        m.max_length for m in WorkflowDefinition.model_fields["id"].metadata if hasattr(m, "max_length")
    )
    assert_error(edge.get(f"/api/output-types/{'a' * slug_limit}"), 404, "not_found")
    assert_error(edge.get(f"/api/workflows/definitions/{'a' * id_limit}"), 404, "not_found")


def test_the_app_installs_the_limits(api_settings: Settings):
    app: FastAPI = create_app(api_settings)
    assert any(middleware.cls is RequestLimits for middleware in app.user_middleware)
