"""Use case: import legacy output-type records through the adapter, one report per record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from core.errors import LegacyMappingError
from legacy_adapter.mapping import LegacyMapping, map_legacy_settings, unknown_legacy_keys
from output_profiles.models import OutputTypeCreate, Rollout
from persistence.repositories import find_output_type, latest_record
from persistence.schema import MAX_INTEGER
from persistence.tables import OutputType

#: Output-type field → the legacy record key it comes from, where they differ.
LEGACY_KEYS = {
    "pricing_tier": "price_tier",
    "legacy_render_settings": "render_settings",
    "workflow_id": "workflow_definition_id",
}
#: What an operator chose when moving an imported type off legacy; a re-import keeps it.
GRAPH_CHOICES = {"rollout", "family", "workflow_id", "workflow_version", "artifact_kinds", "overrides"}


class ImportFailure(BaseModel):
    """Why one legacy record was not imported."""

    key: str
    message: str


class ImportRecordReport(BaseModel):
    """What became of one legacy record."""

    slug: str | None
    status: Literal["created", "updated", "error"]
    artifact_kind: str | None = None
    workflow_id: str | None = None
    ignored_keys: list[str] = []
    unknown_keys: list[str] = []
    """Keys the adapter does not know: imported anyway, reported as warnings."""
    warnings: list[str] = []
    error: ImportFailure | None = None


class ImportReport(BaseModel):
    """Counts and per-record reports of an import."""

    created: int
    updated: int
    errors: int
    records: list[ImportRecordReport]


# --- legacy ---------------------------------------------------------------------------------


def import_record(session: Session, record: Any) -> ImportRecordReport:
    """Map, check and upsert one legacy record; unreadable records are reported, not imported."""
    if not isinstance(record, dict):
        return _failed(None, [], "record", f"{record!r} is not an object")
    slug = record.get("slug") if isinstance(record.get("slug"), str) else None
    settings = record.get("render_settings")
    unknown = unknown_legacy_keys(settings)
    legacy_id = record.get("id")
    if not isinstance(legacy_id, int) or isinstance(legacy_id, bool):
        return _failed(slug, unknown, "id", f"{legacy_id!r} is not a legacy record id")
    if not -MAX_INTEGER - 1 <= legacy_id <= MAX_INTEGER:
        return _failed(slug, unknown, "id", f"{legacy_id} is out of range (at most {MAX_INTEGER})")
    try:
        mapping = map_legacy_settings(settings)
    except LegacyMappingError as exc:
        return _failed(slug, unknown, exc.key, exc.message)
    workflow_id, workflow_version, warnings = _linked_workflow(session, record)
    try:
        profile = OutputTypeCreate.model_validate(_fields(record, mapping, workflow_id, workflow_version))
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        return _failed(slug, unknown, LEGACY_KEYS.get(field, field), exc.errors()[0]["msg"])
    warnings = [
        f"render_settings.{key} is not a legacy key the adapter knows; kept in "
        f"legacy_render_settings for parity checks"
        for key in unknown
    ] + warnings
    outcome = _upsert(session, profile, legacy_id, warnings)
    if isinstance(outcome, ImportFailure):
        return _failed(profile.slug, unknown, outcome.key, outcome.message)
    status, row = outcome
    return ImportRecordReport(
        slug=profile.slug,
        status=status,
        artifact_kind=mapping.artifact_kind.value,
        workflow_id=row.workflow_id,
        ignored_keys=mapping.ignored_keys,
        unknown_keys=unknown,
        warnings=warnings,
    )


def _fields(
    record: dict[str, Any], mapping: LegacyMapping, workflow_id: str | None, workflow_version: int | None
) -> dict[str, Any]:
    return {
        "slug": record.get("slug"),
        "name": record.get("name"),
        "visible_in_shop": record.get("visible_in_shop", False),
        "is_active": record.get("is_active", True),
        "categories": record.get("categories") or [],
        "pricing_tier": record.get("price_tier"),
        "family": "order_line",
        "workflow_id": workflow_id,
        "workflow_version": workflow_version,
        "artifact_kinds": [mapping.artifact_kind],
        "overrides": mapping.overrides.model_dump(mode="json", exclude_none=True),
        "legacy_render_settings": record.get("render_settings"),
        "rollout": Rollout.legacy,
    }


def _linked_workflow(session: Session, record: dict[str, Any]) -> tuple[str | None, int | None, list[str]]:
    """The record's workflow pinned at its latest version, or None with a warning."""
    workflow_id = record.get("workflow_definition_id")
    if workflow_id is None:
        return None, None, []
    stored = latest_record(session, workflow_id) if isinstance(workflow_id, str) else None
    if stored is None:
        return (
            None,
            None,
            [
                f"workflow_definition_id {workflow_id!r} does not exist; "
                f"imported without a workflow (legacy dispatch)"
            ],
        )
    return stored.id, stored.version, []


def _upsert(
    session: Session, profile: OutputTypeCreate, legacy_id: int, warnings: list[str]
) -> tuple[str, OutputType] | ImportFailure:
    """Create, or update the row this legacy record created before; never take over another."""
    row = find_output_type(session, profile.slug)
    if row is not None and row.legacy_id != legacy_id:
        return ImportFailure(
            key="slug",
            message=f"slug {profile.slug!r} is taken by an output type not imported from this legacy record",
        )
    status = "updated" if row else "created"
    row = row or OutputType(slug=profile.slug, name=profile.name, legacy_id=legacy_id)
    keep = GRAPH_CHOICES if row.rollout != Rollout.legacy else set()
    if keep:
        warnings.append(
            f"rollout {row.rollout.value!r} kept with its workflow and overrides; "
            f"the legacy settings are stored for parity checks only"
        )
    for name, value in profile.model_dump(exclude=keep).items():
        setattr(row, name, value)
    row.updated_at = datetime.now(UTC)
    session.add(row)
    session.flush()
    return status, row


def _failed(slug: str | None, unknown: list[str], key: str, message: str) -> ImportRecordReport:
    return ImportRecordReport(
        slug=slug, status="error", unknown_keys=unknown, error=ImportFailure(key=key, message=message)
    )


def import_export(session: Session, records: list[Any]) -> ImportReport:
    """Import every record of a legacy export; commit; count what became of them."""
    reports = [import_record(session, record) for record in records]
    session.commit()
    counts = {
        status: sum(report.status == status for report in reports)
        for status in ("created", "updated", "error")
    }
    return ImportReport(
        created=counts["created"], updated=counts["updated"], errors=counts["error"], records=reports
    )
