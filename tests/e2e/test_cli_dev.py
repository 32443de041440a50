"""`prodgraph dev` for real: Temporal, every worker and the API come up from one command, answer,
and all of it is gone after SIGTERM or SIGINT; a port in use starts nothing."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from conftest import REPO_ROOT
from core.settings import Settings
from prodgraph.embedded import free_port
from support.processes import PROC, alive, parent_of, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
STARTUP_S = 180.0


def dev_command(state_dir: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """`prodgraph dev --port PORT` on its own state folder and the worktree's code."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PRODGRAPH_STATE_DIR": str(state_dir)}
    env.pop("PRODGRAPH_TEMPORAL_ADDRESS", None)
    return [sys.executable, "-m", "prodgraph.cli", "dev", "--port", str(port)], env


class Lines:
    """A process's stdout, read on a thread, so a test can wait for a line without blocking on it."""

    def __init__(self, process: subprocess.Popen[str]):
        self.seen: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        threading.Thread(target=lambda: self.seen.extend(stream), daemon=True).start()

    def field(self, label: str) -> str:
        """The first word after `label:` on a printed line, once it is printed."""

        def find() -> str | None:
            for line in self.seen:
                if match := re.match(rf"{label}:\s+(\S+)", line):
                    return match.group(1)
            return None

        return wait_for(find, STARTUP_S, every_s=0.2)


def descendants(pid: int) -> set[int]:
    """Every live process below pid (children, their children, …)."""
    pids = [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]
    parents = {child: parent_of(child) for child in pids}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {child for child in found if alive(child)}


def running_with(text: str) -> list[int]:
    """Live processes whose command line mentions text."""
    found = []
    for entry in PROC.iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if alive(pid) and pid != os.getpid()]


async def pollers(address: str, queue: str, kind: TaskQueueType.ValueType) -> int:
    """How many workers poll this task queue for this kind of task."""
    client = await Client.connect(address)
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=queue), task_queue_type=kind)
    )
    return len(answer.pollers)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_dev_serves_everything_and_stops_all_it_started(tmp_path: Path, stop_signal: signal.Signals):
    state = tmp_path / "state"
    port = free_port()
    command, env = dev_command(state, port)
    dev = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        printed = Lines(dev)
        api, ui, key = printed.field("API"), printed.field("Temporal UI"), printed.field("Admin key")
        frontend = re.search(r"frontend (\S+)\)", "".join(printed.seen))
        assert frontend, printed.seen
        assert api == f"http://127.0.0.1:{port}"

        listed = httpx.get(f"{api}/api/output-types", headers={"Authorization": f"Bearer {key}"})
        assert listed.status_code == 200 and {"studio-still"} <= {t["slug"] for t in listed.json()}
        assert httpx.get(f"{api}/api/output-types").status_code == 401
        keys = httpx.get(f"{api}/api/keys", headers={"Authorization": f"Bearer {key}"})
        assert keys.status_code == 200, keys.text  # an admin key: only admins list keys
        assert httpx.get(ui, timeout=30).status_code == 200

        queues = Settings().task_queues()  # the dev command's queues: the defaults
        activity, workflow = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        assert asyncio.run(pollers(frontend.group(1), queues["default"], workflow)) > 0
        for queue in queues.values():
            assert asyncio.run(pollers(frontend.group(1), queue, activity)) > 0, queue

        started = descendants(dev.pid)
        assert len(started) >= 2, started  # at least the Temporal server and the API
        dev.send_signal(stop_signal)
        assert dev.wait(60) == 0
        assert not {pid for pid in started if alive(pid)}
        assert not running_with(str(state)) and not running_with(f"--port {port}")
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()


def test_a_port_in_use_is_refused_and_starts_nothing(tmp_path: Path):
    state = tmp_path / "state"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command, env = dev_command(state, port)
        started = time.monotonic()
        done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"port {port}" in done.stderr and "in use" in done.stderr and "--port" in done.stderr
    assert time.monotonic() - started < 60
    assert not (state / "temporal-server.json").exists() and not running_with(str(state))


def test_a_temporal_server_already_running_is_reused_and_left_running(tmp_path: Path):
    state = tmp_path / "state"
    port = free_port()
    command, env = dev_command(state, port)
    server = [sys.executable, "-m", "prodgraph.cli", "server"]
    subprocess.run([*server, "start"], env=env, cwd=REPO_ROOT, check=True, timeout=120, capture_output=True)
    try:
        before = running_with(str(state))
        assert len(before) == 1, before
        dev = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        try:
            Lines(dev).field("Admin key")
            dev.send_signal(signal.SIGTERM)
            assert dev.wait(60) == 0
        finally:
            if dev.poll() is None:
                dev.kill()
                dev.wait()
        assert running_with(str(state)) == before  # not this command's to stop
    finally:
        subprocess.run([*server, "stop"], env=env, cwd=REPO_ROOT, timeout=60, capture_output=True)
        wait_for(lambda: not running_with(str(state)), 30)
