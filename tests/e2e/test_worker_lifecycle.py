"""A deployed worker (`python worker.py`) stops gracefully on SIGTERM and leaves nothing behind
when it is killed outright."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from activities.child_process import jobs_root
from conftest import REPO_ROOT
from core.settings import Settings
from core.temporal import TemporalSession
from prodgraph.runs import run_plan
from registry.catalog import default_catalog
from registry.compiler import compile_intake, compile_plan
from registry.families import order_line_entry
from registry.starters import INTAKE_STARTER, starter
from support.processes import alive, job_children, until
from workflows.graph import GraphRunInput, GraphRunResult, GraphWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.occt, pytest.mark.timeout(300)]

STEP_JOB = "activities.jobs.step_job"
BLENDER_JOB = "activities.jobs.blender_job"
#: Small enough to finish in seconds.
QUICK_RENDER = {"width": 160, "height": 120, "samples": 4}
#: Large enough to be still rendering when the test stops the worker.
SLOW_RENDER = {"width": 960, "height": 720, "samples": 256}
ACTIVITY_ENDINGS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "canceled",
}


class DeployedWorkers:
    """Starts `python worker.py` processes on this test's queues; kills what is left at the end."""

    def __init__(self, temporal_env: Any, settings: Settings, logs: Path):
        self.env = {
            **os.environ,
            "PRODGRAPH_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
            "PRODGRAPH_STATE_DIR": str(settings.state_dir),
            "PRODGRAPH_DEFAULT_QUEUE": settings.default_queue,
            "PRODGRAPH_CAD_QUEUE": settings.cad_queue,
            "PRODGRAPH_RENDER_QUEUE": settings.render_queue,
            "PRODGRAPH_INPUT_ROOTS": json.dumps([str(root) for root in settings.input_roots]),
        }
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, grace_s: float = 30.0) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{len(self.started)}.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "worker.py", "--queues", "default,cad,render"],
            cwd=REPO_ROOT,
            env={**self.env, "PRODGRAPH_WORKER_SHUTDOWN_GRACE_S": str(grace_s)},
            start_new_session=True,  # its own process group, as under a supervisor
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(worker)
        return worker

    def log(self, worker: subprocess.Popen[bytes]) -> str:
        return (self.logs / f"worker-{self.started.index(worker)}.log").read_text(errors="replace")

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()


@pytest.fixture
def workers(temporal_env, settings, tmp_path) -> Iterator[DeployedWorkers]:
    deployed = DeployedWorkers(temporal_env, settings, tmp_path)
    yield deployed
    deployed.kill_all()


@pytest.fixture
def session(temporal_env, settings) -> TemporalSession:
    """A session on the shared dev server that relies on the deployed workers (none in-process)."""
    return TemporalSession(temporal_env.client, None, settings)


async def start_graph(
    session: TemporalSession, plan: Any, entry: dict[str, Any]
) -> WorkflowHandle[Any, GraphRunResult]:
    return await session.client.start_workflow(
        GraphWorkflow.run,
        GraphRunInput(plan=plan, entry=entry, task_queues=session.task_queues()),
        id=f"{plan.workflow_id}-{uuid.uuid4().hex[:12]}",
        task_queue=session.settings.default_queue,
    )


def intake_plan() -> Any:
    return compile_intake(starter(INTAKE_STARTER), default_catalog())


async def intake_entry(session: TemporalSession, step: Path) -> dict[str, Any]:
    """Run the intake on the deployed workers; the order_line entry its outputs give."""
    _, result = await run_plan(session, intake_plan(), {"step_path": str(step)})
    assert result.status == "completed", result.error
    return order_line_entry(result.outputs, f"test-{uuid.uuid4().hex[:8]}")


def still_plan(size: dict[str, int]) -> Any:
    return compile_plan(starter("order-still-v1"), default_catalog(), invocation_params=size)


async def activity_attempts(handle: WorkflowHandle) -> list[tuple[str, str, Any]]:
    """(activity type, how it ended, the ending event's attributes) of every finished attempt."""
    scheduled: dict[int, str] = {}
    attempts = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type in ACTIVITY_ENDINGS:
            how = ACTIVITY_ENDINGS[event.event_type]
            attributes = getattr(event, f"activity_task_{how}_event_attributes")
            attempts.append((scheduled[attributes.scheduled_event_id], how, attributes))
    return attempts


