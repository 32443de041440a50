"""Streaming multipart uploads: one `file` field, written to the artifact store as it arrives.

The body is parsed with python-multipart's streaming `MultipartParser` over `request.stream()`:
nothing is buffered whole, in memory or in a spool file. The file's bytes go to a scratch file
on the store's disk while they are hashed and counted; the size limit and the STEP sniff refuse a
body as soon as it crosses them (413, 415), and whatever was written is removed with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from activities.artifacts import ArtifactRef, IncomingBlob, LocalArtifactStore
from activities.cad import STEP_HEAD_BYTES, is_step_header
from api.errors import EdgeError
from api.limits import MIB
from core.errors import InvalidCadFileError

if TYPE_CHECKING:  # the package defines its callback types for type checkers only
    from python_multipart.multipart import MultipartCallbacks

#: The form field that carries the file.
FILE_FIELD = "file"
#: What a multipart body may carry besides the file itself (boundaries, part headers).
ENVELOPE_BYTES = 64 * 1024
#: Bytes collected before they are handed to a thread to write.
WRITE_BATCH = MIB


@dataclass
class _FileField:
    """What the parser's callbacks found so far: the file part's name and bytes not yet written."""

    filename: str | None = None
    parts: int = 0
    in_file: bool = False
    found: bool = False
    complete: bool = False
    """The closing boundary arrived."""
    problem: EdgeError | None = None
    pending: list[bytes] = field(default_factory=list)
    """File bytes received and not yet written."""
    head: bytes = b""
    """The file's first STEP_HEAD_BYTES, for the STEP check."""
    _header_field: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _disposition: bytes = b""

    def callbacks(self) -> MultipartCallbacks:
        """The parser callbacks that fill this record."""
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self.parts += 1
        self.in_file = False
        self._disposition = b""

    def _header_end(self) -> None:
        if bytes(self._header_field).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != FILE_FIELD:
            message = f"unknown form field {name!r}: send only `file`"
            self.problem = self.problem or _invalid(message, name or "body")
        elif self.found:
            self.problem = self.problem or _invalid("send one file per upload", FILE_FIELD)
        else:
            self.in_file = self.found = True
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")

    def _end(self) -> None:
        self.complete = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            block = data[start:end]
            self.pending.append(block)
            if len(self.head) < STEP_HEAD_BYTES:
                self.head += block[: STEP_HEAD_BYTES - len(self.head)]


@dataclass
class ReceivedFile:
    """An uploaded STEP file, stored: its reference and the name the client gave it."""

    ref: ArtifactRef
    filename: str | None


async def receive_step_file(request: Request, store: LocalArtifactStore, max_mb: float) -> ReceivedFile:
    """Stream the request's multipart `file` into the store, refusing it as soon as it is too
    large (413) or not STEP (415); an empty or missing file is 422.

    Args:
        request: a `multipart/form-data` request with one `file` part.
        store: where the file goes (content-addressed, under role step_file).
        max_mb: the largest file accepted, in MiB (PRODGRAPH_MAX_UPLOAD_MB).
    """
    max_bytes = int(max_mb * MIB)
    boundary = _boundary(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + ENVELOPE_BYTES:
        raise _too_large(max_mb)  # before reading a byte (a client that sent Expect: 100-continue sends none)
    found = _FileField()
    parser = MultipartParser(boundary, found.callbacks())
    received = 0
    with store.receive(".step") as incoming:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + ENVELOPE_BYTES:
                raise _too_large(max_mb)
            try:
                parser.write(chunk)
            except MultipartParseError as error:
                raise _invalid(f"the multipart body is malformed: {error}", "body") from None
            if found.problem:
                raise found.problem
            if len(found.head) == STEP_HEAD_BYTES and not is_step_header(found.head):
                raise _not_step()
            pending = sum(map(len, found.pending))
            if incoming.size + pending > max_bytes:
                raise _too_large(max_mb)
            if pending >= WRITE_BATCH:
                await _flush(found, incoming)
        parser.finalize()
        await _flush(found, incoming)
        if not found.found:
            raise _invalid("the form has no `file` field", FILE_FIELD)
        if not found.complete:
            raise _invalid("the multipart body ends before its closing boundary", "body")
        if incoming.size == 0:
            raise InvalidCadFileError("the uploaded file is empty", field=FILE_FIELD)
        if not is_step_header(found.head):
            raise _not_step()
        ref = await run_in_threadpool(incoming.commit, "step_file", "model/step")
    return ReceivedFile(ref=ref, filename=found.filename)


async def _flush(found: _FileField, incoming: IncomingBlob) -> None:
    """Write the bytes collected so far, in a thread (the event loop never waits on the disk)."""
    data = b"".join(found.pending)
    found.pending.clear()
    if data:
        await run_in_threadpool(incoming.write, data)


def _boundary(content_type: str) -> bytes:
    media, options = parse_options_header(content_type)
    if media != b"multipart/form-data" or not options.get(b"boundary"):
        raise EdgeError(
            415,
            "unsupported_media_type",
            "send the file as multipart/form-data with one `file` field",
            field="Content-Type",
        )
    return options[b"boundary"]


def _too_large(max_mb: float) -> EdgeError:
    message = f"the file is larger than the {max_mb:g} MiB upload limit (PRODGRAPH_MAX_UPLOAD_MB)"
    return EdgeError(413, "payload_too_large", message, field=FILE_FIELD)


def _invalid(message: str, name: str) -> EdgeError:
    return EdgeError(422, "invalid_request", message, field=name)


def _not_step() -> EdgeError:
    return EdgeError(
        415,
        "unsupported_media_type",
        "the file is not a STEP file (no ISO-10303-21 header)",
        field=FILE_FIELD,
    )
