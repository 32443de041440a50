"""Compile a definition plus overrides into a pinned execution plan that explains its parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from core.errors import InvalidDefinitionError, first_problem
from core.settings import get_settings
from registry.catalog import Catalog
from registry.definition import WorkflowDefinition, WorkflowNode
from registry.families import OrderLineEntry
from registry.plan import ExecutionPlan, ParamSource, PlanNode, PortBinding
from registry.validation import input_sources, parents_of, topological_order, validate_definition


def compile_plan(
    definition: WorkflowDefinition,
    catalog: Catalog,
    profile_overrides: dict[str, Any] | None = None,
    invocation_params: dict[str, Any] | None = None,
) -> ExecutionPlan:
    """Validate and compile; overrides apply by parameter name to every node that has it.

    Args:
        definition: the workflow definition (pinned snapshot).
        catalog: the module catalogue.
        profile_overrides: the output type's invocation overrides (None values are skipped).
        invocation_params: per-invocation values (e.g. CLI flags); win over everything.
    """
    report = validate_definition(definition, catalog)
    if not report.valid:
        raise InvalidDefinitionError(
            f"workflow {definition.id!r} is invalid: {report.errors[0].message}",
            problems=[problem.model_dump() for problem in report.errors],
        )
    layers = override_layers(profile_overrides, invocation_params)
    check_override_targets(
        {name for node in definition.nodes for name in catalog.specs[node.step].params_model.model_fields},
        layers,
        f"workflow {definition.id!r}",
    )
    # Valid, so node ids are unique, edges name known nodes and there is no cycle.
    index = {node.id: position for position, node in enumerate(definition.nodes)}
    edges = list(dict.fromkeys((edge.source, edge.target) for edge in definition.edges))
    parents = parents_of(index, edges)
    order = topological_order(index, edges) or []
    sources = input_sources(definition, catalog, index, order, parents)
    nodes = [
        _plan_node(definition, catalog, definition.nodes[index[node_id]], parents, sources, layers)
        for node_id in order
    ]
    return ExecutionPlan(
        workflow_id=definition.id,
        workflow_version=definition.version,
        family=definition.family,
        catalog_version=catalog.version,
        nodes=nodes,
    )


def compile_intake(definition: WorkflowDefinition, catalog: Catalog) -> ExecutionPlan:
    """Compile a cad_file definition that an order line can start from: it must produce every
    field of the order_line entry context (by output field name), whatever its node ids."""
    plan = compile_plan(definition, catalog)
    produced = {field for node in plan.nodes for field in catalog.specs[node.module_key].data_outputs()}
    missing = [name for name in OrderLineEntry.intake_fields() if name not in produced]
    if missing:
        raise InvalidDefinitionError(
            f"intake workflow {definition.id!r} produces no {', '.join(missing)}; an order "
            "line starts from them",
            problems=[
                {
                    "code": "intake_output_missing",
                    "node_id": None,
                    "path": name,
                    "message": f"no node produces {name!r}",
                }
                for name in missing
            ],
        )
    return plan


def _plan_node(
    definition: WorkflowDefinition,
    catalog: Catalog,
    node: WorkflowNode,
    parents: dict[str, list[str]],
    input_nodes: dict[str, dict[str, tuple[str, ...]]],
    layers: Sequence[tuple[ParamSource, dict[str, Any]]],
) -> PlanNode:
    spec = catalog.specs[node.step]
    params, sources = effective_params(node.id, spec.params_model, node.params, layers)
    entry_fields = catalog.families[definition.family].entry_fields()
    inputs = {}
    # Validation has refused ambiguous inputs; a field with no producer comes from the entry
    # context when it has it, and an optional one it lacks stays unbound.
    for field, producers in input_nodes[node.id].items():
        if producers:
            inputs[field] = PortBinding(source_node=producers[0], field=field)
        elif field in entry_fields:
            inputs[field] = PortBinding(source_node=None, field=field)
    return PlanNode(
        id=node.id,
        step=node.step,
        module_key=spec.key,
        task_queue=spec.task_queue,
        local=spec.local,
        depends_on=sorted(parents[node.id]),
        inputs=inputs,
        params=params,
        param_sources=sources,
        retry=spec.retry.overridden(node.retry),
        timeout_s=node.timeout_s or spec.timeout_s,
        on_failure=node.on_failure or catalog.families[definition.family].default_on_failure,
        artifact_outputs=spec.artifact_roles_produced(),
    )


def effective_params(
    node_id: str,
    params_model,
    node_params: dict[str, Any],
    layers: Sequence[tuple[ParamSource, dict[str, Any]]],
):
    """Defaults, then node params, then each override layer; validated, with provenance."""
    values: dict[str, Any] = {}
    sources: dict[str, ParamSource] = {}
    for name, info in params_model.model_fields.items():
        if not info.is_required():
            values[name], sources[name] = info.get_default(call_default_factory=True), "module_default"
    for name, value in node_params.items():
        values[name], sources[name] = value, "node_param"
    for source, overrides in layers:
        for name, value in overrides.items():
            if name in params_model.model_fields:
                values[name], sources[name] = value, source
    try:
        validated = params_model.model_validate(values).model_dump(mode="json")
    except ValidationError as exc:
        field, words = first_problem(exc)
        raise InvalidDefinitionError(
            f"node {node_id!r}: parameter {field} ({sources.get(field, 'value')}) {words}",
            problems=[
                {
                    "code": "invalid_params",
                    "node_id": node_id,
                    "path": f"params.{field}",
                    "message": words,
                }
            ],
        ) from None
    check_render_budget(node_id, validated, sources)
    return validated, sources


def render_gigasamples(params: dict[str, Any]) -> float | None:
    """Pixels × samples × frames of a render, in billions; None for a node that renders nothing."""
    if not {"width", "height", "samples"} <= set(params):
        return None
    frames = params.get("frame_count") or 1
    return params["width"] * params["height"] * params["samples"] * frames / 1e9


def check_render_budget(node_id: str, params: dict[str, Any], sources: dict[str, ParamSource]) -> None:
    """Refuse a render over the deployment's budget (PRODGRAPH_RENDER_BUDGET_GIGASAMPLES)."""
    budget = get_settings().render_budget_gigasamples
    cost = render_gigasamples(params)
    if cost is None or cost <= budget:
        return
    frames = params.get("frame_count") or 1
    culprit = max(
        ("samples", "width", "height", "frame_count"),
        key=lambda name: name in sources and sources[name] in ("invocation", "profile_override", "operator"),
    )
    message = (
        f"node {node_id!r}: {params['width']}x{params['height']} at {params['samples']} samples "
        f"x {frames} frames is {cost:.1f} gigasamples, over the render budget of {budget:g}"
    )
    raise InvalidDefinitionError(
        message,
        node_id=node_id,
        field=f"params.{culprit}",
        problems=[
            {
                "code": "render_budget_exceeded",
                "node_id": node_id,
                "path": f"params.{culprit}",
                "message": message,
            }
        ],
    )


def check_override_targets(
    known: set[str], layers: Sequence[tuple[ParamSource, dict[str, Any]]], where: str
) -> None:
    """Refuse an override or invocation parameter that no node of `where` has (say, a typo)."""
    for source, overrides in layers:
        for name in overrides:
            if name not in known:
                raise InvalidDefinitionError(
                    f"{source} {name!r} targets no parameter of {where}",
                    field=name,
                    problems=[
                        {
                            "code": "unknown_override",
                            "node_id": None,
                            "path": name,
                            "message": f"no node of {where} has parameter {name!r}",
                        }
                    ],
                )


def override_layers(
    profile_overrides: dict[str, Any] | None, invocation_params: dict[str, Any] | None
) -> list[tuple[ParamSource, dict[str, Any]]]:
    """The override layers above node params, in precedence order; None means not overridden."""
    given: tuple[tuple[ParamSource, dict[str, Any] | None], ...] = (
        ("profile_override", profile_overrides),
        ("invocation", invocation_params),
    )
    return [
        (source, {key: value for key, value in (values or {}).items() if value is not None})
        for source, values in given
    ]
