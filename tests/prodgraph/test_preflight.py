"""The preflight checks that need no server: output type, workflow, materials, render budget,
the queues a plan needs, and how a failed report becomes the launch's 422."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import PreflightFailedError, ProdgraphError
from output_profiles.dispatch import plan_dispatch
from output_profiles.dispatch_plan import DispatchPlan
from persistence.tables import OutputType
from prodgraph.preflight import (
    PreflightReport,
    check,
    check_materials,
    check_output_type,
    check_render_budget,
    check_workflow,
    material_calls,
    needed_queues,
)
from registry.catalog import default_catalog
from registry.definition import WorkflowDefinition
from registry.starters import starter

DEFAULT_TYPES = Path(__file__).resolve().parents[2] / "output_profiles" / "default_output_types.json"
BUDGET = 64.0


def output_type(slug: str = "studio-still", **changes: Any) -> OutputType:
    """A seeded default output type, with changes."""
    record = next(item for item in json.loads(DEFAULT_TYPES.read_text()) if item["slug"] == slug)
    return OutputType(**(record | changes))


def dispatched(row: OutputType, params: dict[str, Any] | None = None) -> tuple[DispatchPlan | None, Any]:
    """(plan, None) or (None, the refusal) of a dispatch, as plan_order_line keeps them."""
    workflow = starter(row.workflow_id) if row.workflow_id else None
    try:
        return plan_dispatch(row, workflow, default_catalog(), params or {}), None
    except ProdgraphError as refused:
        return None, refused


# --- output_type ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "category", "status", "words"),
    [
        (None, "bearings", "fail", "does not exist"),
        (output_type(is_active=False), "bearings", "fail", "not active"),
        (output_type(), "bearings", "pass", "'bearings'"),
        (output_type(), "toys", "fail", "only for bearings, housings, linear-guides"),
        (output_type(), None, "warn", "names no product category"),
        (output_type(categories=[]), "toys", "pass", "every product category"),
    ],
)
def test_output_type_check(row: OutputType | None, category: str | None, status: str, words: str) -> None:
    answer = check_output_type("studio-still", row, category)
    assert (answer.name, answer.status) == ("output_type", status)
    assert words in answer.reason


# --- workflow ---------------------------------------------------------------------------------


def test_a_valid_workflow_passes_naming_it_and_the_catalogue() -> None:
    row = output_type()
    plan, error = dispatched(row)
    answer = check_workflow(row, starter("order-still-v1"), default_catalog(), plan, error)
    assert answer.status == "pass"
    assert "order-still-v1" in answer.reason and default_catalog().version in answer.reason


def test_a_workflow_invalid_against_the_catalogue_fails_with_its_problem() -> None:
    document = starter("order-still-v1").model_dump(mode="json")
    document["nodes"][0]["step"] = "render.retired_module"
    broken = WorkflowDefinition.model_validate(document)
    answer = check_workflow(output_type(), broken, default_catalog(), None, None)
    assert answer.status == "fail" and "unknown_step" in answer.reason
    assert answer._problems[0]["code"] == "unknown_step"


def test_invocation_params_the_workflow_cannot_take_fail_naming_the_param() -> None:
    row = output_type()
    plan, error = dispatched(row, {"width": 0})
    answer = check_workflow(row, starter("order-still-v1"), default_catalog(), plan, error)
    assert answer.status == "fail"
    assert answer._problems[0]["path"] == "params.width"


def test_an_inactive_type_is_the_output_type_checks_failure_not_the_workflows() -> None:
    row = output_type(is_active=False)
    plan, error = dispatched(row)
    assert plan is None
    assert check_workflow(row, starter("order-still-v1"), default_catalog(), plan, error).status == "warn"


def test_a_legacy_type_passes_through_the_legacy_pipeline() -> None:
    row = output_type(rollout="legacy", workflow_id=None, artifact_kinds=["still_image"])
    plan, error = dispatched(row)
    answer = check_workflow(row, None, default_catalog(), plan, error)
    assert answer.status == "pass" and "legacy" in answer.reason


# --- render_budget ----------------------------------------------------------------------------


def test_the_render_budget_passes_with_the_largest_render_named() -> None:
    plan, error = dispatched(output_type())
    answer = check_render_budget(plan, error, BUDGET)
    assert answer.status == "pass"
    # 1920 × 1080 × 64 samples × 1 frame.
    assert "render.blender_still: 0.13 of 64 gigasamples" in answer.reason


def test_a_render_over_the_budget_fails_and_is_not_the_workflows_failure() -> None:
    row = output_type()
    plan, error = dispatched(row, {"width": 16384, "height": 16384, "samples": 65536})
    assert plan is None
    answer = check_render_budget(plan, error, BUDGET)
    assert answer.status == "fail" and "over the render budget" in answer.reason
    assert answer._problems[0]["code"] == "render_budget_exceeded"
    assert check_workflow(row, starter("order-still-v1"), default_catalog(), plan, error).status == "pass"


def test_no_plan_for_another_reason_is_not_checked() -> None:
    plan, error = dispatched(output_type(), {"width": 0})
    assert check_render_budget(plan, error, BUDGET).status == "warn"


# --- materials --------------------------------------------------------------------------------


AUTO = "materials.auto_populate"
RESOLVE = "materials.resolve_map"


@pytest.mark.parametrize(
    ("constraints", "calls", "status", "words"),
    [
        ([], [], "pass", "any material"),
        (["unobtainium"], [], "fail", "not in the material library: unobtainium"),
        (["brass"], None, "warn", "not checked"),
        (["brass"], [], "fail", "assigns no materials"),
        (["brass"], [(AUTO, {}), (RESOLVE, {"material_override": "brass"})], "pass", "every part in brass"),
        (
            ["brass"],
            [(AUTO, {}), (RESOLVE, {"material_override": "rubber"})],
            "fail",
            "material_override 'rubber'",
        ),
        (
            ["brass"],
            [(RESOLVE, {"material_override": "brass", "part_materials": {"axle": "rubber"}})],
            "fail",
            "part_materials.axle 'rubber'",
        ),
        (["brass"], [(AUTO, {"use_cad_colors": False, "fallback_material": "brass"})], "pass", "among brass"),
        (["brass"], [(AUTO, {"use_cad_colors": False})], "fail", "get 'neutral_grey'"),
        (["brass"], [(AUTO, {"fallback_material": "brass"}), (RESOLVE, {})], "warn", "CAD colour"),
    ],
)
def test_material_constraints(
    constraints: list[str], calls: list[tuple[str, dict]] | None, status: str, words: str
) -> None:
    answer = check_materials(constraints, calls)
    assert (answer.name, answer.status) == ("materials", status)
    assert words in answer.reason


def test_material_calls_carry_the_effective_params_of_the_plan() -> None:
    plan, _ = dispatched(output_type(material_constraints=["brass"]), {"material_override": "brass"})
    assert plan is not None
    calls = dict(material_calls(plan))
    assert calls[RESOLVE]["material_override"] == "brass"
    assert check_materials(["brass"], material_calls(plan)).status == "pass"


# --- workers: the queues a plan needs ---------------------------------------------------------


def test_a_graph_plan_needs_the_default_workflow_queue_and_each_heavy_modules_queue() -> None:
    plan, _ = dispatched(output_type())
    assert plan is not None
    needs = {(need.queue, need.kind): need.needed_by for need in needed_queues(plan)}
    assert set(needs) == {
        ("default", "workflow"),
        ("default", "activity"),
        ("cad", "activity"),
        ("render", "activity"),
    }
    assert "render.blender_still" in needs[("render", "activity")]
    assert "cad.export_glb" in needs[("cad", "activity")]
    # Local modules run inside the workflow's own worker: no activity poller is needed for them.
    assert not {"materials.resolve_map", "output.notify"} & set(needs[("default", "activity")])


def test_a_legacy_plan_needs_every_calls_queue() -> None:
    plan, _ = dispatched(output_type(rollout="legacy", workflow_id=None, artifact_kinds=["still_image"]))
    assert plan is not None
    needs = {(need.queue, need.kind): need.needed_by for need in needed_queues(plan)}
    assert "materials.resolve_map" in needs[("default", "activity")]
    assert "render.blender_still" in needs[("render", "activity")]


# --- the report -------------------------------------------------------------------------------


def test_warnings_pass_and_a_failure_raises_with_every_check_and_its_problems() -> None:
    warned = PreflightReport(
        ok=True, checks=[check("cad_file", "warn", "running"), check("workers", "pass", "ok")]
    )
    warned.raise_if_failed()
    problem = {"code": "invalid_params", "node_id": "still", "path": "params.width", "message": "> 0"}
    failed = PreflightReport(
        ok=False,
        checks=[check("workflow", "fail", "width 0", [problem]), check("workers", "fail", "no worker")],
    )
    with pytest.raises(PreflightFailedError) as raised:
        failed.raise_if_failed()
    error = raised.value
    assert error.code == "preflight_failed" and error.problems == [problem]
    assert [item["name"] for item in error.details["checks"]] == ["workflow", "workers"]
    assert "workflow: width 0" in error.message and "workers: no worker" in error.message
    assert "_problems" not in json.dumps(failed.model_dump())
