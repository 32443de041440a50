"""Repositories: stored workflow-definition versions and output types, by id and slug."""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from core.errors import NotFoundError
from output_profiles.models import OutputTypeBase
from persistence.tables import OutputType, WorkflowDefinitionRecord
from registry.definition import WorkflowDefinition


def latest_record(session: Session, definition_id: str) -> WorkflowDefinitionRecord | None:
    """The newest stored version of a definition, or None."""
    query = (
        select(WorkflowDefinitionRecord)
        .where(WorkflowDefinitionRecord.id == definition_id)
        .order_by(col(WorkflowDefinitionRecord.version).desc())
    )
    return session.exec(query).first()


def find_record(
    session: Session, definition_id: str, version: int | None = None
) -> WorkflowDefinitionRecord | None:
    """One stored version (the latest when version is None), or None."""
    if version is None:
        return latest_record(session, definition_id)
    return session.get(WorkflowDefinitionRecord, (definition_id, version))


def require_record(
    session: Session, definition_id: str, version: int | None = None
) -> WorkflowDefinitionRecord:
    """One stored version, or NotFoundError naming what is missing."""
    record = find_record(session, definition_id, version)
    if record is None:
        which = f" version {version}" if version is not None else ""
        raise NotFoundError(
            f"workflow definition {definition_id!r}{which} does not exist",
            field="version" if version is not None else "id",
        )
    return record


def versions_by_id(session: Session) -> dict[str, list[int]]:
    """Every stored definition id with its versions, ascending."""
    rows = session.exec(
        select(WorkflowDefinitionRecord.id, WorkflowDefinitionRecord.version).order_by(
            col(WorkflowDefinitionRecord.id), col(WorkflowDefinitionRecord.version)
        )
    )
    versions: dict[str, list[int]] = {}
    for definition_id, version in rows:
        versions.setdefault(definition_id, []).append(version)
    return versions


def next_version(session: Session, definition_id: str) -> int:
    """The version a new save of this id gets."""
    query = select(func.max(WorkflowDefinitionRecord.version)).where(
        WorkflowDefinitionRecord.id == definition_id
    )
    return (session.exec(query).one() or 0) + 1


def workflow_for(session: Session, profile: OutputTypeBase) -> WorkflowDefinition | None:
    """The workflow an output type links (its pinned version, else the latest), or None."""
    if not profile.workflow_id:
        return None
    record = find_record(session, profile.workflow_id, profile.workflow_version)
    return WorkflowDefinition.model_validate(record.document) if record else None


def find_output_type(session: Session, slug: str) -> OutputType | None:
    """An output type by slug, or None."""
    return session.exec(select(OutputType).where(OutputType.slug == slug)).first()


def require_output_type(session: Session, slug: str) -> OutputType:
    """An output type by slug, or NotFoundError."""
    output_type = find_output_type(session, slug)
    if output_type is None:
        raise NotFoundError(f"output type {slug!r} does not exist", field="slug")
    return output_type
