"""The HTTP error mapping: the core error tree and request errors as JSON answers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    ArtifactCorruptError,
    ArtifactMissingError,
    CadFileNotFoundError,
    CatalogChangedError,
    ConflictError,
    ContractViolationError,
    DispatchError,
    InvalidCadFileError,
    InvalidDefinitionError,
    InvalidOutputTypeError,
    LegacyMappingError,
    NotFoundError,
    OperatorActionRefusedError,
    PreflightFailedError,
    ProdgraphError,
    TemporalUnavailableError,
)

log = logging.getLogger(__name__)


#: HTTP status per error class; the nearest class in the exception's MRO wins.
STATUS: dict[type[ProdgraphError], int] = {
    NotFoundError: 404,
    ArtifactMissingError: 404,
    # The store's fault, not the client's: the blob was quarantined, a new run rebuilds it.
    ArtifactCorruptError: 503,
    TemporalUnavailableError: 503,
    CadFileNotFoundError: 404,
    ConflictError: 409,
    DispatchError: 409,
    OperatorActionRefusedError: 409,
    InvalidDefinitionError: 422,
    LegacyMappingError: 422,
    InvalidOutputTypeError: 422,
    ContractViolationError: 422,
    InvalidCadFileError: 422,
    PreflightFailedError: 422,
    ProdgraphError: 400,
}
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ErrorDetail(BaseModel):
    """The machine-readable part of every error answer (some codes add blocks of their own)."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    field: str | None = None
    node_id: str | None = None
    problems: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: `{"error": {...}}`."""

    error: ErrorDetail


#: OpenAPI documentation of the error answers, shared by every router.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 403, 404, 409, 413, 422, 500, 503)
}


class EdgeError(StarletteHTTPException):
    """A request refused at the edge (no credentials, a body over the limits) with its own code."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(status_code, detail=message, headers=headers)
        self.code = code
        self.field = field


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error answer in the one shape, for code that answers outside the exception handlers."""
    body = {"code": code, "message": message, "field": field, "node_id": None}
    return JSONResponse({"error": body}, status_code=status_code, headers=headers)


def status_of(exc: ProdgraphError) -> int:
    """HTTP status of a prodgraph error."""
    if isinstance(exc, CatalogChangedError):
        return exc.status
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


def error_body(exc: ProdgraphError) -> dict[str, Any]:
    """JSON body of a prodgraph error."""
    body = {**exc.to_dict(), "field": exc.field}
    problems = getattr(exc, "problems", None)
    if problems is not None:
        body["problems"] = problems
    body.update(getattr(exc, "details", {}))
    return {"error": body}


def field_of(loc: tuple | list) -> str | None:
    """Dotted name of a request location; body fields lose the `body` prefix, indexes use [i]."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name or (str(loc[0]) if loc else None)


def _request_problem(error: dict[str, Any]) -> dict[str, Any]:
    if error.get("type") == "json_invalid":
        return {
            "field": "body",
            "code": "invalid_json",
            "message": f"the body is not valid JSON: {error.get('msg')}",
        }
    return {
        "field": field_of(error.get("loc", ())),
        "code": error.get("type", "invalid"),
        "message": error.get("msg", "invalid value"),
    }


async def prodgraph_error(request: Request, exc: ProdgraphError) -> JSONResponse:
    """A ProdgraphError as its 4xx answer."""
    return JSONResponse(error_body(exc), status_code=status_of(exc))


async def request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A request FastAPI could not parse or validate: 422 naming the first field."""
    problems = [_request_problem(error) for error in exc.errors()]
    first = (
        problems[0] if problems else {"field": None, "code": "invalid_request", "message": "invalid request"}
    )
    code = "invalid_json" if first["code"] == "invalid_json" else "invalid_request"
    body = {
        "code": code,
        "message": f"{first['field']}: {first['message']}",
        "field": first["field"],
        "node_id": None,
        "problems": problems,
    }
    return JSONResponse({"error": body}, status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Routing errors (unknown path, wrong method) and edge refusals in the same shape."""
    if isinstance(exc, EdgeError):
        code, field = exc.code, exc.field
    else:
        code, field = HTTP_CODES.get(exc.status_code, "http_error"), None
    return error_response(
        exc.status_code, code, str(exc.detail), field=field, headers=getattr(exc, "headers", None)
    )


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected: logged with its traceback here, never sent to the client."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {
        "code": "internal_error",
        "message": "internal server error; the cause is logged",
        "field": None,
        "node_id": None,
    }
    return JSONResponse({"error": body}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on the app."""
    # Starlette types every handler as taking a bare Exception, though it only ever calls one
    # with the class it was registered for; the narrower signatures are correct.
    app.add_exception_handler(ProdgraphError, prodgraph_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, request_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal_error)
