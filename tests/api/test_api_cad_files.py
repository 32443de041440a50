"""Uploading CAD files: streamed into the store, limited while streaming, sniffed as STEP, deduplicated
per owner, one intake each (on a real Temporal dev server; no workers needed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_keys import TEST_TOKEN, authorized, with_test_key
from fastapi.testclient import TestClient

from activities.artifacts import LocalArtifactStore
from api.app import create_app
from api.public import public_error
from conftest import STEP_FIXTURES
from core.settings import Settings
from persistence.engine import prepare_database

OTHER_TOKEN = "another-owners-token-0123456789"
STRANGER = {"Authorization": f"Bearer {OTHER_TOKEN}"}
PART = STEP_FIXTURES / "red_cube_blue_cylinder.step"


@pytest.fixture
def app_settings(temporal_env, settings: Settings) -> Settings:
    """This test's settings on the shared dev server, with the test key and another owner's."""
    address = temporal_env.client.service_client.config.target_host
    configured = with_test_key(settings.model_copy(update={"temporal_address": address}))
    configured.api_keys[OTHER_TOKEN] = "someone-else"
    return configured


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with authorized(create_app(app_settings)) as test_client:
        yield test_client


def upload(client: TestClient, path: Path, name: str | None = None, **kwargs):
    """POST a file as multipart field `file`."""
    return client.post("/api/cad-files", files={"file": (name or path.name, path.read_bytes())}, **kwargs)


def stored_files(settings: Settings) -> list[Path]:
    """Every file in the artifact store, scratch space included."""
    root = settings.artifact_root()
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.is_dir() else []


def assert_error(answer, status: int, code: str, field: str | None) -> None:
    assert answer.status_code == status, answer.text[:300]
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == (code, field), error


async def test_an_upload_is_stored_once_per_owner_and_starts_one_intake(client, app_settings, temporal_env):
    first = upload(client, PART)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["id"].startswith("cad_") and body["filename"] == PART.name
    assert body["size"] == PART.stat().st_size and len(body["sha256"]) == 64
    assert body["intake"]["status"] == "running"  # no workers here: it waits for them

    again = upload(client, PART, name="renamed.step")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert again.json()["intake"]["workflow_id"] == body["intake"]["workflow_id"]
    runs = [
        run
        async for run in temporal_env.client.list_workflows(f"WorkflowId = '{body['intake']['workflow_id']}'")
    ]
    assert len(runs) == 1

    blob = LocalArtifactStore(app_settings.artifact_root()).find(
        body["sha256"], ".step", role="step_file", media_type="model/step"
    )
    assert Path(blob.uri.removeprefix("file://")).read_bytes() == PART.read_bytes()
    assert stored_files(app_settings) == [Path(blob.uri.removeprefix("file://"))]  # no scratch left

    theirs = upload(client, PART, headers=STRANGER)  # the same content, another owner: its own file
    assert theirs.status_code == 201 and theirs.json()["id"] != body["id"]

    listed = client.get("/api/cad-files").json()
    assert [item["id"] for item in listed] == [body["id"]]
    assert client.get(f"/api/cad-files/{body['id']}").json()["intake"]["status"] == "running"
    assert_error(
        client.get(f"/api/cad-files/{body['id']}", headers=STRANGER), 404, "not_found", "cad_file_id"
    )
    assert_error(client.get("/api/cad-files/cad_0123"), 404, "not_found", "cad_file_id")
    for answer in (first, again, theirs):
        assert "file://" not in answer.text and str(app_settings.state_dir) not in answer.text


def test_the_file_name_is_for_display_only(client):
    answer = upload(client, PART, name="../../etc/passwd.step")
    assert answer.status_code == 201 and answer.json()["filename"] == "passwd.step"


def test_a_file_over_the_limit_is_413_and_nothing_is_kept(app_settings, monkeypatch):
    assert Settings().max_upload_mb == 200
    monkeypatch.setenv("PRODGRAPH_MAX_UPLOAD_MB", "0.5")
    assert Settings().max_upload_mb == 0.5
    small = app_settings.model_copy(update={"max_upload_mb": 0.1})  # 100 KiB + the 18 KB part fits
    big = STEP_FIXTURES / "malformed_truncated.step"  # 200 kB, a STEP header
    with authorized(create_app(small)) as client:
        answer = upload(client, big)
        assert_error(answer, 413, "payload_too_large", "file")
        assert "0.1 MiB" in answer.json()["error"]["message"]
        assert stored_files(small) == []
        assert upload(client, PART).status_code == 201


BOUNDARY = "xyzzy"


def opening(name: str = "part.step") -> bytes:
    """A multipart body's start, up to the file's first byte."""
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


async def post_chunks(app, chunks: Iterator[bytes]) -> tuple[int, dict, int]:
    """POST a body to the ASGI app one chunk per message, with no Content-Length, as a streaming
    client does; (status, JSON answer, chunks the app took)."""
    taken = 0

    async def receive() -> dict:
        nonlocal taken
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        taken += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    answer: dict = {"body": b""}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/cad-files",
        "raw_path": b"/api/cad-files",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"authorization", f"Bearer {TEST_TOKEN}".encode()),
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    return answer["status"], json.loads(answer["body"]), taken


async def test_the_limit_is_enforced_while_the_body_streams_in(app_settings):
    """The app stops reading a body as soon as the file passes the limit, and removes what it wrote."""
    app = create_app(app_settings.model_copy(update={"max_upload_mb": 1}))
    block = b"/* padding */ " * 4681  # 64 KiB

    def endless() -> Iterator[bytes]:
        yield opening() + b"ISO-10303-21;\n"
        for _ in range(3200):  # 200 MiB: far past any sane stop
            yield block

    status, answer, taken = await post_chunks(app, endless())
    assert status == 413 and answer["error"]["code"] == "payload_too_large", answer
    assert taken <= 1 + 16 + 2  # the opening, 1 MiB of blocks, and at most a block or two more
    assert stored_files(app_settings) == []


async def test_the_step_check_reads_the_head_across_chunks(app_settings):
    """A header after leading blank lines, arriving in small chunks, is found; garbage is refused."""
    app = create_app(app_settings)
    prepare_database(app.state.engine, app.state.catalog)  # what the lifespan does
    content = b"\r\n" * 400 + PART.read_bytes()
    body = opening() + content + f"\r\n--{BOUNDARY}--\r\n".encode()
    status, answer, _ = await post_chunks(app, (body[at : at + 100] for at in range(0, len(body), 100)))
    assert status == 201 and answer["size"] == len(content), answer

    garbage = opening() + b"\r\n" * 400 + b"solid cube\n" + b"facet normal 0 0 1\n" * 200
    status, answer, taken = await post_chunks(
        app, (garbage[at : at + 100] for at in range(0, len(garbage), 100))
    )
    assert status == 415 and answer["error"]["field"] == "file", answer
    assert taken < len(garbage) // 100  # refused once the head was read, not at the end


@pytest.mark.parametrize("fixture", ["malformed_png_renamed.step", "malformed_obj_renamed.step"])
def test_what_is_not_step_is_415(client, app_settings, fixture):
    assert_error(upload(client, STEP_FIXTURES / fixture), 415, "unsupported_media_type", "file")
    assert stored_files(app_settings) == []


def test_an_empty_file_a_missing_field_or_another_body_is_refused(client, app_settings):
    assert_error(upload(client, STEP_FIXTURES / "malformed_empty.step"), 422, "invalid_cad_file", "file")
    other_field = client.post("/api/cad-files", files={"upload": ("a.step", PART.read_bytes())})
    assert_error(other_field, 422, "invalid_request", "upload")
    assert_error(
        client.post("/api/cad-files", data={"note": "x"}), 415, "unsupported_media_type", "Content-Type"
    )
    as_json = client.post("/api/cad-files", json={"step_path": str(PART)})
    assert_error(as_json, 415, "unsupported_media_type", "Content-Type")
    two = client.post("/api/cad-files", files=[("file", ("a.step", PART.read_bytes()))] * 2)
    assert_error(two, 422, "invalid_request", "file")
    assert stored_files(app_settings) == []


@pytest.mark.e2e
@pytest.mark.occt
async def test_a_failed_intake_is_reported_without_server_paths(app_settings, session):
    """A file with a STEP header and no geometry passes the sniff; its intake fails on a worker."""
    with authorized(create_app(app_settings)) as client:
        uploaded = upload(client, STEP_FIXTURES / "malformed_header_only_no_data.step")
        assert uploaded.status_code == 201, uploaded.text
        for _ in range(240):
            answer = client.get(f"/api/cad-files/{uploaded.json()['id']}")
            if answer.json()["intake"]["status"] != "running":
                break
            await asyncio.sleep(0.5)  # the in-process workers run on this loop
    intake = answer.json()["intake"]
    assert intake["status"] == "failed" and intake["glb"] is None, intake
    assert intake["error"]["code"] == "invalid_cad_file"
    assert "file://" not in answer.text and str(app_settings.state_dir) not in answer.text


def test_error_messages_lose_server_paths(app_settings):
    store = app_settings.artifact_root()
    message = (
        f"artifact glb (0123) missing at {store}/ab/abcd.glb; quarantined under {store}/_quarantine; "
        f"see file:///srv/elsewhere/x.png or {app_settings.input_folders()[0]}/1f/part.step"
    )
    cleaned = public_error({"code": "artifact_missing", "message": message}, app_settings)
    assert cleaned == {
        "code": "artifact_missing",
        "message": "artifact glb (0123) missing at abcd.glb; quarantined under _quarantine; "
        "see x.png or part.step",
    }


@pytest.mark.parametrize(
    "body",
    [
        opening() + PART.read_bytes(),  # no closing boundary: the body was cut short
        b"hello world",
        f"--{BOUNDARY}\r\nbroken header line\r\n\r\nISO-10303-21;\r\n--{BOUNDARY}--\r\n".encode(),
        b"\x00" * 100,
    ],
    ids=["truncated", "not multipart", "broken part header", "binary noise"],
)
def test_a_malformed_multipart_body_is_422_and_nothing_is_kept(client, app_settings, body):
    content_type = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    answer = client.post("/api/cad-files", content=body, headers=content_type)
    assert_error(answer, 422, "invalid_request", "body")
    assert stored_files(app_settings) == []
