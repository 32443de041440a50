"""Run a job in a fresh child process: heartbeat while waiting, enforce limits, type the failure.

A child never outlives its worker: it gets SIGKILL when the worker dies (Linux parent-death
signal), and its request/response folder lives under one folder per worker process, which the
next worker removes if the process that made it is dead (`remove_dead_workers_job_folders`).
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import json
import os
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from activities.jobs.protocol import PROGRESS_PREFIX
from core.errors import JobCrashedError, JobKilledError, JobTimeoutError, module_error
from core.processes import alive

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Share of the activity's timeout kept back so the child's kill is reported as a typed
#: job_timeout before Temporal's own start-to-close timer fires (within MIN_S..MAX_S).
REPORT_MARGIN = 0.05
REPORT_MARGIN_MIN_S = 0.5
REPORT_MARGIN_MAX_S = 2.0
#: Signals only something outside the job sends: the kernel's OOM killer and a host or operator
#: stopping the process (SIGKILL), a supervisor asking it to stop (SIGTERM, SIGINT, SIGHUP).
#: Such a death says nothing about the input, so it is a retryable job_killed; any other
#: signal (SIGSEGV, SIGABRT, SIGBUS, ...) is the job's own fault: a non-retryable job_crashed.
KILLED_FROM_OUTSIDE = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
#: Folder under the system temp dir (one per user) that holds one folder of job folders per
#: worker process.
JOBS_FOLDER = "prodgraph-jobs"


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
        with tempfile.TemporaryDirectory(prefix=f"{job}-", dir=own_jobs_folder()) as tmp:
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
                preexec_fn=self._child_setup(os.getpid()),
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

    def _child_setup(self, parent_pid: int) -> Callable[[], None]:
        """What the child runs between fork and exec: memory cap, and death with its parent."""
        limit = self.memory_limit_mb * 1024 * 1024

        def setup() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            _die_with_parent(parent_pid)

        return setup

    async def _wait(self, process: asyncio.subprocess.Process, timeout_s: float, what: str) -> str:
        started = time.monotonic()
        assert process.stdout is not None
        lines: list[str] = []
        output = asyncio.ensure_future(_collect(process.stdout, lines))
        try:
            while True:
                # Wake at the next heartbeat or exactly at the deadline, whichever comes first.
                left = max(started + timeout_s - time.monotonic(), 0.0)
                try:
                    await asyncio.wait_for(asyncio.shield(process.wait()), min(self.heartbeat_every_s, left))
                    break
                except TimeoutError:
                    _heartbeat(f"{what} running {time.monotonic() - started:.0f}s{_progress(lines)}")
                    if time.monotonic() - started >= timeout_s:
                        _kill(process)
                        await process.wait()
                        raise JobTimeoutError(f"{what} ran past {timeout_s:.0f}s and was killed") from None
        except asyncio.CancelledError:
            _kill(process)  # cancellation from Temporal: never leave an orphan Blender behind
            await process.wait()
            raise
        await output
        return "".join(lines)

    def _result(self, returncode: int | None, response_path: Path, log: str, what: str) -> dict[str, Any]:
        response = json.loads(response_path.read_text()) if response_path.exists() else None
        if returncode == 0 and response and response.get("ok"):
            return response["result"]
        if response and not response.get("ok"):
            error = response["error"]
            raise module_error(error["code"], error["message"])
        if returncode is not None and returncode < 0:
            name = signal.Signals(-returncode).name
            if -returncode in KILLED_FROM_OUTSIDE:
                raise JobKilledError(
                    f"{what} was killed from outside ({name}: out of memory, or stopped by its host "
                    f"or an operator); last output: {_tail(log)}"
                )
            raise JobCrashedError(f"{what} crashed ({name}); last output: {_tail(log)}")
        raise JobCrashedError(f"{what} exited {returncode} without a result; last output: {_tail(log)}")


async def _collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    """Read the child's output line by line as it comes, so progress is seen while it runs."""
    while line := await stream.readline():
        lines.append(line.decode(errors="replace"))


def _progress(lines: list[str]) -> str:
    """The job's latest progress line (`PROGRESS ...`), as a heartbeat suffix."""
    latest = next((line for line in reversed(lines) if line.startswith(PROGRESS_PREFIX)), None)
    return f": {latest.removeprefix(PROGRESS_PREFIX).strip()}" if latest else ""


# --- a child never outlives its worker ---------------------------------------------------------

PR_SET_PDEATHSIG = 1
#: libc's prctl, looked up once in the parent: loading a library between fork and exec can deadlock.
_PRCTL: Any = None
if sys.platform.startswith("linux"):
    try:
        _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # libc is linked into the interpreter
    except (OSError, AttributeError):  # pragma: no cover - a Linux without a usable libc
        _PRCTL = None


def _die_with_parent(parent_pid: int) -> None:
    """In the child: ask the kernel for SIGKILL when the parent dies (Linux; a no-op elsewhere).

    The signal is tied to the parent *thread* that forked: ChildJobRunner runs on the worker's
    event loop thread, which lives as long as the worker. Should the parent already have died
    between fork and prctl, the child kills itself at once.
    """
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


_own_jobs_folder: tuple[int, Path] | None = None
_own_jobs_folder_lock = threading.Lock()


def jobs_root() -> Path:
    """The folder that holds one folder of job folders per worker process of this user."""
    uid = os.getuid() if hasattr(os, "getuid") else None  # one per user: each can write its own
    return Path(tempfile.gettempdir()) / (JOBS_FOLDER if uid is None else f"{JOBS_FOLDER}-{uid}")


def own_jobs_folder() -> Path:
    """This process's folder of job folders, `<jobs_root>/<pid>-<random>`, made on first use."""
    global _own_jobs_folder
    pid = os.getpid()
    with _own_jobs_folder_lock:
        if _own_jobs_folder is None or _own_jobs_folder[0] != pid or not _own_jobs_folder[1].is_dir():
            root = jobs_root()
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder = root / f"{pid}-{secrets.token_hex(4)}"
            folder.mkdir(mode=0o700)
            _own_jobs_folder = (pid, folder)
            atexit.register(remove_own_jobs_folder)
        return _own_jobs_folder[1]


def remove_own_jobs_folder() -> None:
    """Remove this process's folder of job folders, if it made one (at exit; entry points that
    leave with os._exit call it themselves)."""
    global _own_jobs_folder
    with _own_jobs_folder_lock:
        if _own_jobs_folder is not None and _own_jobs_folder[0] == os.getpid():
            shutil.rmtree(_own_jobs_folder[1], ignore_errors=True)
            _own_jobs_folder = None


def remove_dead_workers_job_folders(root: Path | None = None) -> list[Path]:
    """Remove the job folders that processes now dead left behind (e.g. a worker killed with
    SIGKILL); return them. A folder of a live process, this one's included, is kept.

    Liveness is checked in this process's pid namespace: workers in other pid namespaces (other
    containers) must not share this temp dir, as containers' /tmp normally are not shared.
    """
    root = root or jobs_root()
    own = _own_jobs_folder[1] if _own_jobs_folder and _own_jobs_folder[0] == os.getpid() else None
    removed = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        pid_text = folder.name.partition("-")[0]
        if not folder.is_dir() or not pid_text.isdigit() or folder == own:
            continue
        pid = int(pid_text)
        # Our own pid on another folder: a process before us had this pid and is gone.
        if pid != os.getpid() and alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


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
