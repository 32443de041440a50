"""Backend validation of output types against families, workflows and the registry's values."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from activities.materials import LIBRARY
from core.vocabulary import ARTIFACT_KIND_ROLES, ArtifactKind
from output_profiles.models import OutputTypeBase, Rollout
from registry.catalog import Catalog
from registry.definition import WorkflowDefinition
from registry.invocation import InvocationOverrides
from registry.validation import validate_definition

#: Overrides that choose deliverables rather than set a node parameter.
CONTRACT_OVERRIDES = {"preview_thumbnail": "preview_thumbnail"}
#: The create/edit flow, in the seed's order: each step names the fields it needs.
CREATION_STEPS: list[tuple[str, tuple[str, ...]]] = [
    ("choose_family", ("family",)),
    ("choose_workflow", ("workflow_id",)),
    ("choose_artifact_kind", ("artifact_kinds",)),
    ("set_overrides", ()),
    ("bind_commercial", ("pricing_tier", "categories")),
]


class ProfileProblem(BaseModel):
    """One thing wrong with an output type, named by field."""

    model_config = ConfigDict(extra="forbid")

    field: str
    code: str
    message: str


class ProfileReport(BaseModel):
    """Validation result plus where the create/edit flow stands."""

    model_config = ConfigDict(extra="forbid")

    valid: bool
    problems: list[ProfileProblem]
    next_step: str | None
    """First step of the create flow still missing something; None when complete."""
    missing: list[str]
    """Fields that step still needs."""


def validate_profile(
    profile: OutputTypeBase, workflow: WorkflowDefinition | None, catalog: Catalog
) -> ProfileReport:
    """Check every rule; a draft is reported with what it lacks, not refused."""
    problems: list[ProfileProblem] = []
    _check_family(profile, catalog, problems)
    _check_workflow(profile, workflow, catalog, problems)
    _check_artifact_kinds(profile, workflow, catalog, problems)
    _check_overrides(profile, workflow, catalog, problems)
    _check_materials(profile, problems)
    step, missing = creation_progress(profile)
    return ProfileReport(valid=not problems, problems=problems, next_step=step, missing=missing)


def creation_progress(profile: OutputTypeBase) -> tuple[str | None, list[str]]:
    """The first create-flow step whose fields are still empty."""
    for step, fields in CREATION_STEPS:
        if step == "choose_workflow" and profile.rollout == Rollout.legacy:
            continue  # legacy output types stay valid without a workflow
        missing = [field for field in fields if getattr(profile, field) in (None, [], "")]
        if missing:
            return step, missing
    return None, []


def node_params_for(workflow: WorkflowDefinition | None, catalog: Catalog) -> dict[str, list]:
    """Parameter name → params models of the nodes that have it (all order_line modules if no
    workflow: the legacy pipeline may run any of them)."""
    steps = (
        [node.step for node in workflow.nodes]
        if workflow
        else [key for key, spec in catalog.specs.items() if "order_line" in spec.families]
    )
    targets: dict[str, list] = {}
    for step in steps:
        spec = catalog.specs.get(step)
        if spec is None:
            continue
        for name in spec.params_model.model_fields:
            targets.setdefault(name, []).append(spec.params_model)
    return targets


def _check_family(profile: OutputTypeBase, catalog: Catalog, problems: list) -> None:
    if profile.family is not None and profile.family not in catalog.families:
        problems.append(
            ProfileProblem(
                field="family",
                code="unknown_family",
                message=f"family {profile.family!r} does not exist; choose one of "
                f"{', '.join(sorted(catalog.families))}",
            )
        )


def _check_workflow(
    profile: OutputTypeBase, workflow: WorkflowDefinition | None, catalog: Catalog, problems: list
) -> None:
    if profile.rollout in (Rollout.graph, Rollout.shadow) and not profile.workflow_id:
        problems.append(
            ProfileProblem(
                field="rollout",
                code="rollout_requires_workflow",
                message=f"rollout {profile.rollout.value!r} needs a linked workflow",
            )
        )
    if not profile.workflow_id:
        return
    if workflow is None:
        version = f" version {profile.workflow_version}" if profile.workflow_version else ""
        problems.append(
            ProfileProblem(
                field="workflow_id",
                code="unknown_workflow",
                message=f"workflow {profile.workflow_id!r}{version} does not exist",
            )
        )
        return
    if profile.family and workflow.family != profile.family:
        problems.append(
            ProfileProblem(
                field="workflow_id",
                code="family_mismatch",
                message=f"workflow {workflow.id!r} is a {workflow.family} workflow; this output "
                f"type is {profile.family}",
            )
        )
    report = validate_definition(workflow, catalog)
    for error in report.errors:
        problems.append(
            ProfileProblem(
                field="workflow_id",
                code="invalid_workflow",
                message=f"workflow {workflow.id!r}: {error.code} at {error.node_id}: {error.message}",
            )
        )


def _check_artifact_kinds(
    profile: OutputTypeBase, workflow: WorkflowDefinition | None, catalog: Catalog, problems: list
) -> None:
    family = catalog.families.get(profile.family or "")
    produced = _produced_roles(workflow, catalog) if workflow else None
    wanted = list(profile.artifact_kinds)
    if profile.overrides.get("preview_thumbnail") and "preview_thumbnail" not in wanted:
        wanted.append(ArtifactKind.preview_thumbnail)
    for position, kind in enumerate(wanted):
        field = f"artifact_kinds[{position}]"
        if family and kind not in family.artifact_kinds:
            problems.append(
                ProfileProblem(
                    field=field,
                    code="unsupported_artifact_kind",
                    message=f"the {family.name} family cannot deliver {kind}",
                )
            )
        elif workflow is not None and produced is not None and ARTIFACT_KIND_ROLES[kind] not in produced:
            problems.append(
                ProfileProblem(
                    field=field,
                    code="artifact_contract_unsatisfied",
                    message=f"workflow {workflow.id!r} produces no {ARTIFACT_KIND_ROLES[kind]!r} "
                    f"artifact, so it cannot deliver {kind}",
                )
            )


def _check_overrides(
    profile: OutputTypeBase, workflow: WorkflowDefinition | None, catalog: Catalog, problems: list
) -> None:
    rejected: set[str] = set()
    try:
        InvocationOverrides.model_validate(profile.overrides)
    except ValidationError as exc:
        for error in exc.errors():
            rejected.add(str(error["loc"][0]))
            problems.append(
                ProfileProblem(
                    field="overrides." + ".".join(map(str, error["loc"])),
                    code="unknown_override" if error["type"] == "extra_forbidden" else "invalid_override",
                    message=error["msg"],
                )
            )
    targets = node_params_for(workflow, catalog)
    for name, value in profile.overrides.items():
        if value is None or name in CONTRACT_OVERRIDES or name in rejected:
            continue
        if name not in targets:
            where = f"workflow {workflow.id!r}" if workflow else "the legacy pipeline"
            problems.append(
                ProfileProblem(
                    field=f"overrides.{name}",
                    code="override_target_missing",
                    message=f"no node of {where} has a parameter {name!r}",
                )
            )
            continue
        message = _schema_problem(name, value, targets[name])
        if message:
            problems.append(
                ProfileProblem(field=f"overrides.{name}", code="invalid_override", message=message)
            )


def _schema_problem(name: str, value: Any, models: list) -> str | None:
    for model in models:
        try:
            model.__pydantic_validator__.validate_assignment(model.model_construct(), name, value)
        except ValidationError as exc:
            return f"{value!r}: {exc.errors()[0]['msg']}"
    return None


def _check_materials(profile: OutputTypeBase, problems: list) -> None:
    for position, key in enumerate(profile.material_constraints):
        if key not in LIBRARY:
            problems.append(
                ProfileProblem(
                    field=f"material_constraints[{position}]",
                    code="unknown_material",
                    message=f"material {key!r} is not in the library",
                )
            )
    override = profile.overrides.get("material_override")
    if override and profile.material_constraints and override not in profile.material_constraints:
        problems.append(
            ProfileProblem(
                field="overrides.material_override",
                code="material_not_allowed",
                message=f"{override!r} is outside this output type's material constraints",
            )
        )


def _produced_roles(workflow: WorkflowDefinition, catalog: Catalog) -> set[str]:
    return {
        role
        for node in workflow.nodes
        if node.step in catalog.specs
        for role in catalog.specs[node.step].artifact_roles_produced()
    }
