"""`prodgraph run` and the on-call commands (`prodgraph runs ...`) as a user runs them.

The CLI runs as a subprocess connected to the test's dev server (PRODGRAPH_TEMPORAL_ADDRESS);
the workers run in this test process, on this test's own task queues: instant stand-ins under the
production module names, or the real modules where the STEP file is the point.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from conftest import REPO_ROOT, STEP_FIXTURES
from core.settings import Settings
from core.temporal import TemporalSession
from prodgraph import operations
from prodgraph.runs import graph_outcome
from registry.catalog import default_catalog
from registry.compiler import compile_plan
from registry.definition import WorkflowDefinition
from registry.starters import starter
from support.definitions import OPERATED, intake
from support.stand_ins import StandIns
from workflows.graph import GraphRunInput, GraphRunResult, GraphWorkflow, RunLabels
from workflows.order_line import OrderLineWorkflow

#: A real local file: the CLI stages it into its inputs; the stand-ins never read it.
STEP = str(STEP_FIXTURES / "red_cube_blue_cylinder.step")


@dataclass
class Done:
    """A finished CLI process."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The last line of stdout, parsed."""
        lines = self.stdout.strip().splitlines()
        assert lines, f"no output; stderr: {self.stderr}"
        return json.loads(lines[-1])


@dataclass
class Rig:
    """This test's queues, stand-ins, a session on them, and the environment a CLI process needs."""

    client: Client
    session: TemporalSession
    stand_ins: StandIns
    env: dict[str, str]

    async def cli(self, *args: str) -> Done:
        """Run `prodgraph ARGS` without blocking this loop (its workers answer the CLI)."""
        process = await asyncio.create_subprocess_exec(
            *self.command(*args),
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return Done(process.returncode, stdout.decode(), stderr.decode())

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "prodgraph.cli", *args]

    async def start(
        self, definition: WorkflowDefinition, labels: RunLabels | None = None
    ) -> WorkflowHandle[Any, GraphRunResult]:
        """Start a graph run of the definition on the stand-ins."""
        plan = compile_plan(definition, default_catalog())
        return await self.client.start_workflow(
            GraphWorkflow.run,
            GraphRunInput(
                plan=plan,
                entry={"step_path": STEP},
                task_queues=self.session.task_queues(),
                labels=labels or RunLabels(),
            ),
            id=f"cli-runs-{uuid.uuid4().hex[:10]}",
            task_queue=self.session.settings.default_queue,
        )

    async def awaiting(self, workflow_id: str, node_id: str) -> None:
        """Wait until the node waits for the operator."""
        handle = self.client.get_workflow_handle_for(GraphWorkflow.run, workflow_id)
        for _ in range(100):
            if (await handle.query(GraphWorkflow.progress))[node_id].status == "awaiting_operator":
                return
            await asyncio.sleep(0.1)
        pytest.fail(f"{node_id} never waited for the operator")

    async def listed(self, expected: str, **filters: Any) -> list[operations.RunSummary]:
        """list_runs with these filters once it shows the run (visibility is eventually consistent)."""
        for _ in range(50):
            found = await operations.list_runs(self.session, **filters)
            if expected in {run.workflow_id for run in found}:
                return found
            await asyncio.sleep(0.2)
        pytest.fail(f"{expected} never listed with {filters}")


def environment(client: Client, settings: Settings) -> dict[str, str]:
    """A CLI process's environment: this server, these queues, this state folder."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PRODGRAPH_STATE_DIR": str(settings.state_dir),
        "PRODGRAPH_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "PRODGRAPH_DEFAULT_QUEUE": settings.default_queue,
        "PRODGRAPH_CAD_QUEUE": settings.cad_queue,
        "PRODGRAPH_RENDER_QUEUE": settings.render_queue,
    }


@pytest.fixture
async def rig(temporal_env, tmp_path: Path) -> AsyncIterator[Rig]:
    """Stand-ins for every module and the graph workflows, on one queue of this test's own."""
    queue = f"cli-runs-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        state_dir=tmp_path / "state", default_queue=queue, cad_queue=queue, render_queue=queue
    )
    stand_ins = StandIns()
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[GraphWorkflow, OrderLineWorkflow],
        activities=stand_ins.activities(),
    ):
        yield Rig(
            client=temporal_env.client,
            session=TemporalSession(temporal_env.client, None, settings),
            stand_ins=stand_ins,
            env=environment(temporal_env.client, settings),
        )


