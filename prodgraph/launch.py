"""Run any workflow definition on a STEP file: follow it to the end, or start it and return.

A `cad_file` definition runs on the file itself; an `order_line` definition runs on the intake's
artifacts, so the file goes through the intake starter first (as `produce` does). Following a run
reports every node change and, when a node waits for the operator, the exact commands that repair it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from activities.artifacts import ArtifactRef
from activities.cad import BBox, CadObject
from core.errors import InvalidDefinitionError, first_problem
from core.temporal import TemporalSession
from prodgraph.production import deliver, stage_input
from prodgraph.reports import RunReport
from prodgraph.runs import AwaitingCallback, ProgressCallback, follow, start_plan
from registry.catalog import default_catalog
from registry.compiler import compile_intake, compile_plan
from registry.definition import WorkflowDefinition
from registry.families import order_line_entry
from registry.starters import INTAKE_STARTER, starter
from workflows.graph import RunLabels


class Launched(BaseModel):
    """What `prodgraph run --detach` reports: the run it started, which goes on without it."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["running"] = "running"
    workflow_id: str
    """The run started last (the order-line graph for an order_line definition)."""
    temporal_ui: str | None = None
    workflow_ids: list[str] = []
    """Every run this command started, in order (the intake first for an order_line definition)."""


def load_definition(
    document: Any, node_params: dict[str, dict[str, Any]] | None = None
) -> WorkflowDefinition:
    """A definition document as a model, with params set by node id onto its nodes' params.

    Args:
        document: the parsed definition file.
        node_params: node id → params that replace (by name) those the definition gives.
    """
    try:
        definition = WorkflowDefinition.model_validate(document)
    except ValidationError as exc:
        path, words = first_problem(exc)
        path = path or "(whole)"
        raise InvalidDefinitionError(
            f"not a workflow definition: {path}: {words}",
            problems=[{"code": "invalid_document", "node_id": None, "path": path, "message": words}],
        ) from None
    if not node_params:
        return definition
    known = [node.id for node in definition.nodes]
    for node_id in node_params:
        if node_id not in known:
            raise InvalidDefinitionError(
                f"--param names no node {node_id!r} of {definition.id!r}; nodes: {', '.join(known)}",
                node_id=node_id,
            )
    nodes = [
        node.model_copy(update={"params": {**node.params, **node_params[node.id]}})
        if node.id in node_params
        else node
        for node in definition.nodes
    ]
    return definition.model_copy(update={"nodes": nodes})


async def run_definition(
    session: TemporalSession,
    definition: WorkflowDefinition,
    step_path: Path,
    *,
    out_dir: Path | None = None,
    detach: bool = False,
    on_progress: ProgressCallback | None = None,
    on_awaiting: AwaitingCallback | None = None,
) -> RunReport | Launched:
    """Validate and compile the definition, then run it on the STEP file.

    Args:
        session: the Temporal session.
        definition: any definition of the cad_file or order_line family.
        step_path: the customer's STEP file.
        out_dir: copy the deliverables (GLB, renders, ...) there when the run completes.
        detach: start the run and return its id. For an order_line definition the intake still
            runs to the end first: the order line starts from its artifacts.
        on_progress: told of each node's status or attempt change.
        on_awaiting: told once each time a node begins to wait for the operator.
    """
    catalog = default_catalog()
    plan = compile_plan(definition, catalog)  # refuse an invalid definition before anything runs
    step_entry = {"step_path": str(stage_input(session.settings, step_path))}
    report = RunReport(status="completed")
    labels = RunLabels()
    refs: list[ArtifactRef] = []
    if definition.family == "cad_file":
        entry = step_entry
    else:
        intake_plan = compile_intake(starter(INTAKE_STARTER), catalog)
        handle = await start_plan(session, intake_plan, step_entry)
        intake = await follow(handle, intake_plan, on_progress, on_awaiting)
        report.record(session, handle.id, intake)
        _describe_cad(report, intake.outputs)
        if intake.status != "completed":
            return report
        refs = intake_plan.artifacts(intake.outputs)
        order_line_id = f"cli-{uuid.uuid4().hex[:8]}"
        entry = order_line_entry(intake.outputs, order_line_id)
        labels = RunLabels(order_line=order_line_id)
    handle = await start_plan(session, plan, entry, labels)
    if detach:
        return Launched(
            workflow_id=handle.id,
            temporal_ui=session.workflow_url(handle.id),
            workflow_ids=[*report.workflow_ids, handle.id],
        )
    result = await follow(handle, plan, on_progress, on_awaiting)
    report.record(session, handle.id, result)
    if definition.family == "cad_file":
        _describe_cad(report, result.outputs)
    if out_dir is not None:
        refs += plan.artifacts(result.outputs)
        report.artifacts = deliver(session, refs, out_dir, step_path.stem)
    return report


def _describe_cad(report: RunReport, outputs: dict[str, dict[str, Any]]) -> None:
    """The product tree and bounding box into the report, where exactly one node produced each."""
    objects = [output["objects"] for output in outputs.values() if "objects" in output]
    bboxes = [output["bbox"] for output in outputs.values() if "bbox" in output]
    if len(objects) == 1:
        report.objects = [CadObject.model_validate(item) for item in objects[0]]
    if len(bboxes) == 1:
        report.bbox = BBox.model_validate(bboxes[0])
