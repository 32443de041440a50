"""Use cases of the main job: intake a STEP file, optionally render it, deliver the files."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from sqlmodel import Session
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from activities.artifacts import ArtifactRef, LocalArtifactStore, sha256_of
from activities.cad import BBox, CadObject
from core.errors import CadFileNotFoundError
from core.settings import Settings
from core.temporal import TemporalSession
from core.vocabulary import DELIVERABLE_ROLES
from output_profiles.dispatch_plan import DispatchPlan, OrderLine, ShadowResult
from persistence.engine import make_engine, prepare_database
from prodgraph.orders import dispatch_order_line, order_line_outcome, start_order_line
from prodgraph.reports import DeliveredFile, ErrorReport, OrderReport, ParityReportSummary, RunReport
from prodgraph.runs import POLL_S, ProgressCallback, follow, run_plan
from registry.catalog import default_catalog
from registry.compiler import compile_intake, compile_plan
from registry.definition import WorkflowDefinition
from registry.families import order_line_entry
from registry.starters import INTAKE_STARTER, starter
from workflows.graph import GraphWorkflow

STILL_WORKFLOW = "order-still-v1"
#: What the CLI copies out: the intake's GLB and whatever an order line delivers.
COPIED_ROLES = ("glb", *DELIVERABLE_ROLES)


async def produce(
    session: TemporalSession,
    step_path: Path,
    out_dir: Path,
    *,
    render: bool,
    invocation_params: dict[str, Any] | None = None,
    render_workflow: WorkflowDefinition | None = None,
    intake_workflow: WorkflowDefinition | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunReport:
    """Run the intake (and a render workflow, the still starter by default); deliver the files."""
    catalog = default_catalog()
    report = RunReport(status="completed")
    intake_plan = compile_intake(intake_workflow or starter(INTAKE_STARTER), catalog)
    workflow_id, intake = await run_plan(
        session, intake_plan, {"step_path": str(stage_input(session.settings, step_path))}, on_progress
    )
    report.record(session, workflow_id, intake)
    if intake.status != "completed":
        return report
    entry = order_line_entry(intake.outputs, f"cli-{uuid.uuid4().hex[:8]}")
    report.objects = [CadObject.model_validate(item) for item in entry["objects"]]
    report.bbox = BBox.model_validate(entry["bbox"])
    refs = [ref for ref in intake_plan.artifacts(intake.outputs) if ref.role == "glb"]
    if render:
        plan = compile_plan(
            render_workflow or starter(STILL_WORKFLOW), catalog, invocation_params=invocation_params
        )
        workflow_id, rendered = await run_plan(session, plan, entry, on_progress)
        report.record(session, workflow_id, rendered)
        refs += plan.artifacts(rendered.outputs)
    report.artifacts = deliver(session, refs, out_dir, step_path.stem)
    return report


async def produce_order_line(
    session: TemporalSession,
    output_type_slug: str,
    step_path: Path,
    out_dir: Path,
    *,
    order_line_id: str | None = None,
    product_category: str | None = None,
    invocation_params: dict[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
) -> OrderReport:
    """Dispatch one order line through a stored output type, run it, deliver its files.

    With on_progress, a graph route's child runs (intake, then render) report node changes as
    the other commands do; the legacy route is a fixed chain with no per-node progress.
    """
    catalog = default_catalog()
    engine = make_engine(session.settings)
    prepare_database(engine, catalog)
    with Session(engine) as db:
        _, plan = dispatch_order_line(db, catalog, output_type_slug, invocation_params)
    order = OrderLine(
        order_line_id=order_line_id or f"cli-{uuid.uuid4().hex[:8]}",
        step_path=str(stage_input(session.settings, step_path)),
        product_category=product_category,
        invocation_params=invocation_params or {},
    )
    handle = await start_order_line(session, plan, order, output_type_slug)
    outcome = asyncio.ensure_future(order_line_outcome(handle, plan))
    if on_progress and plan.route == "graph":
        await _follow_children(session, handle.id, plan, outcome, on_progress)
    result = await outcome
    return OrderReport(
        status=result.status,
        route=result.route,
        workflow_id=handle.id,
        workflow_ids=result.workflow_ids,
        temporal_ui=session.workflow_url(handle.id),
        artifact_kinds=plan.artifact_kinds,
        artifacts=deliver(session, result.artifacts, out_dir, step_path.stem),
        effective=result.effective,
        error=ErrorReport.model_validate(result.error) if result.error else None,
        parity=parity_summary(session, result.shadow, out_dir / "parity") if result.shadow else None,
    )


def parity_summary(session: TemporalSession, shadow: ShadowResult, out_dir: Path) -> ParityReportSummary:
    """A shadow's comparison for the CLI: its pictures copied (checked) into out_dir."""
    parity = shadow.parity
    if parity is None:
        reason = shadow.parity_error or "no comparison was made"
        return ParityReportSummary(verdict="not_compared", report=None, reason=reason)
    store = LocalArtifactStore(session.settings.artifact_root())
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures = [
        str(store.copy_to(ref, out_dir / f"{parity.report_id}-{index}.png").resolve())
        for index, ref in enumerate(parity.pictures, start=1)
    ]
    return ParityReportSummary(
        verdict=parity.verdict,
        report=parity.report_id,
        reason=parity.reason,
        pictures=pictures,
        differences=[
            difference.model_dump(
                include={"artifact", "metric", "legacy", "graph", "threshold", "explained_by"}
            )
            for difference in parity.differences
        ],
    )


