"""Compiling definitions into plans: effective params and their provenance, bindings, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from activities.render import BlenderStillParams
from core.errors import InvalidDefinitionError
from registry.catalog import default_catalog
from registry.compiler import compile_plan
from registry.definition import WorkflowDefinition
from registry.plan import ExecutionPlan, PortBinding
from registry.starters import starter


def order_still(**node_params: Any) -> WorkflowDefinition:
    """A one-node order_line definition: a still with these params, fed by the entry context."""
    return WorkflowDefinition.model_validate(
        {
            "id": "still-only",
            "version": 3,
            "family": "order_line",
            "name": "still only",
            "nodes": [{"id": "still", "step": "render.blender_still", "params": node_params}],
        }
    )


def compile_still(
    node_params: dict[str, Any] | None = None,
    profile: dict[str, Any] | None = None,
    invocation: dict[str, Any] | None = None,
) -> ExecutionPlan:
    """Compile the order-still starter with params at every layer."""
    return compile_plan(
        order_still(**(node_params or {})),
        default_catalog(),
        profile_overrides=profile,
        invocation_params=invocation,
    )


def test_module_defaults_fill_every_param() -> None:
    still = compile_still().node("still")
    assert still.params == BlenderStillParams().model_dump(mode="json")
    assert set(still.param_sources.values()) == {"module_default"}


@pytest.mark.parametrize(
    ("node_params", "profile", "invocation", "width", "source"),
    [
        ({"width": 800}, None, None, 800, "node_param"),
        ({"width": 800}, {"width": 1024}, None, 1024, "profile_override"),
        ({"width": 800}, {"width": 1024}, {"width": 640}, 640, "invocation"),
        (None, None, {"width": 640}, 640, "invocation"),
        ({"width": 800}, {"width": None}, None, 800, "node_param"),
    ],
)
def test_each_layer_wins_over_the_ones_below(
    node_params: dict | None, profile: dict | None, invocation: dict | None, width: int, source: str
) -> None:
    still = compile_still(node_params, profile, invocation).node("still")
    assert (still.params["width"], still.param_sources["width"]) == (width, source)
    assert still.param_sources["height"] == "module_default"


def test_an_override_no_node_has_is_refused() -> None:
    with pytest.raises(InvalidDefinitionError) as caught:
        compile_still(profile={"frame_count": 24})
    assert [problem["code"] for problem in caught.value.problems] == ["unknown_override"]
    assert "frame_count" in caught.value.message


def test_an_out_of_range_override_names_node_and_field() -> None:
    with pytest.raises(InvalidDefinitionError) as caught:
        compile_still(invocation={"width": 5})
    assert "'still'" in caught.value.message and "width" in caught.value.message
    [problem] = caught.value.problems
    assert (problem["code"], problem["node_id"], problem["path"]) == (
        "invalid_params",
        "still",
        "params.width",
    )


def test_an_invalid_definition_is_refused_with_its_problems() -> None:
    definition = order_still(width=-1)
    with pytest.raises(InvalidDefinitionError) as caught:
        compile_plan(definition, default_catalog())
    assert [(p["code"], p["node_id"]) for p in caught.value.problems] == [("invalid_params", "still")]


def test_order_line_inputs_bind_to_the_entry_context() -> None:
    still = compile_still().node("still")
    assert still.inputs == {
        "glb": PortBinding(source_node=None, field="glb"),
        "bbox": PortBinding(source_node=None, field="bbox"),
    }
    assert still.depends_on == []


def test_intake_inputs_bind_to_the_upstream_node() -> None:
    plan = compile_plan(starter("cad-intake-v1"), default_catalog())
    assert plan.node("resolve").inputs == {"step_path": PortBinding(source_node=None, field="step_path")}
    for node_id in ("extract", "glb", "bbox"):
        node = plan.node(node_id)
        assert node.inputs == {"step_file": PortBinding(source_node="resolve", field="step_file")}
        assert node.depends_on == ["resolve"]


def test_plan_is_in_topological_order_ties_by_id_and_pinned() -> None:
    catalog = default_catalog()
    definition = WorkflowDefinition.model_validate(
        {
            "id": "chain",
            "version": 2,
            "family": "cad_file",
            "name": "chain",
            "nodes": [
                {"id": "z_glb", "step": "cad.export_glb"},
                {"id": "a_bbox", "step": "cad.compute_bbox"},
                {"id": "objects", "step": "cad.extract_objects"},
                {"id": "resolve", "step": "cad.resolve_step_path"},
            ],
            "edges": [
                {"source": "resolve", "target": "z_glb"},
                {"source": "resolve", "target": "a_bbox"},
                {"source": "z_glb", "target": "objects"},
            ],
        }
    )
    plan = compile_plan(definition, catalog)
    assert [node.id for node in plan.nodes] == ["resolve", "a_bbox", "z_glb", "objects"]
    assert plan.node("objects").depends_on == ["z_glb"]
    # The nearest producer is two hops up: bindings follow data, not just direct edges.
    assert plan.node("objects").inputs["step_file"].source_node == "resolve"
    assert (plan.workflow_id, plan.workflow_version, plan.family, plan.catalog_version) == (
        "chain",
        2,
        "cad_file",
        catalog.version,
    )


def test_task_queue_timeout_and_retry_come_from_the_module_unless_the_node_says() -> None:
    definition = order_still()
    definition.nodes[0].retry.max_attempts = 7
    still = compile_plan(definition, default_catalog()).node("still")
    spec = default_catalog().specs["render.blender_still"]
    assert (still.task_queue, still.timeout_s) == ("render", spec.timeout_s)
    assert still.retry.max_attempts == 7
    assert still.retry.backoff == spec.retry.backoff


def test_a_node_without_a_failure_policy_takes_its_familys_default():
    from dataclasses import replace

    from core.vocabulary import FailurePolicy
    from registry.catalog import MODULES, Catalog

    definition = starter("cad-intake-v1")
    nodes = [node.model_copy(update={"on_failure": None}) for node in definition.nodes]
    nodes[1] = nodes[1].model_copy(update={"on_failure": FailurePolicy.continue_run})
    bare = definition.model_copy(update={"nodes": nodes})
    catalog = Catalog(MODULES)
    plan = compile_plan(bare, catalog)
    assert plan.node(nodes[0].id).on_failure == FailurePolicy.fail_run
    assert plan.node(nodes[1].id).on_failure == FailurePolicy.continue_run
    catalog.families["cad_file"] = replace(
        catalog.families["cad_file"], default_on_failure=FailurePolicy.wait_for_operator
    )
    assert compile_plan(bare, catalog).node(nodes[0].id).on_failure == FailurePolicy.wait_for_operator
