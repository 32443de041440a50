"""Decide an order line's dispatch through its output type: legacy pipeline, graph, or shadow (legacy
for the customer, the graph beside it). Deciding only: the application layer starts what is decided."""

from __future__ import annotations

from typing import Any

from core.errors import DispatchError
from core.vocabulary import ArtifactKind
from legacy_adapter.mapping import map_legacy_settings
from legacy_adapter.pipeline_plan import legacy_plan
from output_profiles.dispatch_plan import DispatchPlan
from output_profiles.models import OutputTypeBase, Rollout
from output_profiles.validation import CONTRACT_OVERRIDES, validate_profile
from registry.catalog import Catalog
from registry.compiler import compile_intake, compile_plan
from registry.definition import WorkflowDefinition
from registry.plan import ExecutionPlan
from registry.starters import INTAKE_STARTER, starter


def plan_dispatch(
    output_type: OutputTypeBase,
    workflow: WorkflowDefinition | None,
    catalog: Catalog,
    invocation_params: dict[str, Any] | None = None,
) -> DispatchPlan:
    """Decide the route and compile what it runs; refuse with a reason naming the field."""
    if not output_type.is_active:
        raise DispatchError(f"output type {output_type.slug!r} is not active", field="is_active")
    if output_type.rollout == Rollout.legacy or not output_type.workflow_id:
        return _legacy_dispatch(output_type, catalog, invocation_params)
    graph = _graph_dispatch(output_type, workflow, catalog, invocation_params)
    if output_type.rollout != Rollout.shadow:
        return graph
    # Shadow: the legacy pipeline is what the customer gets; the graph runs beside it, on the
    # same invocation params, with nothing that acts on the world.
    legacy = _legacy_dispatch(output_type, catalog, invocation_params)
    assert graph.graph_plan is not None
    return legacy.model_copy(
        update={
            "route": "shadow",
            "intake_plan": graph.intake_plan,
            "graph_plan": without_side_effects(graph.graph_plan, catalog),
        }
    )


def without_side_effects(plan: ExecutionPlan, catalog: Catalog) -> ExecutionPlan:
    """The plan less the nodes that act on the world (publish, notify) and what follows them."""
    acting = {node.id for node in plan.nodes if catalog.specs[node.module_key].side_effects}
    return plan.without(acting)


def _graph_dispatch(
    output_type: OutputTypeBase,
    workflow: WorkflowDefinition | None,
    catalog: Catalog,
    invocation_params: dict[str, Any] | None,
) -> DispatchPlan:
    report = validate_profile(output_type, workflow, catalog)
    if not report.valid:
        problem = report.problems[0]
        raise DispatchError(
            f"output type {output_type.slug!r}: {problem.field}: {problem.message}", field=problem.field
        )
    overrides = {key: value for key, value in output_type.overrides.items() if key not in CONTRACT_OVERRIDES}
    if workflow is None:  # validate_profile reports a missing linked workflow as a problem
        raise DispatchError(
            f"output type {output_type.slug!r}: workflow {output_type.workflow_id!r} does not exist",
            field="workflow_id",
        )
    plan = compile_plan(workflow, catalog, profile_overrides=overrides, invocation_params=invocation_params)
    return DispatchPlan(
        route="graph",
        artifact_kinds=[str(kind) for kind in output_type.artifact_kinds],
        intake_plan=compile_intake(starter(INTAKE_STARTER), catalog),
        graph_plan=plan,
    )


def _legacy_dispatch(
    output_type: OutputTypeBase, catalog: Catalog, invocation_params: dict[str, Any] | None
) -> DispatchPlan:
    if output_type.legacy_render_settings is not None or not output_type.artifact_kinds:
        mapping = map_legacy_settings(output_type.legacy_render_settings)
        kind, overrides = mapping.artifact_kind, mapping.overrides.model_dump(mode="json")
    else:
        kind, overrides = ArtifactKind(output_type.artifact_kinds[0]), output_type.overrides
    plan = legacy_plan(kind, overrides, catalog, invocation_params)
    kinds = [str(kind)] + (["preview_thumbnail"] if plan.thumbnail else [])
    return DispatchPlan(route="legacy", artifact_kinds=kinds, legacy_plan=plan)
