"""The file protocol between an activity and its child job: a contract model in, a result out.

A job reads its request into the module's own contract model (validated once, in the parent,
with the parent's defaults) and reports failures with the codes of `core.errors`.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from core.errors import ContractViolationError, ModuleError

#: A job that ends with this exit code wrote a typed error into its response file.
EXIT_TYPED_ERROR = 3
#: A line a job prints to say how far it got; the activity heartbeats the latest one.
PROGRESS_PREFIX = "PROGRESS "

Handler = Callable[[Any], dict[str, Any]]


def run_job(handlers: dict[str, tuple[Handler, type[BaseModel]]]) -> None:
    """Entry point of a job: `python -m activities.jobs.X OP REQUEST.json RESPONSE.json`."""
    op, request_path, response_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    try:
        result = _handle(handlers, op, request_path.read_text())
    except ModuleError as exc:
        _write(response_path, {"ok": False, "error": {"code": exc.code, "message": exc.message}})
        _exit(EXIT_TYPED_ERROR)
    except Exception as exc:  # noqa: BLE001 - any other failure is reported, typed as internal
        traceback.print_exc()
        _write(
            response_path,
            {"ok": False, "error": {"code": "job_internal_error", "message": f"{type(exc).__name__}: {exc}"}},
        )
        _exit(1)
    _write(response_path, {"ok": True, "result": result})
    _exit(0)


def progress(text: str) -> None:
    """Tell the parent how far the job got (it becomes the activity's heartbeat detail)."""
    print(f"{PROGRESS_PREFIX}{text}", flush=True)


def _handle(
    handlers: dict[str, tuple[Handler, type[BaseModel]]], op: str, request_json: str
) -> dict[str, Any]:
    """Read the request into the op's contract model and run the op."""
    if op not in handlers:
        raise ContractViolationError(f"unknown job op {op!r}; known: {', '.join(sorted(handlers))}")
    handler, request_model = handlers[op]
    try:
        request = request_model.model_validate_json(request_json)
    except ValidationError as exc:
        raise ContractViolationError(f"{op} request off its contract: {exc}") from None
    return handler(request)


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document))


def _exit(code: int) -> None:
    # bpy and OCP can hang or crash in their own atexit handlers; the response is on disk already.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