async def exit_code(worker: subprocess.Popen[bytes], within_s: float) -> int:
    return await asyncio.to_thread(worker.wait, timeout=within_s)


async def test_sigterm_lets_the_in_flight_activity_finish_then_exits_0(workers, session, step_fixture):
    grace_s = 30.0
    worker = workers.start(grace_s=grace_s)
    handle = await start_graph(
        session, intake_plan(), {"step_path": str(step_fixture("red_cube_blue_cylinder.step"))}
    )
    children = await until(lambda: job_children(worker.pid, STEP_JOB), timeout_s=90)
    [folder] = jobs_root().glob(f"{worker.pid}-*")

    os.kill(worker.pid, signal.SIGTERM)
    assert await exit_code(worker, within_s=grace_s + 15) == 0, workers.log(worker)
    assert not any(alive(pid) for pid in children)
    assert not folder.exists()  # a worker that stops cleanly takes its job folders with it
    endings = [(name, how) for name, how, _ in await activity_attempts(handle)]
    assert endings and all(how == "completed" for _, how in endings), endings
    assert "SIGTERM: stopping" in workers.log(worker)

    # Nothing was lost: a fresh worker takes the run up where the stopped one left it.
    successor = workers.start()
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.status == "completed", result.error
    os.kill(successor.pid, signal.SIGTERM)
    assert await exit_code(successor, within_s=45) == 0, workers.log(successor)


@pytest.mark.blender
async def test_sigterm_past_the_grace_cancels_the_activity_and_kills_its_child(
    workers, session, step_fixture
):
    worker = workers.start(grace_s=1.0)
    entry = await intake_entry(session, step_fixture("red_cube_blue_cylinder.step"))
    handle = await start_graph(session, still_plan(SLOW_RENDER), entry)
    try:
        children = await until(lambda: job_children(worker.pid, BLENDER_JOB), timeout_s=90)

        os.kill(worker.pid, signal.SIGTERM)
        assert await exit_code(worker, within_s=30) == 0, workers.log(worker)
        assert not any(alive(pid) for pid in children)
        # Cancelled by the shutdown, the attempt fails retryable: the run goes on elsewhere.
        [failure] = [
            attributes.failure
            for name, how, attributes in await activity_attempts(handle)
            if (name, how) == ("render.blender_still", "failed")
        ]
        assert failure.application_failure_info.type == "WorkerShutdown", failure
        assert not failure.application_failure_info.non_retryable
    finally:
        await handle.terminate("test over")


@pytest.mark.blender
async def test_a_worker_killed_with_sigkill_leaves_no_child_job_running(workers, session, step_fixture):
    worker = workers.start()
    entry = await intake_entry(session, step_fixture("red_cube_blue_cylinder.step"))
    handle = await start_graph(session, still_plan(SLOW_RENDER), entry)
    try:
        children = await until(lambda: job_children(worker.pid, BLENDER_JOB), timeout_s=90)
        [folder] = jobs_root().glob(f"{worker.pid}-*")

        os.kill(worker.pid, signal.SIGKILL)  # the leader only: its children must die with it
        assert await exit_code(worker, within_s=10) == -signal.SIGKILL
        await until(lambda: not any(alive(pid) for pid in children), timeout_s=5)

        # The dead worker's job folder is gone once another worker has started on this host.
        assert folder.is_dir()
        successor = workers.start()
        await until(lambda: not folder.exists(), timeout_s=60)
        os.kill(successor.pid, signal.SIGTERM)
    finally:
        await handle.terminate("test over")


@pytest.mark.blender
async def test_a_second_sigterm_exits_at_once_and_the_child_dies_with_the_worker(
    workers, session, step_fixture
):
    worker = workers.start(grace_s=120.0)
    entry = await intake_entry(session, step_fixture("red_cube_blue_cylinder.step"))
    handle = await start_graph(session, still_plan(SLOW_RENDER), entry)
    try:
        children = await until(lambda: job_children(worker.pid, BLENDER_JOB), timeout_s=90)

        os.kill(worker.pid, signal.SIGTERM)
        await until(lambda: "SIGTERM: stopping" in workers.log(worker), timeout_s=10)
        os.kill(worker.pid, signal.SIGTERM)  # the operator will not wait for the grace
        assert await exit_code(worker, within_s=10) == 128 + signal.SIGTERM, workers.log(worker)
        await until(lambda: not any(alive(pid) for pid in children), timeout_s=5)
    finally:
        await handle.terminate("test over")
