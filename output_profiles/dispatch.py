"""Dispatch an order line through its output type: legacy pipeline, graph runtime, or (later) shadow."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from legacy_adapter.mapping import map_legacy_settings
from legacy_adapter.pipeline_plan import LegacyPlan, legacy_plan
from output_profiles.invocation import ArtifactKind
from output_profiles.models import OutputTypeBase, Rollout
from output_profiles.validation import CONTRACT_OVERRIDES, validate_profile
from prodgraph.errors import ProdgraphError
from prodgraph.runs import TemporalSession, run_plan
from registry.catalog import Catalog
from registry.compiler import compile_plan
from registry.definition import WorkflowDefinition
from registry.plan import ExecutionPlan
from registry.starters import starter
from workflows.legacy import LegacyPipelineInput, LegacyPipelineWorkflow

INTAKE_WORKFLOW = "cad-intake-v1"


class DispatchError(ProdgraphError):
    """An order line cannot be dispatched as its output type stands."""

    code = "dispatch_refused"


class OrderLine(BaseModel):
    """What an API client sends to have one order line produced."""

    model_config = ConfigDict(extra="forbid")

    order_line_id: str
    step_path: str
    product_category: str | None = None
    invocation_params: dict[str, Any] = {}
    """Per-order parameter values; they win over the output type's overrides."""


class EffectiveCall(BaseModel):
    """Parameters one module ran with, and where each value came from."""

    params: dict[str, Any]
    param_sources: dict[str, str]


class DispatchPlan(BaseModel):
    """Where an order line goes and with what, decided before anything runs."""

    route: Literal["legacy", "graph"]
    artifact_kinds: list[str]
    graph_plan: ExecutionPlan | None = None
    legacy_plan: LegacyPlan | None = None

    def effective(self) -> dict[str, EffectiveCall]:
        """Module key → effective parameters with provenance (the run's explanation)."""
        if self.graph_plan:
            return {node.module_key: EffectiveCall(params=node.params,
                                                   param_sources=node.param_sources)
                    for node in self.graph_plan.nodes}
        return {key: EffectiveCall(params=call.params, param_sources=call.param_sources)
                for key, call in self.legacy_plan.steps.items()}


class InvocationResult(BaseModel):
    """The outcome of one dispatched order line."""

    route: Literal["legacy", "graph"]
    status: Literal["completed", "failed"]
    workflow_ids: list[str]
    artifacts: list[dict[str, Any]]
    effective: dict[str, EffectiveCall]
    error: dict[str, Any] | None = None


def plan_dispatch(output_type: OutputTypeBase, workflow: WorkflowDefinition | None,
                  catalog: Catalog, invocation_params: dict[str, Any] | None = None
                  ) -> DispatchPlan:
    """Decide the route and compile what it runs; refuse with a reason naming the field."""
    if not output_type.is_active:
        raise DispatchError(f"output type {output_type.slug!r} is not active", field="is_active")
    if output_type.rollout == Rollout.shadow:
        raise DispatchError("shadow rollout is not available yet: parity verification ships "
                            "in a later release; use 'legacy' or 'graph'", field="rollout")
    if output_type.rollout == Rollout.legacy or not output_type.workflow_id:
        return _legacy_dispatch(output_type, catalog, invocation_params)
    report = validate_profile(output_type, workflow, catalog)
    if not report.valid:
        problem = report.problems[0]
        raise DispatchError(f"output type {output_type.slug!r}: {problem.field}: "
                            f"{problem.message}", field=problem.field)
    overrides = {key: value for key, value in output_type.overrides.items()
                 if key not in CONTRACT_OVERRIDES}
    plan = compile_plan(workflow, catalog, profile_overrides=overrides,
                        invocation_params=invocation_params)
    return DispatchPlan(route="graph", artifact_kinds=[str(kind) for kind in
                                                       output_type.artifact_kinds],
                        graph_plan=plan)


def _legacy_dispatch(output_type: OutputTypeBase, catalog: Catalog,
                     invocation_params: dict[str, Any] | None) -> DispatchPlan:
    if output_type.legacy_render_settings is not None or not output_type.artifact_kinds:
        mapping = map_legacy_settings(output_type.legacy_render_settings)
        kind, overrides = mapping.artifact_kind, mapping.overrides.model_dump(mode="json")
    else:
        kind, overrides = ArtifactKind(output_type.artifact_kinds[0]), output_type.overrides
    plan = legacy_plan(kind, overrides, catalog, invocation_params)
    kinds = [str(kind)] + (["preview_thumbnail"] if plan.thumbnail else [])
    return DispatchPlan(route="legacy", artifact_kinds=kinds, legacy_plan=plan)


async def run_dispatch(session: TemporalSession, plan: DispatchPlan, order: OrderLine,
                       output_type_slug: str, catalog: Catalog) -> InvocationResult:
    """Run a dispatch plan on Temporal to the end."""
    if plan.route == "legacy":
        return await _run_legacy(session, plan, order)
    return await _run_graph(session, plan, order, output_type_slug, catalog)


async def _run_legacy(session: TemporalSession, plan: DispatchPlan,
                      order: OrderLine) -> InvocationResult:
    settings = session.settings
    workflow_id = f"legacy-{order.order_line_id}-{uuid.uuid4().hex[:8]}"
    result = await session.client.execute_workflow(
        LegacyPipelineWorkflow.run,
        LegacyPipelineInput(plan=plan.legacy_plan, step_path=order.step_path,
                            order_line_id=order.order_line_id,
                            product_category=order.product_category,
                            task_queues=session.task_queues()),
        id=workflow_id, task_queue=settings.default_queue)
    return InvocationResult(
        route="legacy", status=result.status, workflow_ids=[workflow_id],
        artifacts=_artifacts(result.outputs), effective=plan.effective(),
        error=result.error.model_dump() if result.error else None)


async def _run_graph(session: TemporalSession, plan: DispatchPlan, order: OrderLine,
                     output_type_slug: str, catalog: Catalog) -> InvocationResult:
    intake_plan = compile_plan(starter(INTAKE_WORKFLOW), catalog)
    intake_id, intake = await run_plan(session, intake_plan, {"step_path": order.step_path})
    effective = plan.effective()
    if intake.status != "completed":
        return InvocationResult(route="graph", status="failed", workflow_ids=[intake_id],
                                artifacts=[], effective=effective,
                                error=intake.error.model_dump() if intake.error else None)
    outputs = intake.outputs
    entry = {"order_line_id": order.order_line_id, "output_type": output_type_slug,
             "product_category": order.product_category,
             "step_file": outputs["resolve"]["step_file"], "glb": outputs["glb"]["glb"],
             "bbox": outputs["bbox"]["bbox"], "objects": outputs["extract"]["objects"]}
    order_id, rendered = await run_plan(session, plan.graph_plan, entry)
    return InvocationResult(
        route="graph", status=rendered.status, workflow_ids=[intake_id, order_id],
        artifacts=_artifacts(intake.outputs) + _artifacts(rendered.outputs),
        effective=effective, error=rendered.error.model_dump() if rendered.error else None)


def _artifacts(outputs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [value for output in outputs.values() for value in output.values()
            if isinstance(value, dict) and {"uri", "sha256", "role"} <= set(value)]
