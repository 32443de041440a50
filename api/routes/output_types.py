"""Output-type routes: profiles with their validation, allowed values, dispatch plans, legacy import."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from api.auth import AUTHENTICATED, CallerDep, require_role
from api.deps import CatalogDep, SessionDep, SettingsDep, SlugPath, TemporalDep, off_loop
from api.errors import ERROR_RESPONSES
from api.options import schema_options
from api.schemas import (
    DispatchPlanRequest,
    DispatchPlanSummary,
    OutputTypeEnvelope,
    OutputTypeIn,
    OutputTypePatch,
    OutputTypePublic,
    RolloutAnswer,
    RolloutRequest,
    SchemaOptions,
)
from core.errors import ConflictError, InvalidOutputTypeError, NotFoundError
from core.vocabulary import Role
from output_profiles.dispatch import plan_dispatch
from output_profiles.models import OutputTypeBase, OutputTypeCreate, Rollout
from output_profiles.validation import ProfileReport, validate_profile
from persistence.repositories import find_output_type, require_output_type, workflow_for
from persistence.tables import OutputType
from prodgraph import cad_files
from prodgraph.legacy_import import ImportReport, import_export
from prodgraph.parity import calibration_input, start_calibration
from prodgraph.rollout import GateVerdict, check_gate, parity_gate, rollout_change, set_rollout
from registry.catalog import Catalog
from workflows.parity import CalibrationInput

router = APIRouter(
    prefix="/api/output-types", tags=["output-types"], responses=ERROR_RESPONSES, dependencies=AUTHENTICATED
)

#: Rollouts that dispatch through a graph, so a profile with problems must not be saved as one.
GRAPH_ROLLOUTS = (Rollout.graph, Rollout.shadow)


@router.get(
    "",
    response_model=list[OutputTypePublic],
    dependencies=[require_role(Role.client, Role.author, Role.operator)],
)
def list_output_types(session: SessionDep) -> list[OutputType]:
    """Every output type, by slug."""
    return list(session.exec(select(OutputType).order_by(OutputType.slug)))


@router.get(
    "/schema/options",
    response_model=SchemaOptions,
    dependencies=[require_role(Role.client, Role.author, Role.operator)],
)
def options(catalog: CatalogDep) -> SchemaOptions:
    """Allowed values (families, artifact kinds, engines, presets, templates, materials) and
    every override with its own JSON schema and the node parameter schemas it sets."""
    return schema_options(catalog)


@router.post("/import", response_model=ImportReport, dependencies=[require_role(Role.author)])
def import_legacy(records: Annotated[list[Any], Body()], session: SessionDep) -> ImportReport:
    """Import a legacy export: each readable record becomes (or updates) a legacy-rollout type.

    Records the adapter cannot read are not imported; their report names the key. An unknown
    `workflow_definition_id` leaves the workflow unset and is reported as a warning.
    """
    return import_export(session, records)


@router.get(
    "/{slug}",
    response_model=OutputTypeEnvelope,
    dependencies=[require_role(Role.client, Role.author, Role.operator)],
)
def get_output_type(slug: SlugPath, session: SessionDep, catalog: CatalogDep) -> OutputTypeEnvelope:
    """One output type and its current validation."""
    row = require_output_type(session, slug)
    return _envelope(row, _report(session, catalog, row))


@router.post("", response_model=OutputTypeEnvelope, status_code=201, dependencies=[require_role(Role.author)])
def create_output_type(body: OutputTypeIn, session: SessionDep, catalog: CatalogDep) -> OutputTypeEnvelope:
    """Create an output type; drafts are saved with their report (next_step, missing).

    A graph or shadow rollout with any problem is refused with 422 naming the fields.
    """
    if find_output_type(session, body.slug) is not None:
        raise ConflictError(f"output type {body.slug!r} already exists", field="slug")
    report = _checked(session, catalog, body)
    row = OutputType(**body.model_dump())
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ConflictError(f"output type {body.slug!r} already exists", field="slug") from None
    session.refresh(row)
    return _envelope(row, report)


@router.patch("/{slug}", response_model=OutputTypeEnvelope, dependencies=[require_role(Role.author)])
def update_output_type(
    slug: SlugPath,
    body: OutputTypePatch,
    session: SessionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> OutputTypeEnvelope:
    """Change some fields; the same rules as creation apply to the result.

    A change of rollout passes the parity gate (409 `rollout_gate_closed` before enough equivalent
    shadow runs; forcing it is POST /{slug}/rollout) and is recorded.
    """
    row = require_output_type(session, slug)
    changes = body.model_dump(exclude_unset=True)
    merged = _merged(row, changes)
    if merged.rollout != row.rollout:
        gate = check_gate(
            session, row, merged.rollout, required=settings.parity_gate_runs, force=False, reason=None
        )
        session.add(rollout_change(row, merged.rollout, gate, actor=caller.owner, force=False, reason=None))
    report = _checked(session, catalog, merged)
    for name in changes:
        setattr(row, name, getattr(merged, name))
    row.updated_at = datetime.now(UTC)
    session.add(row)
    session.commit()
    session.refresh(row)
    return _envelope(row, report)


@router.post("/{slug}/rollout", response_model=RolloutAnswer, dependencies=[require_role(Role.author)])
def change_rollout(
    slug: SlugPath,
    body: RolloutRequest,
    session: SessionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> RolloutAnswer:
    """Move an output type between legacy, shadow and graph through the parity gate.

    `graph` needs the last N shadow comparisons (PRODGRAPH_PARITY_GATE_RUNS, 5) all identical or
    equivalent, or `force` with a `reason`, which is recorded with the change.
    """
    row, gate = set_rollout(
        session,
        catalog,
        slug,
        body.rollout,
        actor=caller.owner,
        required=settings.parity_gate_runs,
        workflow_id=body.workflow_id,
        workflow_version=body.workflow_version,
        force=body.force,
        reason=body.reason,
    )
    return RolloutAnswer(output_type=OutputTypePublic.model_validate(row), gate=gate)


@router.get(
    "/{slug}/parity", response_model=GateVerdict, dependencies=[require_role(Role.author, Role.operator)]
)
def output_type_parity(slug: SlugPath, session: SessionDep, settings: SettingsDep) -> GateVerdict:
    """The parity gate of an output type: comparisons run, share equivalent, the last ones."""
    require_output_type(session, slug)
    return parity_gate(session, slug, settings.parity_gate_runs)


class CalibrationRequest(BaseModel):
    """Body of POST /{slug}/parity/calibrate: the uploaded STEP file to measure the noise on."""

    model_config = ConfigDict(extra="forbid")

    cad_file_id: str = Field(max_length=40, pattern=r"^cad_[0-9a-f]{32}$")
    invocation_params: dict[str, Any] = {}
    """Parameters both runs take (e.g. a smaller size than the output type's)."""


class CalibrationStarted(BaseModel):
    """A started calibration: its run, which stores the output type's thresholds when it ends."""

    workflow_id: str
    temporal_ui: str | None


@router.post(
    "/{slug}/parity/calibrate",
    response_model=CalibrationStarted,
    status_code=202,
    dependencies=[require_role(Role.author, Role.operator)],
)
async def calibrate_parity(
    slug: SlugPath, body: CalibrationRequest, session: SessionDep, catalog: CatalogDep, temporal: TemporalDep
) -> CalibrationStarted:
    """Run the output type's legacy route twice with two sampling seeds (nothing is delivered),
    compare them and keep the measured noise as its parity thresholds."""

    def planned(db: Session) -> CalibrationInput:
        record = cad_files.find_file(db, body.cad_file_id)
        if record is None:
            raise NotFoundError(f"no CAD file {body.cad_file_id!r}", field="cad_file_id")
        step = cad_files.step_reference(record)
        return calibration_input(db, catalog, slug, step, temporal.task_queues(), body.invocation_params)

    handle = await start_calibration(temporal, await off_loop(session, planned))
    return CalibrationStarted(workflow_id=handle.id, temporal_ui=temporal.workflow_url(handle.id))


@router.post("/{slug}/validate", response_model=ProfileReport, dependencies=[require_role(Role.author)])
def validate_output_type(
    slug: SlugPath,
    session: SessionDep,
    catalog: CatalogDep,
    changes: Annotated[OutputTypePatch | None, Body()] = None,
) -> ProfileReport:
    """Validate the stored output type, or (with a body) it with those changes, saving nothing."""
    row = require_output_type(session, slug)
    profile = _merged(row, changes.model_dump(exclude_unset=True) if changes else {})
    return _report(session, catalog, profile)


@router.post(
    "/{slug}/dispatch-plan",
    response_model=DispatchPlanSummary,
    dependencies=[require_role(Role.client, Role.author, Role.operator)],
)
def dispatch_plan(
    slug: SlugPath, session: SessionDep, catalog: CatalogDep, body: DispatchPlanRequest | None = None
) -> DispatchPlanSummary:
    """Where an order line would go and with which parameters (pure planning, nothing runs).

    Refusals: 409 `dispatch_refused` (inactive, shadow, invalid graph profile) naming the
    field; 422 `invalid_definition` for invocation params the workflow cannot take; 422
    `legacy_mapping_error` naming the legacy key a legacy type cannot map.
    """
    row = require_output_type(session, slug)
    params = body.invocation_params if body else {}
    plan = plan_dispatch(row, workflow_for(session, row), catalog, params)
    graph = plan.graph_plan
    return DispatchPlanSummary(
        slug=row.slug,
        route=plan.route,
        artifact_kinds=plan.artifact_kinds,
        workflow_id=graph.workflow_id if graph else None,
        workflow_version=graph.workflow_version if graph else None,
        catalog_version=catalog.version,
        effective=plan.effective(),
    )


def _report(session: Session, catalog: Catalog, profile: OutputTypeBase) -> ProfileReport:
    return validate_profile(profile, workflow_for(session, profile), catalog)


def _checked(session: Session, catalog: Catalog, profile: OutputTypeBase) -> ProfileReport:
    """The profile's report; refused when a graph-dispatched profile has problems."""
    report = _report(session, catalog, profile)
    if profile.rollout in GRAPH_ROLLOUTS and not report.valid:
        first = report.problems[0]
        raise InvalidOutputTypeError(
            f"rollout {profile.rollout.value!r} needs a valid profile; {first.field}: {first.message}",
            problems=[problem.model_dump() for problem in report.problems],
            field=first.field,
        )
    return report


def _merged(row: OutputType, changes: dict[str, Any]) -> OutputTypeCreate:
    """The stored fields with changes applied, validated; bad values answer 422 by field."""
    current = {name: getattr(row, name) for name in OutputTypeBase.model_fields}
    try:
        return OutputTypeCreate.model_validate({**current, **changes})
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None


def _envelope(row: OutputType, report: ProfileReport) -> OutputTypeEnvelope:
    return OutputTypeEnvelope(output_type=OutputTypePublic.model_validate(row), validation=report)
