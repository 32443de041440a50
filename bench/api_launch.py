"""Benchmark: launch latency of `POST /api/order-lines` for 1 client against 50 concurrent clients.

One run starts an embedded Temporal dev server (in a temporary state folder, as the CLI runs it)
and the real API as its own process (`python -m api.app`, uvicorn, SQLite in the same folder),
then times launches:

- 1 client: one launch at a time, each with a distinct order line id;
- 50 clients: 50 concurrent clients, each launching its own order lines one after another.

A launch dispatches through the seeded `studio-still` output type (database reads), runs the
preflight checks (Temporal is asked whether workers poll every queue) and starts the order line's
workflow. Workers do poll every queue, but every module holds its task until the bench ends, so
nothing renders and the runs stay at their first step. The CAD file is uploaded once. One
unmeasured warm-up launch goes first. The same two loads then start workflows straight on the dev
server, with no API (a payload of a launch's size): what Temporal alone costs, so the API's own
share shows.
Prints p50 and p99 of each side by side, the target (the 50-client p99 under 1 s) and whether it
is met; the last line is `p99 50_clients_ms VALUE target met|missed`.

Usage: .venv/bin/python bench/api_launch.py [--launches N] [--clients C] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.settings import Settings  # noqa: E402
from core.temporal import connect  # noqa: E402
from prodgraph.embedded import embedded_temporal, free_port  # noqa: E402
from registry.catalog import default_catalog  # noqa: E402
from workflows.graph import GraphWorkflow  # noqa: E402
from workflows.legacy import LegacyPipelineWorkflow  # noqa: E402
from workflows.order_line import OrderLineWorkflow  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
STEP = REPO / "examples" / "red_cube_blue_cylinder.step"
TOKEN = "bench-token-0123456789abcdef"
TARGET_P99_S = 1.0
#: About the size of an order line workflow's input (its plan, order and memo), for direct starts.
DIRECT_PAYLOAD = {"padding": "x" * 6000}
WIDTHS = (12, 12, 18, 12)
START_LIMIT_S = 60.0


def body(order_line_id: str, cad_file_id: str) -> dict[str, Any]:
    """A launch of one order line of the seeded studio-still output type."""
    return {
        "output_type": "studio-still",
        "order_line_id": order_line_id,
        "cad_file_id": cad_file_id,
        "invocation_params": {"width": 160, "height": 120, "samples": 4},
    }


def holding_workers(client: Client, settings: Settings) -> list[Worker]:
    """Workers on every queue whose modules hold their task until cancelled: preflight sees
    pollers, the runs start, and nothing renders while the bench measures."""

    def holding(key: str) -> Callable[..., Awaitable[None]]:
        @activity.defn(name=key)
        async def hold(_: Any) -> None:
            await asyncio.Event().wait()

        return hold

    modules = [holding(key) for key in default_catalog().specs]
    return [
        Worker(
            client,
            task_queue=queue,
            workflows=[OrderLineWorkflow, GraphWorkflow, LegacyPipelineWorkflow],
            activities=modules,
            max_concurrent_activities=1,
        )
        for queue in settings.task_queues().values()
    ]


async def upload(http: httpx.AsyncClient) -> str:
    """The bench's CAD file, uploaded once: its id."""
    answer = await http.post("/api/cad-files", files={"file": (STEP.name, STEP.read_bytes())})
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"upload answered {answer.status_code}: {answer.text}")
    return str(answer.json()["id"])


def token_for(prefix: str) -> str:
    """The key of one client (clients are named by the prefix of their order line ids)."""
    return f"bench-token-{prefix}-0123456789abcdef"


def client_prefixes(clients: int) -> list[str]:
    """Every client's name: the warm-up, the single client, and the concurrent ones."""
    return ["warm-up", "one", *(f"c{index}" for index in range(clients))]


