"""The main job: intake a STEP file, optionally render it, and gather the deliverables."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from activities.artifacts import ArtifactRef, LocalArtifactStore, refs_in
from prodgraph.runs import ProgressCallback, TemporalSession, run_plan
from registry.catalog import default_catalog
from registry.compiler import compile_plan
from registry.definition import WorkflowDefinition
from registry.starters import INTAKE_STARTER, starter
from workflows.graph import GraphRunResult
from workflows.order_line import order_line_entry

STILL_WORKFLOW = "order-still-v1"
DELIVERABLE_ROLES = ("glb", "still", "turntable", "blend", "thumbnail")


async def produce(session: TemporalSession, step_path: Path, out_dir: Path, *, render: bool,
                  invocation_params: dict[str, Any] | None = None,
                  render_workflow: WorkflowDefinition | None = None,
                  on_progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run intake (and the still render); return the CLI's JSON document."""
    catalog = default_catalog()
    report: dict[str, Any] = {"status": "completed", "workflow_id": None, "temporal_ui": None,
                              "workflow_ids": [], "artifacts": [], "objects": [], "bbox": None,
                              "error": None}
    intake_plan = compile_plan(starter(INTAKE_STARTER), catalog)
    workflow_id, intake = await run_plan(
        session, intake_plan, {"step_path": str(step_path.resolve())}, on_progress)
    _record(report, session, workflow_id, intake)
    if intake.status != "completed":
        return report
    outputs = intake.outputs
    report["objects"] = outputs["extract"]["objects"]
    report["bbox"] = outputs["bbox"]["bbox"]
    refs = [outputs["glb"]["glb"]]
    if render:
        entry = order_line_entry(outputs, f"cli-{uuid.uuid4().hex[:8]}")
        plan = compile_plan(render_workflow or starter(STILL_WORKFLOW), catalog,
                            invocation_params=invocation_params)
        workflow_id, rendered = await run_plan(session, plan, entry, on_progress)
        _record(report, session, workflow_id, rendered)
        refs += refs_in(rendered.outputs)
    report["artifacts"] = deliver(session, refs, out_dir, step_path.stem)
    return report


def deliver(session: TemporalSession, refs: list[dict], out_dir: Path, stem: str) -> list[dict]:
    """Copy the deliverables (GLB, still, turntable, .blend, thumbnail) into out_dir."""
    store = LocalArtifactStore(session.settings.artifact_root())
    return [_deliver(store, ArtifactRef(**ref), out_dir, stem) for ref in refs
            if ref["role"] in DELIVERABLE_ROLES]


def _record(report: dict, session: TemporalSession, workflow_id: str,
            result: GraphRunResult) -> None:
    report["workflow_id"] = workflow_id
    report["workflow_ids"].append(workflow_id)
    report["temporal_ui"] = session.workflow_url(workflow_id)
    if result.status != "completed":
        report["status"] = "failed"
        report["error"] = result.error.model_dump() if result.error else \
            {"code": "run_failed", "message": "the run did not complete", "node_id": None}


def _deliver(store: LocalArtifactStore, ref: ArtifactRef, out_dir: Path, stem: str) -> dict:
    source = store.path_of(ref)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{stem}{'' if ref.role in ('glb', 'still') else '.' + ref.role}" \
        f"{source.suffix}"
    shutil.copyfile(source, target)
    return {"role": ref.role, "path": str(target.resolve()), "sha256": ref.sha256,
            "media_type": ref.media_type}


async def produce_order_line(session: TemporalSession, output_type_slug: str, step_path: Path,
                             out_dir: Path, *, order_line_id: str | None = None,
                             product_category: str | None = None,
                             invocation_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dispatch one order line through a stored output type, run it, deliver its files."""
    from sqlmodel import Session

    from api.app import prepare_database
    from api.db import make_engine
    from api.errors import NotFound
    from api.store import find_output_type, workflow_for
    from output_profiles.dispatch import OrderLine, plan_dispatch, start_dispatch

    catalog = default_catalog()
    engine = make_engine(session.settings)
    prepare_database(engine, catalog)
    with Session(engine) as db:
        output_type = find_output_type(db, output_type_slug)
        if output_type is None:
            raise NotFound(f"no output type {output_type_slug!r}; list them with "
                           "GET /api/output-types", field="output_type")
        plan = plan_dispatch(output_type, workflow_for(db, output_type), catalog,
                             invocation_params)
    order = OrderLine(order_line_id=order_line_id or f"cli-{uuid.uuid4().hex[:8]}",
                      step_path=str(step_path.resolve()), product_category=product_category,
                      invocation_params=invocation_params or {})
    handle = await start_dispatch(session, plan, order, output_type_slug)
    result = await handle.result()
    return {"status": result.status, "route": result.route, "workflow_id": handle.id,
            "workflow_ids": result.workflow_ids, "temporal_ui": session.workflow_url(handle.id),
            "artifact_kinds": plan.artifact_kinds,
            "artifacts": deliver(session, result.artifacts, out_dir, step_path.stem),
            "effective": {key: call.model_dump() for key, call in result.effective.items()},
            "error": result.error}
