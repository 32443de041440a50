"""Artifact downloads: the verified bytes of a stored artifact, only to the owners it was granted to.

Every GET and HEAD hashes the whole blob through the handle it then serves from (the store's
verifying read): a tampered blob is quarantined and answered 503 `artifact_corrupt`, never sent.
The content is immutable under its hash, so the ETag is the sha256 itself and a client holding it
revalidates without any read (304).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from activities.artifacts import BLOCK, ArtifactRef, LocalArtifactStore
from api.auth import AUTHENTICATED, CallerDep, require_role
from api.deps import SessionDep, off_loop
from api.errors import ERROR_RESPONSES, error_response
from api.public import ARTIFACTS_PATH
from core.errors import ArtifactCorruptError, ArtifactMissingError, NotFoundError
from core.vocabulary import Role
from prodgraph.grants import find_grant, granted_ref

router = APIRouter(
    prefix=ARTIFACTS_PATH, tags=["artifacts"], responses=ERROR_RESPONSES, dependencies=AUTHENTICATED
)

Sha256Path = Annotated[
    str,
    Path(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$", description="an artifact's hex SHA-256"),
]
#: Content under a hash never changes; only the caller's own cache may keep it.
IMMUTABLE = "private, max-age=31536000, immutable"
BINARY = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}


DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The artifact's bytes, in its media type.", **BINARY},
    206: {"description": "The requested byte range.", **BINARY},
    304: {"description": "Not modified: the client's copy (If-None-Match) is this content."},
    416: {"description": "The Range lies outside the artifact."},
}


@router.get(
    "/{sha256}",
    response_class=Response,
    responses=DOWNLOAD_RESPONSES,
    dependencies=[require_role(Role.client, Role.operator)],
)
@router.head(
    "/{sha256}",
    response_class=Response,
    responses=DOWNLOAD_RESPONSES,
    dependencies=[require_role(Role.client, Role.operator)],
    operation_id="artifact_headers",
    summary="Artifact headers",
)
async def download_artifact(
    sha256: Sha256Path, request: Request, session: SessionDep, caller: CallerDep
) -> Response:
    """Stream an artifact the caller was shown (operators and admins: any shown to an owner).

    Supports `If-None-Match` (304), one `Range` of bytes (206; 416 outside the file; `If-Range`),
    and HEAD. Another owner's artifact, or one never produced, is 404.
    """
    owner = None if caller.sees_everything else caller.owner
    grant = await off_loop(session, find_grant, sha256, owner)
    if grant is None:
        raise NotFoundError(f"no artifact {sha256}", field="sha256")
    etag = f'"{sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=31536000, immutable",
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    store = LocalArtifactStore(request.app.state.settings.artifact_root())
    handle = await run_in_threadpool(_open_verified, store, granted_ref(grant))
    size = os.fstat(handle.fileno()).st_size
    try:
        span = _span(request.headers.get("range"), request.headers.get("if-range"), etag, size)
    except _Unsatisfiable:
        handle.close()
        return error_response(
            416,
            "range_not_satisfiable",
            f"the Range lies outside the artifact's {size} bytes",
            field="Range",
            headers={**headers, "Content-Range": f"bytes */{size}"},
        )
    status, start, length = (200, 0, size) if span is None else (206, span[0], span[1] - span[0] + 1)
    headers["Content-Length"] = str(length)
    if span is not None:
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
    if request.method == "HEAD":
        handle.close()
        return Response(status_code=status, headers=headers, media_type=grant.media_type)
    return StreamingResponse(
        _chunks(handle, start, length), status_code=status, headers=headers, media_type=grant.media_type
    )


def _open_verified(store: LocalArtifactStore, ref: ArtifactRef) -> BinaryIO:
    """The blob, verified; store failures answered without server paths."""
    short = ref.sha256[:12]
    corrupt = ArtifactCorruptError(
        f"artifact {short} failed its hash check and was quarantined; it is not served "
        "(a new run of the module that produced it writes it again)",
        field="sha256",
    )
    try:
        return store.open_verified(ref)
    except ArtifactCorruptError:
        raise corrupt from None
    except ArtifactMissingError:
        if store.was_quarantined(ref.sha256):
            raise corrupt from None
        raise ArtifactMissingError(f"artifact {short} is no longer in the store", field="sha256") from None


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names this ETag (weakly compared, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


class _Unsatisfiable(Exception):
    """The Range asks for bytes the artifact does not have (416)."""


def _span(range_header: str | None, if_range: str | None, etag: str, size: int) -> tuple[int, int] | None:
    """The one byte range asked for as (first, last), or None for the whole file.

    A Range that is not one well-formed byte range is ignored (RFC 9110 lets a server serve the
    whole representation), as is any Range whose If-Range names other content.
    """
    if not range_header or (if_range is not None and if_range.strip() != etag):
        return None
    unit, _, spec = range_header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash or not (first_text or last_text):
        return None
    if not (first_text.isdigit() or not first_text) or not (last_text.isdigit() or not last_text):
        return None
    if not first_text:  # a suffix: the last N bytes
        suffix = int(last_text)
        if not (suffix and size):
            raise _Unsatisfiable
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        raise _Unsatisfiable
    last = int(last_text) if last_text else size - 1
    return first, min(last, size - 1)


def _chunks(handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """The bytes [start, start + length) in blocks; closes the handle (Starlette iterates this in a
    thread, so the reads never block the event loop)."""
    with handle:
        handle.seek(start)
        while length > 0:
            block = handle.read(min(BLOCK, length))
            if not block:
                return
            length -= len(block)
            yield block