def start_api(
    state_dir: Path, temporal_address: str, port: int, prefixes: list[str]
) -> subprocess.Popen[bytes]:
    """The API as its own process, as `prodgraph serve` runs it."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PRODGRAPH_STATE_DIR": str(state_dir),
        "PRODGRAPH_TEMPORAL_ADDRESS": temporal_address,
        # One key per client, as the rate limit is per key; one owner, so they share the file.
        "PRODGRAPH_API_KEYS": json.dumps({token: "bench" for token in [TOKEN, *map(token_for, prefixes)]}),
    }
    env.pop("PRODGRAPH_DATABASE_URL", None)
    log = (state_dir / "api.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "api.app", "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=log
    )


async def wait_until_up(http: httpx.AsyncClient, api: subprocess.Popen[bytes], log: Path) -> None:
    """Return once the API answers; fail with its log if it exits or never does."""
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise RuntimeError(f"the API exited ({api.returncode}):\n{log.read_text()}")
        try:
            if (await http.get("/openapi.json")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the API did not answer within {START_LIMIT_S:g} s:\n{log.read_text()}")


async def launch(http: httpx.AsyncClient, prefix: str, cad_file_id: str) -> float:
    """Seconds one launch of a new order line takes; fails unless it is accepted."""
    started = time.perf_counter()
    answer = await http.post(
        "/api/order-lines",
        json=body(f"{prefix}-{uuid.uuid4().hex[:12]}", cad_file_id),
        headers={"Authorization": f"Bearer {token_for(prefix)}"},
    )
    elapsed = time.perf_counter() - started
    if answer.status_code != 202:
        raise RuntimeError(f"launch answered {answer.status_code}: {answer.text}")
    return elapsed


async def one_client(start: Callable[[str], Awaitable[float]], launches: int, prefix: str) -> list[float]:
    """Latencies of one client launching one order line after another."""
    return [await start(prefix) for _ in range(launches)]


async def loads(start: Callable[[str], Awaitable[float]], launches: int, clients: int) -> list[list[float]]:
    """Latencies of 1 client, then of `clients` concurrent ones, each launching `launches` times."""
    single = await one_client(start, launches, "one")
    many = await asyncio.gather(*(one_client(start, launches, f"c{index}") for index in range(clients)))
    return [single, [latency for client in many for latency in client]]


async def measure(launches: int, clients: int) -> dict[str, list[float]]:
    """Latencies per column: through the API and straight on Temporal, 1 client and `clients`."""
    state_dir = Path(tempfile.mkdtemp(prefix="prodgraph-bench-api-"))
    api = None
    try:
        async with embedded_temporal(state_dir / "temporal") as endpoint, AsyncExitStack() as workers:
            client = await connect(endpoint.address, Settings(state_dir=state_dir))
            for worker in holding_workers(client, Settings(state_dir=state_dir)):
                await workers.enter_async_context(worker)
            port = free_port(8000)
            api = start_api(state_dir, endpoint.address, port, client_prefixes(clients))
            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=60,
                limits=limits,
            ) as http:
                await wait_until_up(http, api, state_dir / "api.log")
                cad_file = await upload(http)
                await launch(http, "warm-up", cad_file)  # first use: the API connects to Temporal

                async def through_api(prefix: str) -> float:
                    return await launch(http, prefix, cad_file)

                api_one, api_many = await loads(through_api, launches, clients)

            async def direct(prefix: str) -> float:
                started = time.perf_counter()
                await client.start_workflow(
                    "BenchNothing", DIRECT_PAYLOAD, id=f"{prefix}-{uuid.uuid4().hex[:12]}", task_queue="bench"
                )
                return time.perf_counter() - started

            direct_one, direct_many = await loads(direct, launches, clients)
        return {
            "api 1": api_one,
            f"api {clients}": api_many,
            "temporal 1": direct_one,
            f"temporal {clients}": direct_many,
        }
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        shutil.rmtree(state_dir, ignore_errors=True)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of some values."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))  # ceil, at least the first
    return ordered[int(rank) - 1]


def summary(clients: int, latencies: dict[str, list[float]]) -> dict[str, Any]:
    """p50 and p99 in ms per column, and whether the target is met."""
    columns = {
        key: {
            "launches": len(values),
            "p50_ms": percentile(values, 0.50) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000,
            "max_ms": max(values) * 1000,
        }
        for key, values in latencies.items()
    }
    p99 = columns[f"api {clients}"]["p99_ms"]
    return {
        "clients": clients,
        "columns": columns,
        "target_p99_ms": TARGET_P99_S * 1000,
        "target_met": p99 < TARGET_P99_S * 1000,
    }


def report(result: dict[str, Any]) -> None:
    """The side-by-side table and the target."""
    clients = result["clients"]
    columns = result["columns"]
    keys = ["api 1", f"api {clients}", "temporal 1", f"temporal {clients}"]
    print(
        "POST /api/order-lines launch latency: the API in its own process (uvicorn, SQLite) on an "
        "embedded Temporal dev server, workers holding every task; then start_workflow straight on it"
    )
    print(f"{'':<10}{'API':>12}{'':>12}{'Temporal alone':>18}{'':>12}")
    print(
        f"{'clients':<10}"
        + "".join(f"{key.split()[1]:>{width}}" for key, width in zip(keys, WIDTHS, strict=True))
    )
    for label, field, form in (
        ("launches", "launches", "d"),
        ("p50 ms", "p50_ms", ".1f"),
        ("p99 ms", "p99_ms", ".1f"),
        ("max ms", "max_ms", ".1f"),
    ):
        cells = [format(columns[key][field], form) for key in keys]
        print(f"{label:<10}" + "".join(f"{cell:>{width}}" for cell, width in zip(cells, WIDTHS, strict=True)))
    verdict = "met" if result["target_met"] else "missed"
    print(f"target: {clients}-client p99 through the API under {result['target_p99_ms']:.0f} ms: {verdict}")


def main() -> None:
    """Parse options, measure, print; the last line is for scripts."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--launches", type=int, default=10, help="launches per client (default 10)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON object")
    args = parser.parse_args()
    if args.launches < 1 or args.clients < 1:
        parser.error("--launches and --clients must be at least 1")
    try:
        latencies = asyncio.run(measure(args.launches, args.clients))
    except Exception:  # noqa: BLE001 - reported, then the process exits 1 at once
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    result = summary(args.clients, latencies)
    report(result)
    if args.json:
        print(json.dumps({**result, "latencies_s": latencies}))
    p99 = result["columns"][f"api {args.clients}"]["p99_ms"]
    print(f"p99 {args.clients}_clients_ms {p99:.1f} target {'met' if result['target_met'] else 'missed'}")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # as the other benchmarks: do not wait on the SDK's leftover threads
