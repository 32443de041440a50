"""`prodgraph dev`: the embedded Temporal server, every worker and the API in one command, for local use.

It prints where the API and the Temporal UI listen and a key for this session, then runs until
SIGINT or SIGTERM, and stops everything it started: the API process, the in-process workers, and
the Temporal server unless one was already running for this state folder (that one stays, like
after any other prodgraph command).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from temporalio.worker import Worker

from core.errors import ProdgraphError
from core.settings import BootstrapKey, Settings
from core.temporal import connect
from core.vocabulary import Role
from prodgraph.embedded import TemporalEndpoint, ensure_dev_server, running_server_pid, stop_dev_server
from prodgraph.workers import build_workers

DEV_OWNER = "local-admin"
STARTUP_TIMEOUT_S = 120.0
API_STOP_TIMEOUT_S = 10.0
TEMPORAL_STOP_TIMEOUT_S = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

T = TypeVar("T")


def local_admin_key(settings: Settings) -> tuple[str, dict[str, str]]:
    """A fresh admin key for this session, and the environment that makes the API accept it.

    It is one more entry of PRODGRAPH_API_KEYS, not a stored key: it dies with the session.
    """
    token = secrets.token_urlsafe(32)
    configured = {
        known: key.model_dump(mode="json") if isinstance(key, BootstrapKey) else key
        for known, key in settings.api_keys.items()
    }
    admin = {"owner": DEV_OWNER, "role": Role.admin.value}
    return token, {"PRODGRAPH_API_KEYS": json.dumps({**configured, token: admin})}


class Stopped(Exception):
    """A stop signal arrived before everything was up."""


@dataclass
class DevStack:
    """What `prodgraph dev` started, so it stops exactly that."""

    settings: Settings
    owns_temporal: bool = False
    workers: list[Worker] = field(default_factory=list)
    worker_runs: list[asyncio.Task[None]] = field(default_factory=list)
    api: subprocess.Popen[bytes] | None = None
    key: str = ""

    async def stop(self) -> None:
        """Stop the API, then the workers, then the Temporal server if this command started it."""
        if self.api is not None:
            await asyncio.to_thread(_terminate, self.api, API_STOP_TIMEOUT_S)
        await asyncio.gather(*(worker.shutdown() for worker in self.workers), return_exceptions=True)
        await asyncio.gather(*self.worker_runs, return_exceptions=True)
        if self.owns_temporal:
            await asyncio.to_thread(stop_dev_server, self.settings.state_dir, TEMPORAL_STOP_TIMEOUT_S)


async def run_dev(settings: Settings, host: str, port: int) -> int:
    """Start everything, print where it listens, serve until a stop signal; the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    _check_port_free(host, port)
    stack = DevStack(settings.model_copy(update={"temporal_address": None}))
    try:
        endpoint = await _until_stopped(stop, _start(stack, host, port))
        _print_ready(host, port, endpoint, stack.key)
        return await _serve(stack, stop)
    except Stopped:
        return 0
    finally:
        await stack.stop()


async def _start(stack: DevStack, host: str, port: int) -> TemporalEndpoint:
    """Temporal, the workers, then the API, each recorded in the stack as soon as it runs."""
    settings = stack.settings
    # A server this state folder already runs stays after this command, like after any other;
    # one spawned here is stopped at the end, even when a signal interrupts its start.
    stack.owns_temporal = running_server_pid(settings.state_dir) is None
    endpoint = await ensure_dev_server(settings.state_dir, settings.temporal_namespace)
    client = await connect(endpoint.address, settings)
    # In-process workers end with the command: a node they were running is retried elsewhere.
    stack.workers = build_workers(client, settings, shutdown_grace_s=0)
    stack.worker_runs = [asyncio.create_task(worker.run()) for worker in stack.workers]
    stack.key, key_env = local_admin_key(settings)
    stack.api = _start_api(host, port, endpoint, key_env)
    await _wait_for_api(stack.api, host, port)
    return endpoint


async def _until_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T:
    """The work's result, or Stopped when a stop signal comes first (the work is cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Stopped
    return task.result()


async def _serve(stack: DevStack, stop: asyncio.Event) -> int:
    """Wait for a stop signal (0), or for the API or a worker to end on its own (1)."""
    assert stack.api is not None
    api_exit = asyncio.create_task(asyncio.to_thread(stack.api.wait))
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait(
        [stopping, api_exit, *stack.worker_runs], return_when=asyncio.FIRST_COMPLETED
    )
    stopping.cancel()
    if stopping in done:
        print("stopping…", flush=True)
        return 0
    if api_exit in done:
        print(f"error: the API exited with status {stack.api.returncode}", file=sys.stderr, flush=True)
    else:
        print("error: a worker stopped; see prodgraph.log in the state folder", file=sys.stderr, flush=True)
    return 1


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port someone already listens on, before anything starts."""
    with socket.socket() as probe:
        # As uvicorn binds: a port left in TIME_WAIT is free, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ProdgraphError(
                f"port {port} on {host} is in use ({error.strerror}); pick another with --port",
                field="port",
            ) from None


def _start_api(host: str, port: int, endpoint: TemporalEndpoint, key_env: dict[str, str]) -> subprocess.Popen:
    """The API as its own program (the CLI never imports `api`), on this Temporal server."""
    env = {
        **os.environ,
        **key_env,
        "PRODGRAPH_TEMPORAL_ADDRESS": endpoint.address,
        "PRODGRAPH_TEMPORAL_UI_URL": endpoint.ui_url or "",
    }
    # A session of its own: a terminal's Ctrl-C reaches this command only, which stops the API
    # in order (first, so no request reaches a stopping worker pool).
    return subprocess.Popen(
        [sys.executable, "-m", "api.app", "--host", host, "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _wait_for_api(api: subprocess.Popen, host: str, port: int) -> None:
    """Until the API answers its public OpenAPI document; fail if it exits or stays silent."""
    url = f"http://{host}:{port}/openapi.json"
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as http:
        while asyncio.get_running_loop().time() < deadline:
            if api.poll() is not None:
                raise ProdgraphError(f"the API exited with status {api.returncode} while starting")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise ProdgraphError(f"the API did not answer on {url} within {STARTUP_TIMEOUT_S:.0f}s")


def _terminate(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL after timeout_s; reaped either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _print_ready(host: str, port: int, endpoint: TemporalEndpoint, token: str) -> None:
    api = f"http://{host}:{port}"
    print(f"API:         {api}  (docs {api}/docs)", flush=True)
    print(f"Temporal UI: {endpoint.ui_url}  (frontend {endpoint.address})", flush=True)
    print(f"Admin key:   {token}  (send Authorization: Bearer <key>)", flush=True)
    print("Ctrl-C stops everything.", flush=True)
