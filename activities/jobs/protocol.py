"""The file protocol between an activity and its child job; stdlib only, so jobs stay light."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: A job that ends with this exit code wrote a typed error into its response file.
EXIT_TYPED_ERROR = 3


class JobError(Exception):
    """An expected, typed failure inside a job (bad input, not a bug)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def run_job(handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """Entry point of a job: `python -m activities.jobs.X OP REQUEST.json RESPONSE.json`."""
    op, request_path, response_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    request = json.loads(request_path.read_text())
    try:
        handler = handlers[op]
    except KeyError:
        _write(response_path, {"ok": False, "error": {"code": "unknown_job_op", "message": op}})
        sys.exit(EXIT_TYPED_ERROR)
    try:
        result = handler(request)
    except JobError as exc:
        _write(response_path, {"ok": False, "error": {"code": exc.code, "message": exc.message}})
        sys.stdout.flush()
        sys.stderr.flush()
        _exit(EXIT_TYPED_ERROR)
    except Exception as exc:  # noqa: BLE001 - any other failure is reported, typed as internal
        traceback.print_exc()
        _write(response_path, {"ok": False, "error": {"code": "job_internal_error",
                                                      "message": f"{type(exc).__name__}: {exc}"}})
        _exit(1)
    _write(response_path, {"ok": True, "result": result})
    _exit(0)


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document))


def _exit(code: int) -> None:
    # bpy and OCP can hang or crash in their own atexit handlers; the response is on disk already.
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
