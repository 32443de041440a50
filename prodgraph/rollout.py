"""The rollout gate: an output type moves to the graph only after its shadow runs show parity.

Every change of rollout goes through `set_rollout` (CLI and API alike) and is recorded with the
gate's verdict, who asked, and the reason when the gate was forced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, col, select

from core.errors import InvalidOutputTypeError, RolloutGateClosedError
from core.vocabulary import ArtifactKind
from output_profiles.models import Rollout
from output_profiles.validation import validate_profile
from persistence.repositories import require_output_type, workflow_for
from persistence.tables import OutputType, ParityReportRecord, RolloutChange
from registry.catalog import Catalog

#: Verdicts that count as parity for the gate.
PARITY = ("identical", "equivalent")
#: The order_line starter a legacy-only output type is linked to for its shadow, by artifact kind.
STARTER_FOR_KIND = {
    ArtifactKind.still_image: "order-still-v1",
    ArtifactKind.turntable_video: "order-turntable-v1",
    ArtifactKind.production_blend: "order-blend-v1",
    ArtifactKind.preview_thumbnail: "order-still-thumbnail-v1",
}
MAX_REASON = 500


class ComparisonSummary(BaseModel):
    """One shadow comparison as the gate sees it."""

    id: str
    order_line_workflow_id: str
    verdict: str
    created_at: datetime
    differences: list[dict[str, Any]] = []


class GateVerdict(BaseModel):
    """Whether an output type may move to the graph, and the evidence."""

    output_type: str
    open: bool
    required: int
    """How many of the last comparisons must all be identical or equivalent."""
    compared: int
    """Shadow comparisons on record (calibration runs excluded)."""
    equivalent_share: float | None
    """Share of all comparisons that were identical or equivalent."""
    reason: str
    last: list[ComparisonSummary]
    """The last `required` comparisons, newest first."""


def parity_gate(db: Session, slug: str, required: int) -> GateVerdict:
    """The gate of one output type: open when its last `required` comparisons all show parity."""
    rows = list(
        db.exec(
            select(ParityReportRecord)
            .where(ParityReportRecord.output_type == slug, col(ParityReportRecord.calibration).is_(False))
            .order_by(col(ParityReportRecord.created_at).desc())
        )
    )
    last = [_summary(row) for row in rows[:required]]
    failing = [item for item in last if item.verdict not in PARITY]
    if len(rows) < required:
        reason = f"{len(rows)} shadow comparison(s) on record, {required} needed"
    elif failing:
        first = failing[0]
        reason = (
            f"{len(failing)} of the last {required} comparisons are not equivalent "
            f"(e.g. {first.id}: {first.verdict})"
        )
    else:
        reason = f"the last {required} shadow comparisons are identical or equivalent"
    share = sum(row.verdict in PARITY for row in rows) / len(rows) if rows else None
    return GateVerdict(
        output_type=slug,
        open=len(rows) >= required and not failing,
        required=required,
        compared=len(rows),
        equivalent_share=share,
        reason=reason,
        last=last,
    )


def set_rollout(
    db: Session,
    catalog: Catalog,
    slug: str,
    rollout: Rollout,
    *,
    actor: str,
    required: int,
    workflow_id: str | None = None,
    workflow_version: int | None = None,
    force: bool = False,
    reason: str | None = None,
) -> tuple[OutputType, GateVerdict]:
    """Change an output type's rollout through the gate; the change is recorded.

    Moving to `graph` needs the gate open, or `force` with a reason. An output type without a
    workflow that moves to shadow or graph is linked to its family's starter for its artifact kind,
    unless `workflow_id` names another.
    """
    row = require_output_type(db, slug)
    gate = check_gate(db, row, rollout, required=required, force=force, reason=reason)
    changes: dict[str, Any] = {"rollout": rollout}
    if workflow_id is not None:
        changes |= {"workflow_id": workflow_id, "workflow_version": workflow_version}
    elif rollout != Rollout.legacy and not row.workflow_id:
        changes |= {"workflow_id": _starter_for(row), "workflow_version": None}
    _check(db, catalog, row, changes)
    record = rollout_change(row, rollout, gate, actor=actor, force=force, reason=reason)
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = datetime.now(UTC)
    db.add(row)
    db.add(record)
    db.commit()
    db.refresh(row)
    return row, gate


def check_gate(
    db: Session, row: OutputType, rollout: Rollout, *, required: int, force: bool, reason: str | None
) -> GateVerdict:
    """The gate's verdict for this change; refused when it moves to the graph and is closed."""
    gate = parity_gate(db, row.slug, required)
    if force and not (reason or "").strip():
        raise InvalidOutputTypeError("forcing the rollout gate needs a reason", field="reason")
    if reason and len(reason) > MAX_REASON:
        raise InvalidOutputTypeError(f"the reason is over {MAX_REASON} characters", field="reason")
    if rollout == Rollout.graph and row.rollout != Rollout.graph and not gate.open and not force:
        raise RolloutGateClosedError(
            f"output type {row.slug!r} cannot move to the graph yet: {gate.reason}; run it in shadow "
            "mode, or force the change with a reason",
            field="rollout",
        )
    return gate


def rollout_change(
    row: OutputType, rollout: Rollout, gate: GateVerdict, *, actor: str, force: bool, reason: str | None
) -> RolloutChange:
    """The record of a rollout change, before the row changes."""
    return RolloutChange(
        output_type=row.slug,
        from_rollout=str(row.rollout),
        to_rollout=str(rollout),
        forced=force and not gate.open and rollout == Rollout.graph,
        reason=reason,
        actor=actor,
        gate=gate.model_dump(mode="json"),
    )


def _starter_for(row: OutputType) -> str:
    if not row.artifact_kinds:
        raise InvalidOutputTypeError(
            f"output type {row.slug!r} sells no artifact kind, so no starter fits; name a workflow",
            field="workflow_id",
        )
    kinds = {ArtifactKind(kind) for kind in row.artifact_kinds}
    # One starter makes the still and its thumbnail (sold as a kind, or as a legacy override).
    if ArtifactKind.preview_thumbnail in kinds or row.overrides.get("preview_thumbnail"):
        return STARTER_FOR_KIND[ArtifactKind.preview_thumbnail]
    return STARTER_FOR_KIND[ArtifactKind(row.artifact_kinds[0])]


def _check(db: Session, catalog: Catalog, row: OutputType, changes: dict[str, Any]) -> None:
    """Refuse a change that leaves a graph-dispatched profile with problems, naming the field."""
    profile = row.model_copy(update=changes)
    if profile.rollout == Rollout.legacy:
        return
    report = validate_profile(profile, workflow_for(db, profile), catalog)
    if not report.valid:
        first = report.problems[0]
        raise InvalidOutputTypeError(
            f"rollout {profile.rollout!s} needs a valid profile; {first.field}: {first.message}",
            problems=[problem.model_dump() for problem in report.problems],
            field=first.field,
        )


def _summary(row: ParityReportRecord) -> ComparisonSummary:
    return ComparisonSummary(
        id=row.id,
        order_line_workflow_id=row.order_line_workflow_id,
        verdict=row.verdict,
        created_at=row.created_at,
        differences=list(row.report.get("differences", []))[:20],
    )
