"""Workflow routes: the node palette, families, starters, validation and stored definitions."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.auth import AUTHENTICATED, require_role
from api.deps import CatalogDep, DefinitionIdPath, SessionDep, VersionPath
from api.errors import ERROR_RESPONSES, ErrorResponse
from api.limits import nesting_exceeds, too_deep
from api.schemas import (
    DefinitionPublic,
    DefinitionSaved,
    DefinitionSummary,
    DefinitionValidation,
    FamilyPublic,
    NodeDefinitionList,
)
from core.errors import CatalogChangedError, ConflictError, InvalidDefinitionError, NotFoundError
from core.vocabulary import Role
from persistence.catalog_history import catalog_change
from persistence.repositories import next_version, require_record, versions_by_id
from persistence.tables import WorkflowDefinitionRecord
from registry.catalog import Catalog
from registry.definition import WorkflowDefinition
from registry.starters import starters
from registry.validation import Problem, ValidationReport, validate_document

router = APIRouter(
    prefix="/api/workflows", tags=["workflows"], responses=ERROR_RESPONSES, dependencies=AUTHENTICATED
)

#: OpenAPI body of the routes that read raw JSON themselves (any shape is accepted).
ANY_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"description": "a workflow definition, any shape"}}},
    }
}


class RawJson:
    """A request body parsed as JSON, or why it could not be."""

    def __init__(self, value: Any = None, error: str | None = None):
        self.value = value
        self.error = error


async def read_raw_json(request: Request) -> RawJson:
    """The body as JSON without FastAPI's validation, so garbage is reported, not refused.

    A body nested deeper than PRODGRAPH_MAX_JSON_DEPTH is refused (422 `json_too_deep`) whatever
    its content type: the edge middleware checks JSON content types only.
    """
    body = await request.body()
    limit = request.app.state.settings.max_json_depth
    if nesting_exceeds(body, limit):
        raise too_deep(limit)
    try:
        return RawJson(json.loads(body))
    except RecursionError:
        raise too_deep(limit) from None
    except (UnicodeDecodeError, ValueError) as exc:
        return RawJson(error=str(exc))


RawJsonDep = Annotated[RawJson, Depends(read_raw_json)]


def etag_of(catalog: Catalog) -> str:
    """The strong ETag of the catalogue."""
    return f'"{catalog.version}"'


def etag_matches(header: str | None, catalog: Catalog) -> bool:
    """Whether an If-Match / If-None-Match header names the current catalogue (quotes optional)."""
    tags = [tag.strip().removeprefix("W/").strip('"') for tag in (header or "").split(",")]
    return "*" in tags or catalog.version in tags


@router.get(
    "/node-definitions",
    response_model=NodeDefinitionList,
    dependencies=[require_role(Role.author, Role.operator)],
)
def node_definitions(
    catalog: CatalogDep,
    response: Response,
    family: Annotated[str | None, Query(max_length=100)] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Any:
    """The palette (optionally one family's), with ETag = the catalogue version; 304 if unchanged."""
    if family is not None and family not in catalog.families:
        raise NotFoundError(
            f"family {family!r} does not exist; choose one of {', '.join(sorted(catalog.families))}",
            field="family",
        )
    if if_none_match and etag_matches(if_none_match, catalog):
        return Response(status_code=304, headers={"ETag": etag_of(catalog)})
    response.headers["ETag"] = etag_of(catalog)
    return NodeDefinitionList(catalog_version=catalog.version, node_definitions=catalog.list(family))


@router.get(
    "/families", response_model=list[FamilyPublic], dependencies=[require_role(Role.author, Role.operator)]
)
def families(catalog: CatalogDep) -> list[FamilyPublic]:
    """Every family: entry context schema, palette, artifact kinds, preflight."""
    return [FamilyPublic(**family.describe()) for _, family in sorted(catalog.families.items())]


@router.get(
    "/starters",
    response_model=list[WorkflowDefinition],
    dependencies=[require_role(Role.author, Role.operator)],
)
def starter_definitions() -> list[WorkflowDefinition]:
    """The shipped starter definitions."""
    return list(starters().values())


@router.post(
    "/validate",
    response_model=DefinitionValidation,
    openapi_extra=ANY_JSON_BODY,
    dependencies=[require_role(Role.author)],
)
def validate(body: RawJsonDep, session: SessionDep, catalog: CatalogDep) -> DefinitionValidation:
    """Validate a definition of any shape; the answer is a report, not a 422 (only a body over the
    edge limits is refused: 413 larger than PRODGRAPH_MAX_BODY_MB, 422 `json_too_deep`).

    Non-JSON bodies are reported as `invalid_json`, wrong shapes as `invalid_shape` problems.
    When the definition carries a `catalog_version` other than the current one, the report
    also has a `catalog_changed` block: the steps added, removed and changed since that
    version (from this server's catalogue history) and the nodes of this definition they touch.
    """
    if body.error is not None:
        problem = Problem(code="invalid_json", path="$", message=f"not JSON: {body.error}")
        return DefinitionValidation(
            valid=False, errors=[problem], warnings=[], catalog_version=catalog.version
        )
    report = validate_document(body.value, catalog)
    claimed = _claimed_version(body.value)
    change = catalog_change(session, claimed, catalog, body.value) if claimed else None
    return DefinitionValidation(**report.model_dump(), catalog_changed=change)


@router.get(
    "/definitions",
    response_model=list[DefinitionSummary],
    dependencies=[require_role(Role.author, Role.operator)],
)
def list_definitions(
    session: SessionDep, catalog: CatalogDep, family: Annotated[str | None, Query(max_length=100)] = None
) -> list[DefinitionSummary]:
    """Every stored definition id at its latest version, with all its versions."""
    summaries = []
    for definition_id, versions in versions_by_id(session).items():
        record = require_record(session, definition_id, versions[-1])
        if family is None or record.family == family:
            summaries.append(
                DefinitionSummary(
                    id=record.id,
                    version=record.version,
                    versions=versions,
                    family=record.family,
                    name=record.name,
                    catalog_version=record.catalog_version,
                    catalog_current=record.catalog_version == catalog.version,
                    created_at=record.created_at,
                )
            )
    return summaries


@router.get(
    "/definitions/{definition_id}",
    response_model=DefinitionPublic,
    dependencies=[require_role(Role.author, Role.operator)],
)
def get_definition(
    definition_id: DefinitionIdPath, session: SessionDep, catalog: CatalogDep
) -> DefinitionPublic:
    """The latest version of a definition."""
    return _public(require_record(session, definition_id), catalog)


@router.get(
    "/definitions/{definition_id}/versions/{version}",
    response_model=DefinitionPublic,
    dependencies=[require_role(Role.author, Role.operator)],
)
def get_definition_version(
    definition_id: DefinitionIdPath, version: VersionPath, session: SessionDep, catalog: CatalogDep
) -> DefinitionPublic:
    """One stored version of a definition."""
    return _public(require_record(session, definition_id, version), catalog)


@router.post(
    "/definitions",
    response_model=DefinitionSaved,
    status_code=201,
    responses={412: {"model": ErrorResponse}},
    dependencies=[require_role(Role.author)],
)
def save_definition(
    document: Annotated[Any, Body()],
    session: SessionDep,
    catalog: CatalogDep,
    if_match: Annotated[str | None, Header()] = None,
) -> DefinitionSaved:
    """Validate and store a definition as a new immutable version.

    Versions are assigned here: the first save of an id is version 1, every later save of
    the same id is the previous latest + 1 (the body's `version` is replaced). An invalid
    definition is refused with 422 `invalid_definition` and every problem.

    Catalogue check: a body whose `catalog_version` is not the current catalogue's, or an
    `If-Match` header that does not name it, is not saved. The definition is re-validated
    against the current catalogue and the answer is 409 (412 for a failed `If-Match`) with
    code `catalog_changed`, a `catalog_changed` block (steps added/removed/changed since that
    version, and the affected nodes) and the fresh `validation`. Resend with the current
    `catalog_version` (or none) once the changes are reviewed. The stored definition is
    stamped with the catalogue version it was validated against.
    """
    if isinstance(document, dict) and isinstance(document.get("id"), str):
        document = {**document, "version": next_version(session, document["id"])}
    report = validate_document(document, catalog)
    _refuse_stale(session, catalog, document, if_match, report)
    _refuse_invalid(report)
    definition = WorkflowDefinition.model_validate(document).model_copy(
        update={"catalog_version": catalog.version}
    )
    record = _store(session, definition, catalog)
    return DefinitionSaved(definition=_public(record, catalog), validation=report)


def _claimed_version(document: Any) -> str | None:
    value = document.get("catalog_version") if isinstance(document, dict) else None
    return value if isinstance(value, str) and value else None


def _refuse_stale(
    session: Session, catalog: Catalog, document: Any, if_match: str | None, report: ValidationReport
) -> None:
    precondition_failed = if_match is not None and not etag_matches(if_match, catalog)
    claimed = _claimed_version(document)
    if claimed is not None and claimed != catalog.version:
        old = claimed
    elif if_match is not None and precondition_failed:
        old = if_match.strip().removeprefix("W/").strip('"')
    else:
        return
    change = catalog_change(session, old, catalog, document)
    raise CatalogChangedError(
        f"the definition was written for catalogue {old!r}, the current one is "
        f"{catalog.version!r}; review catalog_changed and resend with the current version",
        status=412 if precondition_failed else 409,
        problems=[problem.model_dump() for problem in report.errors],
        details={
            "catalog_changed": change.model_dump() if change else None,
            "validation": report.model_dump(),
        },
    )


def _refuse_invalid(report: ValidationReport) -> None:
    if report.valid:
        return
    first = report.errors[0]
    error = InvalidDefinitionError(
        f"the definition is invalid ({len(report.errors)} problems); first: {first.message}",
        problems=[problem.model_dump() for problem in report.errors],
    )
    error.node_id, error.field = first.node_id, first.path
    raise error


def _store(session: Session, definition: WorkflowDefinition, catalog: Catalog) -> WorkflowDefinitionRecord:
    record = WorkflowDefinitionRecord(
        id=definition.id,
        version=definition.version,
        family=definition.family,
        name=definition.name,
        document=definition.model_dump(mode="json"),
        catalog_version=catalog.version,
    )
    session.add(record)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ConflictError(
            f"version {definition.version} of {definition.id!r} was saved "
            f"concurrently; resend to get the next version",
            field="version",
        ) from None
    session.refresh(record)
    return record


def _public(record: WorkflowDefinitionRecord, catalog: Catalog) -> DefinitionPublic:
    return DefinitionPublic(
        id=record.id,
        version=record.version,
        family=record.family,
        name=record.name,
        catalog_version=record.catalog_version,
        catalog_current=record.catalog_version == catalog.version,
        created_at=record.created_at,
        definition=WorkflowDefinition.model_validate(record.document),
    )