async def failed_run(rig: Rig) -> tuple[str, str]:
    """A run whose `extract` failed for good: its workflow id and order line label."""
    rig.stand_ins.permanent = {"cad.extract_objects"}
    order_line = f"ol-{uuid.uuid4().hex[:8]}"
    handle = await rig.start(intake(), RunLabels(order_line=order_line))
    assert (await graph_outcome(handle)).status == "failed"
    rig.stand_ins.permanent = set()
    return handle.id, order_line


async def test_runs_list_finds_a_failed_run_by_status_and_by_family(rig: Rig):
    workflow_id, order_line = await failed_run(rig)
    await rig.listed(workflow_id, order_line=order_line, status="failed")
    await rig.listed(workflow_id, family="cad_file", status="failed", limit=200)

    by_status = await rig.cli("runs", "list", "--order-line", order_line, "--status", "failed", "--json")
    assert by_status.returncode == 0, by_status.stderr
    (run,) = by_status.json()
    assert run["workflow_id"] == workflow_id and run["status"] == "failed"
    assert run["search_attributes"]["ProdgraphFailedNode"] == "extract"
    assert run["search_attributes"]["ProdgraphFailedModule"] == "cad.extract_objects"

    by_family = await rig.cli(
        "runs", "list", "--family", "cad_file", "--status", "failed", "--limit", "200", "--json"
    )
    assert workflow_id in {run["workflow_id"] for run in by_family.json()}
    assert {run["status"] for run in by_family.json()} == {"failed"}

    none = await rig.cli("runs", "list", "--order-line", order_line, "--status", "completed", "--json")
    assert none.json() == []
    table = await rig.cli("runs", "list", "--order-line", order_line)
    assert workflow_id in table.stdout and "failed node: extract" in table.stdout


async def test_runs_show_gives_every_node_in_plan_order(rig: Rig):
    workflow_id, _ = await failed_run(rig)
    shown = await rig.cli("runs", "show", workflow_id, "--json")
    assert shown.returncode == 0, shown.stderr
    view = shown.json()
    assert {"workflow_id", "status", "temporal_ui", "search_attributes", "nodes"} <= set(view)
    assert view["status"] == "failed" and view["error"]["code"] == "invalid_cad_file"
    nodes = {node["id"]: node for node in view["nodes"]}
    assert [node["id"] for node in view["nodes"]][0] == "resolve"
    assert nodes["resolve"]["status"] == "completed" and nodes["resolve"]["attempts"] == 1
    assert nodes["extract"]["status"] == "failed"
    assert nodes["extract"]["error"]["code"] == "invalid_cad_file"
    assert nodes["extract"]["module"] == "cad.extract_objects"
    assert nodes["extract"]["params"] == {"include_assemblies": True}
    assert {"module", "status", "attempts", "error", "params", "param_sources"} <= set(nodes["glb"])

    table = await rig.cli("runs", "show", workflow_id)
    lines = table.stdout.splitlines()
    assert lines[1].startswith("[✓] resolve")
    assert any(line.startswith("[✗] extract") and "invalid_cad_file" in line for line in lines)
    assert "temporal:" in lines[-1]

    missing = await rig.cli("runs", "show", "no-such-run", "--json")
    assert missing.returncode == 1 and missing.json()["error"]["code"] == "not_found"


