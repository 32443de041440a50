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

from pydantic import BaseModel
from temporalio import activity

from core.errors import JobCrashedError, JobTimeoutError, module_error

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Share of the activity's timeout kept back so the child's kill is reported as a typed
#: job_timeout before Temporal's own start-to-close timer fires (within MIN_S..MAX_S).
REPORT_MARGIN = 0.05
REPORT_MARGIN_MIN_S = 0.5
REPORT_MARGIN_MAX_S = 2.0


@dataclass(frozen=True)
class ChildJobRunner:
    """Starts `python -m activities.jobs.<job>` children with a timeout and memory cap."""

    memory_limit_mb: int = 8192
    heartbeat_every_s: float = 2.0
    default_timeout_s: float = 600.0
    """Wall clock of a job run outside an activity (an activity's own timeout wins)."""

    async def run(
        self, job: str, op: str, request: BaseModel, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Run one job op; return its result or raise the job's ModuleError.

        Args:
            job: module under activities.jobs (e.g. "step_job"), or a full dotted module path.
            op: the operation the job dispatches on.
            request: the job's request, a validated contract model.
            timeout_s: wall-clock limit; by default the running activity's start-to-close
                timeout (the node's effective timeout_s). The child is killed past it.
        """
        module = job if "." in job else f"activities.jobs.{job}"
        limit = timeout_s if timeout_s is not None else self.wall_clock_s()
        with tempfile.TemporaryDirectory(prefix=f"prodgraph-{job}-") as tmp:
            request_path, response_path = Path(tmp) / "request.json", Path(tmp) / "response.json"
            request_path.write_text(request.model_dump_json())
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                op,
                str(request_path),
                str(response_path),
                cwd=REPO_ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=self._limit_child,
                start_new_session=True,
            )
            log = await self._wait(process, limit, f"{job}.{op}")
            return self._result(process.returncode, response_path, log, f"{job}.{op}")

    def wall_clock_s(self) -> float:
        """The child's wall clock: the running activity's timeout less a reporting margin."""
        timeout = activity.info().start_to_close_timeout if activity.in_activity() else None
        if not timeout:
            return self.default_timeout_s
        seconds = timeout.total_seconds()
        margin = min(max(seconds * REPORT_MARGIN, REPORT_MARGIN_MIN_S), REPORT_MARGIN_MAX_S)
        return max(seconds - margin, seconds / 2)

    def _limit_child(self) -> None:
        limit = self.memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    async def _wait(self, process: asyncio.subprocess.Process, timeout_s: float, what: str) -> str:
        started = time.monotonic()
        assert process.stdout is not None
        output = asyncio.ensure_future(process.stdout.read())
        try:
            while True:
                # Wake at the next heartbeat or exactly at the deadline, whichever comes first.
                left = max(started + timeout_s - time.monotonic(), 0.0)
                try:
                    await asyncio.wait_for(asyncio.shield(process.wait()), min(self.heartbeat_every_s, left))
                    break
                except TimeoutError:
                    _heartbeat(f"{what} running {time.monotonic() - started:.0f}s")
                    if time.monotonic() - started >= timeout_s:
                        _kill(process)
                        await process.wait()
                        raise JobTimeoutError(f"{what} ran past {timeout_s:.0f}s and was killed") from None
        except asyncio.CancelledError:
            _kill(process)  # cancellation from Temporal: never leave an orphan Blender behind
            await process.wait()
            raise
        return (await output).decode(errors="replace")

    def _result(self, returncode: int | None, response_path: Path, log: str, what: str) -> dict[str, Any]:
        response = json.loads(response_path.read_text()) if response_path.exists() else None
        if returncode == 0 and response and response.get("ok"):
            return response["result"]
        if response and not response.get("ok"):
            error = response["error"]
            raise module_error(error["code"], error["message"])
        if returncode is not None and returncode < 0:
            name = signal.Signals(-returncode).name
            raise JobCrashedError(f"{what} crashed ({name}); last output: {_tail(log)}")
        raise JobCrashedError(f"{what} exited {returncode} without a result; last output: {_tail(log)}")


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
