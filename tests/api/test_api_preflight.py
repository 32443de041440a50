"""Preflight over HTTP and against a real Temporal dev server: every check passing with workers
polling, each check failing on its own, and a launch that fails one refused with nothing started.

The CAD-file check is exercised on the use case with CadFileRecord rows (the launch body names a
server path until uploads name files by id) and real intake runs: completed, running, failed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from api_keys import TEST_OWNER, authorized, with_test_key
from fastapi.testclient import TestClient
from sqlmodel import Session, SQLModel
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from conftest import STEP_FIXTURES
from core.settings import Settings
from core.temporal import TemporalSession
from persistence.engine import make_engine
from persistence.tables import CadFileRecord
from prodgraph.cad_files import find_own_file
from prodgraph.orders import order_line_workflow_id
from prodgraph.preflight import check_cad_file
from prodgraph.runs import run_plan, start_plan
from registry.catalog import default_catalog
from registry.compiler import compile_intake
from registry.starters import INTAKE_STARTER, starter
from support.pollers import until_polled

pytestmark = [pytest.mark.e2e]
SMALL = {"width": 160, "height": 120, "samples": 4}
CHECKS = ["cad_file", "output_type", "workflow", "materials", "workers", "render_budget"]


def body(uploaded: str, **changes: Any) -> dict[str, Any]:
    """An order line of studio-still for a bearing, small, on this uploaded file, with changes."""
    return {
        "output_type": "studio-still",
        "order_line_id": f"ol-{uuid.uuid4().hex[:8]}",
        "cad_file_id": uploaded,
        "product_category": "bearings",
        "invocation_params": SMALL,
    } | changes


def statuses(answer: dict[str, Any]) -> dict[str, str]:
    """Check name → status of a preflight answer (or of the checks in a 422's error)."""
    return {item["name"]: item["status"] for item in answer["checks"]}


async def started(client: Client, workflow_id: str) -> bool:
    """Whether Temporal has a workflow with this id."""
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        assert error.status == RPCStatusCode.NOT_FOUND, error
        return False
    return True


@pytest.fixture
def api(temporal_env, settings: Settings) -> Iterator[TestClient]:
    """The API on the dev server with this test's queues (workers poll them only when the test
    also takes the `session` fixture)."""
    address = temporal_env.client.service_client.config.target_host
    app_settings = with_test_key(settings.model_copy(update={"temporal_address": address}))
    with authorized(create_app(app_settings)) as client:
        yield client


@pytest.fixture
def uploaded(api: TestClient) -> str:
    """The red cube and blue cylinder, uploaded (its intake starts; workers may not poll)."""
    part = STEP_FIXTURES / "red_cube_blue_cylinder.step"
    uploaded = api.post("/api/cad-files", files={"file": (part.name, part.read_bytes())})
    assert uploaded.status_code == 201, uploaded.json()
    return uploaded.json()["id"]


# --- over HTTP --------------------------------------------------------------------------------


async def test_every_check_passes_with_workers_polling(
    api: TestClient, session: TemporalSession, uploaded: str
) -> None:
    await until_polled(session)
    answer = api.post("/api/order-lines/preflight", json=body(uploaded))
    assert answer.status_code == 200, answer.json()
    report = answer.json()
    assert report["ok"] is True
    assert [item["name"] for item in report["checks"]] == CHECKS
    # The upload started its intake: running (a warning) or completed by now.
    assert statuses(report) | {"cad_file": "pass"} == dict.fromkeys(CHECKS, "pass")
    assert statuses(report)["cad_file"] in ("pass", "warn")
    reasons = {item["name"]: item["reason"] for item in report["checks"]}
    assert session.settings.render_queue in reasons["workers"]
    assert "render.blender_still" in reasons["render_budget"]


async def test_without_workers_the_check_fails_and_the_launch_starts_nothing(
    api: TestClient, temporal_env, settings: Settings, uploaded: str
) -> None:
    order = body(uploaded)
    report = api.post("/api/order-lines/preflight", json=order).json()
    assert report["ok"] is False
    workers = next(item for item in report["checks"] if item["name"] == "workers")
    assert workers["status"] == "fail"
    assert f"no worker polls {settings.default_queue!r} for workflow tasks" in workers["reason"]
    assert f"{settings.render_queue!r} for activity tasks (render.blender_still)" in workers["reason"]

    launched = api.post("/api/order-lines", json=order)
    assert launched.status_code == 422
    error = launched.json()["error"]
    assert error["code"] == "preflight_failed"
    assert statuses(error)["workers"] == "fail" and statuses(error)["output_type"] == "pass"
    assert not await started(
        temporal_env.client, order_line_workflow_id(TEST_OWNER, "studio-still", order["order_line_id"])
    )


@pytest.mark.parametrize(
    ("changes", "failing", "words"),
    [
        ({"product_category": "toys"}, "output_type", "not sold for product category 'toys'"),
        ({"invocation_params": {**SMALL, "width": 0}}, "workflow", "width"),
        ({"invocation_params": {**SMALL, "material_override": "rubber"}}, "materials", "'rubber' outside"),
        (
            {"invocation_params": {"width": 16384, "height": 16384, "samples": 65536}},
            "render_budget",
            "over the render budget",
        ),
    ],
    ids=["output_type", "workflow", "materials", "render_budget"],
)
async def test_each_failing_check_is_answered_and_refuses_the_launch(
    api: TestClient,
    session: TemporalSession,
    temporal_env,
    uploaded: str,
    changes: dict,
    failing: str,
    words: str,
) -> None:
    if failing == "materials":
        patched = api.patch("/api/output-types/studio-still", json={"material_constraints": ["brass"]})
        assert patched.status_code == 200, patched.json()
    await until_polled(session)
    order = body(uploaded, **changes)
    report = api.post("/api/order-lines/preflight", json=order).json()
    assert report["ok"] is False
    failed = {name for name, status in statuses(report).items() if status == "fail"}
    assert failed == {failing}, report
    reason = next(item["reason"] for item in report["checks"] if item["name"] == failing)
    assert words in reason

    launched = api.post("/api/order-lines", json=order)
    assert launched.status_code == 422, launched.json()
    error = launched.json()["error"]
    assert error["code"] == "preflight_failed" and statuses(error)[failing] == "fail"
    assert f"{failing}: " in error["message"]
    if failing == "workflow":
        assert error["problems"][0]["path"] == "params.width"
    assert not await started(
        temporal_env.client, order_line_workflow_id(TEST_OWNER, "studio-still", order["order_line_id"])
    )


def test_an_unknown_output_type_fails_its_check_and_its_launch_is_404(api: TestClient, uploaded: str) -> None:
    report = api.post("/api/order-lines/preflight", json=body(uploaded, output_type="no-such-type")).json()
    assert statuses(report)["output_type"] == "fail" and report["ok"] is False
    assert api.post("/api/order-lines", json=body(uploaded, output_type="no-such-type")).status_code == 404


def test_an_inactive_output_type_fails_once(api: TestClient, uploaded: str) -> None:
    assert api.patch("/api/output-types/studio-still", json={"is_active": False}).status_code == 200
    report = api.post("/api/order-lines/preflight", json=body(uploaded)).json()
    assert statuses(report)["output_type"] == "fail"
    assert statuses(report)["workflow"] == "warn"  # not checked: the same cause is not reported twice


# --- the CAD-file check, on CadFileRecord rows and real intake runs ----------------------------


@pytest.fixture
def db(settings: Settings) -> Iterator[Session]:
    """A database of this test's own, with the tables."""
    engine = make_engine(settings)
    SQLModel.metadata.create_all(engine)
    with Session(engine) as db_session:
        yield db_session
    engine.dispose()


def cad_file(db: Session, owner: str = TEST_OWNER, intake_workflow_id: str | None = None) -> CadFileRecord:
    """A stored CAD file row of this owner."""
    record = CadFileRecord(
        id=f"cad_{uuid.uuid4().hex[:12]}",
        owner=owner,
        sha256=uuid.uuid4().hex * 2,
        size=1,
        filename="part.step",
        uri="file:///nowhere",
        intake_workflow_id=intake_workflow_id,
    )
    db.add(record)
    db.commit()
    db.refresh(record)
    return record


async def cad_check(client: Client, db: Session, cad_file_id: str | None, owner: str = TEST_OWNER):
    """The CAD-file check as the routes run it: the owner's row by id, then Temporal."""
    return await check_cad_file(client, cad_file_id, find_own_file(db, owner, cad_file_id), owner)


async def test_an_unknown_or_anothers_cad_file_fails_as_unknown(temporal_env, db: Session) -> None:
    theirs = cad_file(db, owner="someone-else")
    for cad_file_id in ("cad_missing", theirs.id):
        answer = await cad_check(temporal_env.client, db, cad_file_id)
        assert (answer.status, answer.reason) == ("fail", f"CAD file {cad_file_id!r} is unknown")
    # Handed the row itself, the check still refuses another owner's file.
    answer = await check_cad_file(temporal_env.client, theirs.id, theirs, TEST_OWNER)
    assert answer.status == "fail"
    assert (await cad_check(temporal_env.client, db, theirs.id, owner="someone-else")).status == "warn"


async def test_a_cad_file_whose_intake_has_not_started_warns_that_it_will(temporal_env, db: Session) -> None:
    for intake in (None, f"intake-never-started-{uuid.uuid4().hex[:8]}"):
        answer = await cad_check(temporal_env.client, db, cad_file(db, intake_workflow_id=intake).id)
        assert answer.status == "warn" and "will start" in answer.reason


async def test_a_completed_intake_passes(session: TemporalSession, db: Session) -> None:
    plan = compile_intake(starter(INTAKE_STARTER), default_catalog())
    intake_id, result = await run_plan(
        session, plan, {"step_path": str(STEP_FIXTURES / "red_cube_blue_cylinder.step")}
    )
    assert result.status == "completed", result.error
    answer = await cad_check(session.client, db, cad_file(db, intake_workflow_id=intake_id).id)
    assert (answer.status, answer.reason) == ("pass", f"intake {intake_id} completed")


async def test_a_failed_intake_fails_with_its_error(session: TemporalSession, db: Session, tmp_path) -> None:
    not_step = tmp_path / "notes.step"
    not_step.write_text("these are notes, not a STEP file\n")
    plan = compile_intake(starter(INTAKE_STARTER), default_catalog())
    handle = await start_plan(session, plan, {"step_path": str(not_step)})
    for _ in range(300):
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            break
        await asyncio.sleep(0.1)
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    answer = await cad_check(session.client, db, cad_file(db, intake_workflow_id=handle.id).id)
    assert answer.status == "fail"
    assert answer.reason.startswith(f"intake {handle.id} failed: invalid_cad_file: "), answer.reason


async def test_a_running_intake_warns(temporal_env, settings: Settings, db: Session) -> None:
    # No worker polls this test's queues: the intake starts and stays running.
    idle = TemporalSession(temporal_env.client, None, settings)
    handle = await start_plan(
        idle, compile_intake(starter(INTAKE_STARTER), default_catalog()), {"step_path": "x"}
    )
    try:
        answer = await cad_check(temporal_env.client, db, cad_file(db, intake_workflow_id=handle.id).id)
        assert (answer.status, answer.reason) == (
            "warn",
            f"intake {handle.id} is running; the order waits for it",
        )
    finally:
        await handle.terminate("test over")
