"""Run a job in a fresh child process: heartbeat while waiting, enforce limits, type the failure."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.jobs.protocol import EXIT_TYPED_ERROR

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class JobFailure(Exception):
    """A child job ended without a result: typed error, crash or timeout."""

    code: str
    message: str
    retryable: bool = False

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def as_application_error(self) -> ApplicationError:
        """The failure as Temporal reports it: typed, retryable only when it may pass."""
        return ApplicationError(self.message, type=self.code, non_retryable=not self.retryable)


@dataclass(frozen=True)
class ChildJobRunner:
    """Starts `python -m activities.jobs.<job>` children with a timeout and memory cap."""

    memory_limit_mb: int = 8192
    heartbeat_every_s: float = 2.0

    async def run(self, job: str, op: str, request: dict[str, Any], timeout_s: float) -> dict:
        """Run one job op; return its result or raise JobFailure.

        Args:
            job: module under activities.jobs (e.g. "step_job"), or a full dotted module path.
            op: the operation the job dispatches on.
            request: JSON-able request document.
            timeout_s: wall-clock limit; the child is killed past it.
        """
        module = job if "." in job else f"activities.jobs.{job}"
        with tempfile.TemporaryDirectory(prefix=f"prodgraph-{job}-") as tmp:
            request_path, response_path = Path(tmp) / "request.json", Path(tmp) / "response.json"
            request_path.write_text(json.dumps(request))
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module, op,
                str(request_path), str(response_path),
                cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                preexec_fn=self._limit_child, start_new_session=True,
            )
            log = await self._wait(process, timeout_s, f"{job}.{op}")
            return self._result(process.returncode, response_path, log, f"{job}.{op}")

    def _limit_child(self) -> None:
        limit = self.memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    async def _wait(self, process: asyncio.subprocess.Process, timeout_s: float, what: str) -> str:
        started = time.monotonic()
        output = asyncio.ensure_future(process.stdout.read())
        try:
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(process.wait()), self.heartbeat_every_s)
                    break
                except TimeoutError:
                    _heartbeat(f"{what} running {time.monotonic() - started:.0f}s")
                    if time.monotonic() - started > timeout_s:
                        _kill(process)
                        await process.wait()
                        raise JobFailure("job_timeout", f"{what} ran past {timeout_s:.0f}s "
                                         "and was killed", retryable=True) from None
        except asyncio.CancelledError:
            _kill(process)  # cancellation from Temporal: never leave an orphan Blender behind
            await process.wait()
            raise
        return (await output).decode(errors="replace")

    def _result(self, returncode: int, response_path: Path, log: str, what: str) -> dict:
        response = json.loads(response_path.read_text()) if response_path.exists() else None
        if returncode == 0 and response and response.get("ok"):
            return response["result"]
        if response and not response.get("ok"):
            error = response["error"]
            retryable = returncode != EXIT_TYPED_ERROR and error["code"] == "job_internal_error"
            raise JobFailure(error["code"], error["message"], retryable=retryable)
        if returncode < 0:
            name = signal.Signals(-returncode).name
            raise JobFailure("job_crashed", f"{what} crashed ({name}); last output: "
                             f"{_tail(log)}")
        raise JobFailure("job_crashed", f"{what} exited {returncode} without a result; "
                         f"last output: {_tail(log)}")


def _kill(process: asyncio.subprocess.Process) -> None:
    try:
        process.kill()
    except ProcessLookupError:
        pass


def _heartbeat(detail: str) -> None:
    if activity.in_activity():
        activity.heartbeat(detail)


def _tail(log: str, lines: int = 5) -> str:
    return " | ".join(line for line in log.strip().splitlines()[-lines:]) or "(none)"
