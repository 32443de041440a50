"""Downloading artifacts: verified bytes, only to owners they were granted to, with ETag and Range."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_keys import TEST_OWNER, authorized, with_test_key
from fastapi.testclient import TestClient
from sqlmodel import Session

from activities.artifacts import ArtifactRef, LocalArtifactStore, local_path
from api.app import create_app
from api.auth import Caller, require_caller
from core.settings import Settings
from core.vocabulary import Role
from prodgraph.grants import grant

OTHER_TOKEN = "another-owners-token-0123456789"
STRANGER = {"Authorization": f"Bearer {OTHER_TOKEN}"}
CONTENT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # 10 248 bytes


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    configured = with_test_key(Settings(state_dir=tmp_path / "state"))
    configured.api_keys[OTHER_TOKEN] = "someone-else"
    return configured


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with authorized(create_app(app_settings)) as test_client:
        yield test_client


@pytest.fixture
def still(client: TestClient, app_settings: Settings, tmp_path: Path) -> ArtifactRef:
    """A PNG in the store, granted to the test key's owner as if one of its runs had made it."""
    source = tmp_path / "still.png"
    source.write_bytes(CONTENT)
    ref = LocalArtifactStore(app_settings.artifact_root()).put_file(source, role="still")
    with Session(client.app.state.engine) as db:  # type: ignore[attr-defined]
        grant(db, TEST_OWNER, [ref], "order-tests-ol-1")
    return ref


def url(ref: ArtifactRef) -> str:
    return f"/api/artifacts/{ref.sha256}"


def test_an_owner_downloads_its_artifact_with_its_media_type_and_etag(client, still):
    answer = client.get(url(still))
    assert answer.status_code == 200 and answer.content == CONTENT
    assert answer.headers["content-type"] == "image/png"
    assert answer.headers["etag"] == f'"{hashlib.sha256(CONTENT).hexdigest()}"'
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["content-length"] == str(len(CONTENT))


def test_a_client_holding_the_content_gets_304(client, still):
    etag = client.get(url(still)).headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        answer = client.get(url(still), headers={"If-None-Match": header})
        assert answer.status_code == 304 and answer.content == b"", header
        assert answer.headers["etag"] == etag
    assert client.get(url(still), headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, len(CONTENT) - 1),
        ("bytes=-5", len(CONTENT) - 5, len(CONTENT) - 1),
    ],
)
def test_one_byte_range_is_206(client, still, header, first, last):
    answer = client.get(url(still), headers={"Range": header})
    assert answer.status_code == 206
    assert answer.content == CONTENT[first : last + 1]
    assert answer.headers["content-range"] == f"bytes {first}-{last}/{len(CONTENT)}"
    assert answer.headers["content-length"] == str(last - first + 1)


def test_a_range_past_the_end_is_clipped_and_one_outside_is_416(client, still):
    clipped = client.get(url(still), headers={"Range": "bytes=10240-99999"})
    assert clipped.status_code == 206 and clipped.content == CONTENT[10240:]
    for header in (f"bytes={len(CONTENT)}-", "bytes=99999-100000", "bytes=-0"):
        refused = client.get(url(still), headers={"Range": header})
        assert refused.status_code == 416, header
        assert refused.headers["content-range"] == f"bytes */{len(CONTENT)}"
        assert refused.json()["error"]["code"] == "range_not_satisfiable"


def test_a_range_it_does_not_serve_gets_the_whole_file(client, still):
    etag = client.get(url(still)).headers["etag"]
    for headers in (
        {"Range": "bytes=0-1,5-6"},  # several ranges
        {"Range": "bytes=9-2"},  # malformed
        {"Range": "items=0-1"},  # another unit
        {"Range": "bytes=0-9", "If-Range": '"older"'},  # the client's copy is other content
    ):
        answer = client.get(url(still), headers=headers)
        assert answer.status_code == 200 and answer.content == CONTENT, headers
    assert client.get(url(still), headers={"Range": "bytes=0-9", "If-Range": etag}).status_code == 206


def test_head_answers_the_headers_of_get_without_the_bytes(client, still):
    answer = client.head(url(still))
    assert answer.status_code == 200 and answer.content == b""
    assert answer.headers["content-length"] == str(len(CONTENT))
    assert answer.headers["content-type"] == "image/png"
    ranged = client.head(url(still), headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.headers["content-length"] == "10"


def test_another_owners_artifact_or_an_unknown_one_is_404(client, still):
    hidden = client.get(url(still), headers=STRANGER)
    assert hidden.status_code == 404 and hidden.json()["error"]["field"] == "sha256"
    assert client.head(url(still), headers=STRANGER).status_code == 404
    assert client.get("/api/artifacts/" + "0" * 64).status_code == 404
    for bad in ("../../etc/passwd", "ABC", "0" * 63, "g" * 64):
        assert client.get(f"/api/artifacts/{bad}").status_code in (404, 422), bad


def test_operators_may_read_any_granted_artifact(client, still):
    app = client.app
    app.dependency_overrides[require_caller] = lambda: Caller("on-call", Role.operator)  # type: ignore[attr-defined]
    try:
        assert client.get(url(still)).content == CONTENT
        assert client.get("/api/artifacts/" + "0" * 64).status_code == 404  # granted to no one
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_a_tampered_blob_is_503_quarantined_and_never_served(client, still, app_settings):
    blob = local_path(still)
    tampered = bytearray(CONTENT)
    tampered[100] ^= 0xFF
    blob.write_bytes(bytes(tampered))
    for attempt in range(3):  # the first read quarantines it; later ones still serve nothing
        for answer in (
            client.get(url(still)),
            client.get(url(still), headers={"Range": "bytes=0-9"}),
            client.head(url(still)),
        ):
            assert answer.status_code == 503, (attempt, answer.status_code)
            assert bytes(tampered) not in answer.content and b"PNG" not in answer.content
        error = client.get(url(still)).json()["error"]
        assert error["code"] == "artifact_corrupt" and error["field"] == "sha256"
        assert str(app_settings.state_dir) not in error["message"] and "file://" not in error["message"]
    store = LocalArtifactStore(app_settings.artifact_root())
    assert store.was_quarantined(still.sha256) and not blob.exists()
    quarantined = [path for path in store.quarantine_root.iterdir() if path.suffix == ".png"]
    assert [path.read_bytes() for path in quarantined] == [bytes(tampered)]

    source = app_settings.state_dir / "again.png"  # a new run writes the good bytes again
    source.write_bytes(CONTENT)
    store.put_file(source, role="still")
    assert client.get(url(still)).content == CONTENT
