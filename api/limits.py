"""Edge limits on request bodies, checked before any route runs: size (413) and JSON depth (422).

A client's mistake must be a 4xx, never a 500: Python's JSON parser raises RecursionError on a
body nested a few thousand levels deep, and deep values can exhaust the recursion of the
validators behind the routes. The middleware reads the body (counting while it streams, so a
missing or false Content-Length does not help), refuses it when too large or too deep, and
replays it to the app.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import EdgeError, error_response

MIB = 1024 * 1024

_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether this JSON text nests arrays and objects more than `limit` levels deep.

    It reads the bytes in linear time without parsing or recursing: escape pairs are dropped
    (so every quote left delimits a string), then the strings' contents (brackets there nest
    nothing), then every byte but brackets; innermost pairs go one level per pass. Text that is
    not JSON is left for the parser to report (an unbalanced bracket is not nesting).
    """
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(text.split(b'"')[0::2])
    brackets = outside_strings.translate(_AS_SQUARE, _NOT_BRACKETS)
    if b"[" * (limit + 1) in brackets:
        return True
    for _ in range(limit):
        if b"[]" not in brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return b"[]" in brackets


def too_deep(limit: int) -> EdgeError:
    """422 `json_too_deep`."""
    return EdgeError(
        422,
        "json_too_deep",
        f"the body nests arrays and objects more than {limit} levels deep",
        field="body",
    )


def too_large(max_bytes: int) -> EdgeError:
    """413 `payload_too_large`."""
    return EdgeError(
        413,
        "payload_too_large",
        f"the request body is larger than {max_bytes / MIB:g} MiB",
        field="body",
    )


def is_json(content_type: str | None) -> bool:
    """Whether a body of this content type is read as JSON (FastAPI's rule; none counts too)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class RequestLimits:
    """ASGI middleware: bodies over `max_body_bytes` answer 413, JSON deeper than `max_json_depth`
    answers 422, both in the one error shape. Paths under `skip_prefixes` (routes that stream
    large uploads and enforce their own limit) pass untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_json_depth: int,
        skip_prefixes: Sequence[str] = (),
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.skip_prefixes = tuple(skip_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip_prefixes):
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.max_body_bytes:
            await self._refuse(too_large(self.max_body_bytes), scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(too_large(self.max_body_bytes), scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if body and is_json(content_type) and nesting_exceeds(body, self.max_json_depth):
            await self._refuse(too_deep(self.max_json_depth), scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _refuse(error: EdgeError, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(error.status_code, error.code, error.detail, field=error.field)
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the client's next messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
