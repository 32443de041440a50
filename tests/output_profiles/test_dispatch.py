"""Dispatch decisions: legacy fallback, graph with provenance, shadow with both — no Temporal needed."""

from __future__ import annotations

import pytest

from core.errors import InvalidDefinitionError
from legacy_adapter.mapping import map_legacy_settings
from output_profiles.dispatch import DispatchError, plan_dispatch
from output_profiles.models import OutputTypeCreate
from registry.catalog import default_catalog
from registry.starters import starter

CATALOGUE_STILL = {
    "renderer": "cycles",
    "render_backend": "celery",
    "resolution": "1920x1080",
    "samples": 64,
    "transparent_bg": False,
    "file_format": "PNG",
    "camera_preset": "front_three_quarter",
}


def output_type(**fields) -> OutputTypeCreate:
    """A complete still output type, changed by `fields`."""
    mapping = map_legacy_settings(CATALOGUE_STILL)
    base = dict(
        slug="catalogue-still",
        name="Catalogue Still",
        family="order_line",
        artifact_kinds=[mapping.artifact_kind],
        overrides=mapping.overrides.model_dump(mode="json"),
        legacy_render_settings=CATALOGUE_STILL,
        pricing_tier="A",
        categories=["bearings"],
    )
    return OutputTypeCreate(**{**base, **fields})


def test_no_workflow_goes_to_the_legacy_pipeline_with_the_adapter_overrides():
    plan = plan_dispatch(output_type(), None, default_catalog())
    assert plan.route == "legacy"
    assert plan.artifact_kinds == ["still_image"]
    still = plan.effective()["render.blender_still"]
    assert still.params["width"] == 1920 and still.params["camera_preset"] == "front_three_quarter"
    assert still.param_sources["width"] == "profile_override"
    assert still.param_sources["image_format"] == "profile_override"


def test_graph_rollout_compiles_the_linked_workflow_and_records_provenance():
    profile = output_type(rollout="graph", workflow_id="order-still-v1", workflow_version=1)
    plan = plan_dispatch(
        profile, starter("order-still-v1"), default_catalog(), invocation_params={"samples": 4}
    )
    assert plan.route == "graph"
    still = plan.effective()["render.blender_still"]
    assert still.params["samples"] == 4 and still.param_sources["samples"] == "invocation"
    assert still.params["width"] == 1920 and still.param_sources["width"] == "profile_override"
    assert still.param_sources["denoise"] == "profile_override"
    template = plan.effective()["render.resolve_template"]
    assert template.param_sources["template"] == "module_default"


def test_legacy_and_graph_rollouts_resolve_the_same_render_settings():
    legacy = plan_dispatch(output_type(), None, default_catalog(), {"samples": 4})
    graph = plan_dispatch(
        output_type(rollout="graph", workflow_id="order-still-v1"),
        starter("order-still-v1"),
        default_catalog(),
        {"samples": 4},
    )
    for module in ("render.blender_still", "materials.resolve_map", "render.resolve_template"):
        assert legacy.effective()[module] == graph.effective()[module], module


def test_shadow_runs_legacy_for_the_customer_and_the_graph_without_side_effects():
    profile = output_type(rollout="shadow", workflow_id="order-still-v1")
    plan = plan_dispatch(profile, starter("order-still-v1"), default_catalog(), {"samples": 4})
    assert plan.route == "shadow" and plan.legacy_plan and plan.intake_plan and plan.graph_plan
    assert plan.artifact_kinds == ["still_image"]
    graph_steps = {node.step for node in plan.graph_plan.nodes}
    assert "render.blender_still" in graph_steps
    assert not graph_steps & {"output.publish_asset", "output.notify"}  # nothing acts on the world
    assert "output.publish_asset" in plan.legacy_plan.steps  # the customer's run delivers
    assert (
        plan.effective() == plan_dispatch(output_type(), None, default_catalog(), {"samples": 4}).effective()
    )
    assert plan.graph_effective()["render.blender_still"].params["samples"] == 4  # both get the params


def test_shadow_needs_a_workflow_for_its_graph_side():
    with pytest.raises(DispatchError) as refused:
        plan_dispatch(output_type(rollout="shadow", workflow_id="no-such-flow"), None, default_catalog())
    assert refused.value.field == "workflow_id"


def test_graph_rollout_with_a_wrong_family_workflow_is_refused_naming_the_field():
    profile = output_type(rollout="graph", workflow_id="cad-intake-v1")
    with pytest.raises(DispatchError) as refused:
        plan_dispatch(profile, starter("cad-intake-v1"), default_catalog())
    assert refused.value.field in ("workflow_id", "artifact_kinds[0]")


def test_an_invocation_param_out_of_range_names_node_and_field():
    profile = output_type(rollout="graph", workflow_id="order-still-v1")
    with pytest.raises(InvalidDefinitionError) as refused:
        plan_dispatch(profile, starter("order-still-v1"), default_catalog(), {"width": 0})
    assert refused.value.problems[0]["node_id"] == "still"
    assert refused.value.problems[0]["path"] == "params.width"


def test_inactive_output_types_are_not_dispatched():
    with pytest.raises(DispatchError) as refused:
        plan_dispatch(output_type(is_active=False), None, default_catalog())
    assert refused.value.field == "is_active"


@pytest.mark.parametrize("params", [{"widht": 800}, {"width": 800, "sample": 4}])
def test_the_legacy_route_refuses_unknown_invocation_parameters(params):
    with pytest.raises(InvalidDefinitionError) as refused:
        plan_dispatch(output_type(), None, default_catalog(), params)
    unknown = next(name for name in params if name not in ("width",))
    assert refused.value.field == unknown
    assert f"'{unknown}'" in refused.value.message and "legacy pipeline" in refused.value.message


def test_the_legacy_route_still_takes_known_invocation_parameters():
    plan = plan_dispatch(output_type(), None, default_catalog(), {"width": 800})
    still = plan.legacy_plan.call("render.blender_still")
    assert (still.params["width"], still.param_sources["width"]) == (800, "invocation")


@pytest.mark.parametrize(
    ("workflow_id", "params"),
    [
        (None, {"width": 16384, "height": 16384, "samples": 65536}),
        ("order-still-v1", {"width": 16384, "height": 16384, "samples": 65536}),
        ("order-turntable-v1", {"width": 4096, "height": 4096, "samples": 64, "frame_count": 10000}),
    ],
    ids=["legacy-still", "graph-still", "graph-turntable"],
)
def test_a_render_over_the_budget_is_refused_before_anything_runs(workflow_id, params):
    if workflow_id is None:
        profile, workflow = output_type(), None
    else:
        kind = "turntable_video" if "turntable" in workflow_id else "still_image"
        profile = output_type(
            rollout="graph",
            workflow_id=workflow_id,
            artifact_kinds=[kind],
            overrides={},
            legacy_render_settings=None,
        )
        workflow = starter(workflow_id)
    with pytest.raises(InvalidDefinitionError) as refused:
        plan_dispatch(profile, workflow, default_catalog(), params)
    problem = refused.value.problems[0]
    assert problem["code"] == "render_budget_exceeded"
    assert "gigasamples" in refused.value.message and refused.value.field.startswith("params.")