async def _follow_children(
    session: TemporalSession,
    parent_id: str,
    plan: DispatchPlan,
    parent: asyncio.Future[Any],
    on_progress: ProgressCallback,
) -> None:
    """Follow the order line's graph children as each starts, until the parent has ended."""
    for suffix, child_plan in (("intake", plan.intake_plan), ("render", plan.graph_plan)):
        assert child_plan is not None, "a graph dispatch carries its intake and render plans"
        child = session.client.get_workflow_handle_for(GraphWorkflow.run, f"{parent_id}-{suffix}")
        while not await _started(child):
            if parent.done():
                return
            await asyncio.sleep(POLL_S)
        await follow(child, child_plan, on_progress)


async def _started(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        await handle.describe()
    except RPCError:
        return False
    return True


def stage_input(settings: Settings, step_path: Path) -> Path:
    """A local STEP file copied into the state folder's inputs/, the input root workers read.

    The copy keeps the customer's file name (messages name it) under its content hash.
    """
    source = step_path.resolve()
    if not source.is_file():
        raise CadFileNotFoundError(f"no such STEP file: {step_path}", field="step_file")
    staged = settings.input_folders()[0] / sha256_of(source)[:32] / source.name
    if not staged.is_file():
        staged.parent.mkdir(parents=True, exist_ok=True)
        partial = staged.with_name(f".{staged.name}.partial")
        shutil.copyfile(source, partial)
        partial.replace(staged)
    return staged


def deliver(
    session: TemporalSession, refs: list[ArtifactRef], out_dir: Path, stem: str
) -> list[DeliveredFile]:
    """Copy the deliverables (GLB, still, turntable, .blend, thumbnail) into out_dir."""
    store = LocalArtifactStore(session.settings.artifact_root())
    return [_deliver(store, ref, out_dir, stem) for ref in refs if ref.role in COPIED_ROLES]


def _deliver(store: LocalArtifactStore, ref: ArtifactRef, out_dir: Path, stem: str) -> DeliveredFile:
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if ref.role in ("glb", "still") else f".{ref.role}"
    target = out_dir / f"{stem}{suffix}{PurePosixPath(urlparse(ref.uri).path).suffix}"
    store.copy_to(ref, target)  # checks the hash while copying: a corrupt blob is never delivered
    return DeliveredFile(
        role=ref.role, path=str(target.resolve()), sha256=ref.sha256, media_type=ref.media_type
    )
