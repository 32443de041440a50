"""Parity reports: recorded by the order line that compared, read by the gate, the CLI and the API."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import WorkflowHandle

from activities.artifacts import ArtifactRef
from activities.parity import CompareOutput, ParityThresholds, RecordParityInput, StoreCalibrationInput
from core.errors import NotFoundError, first_problem
from core.settings import Settings, get_settings
from core.temporal import TemporalSession
from output_profiles.dispatch import plan_dispatch
from output_profiles.dispatch_plan import DispatchPlan
from output_profiles.models import Rollout
from persistence.engine import prepare_database
from persistence.repositories import require_output_type
from persistence.tables import ParityCalibration, ParityReportRecord
from registry.catalog import Catalog, default_catalog
from workflows.parity import CalibrationInput, CalibrationResult, ParityCalibrationWorkflow

MAX_LISTED = 200


class ParityReportListing(BaseModel):
    """A stored comparison in a list: which order line, which output type, the verdict."""

    id: str
    output_type: str
    order_line_workflow_id: str
    verdict: str
    calibration: bool
    created_at: datetime


class ParityReportView(ParityReportListing):
    """A stored comparison in full, as the CLI and the API show it."""

    report: dict[str, Any]


class ParityRecorder:
    """The `parity.record` activity: writes a comparison's row (workers hold the database URL)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._prepared = False

    @activity.defn(name="parity.record")
    async def record(self, input: RecordParityInput) -> str:
        """Store the comparison (once per order-line run); its report id."""
        return await asyncio.to_thread(self._record, input)

    @activity.defn(name="parity.store_calibration")
    async def store_calibration(self, input: StoreCalibrationInput) -> None:
        """Keep an output type's measured thresholds (replacing an earlier calibration)."""
        await asyncio.to_thread(self._store_calibration, input)

    def _prepare(self) -> None:
        if not self._prepared:
            prepare_database(self.engine, default_catalog())
            self._prepared = True

    def _store_calibration(self, input: StoreCalibrationInput) -> None:
        self._prepare()
        with Session(self.engine) as db:
            row = db.get(ParityCalibration, input.output_type) or ParityCalibration(
                output_type=input.output_type, thresholds={}, step_sha256=input.step_sha256
            )
            row.thresholds = input.thresholds.model_dump(mode="json")
            row.step_sha256 = input.step_sha256
            row.measured_at = datetime.now(UTC)
            db.add(row)
            db.commit()

    def _record(self, input: RecordParityInput) -> str:
        self._prepare()
        report_id = parity_report_id(input.order_line_workflow_id, input.run_id)
        with Session(self.engine) as db:
            if db.get(ParityReportRecord, report_id) is None:
                db.add(
                    ParityReportRecord(
                        id=report_id,
                        output_type=input.output_type,
                        order_line_workflow_id=input.order_line_workflow_id,
                        owner=input.owner,
                        verdict=input.compared.report.verdict,
                        calibration=input.calibration,
                        report=stored_report(input.compared),
                    )
                )
                db.commit()
        return report_id


def parity_report_id(workflow_id: str, run_id: str) -> str:
    """The report id of one order-line run (stable across retries of the recording)."""
    return "par_" + hashlib.sha256(f"{workflow_id}/{run_id}".encode()).hexdigest()[:32]


def stored_report(compared: CompareOutput) -> dict[str, Any]:
    """What a report row keeps: the report, its JSON file and its pictures."""
    return {
        **compared.report.model_dump(mode="json"),
        "report_file": compared.report_file.model_dump(mode="json"),
        "pictures": [picture.model_dump(mode="json") for picture in compared.pictures],
    }


def with_calibration(db: Session, plan: DispatchPlan, output_type: str) -> DispatchPlan:
    """A shadow dispatch with the output type's calibrated thresholds; until it is calibrated, the
    deployment's (PRODGRAPH_PARITY_THRESHOLDS over the documented defaults)."""
    if plan.route != "shadow":
        return plan
    calibration = db.get(ParityCalibration, output_type)
    thresholds = (
        ParityThresholds.model_validate(calibration.thresholds)
        if calibration
        else configured_thresholds(get_settings())
    )
    return plan.model_copy(update={"parity_thresholds": thresholds})


def configured_thresholds(settings: Settings) -> ParityThresholds:
    """The deployment's thresholds: PRODGRAPH_PARITY_THRESHOLDS over the defaults (checked at start)."""
    try:
        return ParityThresholds.model_validate(settings.parity_thresholds)
    except ValidationError as error:
        field, words = first_problem(error)
        raise ValueError(f"PRODGRAPH_PARITY_THRESHOLDS: {field}: {words}") from None


def list_reports(db: Session, output_type: str | None = None, limit: int = 50) -> list[ParityReportView]:
    """Stored comparisons, newest first, of one output type or all."""
    query = select(ParityReportRecord).order_by(col(ParityReportRecord.created_at).desc())
    if output_type:
        query = query.where(ParityReportRecord.output_type == output_type)
    return [_view(row) for row in db.exec(query.limit(min(limit, MAX_LISTED)))]


def find_report(db: Session, report_id: str) -> ParityReportView:
    """One stored comparison by id (or the order-line workflow id it compared), or NotFoundError."""
    row = (
        db.get(ParityReportRecord, report_id)
        or db.exec(
            select(ParityReportRecord)
            .where(ParityReportRecord.order_line_workflow_id == report_id)
            .order_by(col(ParityReportRecord.created_at).desc())
        ).first()
    )
    if row is None:
        raise NotFoundError(f"no parity report {report_id!r}", field="report_id")
    return _view(row)


def report_pictures(view: ParityReportView) -> list[ArtifactRef]:
    """The pictures of a stored report."""
    return [ArtifactRef.model_validate(item) for item in view.report.get("pictures", [])]


def _view(row: ParityReportRecord) -> ParityReportView:
    return ParityReportView(
        id=row.id,
        output_type=row.output_type,
        order_line_workflow_id=row.order_line_workflow_id,
        verdict=row.verdict,
        calibration=row.calibration,
        created_at=row.created_at,
        report=row.report,
    )


def calibration_input(
    db: Session,
    catalog: Catalog,
    output_type: str,
    step_path: str,
    task_queues: dict[str, str],
    invocation_params: dict[str, Any] | None = None,
) -> CalibrationInput:
    """What a calibration runs: the output type's legacy route on one STEP file (a path a worker
    may read, or a store reference), with these invocation params."""
    row = require_output_type(db, output_type)
    legacy = row.model_copy(update={"rollout": Rollout.legacy})
    plan = plan_dispatch(legacy, None, catalog, invocation_params).legacy_plan
    assert plan is not None, "a legacy dispatch carries its legacy plan"
    return CalibrationInput(output_type=row.slug, plan=plan, step_path=step_path, task_queues=task_queues)


async def start_calibration(
    session: TemporalSession, calibration: CalibrationInput
) -> WorkflowHandle[Any, CalibrationResult]:
    """Start a calibration: the legacy route twice, compared, the measured thresholds kept."""
    return await session.client.start_workflow(
        ParityCalibrationWorkflow.run,
        calibration,
        id=f"calibrate-{calibration.output_type}-{uuid.uuid4().hex[:8]}",
        task_queue=session.settings.default_queue,
    )
