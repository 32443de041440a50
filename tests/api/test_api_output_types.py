"""Output-type routes: drafts and their flow, every validation rule by field, options, dispatch plans."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from output_profiles.validation import validate_profile
from persistence.seed import default_output_types
from registry.catalog import default_catalog
from registry.starters import starters

pytest_plugins = ["api_fixtures"]

CATALOG = default_catalog()
DEFAULT_SLUGS = [
    "studio-blend",
    "studio-still",
    "studio-still-transparent",
    "studio-turntable",
    "studio-web-preview",
]


def profile(**changes: Any) -> dict[str, Any]:
    """A complete, valid graph-rollout still profile, with changes."""
    return {
        "slug": "test-still",
        "name": "Test Still",
        "family": "order_line",
        "workflow_id": "order-still-v1",
        "workflow_version": 1,
        "artifact_kinds": ["still_image"],
        "overrides": {"width": 1200, "height": 900},
        "pricing_tier": "A",
        "categories": ["bearings"],
        "rollout": "graph",
        **changes,
    }


def problems_of(report: dict[str, Any]) -> set[tuple[str, str]]:
    """(field, code) of every problem of a report or an error body."""
    return {(problem["field"], problem["code"]) for problem in report["problems"]}


# --- the seeded catalogue ---------------------------------------------------------------------


@pytest.mark.parametrize("output_type", default_output_types(), ids=lambda p: p.slug)
def test_default_output_types_validate_clean(output_type):
    workflow = starters()[output_type.workflow_id]
    assert workflow.version == output_type.workflow_version == 1
    report = validate_profile(output_type, workflow, CATALOG)
    assert report.valid, report.problems
    assert report.next_step is None
    assert output_type.rollout == "graph"


def test_default_output_types_are_seeded(client: TestClient):
    listed = client.get("/api/output-types").json()
    assert [entry["slug"] for entry in listed] == DEFAULT_SLUGS
    for slug in DEFAULT_SLUGS:
        answer = client.get(f"/api/output-types/{slug}").json()
        assert answer["validation"] == {"valid": True, "problems": [], "next_step": None, "missing": []}
    web = client.get("/api/output-types/studio-web-preview").json()["output_type"]
    assert web["artifact_kinds"] == ["still_image", "preview_thumbnail"]
    assert web["workflow_id"] == "order-still-thumbnail-v1"


def test_unknown_output_type_is_not_found(client: TestClient):
    answer = client.get("/api/output-types/nope")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert answer.json()["error"]["field"] == "slug"


# --- create, drafts and the create flow --------------------------------------------------------


def test_create_a_complete_profile(client: TestClient):
    answer = client.post("/api/output-types", json=profile())
    assert answer.status_code == 201
    body = answer.json()
    assert body["validation"]["valid"] is True and body["validation"]["next_step"] is None
    assert body["output_type"]["id"] > 0
    assert client.get("/api/output-types/test-still").json()["output_type"]["overrides"] == {
        "width": 1200,
        "height": 900,
    }


def test_saved_drafts_walk_the_create_flow(client: TestClient):
    steps = []
    answer = client.post("/api/output-types", json={"slug": "draft", "name": "Draft"})
    assert answer.status_code == 201
    steps.append(answer.json()["validation"]["next_step"])
    for change in (
        {"family": "order_line"},
        {"artifact_kinds": ["still_image"]},
        {"pricing_tier": "B", "categories": ["housings"]},
    ):
        answer = client.patch("/api/output-types/draft", json=change)
        assert answer.status_code == 200, answer.json()
        steps.append(answer.json()["validation"]["next_step"])
    # A legacy-rollout draft needs no workflow, so choose_workflow is not asked for.
    assert steps == ["choose_family", "choose_artifact_kind", "bind_commercial", None]


def test_graph_drafts_report_next_step_in_the_seed_order(client: TestClient):
    client.post("/api/output-types", json={"slug": "draft", "name": "Draft"})
    changes: dict[str, Any] = {"rollout": "graph"}
    seen = []
    for step in (
        {},
        {"family": "order_line"},
        {"workflow_id": "order-still-v1"},
        {"artifact_kinds": ["still_image"]},
        {"overrides": {"samples": 32}},
        {"pricing_tier": "A"},
        {"categories": ["bearings"]},
    ):
        changes.update(step)
        report = client.post("/api/output-types/draft/validate", json=changes).json()
        seen.append((report["next_step"], tuple(report["missing"])))
    assert seen == [
        ("choose_family", ("family",)),
        ("choose_workflow", ("workflow_id",)),
        ("choose_artifact_kind", ("artifact_kinds",)),
        ("bind_commercial", ("pricing_tier", "categories")),
        ("bind_commercial", ("pricing_tier", "categories")),
        ("bind_commercial", ("categories",)),
        (None, ()),
    ]
    # Validating with changes saves nothing.
    stored = client.get("/api/output-types/draft").json()["output_type"]
    assert stored["family"] is None and stored["rollout"] == "legacy"


def test_duplicate_slug_is_a_conflict(client: TestClient):
    answer = client.post("/api/output-types", json=profile(slug="studio-still"))
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "conflict"
    assert answer.json()["error"]["field"] == "slug"


@pytest.mark.parametrize(
    "body, field",
    [
        (profile(slug="Not A Slug"), "slug"),
        (profile(resolution="1920x1080"), "resolution"),
        (profile(artifact_kinds=["hologram"]), "artifact_kinds[0]"),
        (profile(rollout="sometimes"), "rollout"),
        ({"name": "no slug"}, "slug"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client: TestClient, body: dict, field: str):
    answer = client.post("/api/output-types", json=body)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == field


# --- every validation rule, named by field ----------------------------------------------------

RULES = [
    pytest.param({"workflow_id": "cad-intake-v1"}, "workflow_id", "family_mismatch", id="family-mismatch"),
    pytest.param({"workflow_id": "order-never-v1"}, "workflow_id", "unknown_workflow", id="unknown-workflow"),
    pytest.param({"workflow_version": 7}, "workflow_id", "unknown_workflow", id="unknown-workflow-version"),
    pytest.param({"family": "video"}, "family", "unknown_family", id="unknown-family"),
    pytest.param(
        {"artifact_kinds": ["still_image", "turntable_video"]},
        "artifact_kinds[1]",
        "artifact_contract_unsatisfied",
        id="contract-unsatisfied",
    ),
    pytest.param(
        {"overrides": {"preview_thumbnail": True}},
        "artifact_kinds[1]",
        "artifact_contract_unsatisfied",
        id="thumbnail-contract-unsatisfied",
    ),
    pytest.param(
        {"overrides": {"frame_count": 72}},
        "overrides.frame_count",
        "override_target_missing",
        id="override-target-missing",
    ),
    pytest.param(
        {"overrides": {"width": -1}}, "overrides.width", "invalid_override", id="override-width-negative"
    ),
    pytest.param(
        {"overrides": {"width": 8}},
        "overrides.width",
        "invalid_override",
        id="override-width-below-node-minimum",
    ),
    pytest.param(
        {"overrides": {"engine": "luxcore"}},
        "overrides.engine",
        "invalid_override",
        id="override-engine-unknown",
    ),
    pytest.param(
        {"overrides": {"template": "neon"}},
        "overrides.template",
        "invalid_override",
        id="override-template-unknown",
    ),
    pytest.param(
        {"overrides": {"resolution": "1920x1080"}},
        "overrides.resolution",
        "unknown_override",
        id="unknown-override",
    ),
    pytest.param(
        {"material_constraints": ["unobtainium"]},
        "material_constraints[0]",
        "unknown_material",
        id="unknown-material",
    ),
    pytest.param(
        {"material_constraints": ["brass"], "overrides": {"material_override": "rubber"}},
        "overrides.material_override",
        "material_not_allowed",
        id="material-not-allowed",
    ),
    pytest.param(
        {"workflow_id": None, "workflow_version": None},
        "rollout",
        "rollout_requires_workflow",
        id="graph-without-workflow",
    ),
]


@pytest.mark.parametrize("changes, field, code", RULES)
def test_graph_rollout_with_a_problem_is_refused_naming_the_field(
    client: TestClient, changes: dict, field: str, code: str
):
    answer = client.post("/api/output-types", json=profile(**changes))
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_output_type"
    assert (field, code) in problems_of(error)
    assert error["field"] == error["problems"][0]["field"]
    assert client.get("/api/output-types/test-still").status_code == 404


@pytest.mark.parametrize(
    "changes, field, code", [rule for rule in RULES if rule.id != "graph-without-workflow"]
)
def test_legacy_draft_with_a_problem_is_saved_with_its_report(
    client: TestClient, changes: dict, field: str, code: str
):
    answer = client.post("/api/output-types", json=profile(rollout="legacy", **changes))
    assert answer.status_code == 201
    assert answer.json()["validation"]["valid"] is False
    assert (field, code) in problems_of(answer.json()["validation"])
    stored = client.post("/api/output-types/test-still/validate").json()
    assert (field, code) in problems_of(stored)


def test_shadow_rollout_is_held_to_the_same_rules(client: TestClient):
    answer = client.post("/api/output-types", json=profile(rollout="shadow", overrides={"frame_count": 3}))
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "overrides.frame_count"


def test_cad_family_cannot_sell_a_still(client: TestClient):
    answer = client.post(
        "/api/output-types",
        json=profile(rollout="legacy", family="cad_file", workflow_id="cad-intake-v1", overrides={}),
    )
    assert ("artifact_kinds[0]", "unsupported_artifact_kind") in problems_of(answer.json()["validation"])


# --- patch ------------------------------------------------------------------------------------


def test_patch_changes_fields_and_revalidates(client: TestClient):
    answer = client.patch(
        "/api/output-types/studio-still", json={"name": "Studio Still XL", "overrides": {"width": 4000}}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["output_type"]["name"] == "Studio Still XL"
    assert body["output_type"]["overrides"] == {"width": 4000}
    assert body["output_type"]["updated_at"] >= body["output_type"]["created_at"]
    assert body["validation"]["valid"] is True


def test_patch_that_breaks_a_graph_profile_is_refused_and_not_stored(client: TestClient):
    answer = client.patch("/api/output-types/studio-still", json={"overrides": {"frame_count": 10}})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "overrides.frame_count"
    stored = client.get("/api/output-types/studio-still").json()["output_type"]
    assert "frame_count" not in stored["overrides"]


@pytest.mark.parametrize(
    "body, field",
    [({"slug": "renamed"}, "slug"), ({"name": None}, "name"), ({"rollout": "everywhere"}, "rollout")],
)
def test_patch_refuses_bad_fields_by_name(client: TestClient, body: dict, field: str):
    answer = client.patch("/api/output-types/studio-still", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == field


def test_patch_unknown_slug_is_not_found(client: TestClient):
    assert client.patch("/api/output-types/nope", json={"name": "x"}).status_code == 404


# --- options ----------------------------------------------------------------------------------


def test_schema_options_come_from_the_registry(client: TestClient):
    options = client.get("/api/output-types/schema/options").json()
    assert options["catalog_version"] == CATALOG.version
    assert options["families"] == ["cad_file", "order_line"]
    assert options["artifact_kinds"]["order_line"] == list(CATALOG.families["order_line"].artifact_kinds)
    assert options["engines"] == ["cycles", "eevee", "workbench"]
    assert options["image_formats"] == ["png", "jpeg"]
    assert "studio_white" in options["templates"]
    assert "front_three_quarter" in options["camera_presets"]
    assert "brushed_steel" in options["materials"]
    assert options["rollouts"] == ["legacy", "graph", "shadow"]
    assert [step["step"] for step in options["creation_steps"]] == [
        "choose_family",
        "choose_workflow",
        "choose_artifact_kind",
        "set_overrides",
        "bind_commercial",
    ]
    width = options["overrides"]["width"]
    assert width["schema"]["anyOf"][0]["minimum"] == 1
    assert width["targets"]["render.blender_still"]["minimum"] == 16
    assert set(options["overrides"]["frame_count"]["targets"]) == {"render.blender_turntable"}
    assert options["overrides"]["engine"]["schema"]["anyOf"][0]["enum"] == options["engines"]
    assert options["overrides"]["preview_thumbnail"]["contract"] is True


@pytest.mark.parametrize(
    "override, option",
    [
        ("engine", "engines"),
        ("template", "templates"),
        ("camera_preset", "camera_presets"),
        ("image_format", "image_formats"),
        ("material_override", "materials"),
    ],
)
def test_every_offered_value_is_accepted(client: TestClient, override: str, option: str):
    values = client.get("/api/output-types/schema/options").json()[option]
    for value in values:
        report = client.post(
            "/api/output-types/studio-still/validate", json={"overrides": {override: value}}
        ).json()
        assert report["valid"], (value, report["problems"])


# --- dispatch plans ---------------------------------------------------------------------------


def test_dispatch_plan_of_a_graph_profile_explains_every_param(client: TestClient):
    answer = client.post(
        "/api/output-types/studio-still/dispatch-plan", json={"invocation_params": {"samples": 8}}
    )
    assert answer.status_code == 200
    plan = answer.json()
    assert plan["route"] == "graph" and plan["artifact_kinds"] == ["still_image"]
    assert plan["workflow_id"] == "order-still-v1" and plan["workflow_version"] == 1
    still = plan["effective"]["render.blender_still"]
    assert still["params"]["width"] == 1920
    assert still["param_sources"]["width"] == "profile_override"
    assert still["params"]["samples"] == 8
    assert still["param_sources"]["samples"] == "invocation"
    assert still["param_sources"]["denoise"] == "module_default"
    assert plan["effective"]["render.resolve_template"]["params"]["template"] == "studio_white"


def test_dispatch_plan_without_a_body(client: TestClient):
    answer = client.post("/api/output-types/studio-turntable/dispatch-plan")
    assert answer.status_code == 200
    assert answer.json()["effective"]["render.blender_turntable"]["params"]["frame_count"] == 72


def test_dispatch_plan_of_a_legacy_profile(client: TestClient):
    client.post(
        "/api/output-types",
        json=profile(
            slug="legacy-spin",
            rollout="legacy",
            workflow_id=None,
            workflow_version=None,
            artifact_kinds=["turntable_video"],
            overrides={"frame_count": 48, "fps": 30},
        ),
    )
    plan = client.post("/api/output-types/legacy-spin/dispatch-plan", json={}).json()
    assert plan["route"] == "legacy" and plan["workflow_id"] is None
    assert plan["artifact_kinds"] == ["turntable_video"]
    turntable = plan["effective"]["render.blender_turntable"]
    assert turntable["params"]["frame_count"] == 48
    assert turntable["param_sources"]["fps"] == "profile_override"


def test_dispatch_refusals_are_409_naming_the_field(client: TestClient):
    assert client.patch("/api/output-types/studio-still", json={"is_active": False}).status_code == 200
    answer = client.post("/api/output-types/studio-still/dispatch-plan", json={})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "dispatch_refused"
    assert answer.json()["error"]["field"] == "is_active"


def test_a_shadow_dispatch_plan_shows_the_customers_legacy_settings(client: TestClient):
    assert client.patch("/api/output-types/studio-still", json={"rollout": "shadow"}).status_code == 200
    answer = client.post("/api/output-types/studio-still/dispatch-plan", json={})
    assert answer.status_code == 200, answer.json()
    assert answer.json()["route"] == "shadow"
    assert "output.publish_asset" in answer.json()["effective"]


@pytest.mark.parametrize(
    "params, code", [({"width": -5}, "invalid_params"), ({"resolution": "hd"}, "unknown_override")]
)
def test_dispatch_with_bad_invocation_params_is_422(client: TestClient, params: dict, code: str):
    answer = client.post("/api/output-types/studio-still/dispatch-plan", json={"invocation_params": params})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_definition"
    assert error["problems"][0]["code"] == code


def test_dispatch_of_unreadable_legacy_settings_names_the_key(client: TestClient):
    client.post(
        "/api/output-types",
        json=profile(
            slug="old-lux",
            rollout="legacy",
            workflow_id=None,
            workflow_version=None,
            legacy_render_settings={"renderer": "luxcore"},
        ),
    )
    answer = client.post("/api/output-types/old-lux/dispatch-plan", json={})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "legacy_mapping_error"
    assert answer.json()["error"]["field"] == "renderer"


def test_dispatch_plan_body_refuses_unknown_keys(client: TestClient):
    answer = client.post("/api/output-types/studio-still/dispatch-plan", json={"params": {"samples": 8}})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "params"


# --- the parity gate -----------------------------------------------------------------------------


def test_moving_to_the_graph_passes_the_parity_gate(client: TestClient):
    legacy = profile(slug="old-still", rollout="legacy", workflow_id=None, workflow_version=None)
    assert client.post("/api/output-types", json=legacy).status_code == 201

    shadow = client.post("/api/output-types/old-still/rollout", json={"rollout": "shadow"})
    assert shadow.status_code == 200, shadow.json()
    assert shadow.json()["output_type"]["workflow_id"] == "order-still-v1"  # its kind's starter
    closed = client.patch("/api/output-types/old-still", json={"rollout": "graph"})
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "rollout_gate_closed"
    assert "0 shadow comparison(s) on record, 5 needed" in closed.json()["error"]["message"]
    again = client.post("/api/output-types/old-still/rollout", json={"rollout": "graph"})
    assert again.status_code == 409 and again.json()["error"]["field"] == "rollout"
    no_reason = client.post("/api/output-types/old-still/rollout", json={"rollout": "graph", "force": True})
    assert no_reason.status_code == 422 and no_reason.json()["error"]["field"] == "reason"
    assert client.get("/api/output-types/old-still").json()["output_type"]["rollout"] == "shadow"

    gate = client.get("/api/output-types/old-still/parity").json()
    assert (gate["open"], gate["compared"], gate["required"], gate["last"]) == (False, 0, 5, [])
    forced = client.post(
        "/api/output-types/old-still/rollout",
        json={"rollout": "graph", "force": True, "reason": "signed off by the customer"},
    )
    assert forced.status_code == 200, forced.json()
    assert forced.json()["output_type"]["rollout"] == "graph" and forced.json()["gate"]["open"] is False
    assert client.get("/api/output-types/no-such/parity").status_code == 404