async def test_run_prints_the_repair_then_a_retry_with_params_completes_it(rig: Rig, tmp_path: Path):
    rig.stand_ins.fail = {"cad.extract_objects": 1}
    definition = tmp_path / "intake.json"
    definition.write_text(intake(**OPERATED).model_dump_json())
    follower = await asyncio.create_subprocess_exec(
        *rig.command("run", str(definition), STEP, "--json"),
        env=rig.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert follower.stderr is not None
    printed: list[str] = []
    while not any("prodgraph runs retry" in line for line in printed):
        line = (await asyncio.wait_for(follower.stderr.readline(), timeout=60)).decode()
        assert line, f"the run ended without waiting: {printed}"
        printed.append(line.strip())
    retry_command = next(line for line in printed if line.startswith("prodgraph runs retry"))
    workflow_id = retry_command.split()[3]
    assert retry_command == f"prodgraph runs retry {workflow_id} extract"
    assert any("extract: awaiting_operator  flaky" in line for line in printed)
    assert f"prodgraph runs skip {workflow_id} extract" in (await follower.stderr.readline()).decode()

    shown = (await rig.cli("runs", "show", workflow_id, "--json")).json()
    assert shown["status"] == "awaiting_operator"
    assert {node["id"]: node["status"] for node in shown["nodes"]}["extract"] == "awaiting_operator"

    refused = await rig.cli("runs", "retry", workflow_id, "no-such-node", "--json")
    assert refused.returncode == 1
    assert refused.json()["status"] == "failed"
    assert refused.json()["error"]["code"] == "operator_action_refused"
    assert "unknown_node" in refused.json()["error"]["message"]
    bad = await rig.cli(
        "runs", "retry", workflow_id, "extract", "--param", "include_assemblies=maybe", "--json"
    )
    assert bad.returncode == 1 and "invalid_params" in bad.json()["error"]["message"]

    retried = await rig.cli(
        "runs",
        "retry",
        workflow_id,
        "extract",
        "--param",
        "include_assemblies=false",
        "--timeout",
        "30",
        "--json",
    )
    assert retried.returncode == 0, retried.stdout + retried.stderr
    node = retried.json()["node"]
    assert node["params"]["include_assemblies"] is False
    assert node["param_sources"]["include_assemblies"] == "operator"
    assert node["timeout_s"] == 30

    stdout, stderr = await asyncio.wait_for(follower.communicate(), timeout=60)
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    assert follower.returncode == 0, stderr.decode()
    assert report["status"] == "completed" and report["workflow_id"] == workflow_id
    assert rig.stand_ins.inputs["cad.extract_objects"][-1]["params"]["include_assemblies"] is False


async def test_skip_takes_the_operators_output(rig: Rig, tmp_path: Path):
    rig.stand_ins.fail = {"cad.extract_objects": 1}
    handle = await rig.start(intake(**OPERATED))
    await rig.awaiting(handle.id, "extract")
    output = {"objects": [{"name": "by-hand", "path": "by-hand", "kind": "part"}], "source_unit": "mm"}
    (tmp_path / "objects.json").write_text(json.dumps(output))

    off_contract = tmp_path / "bad.json"
    off_contract.write_text(json.dumps({"objects": "none"}))
    refused = await rig.cli("runs", "skip", handle.id, "extract", "--output", str(off_contract), "--json")
    assert refused.returncode == 1 and "invalid_output" in refused.json()["error"]["message"]

    skipped = await rig.cli("runs", "skip", handle.id, "extract", "--output", str(tmp_path / "objects.json"))
    assert skipped.returncode == 0, skipped.stderr
    assert "skip: node extract" in skipped.stdout
    result = await graph_outcome(handle)
    assert result.status == "completed"
    assert result.nodes["extract"].status == "skipped"
    assert result.outputs["extract"] == output


async def test_abort_fails_the_run_as_aborted(rig: Rig):
    rig.stand_ins.fail = {"cad.extract_objects": 1}
    handle = await rig.start(intake(**OPERATED))
    await rig.awaiting(handle.id, "extract")
    aborted = await rig.cli("runs", "abort", handle.id, "--reason", "customer withdrew the order", "--json")
    assert aborted.returncode == 0, aborted.stderr
    assert aborted.json() == {"workflow_id": handle.id, "action": "abort", "status": "aborting"}
    result = await graph_outcome(handle)
    assert result.status == "failed" and result.error is not None
    assert result.error.code == "aborted" and "customer withdrew" in result.error.message
    assert result.nodes["extract"].status == "cancelled"

    again = await rig.cli("runs", "abort", handle.id, "--reason", "twice", "--json")
    assert again.returncode == 1 and again.json()["error"]["code"] == "operator_action_refused"


async def test_rerun_reuses_what_completed_and_prints_the_new_id(rig: Rig):
    workflow_id, _ = await failed_run(rig)
    rig.stand_ins.fail = {"cad.extract_objects": 1}
    still_running = await rig.start(intake(**OPERATED))
    await rig.awaiting(still_running.id, "extract")

    rerun = await rig.cli(
        "runs", "rerun", workflow_id, "--param", "extract.include_assemblies=false", "--json"
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    document = rerun.json()
    assert document["rerun_of"] == workflow_id and document["workflow_id"] != workflow_id
    new = rig.client.get_workflow_handle_for(GraphWorkflow.run, document["workflow_id"])
    result = await asyncio.wait_for(graph_outcome(new), timeout=30)
    assert result.status == "completed", result.error
    assert result.nodes["resolve"].reused and not result.nodes["extract"].reused
    assert result.nodes["extract"].params["include_assemblies"] is False
    assert rig.stand_ins.calls["cad.resolve_step_path"] == 2  # the failed run, the open one: not the rerun

    plain = await rig.cli("runs", "rerun", workflow_id, "--from", "glb")
    new_id = plain.stdout.splitlines()[0]
    assert new_id.startswith(f"{workflow_id}-rerun-")
    again = await graph_outcome(rig.client.get_workflow_handle_for(GraphWorkflow.run, new_id))
    assert again.status == "completed" and not again.nodes["glb"].reused

    refused = await rig.cli("runs", "rerun", still_running.id, "--json")
    assert refused.returncode == 1 and "run_still_running" in refused.json()["error"]["message"]
    await still_running.terminate()


async def test_run_detached_starts_an_order_line_definition_after_its_intake(rig: Rig, tmp_path: Path):
    definition = tmp_path / "still.json"
    definition.write_text(starter("order-still-v1").model_dump_json())
    started = await rig.cli("run", str(definition), STEP, "--detach", "--param", "still.samples=4", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    launched = started.json()
    assert launched["status"] == "running"
    intake_id, order_id = launched["workflow_ids"]
    assert launched["workflow_id"] == order_id
    intake = rig.client.get_workflow_handle_for(GraphWorkflow.run, intake_id)
    assert (await graph_outcome(intake)).status == "completed"
    result = await graph_outcome(rig.client.get_workflow_handle_for(GraphWorkflow.run, order_id))
    assert result.status == "completed", result.error
    assert result.nodes["still"].params["samples"] == 4
    assert result.nodes["still"].param_sources["samples"] == "node_param"
    summary = (await rig.listed(order_id, family="order_line", status="completed", limit=200))[0]
    assert summary.search_attributes["ProdgraphOrderLine"].startswith("cli-")

    unknown = await rig.cli("run", str(definition), STEP, "--param", "nope.samples=4", "--json")
    assert unknown.returncode == 1 and unknown.json()["error"]["code"] == "invalid_definition"


@pytest.mark.e2e
@pytest.mark.occt
async def test_run_a_cad_file_definition_on_the_red_cube(session, tmp_path: Path, step_fixture):
    definition = tmp_path / "intake.json"
    definition.write_text(starter("cad-intake-v1").model_dump_json())
    env = environment(session.client, session.settings)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prodgraph.cli",
        "run",
        str(definition),
        str(step_fixture("red_cube_blue_cylinder.step")),
        "--param",
        "glb.relative_deflection=0.01",
        "--out",
        str(tmp_path / "out"),
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=180)
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    assert process.returncode == 0, (report, stderr.decode())
    assert report["status"] == "completed"
    assert [artifact["role"] for artifact in report["artifacts"]] == ["glb"]
    assert Path(report["artifacts"][0]["path"]).stat().st_size > 0
    assert {item["kind"] for item in report["objects"]} >= {"part"} and report["bbox"] is not None
    assert "[✓]" in stderr.decode() and "glb: completed" in stderr.decode()
    view = await operations.show_run(session, report["workflow_id"])
    assert view.status == "completed"
    assert {node.id: node.params for node in view.nodes}["glb"]["relative_deflection"] == 0.01
