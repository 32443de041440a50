"""The CLI's JSON reports as models, so their shape has a schema and a single definition."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from activities.cad import BBox, CadObject
from core.temporal import TemporalSession
from output_profiles.dispatch_plan import EffectiveCall
from workflows.graph import GraphRunResult


class ErrorReport(BaseModel):
    """Why a run or a command failed: a stable code, words, and the node when there is one."""

    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    node_id: str | None = None


class DeliveredFile(BaseModel):
    """One file copied out of the artifact store into the output folder."""

    model_config = ConfigDict(extra="forbid")

    role: str
    path: str
    sha256: str
    media_type: str


class RunReport(BaseModel):
    """What `render`, `intake` and `order` print last with --json."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["completed", "failed"]
    workflow_id: str | None = None
    """The last run started (the order line's parent for `order`)."""
    temporal_ui: str | None = None
    """Link to that run in the Temporal Web UI."""
    workflow_ids: list[str] = []
    """Every run this command started, in order."""
    artifacts: list[DeliveredFile] = []
    objects: list[CadObject] = []
    """The intake's product tree."""
    bbox: BBox | None = None
    """The intake's bounding box, in metres, in the CAD file's frame."""
    error: ErrorReport | None = None

    def record(self, session: TemporalSession, workflow_id: str, result: GraphRunResult) -> None:
        """Add a finished graph run: its id and link, and its failure if it failed."""
        self.workflow_id = workflow_id
        self.workflow_ids.append(workflow_id)
        self.temporal_ui = session.workflow_url(workflow_id)
        if result.status != "completed":
            self.status = "failed"
            self.error = (
                ErrorReport.model_validate(result.error.model_dump())
                if result.error
                else ErrorReport(code="run_failed", message="the run did not complete")
            )


class ParityReportSummary(BaseModel):
    """A shadow's comparison as `order` prints it: the verdict, where the report and pictures
    were copied, and each difference with the parameters behind it."""

    model_config = ConfigDict(extra="forbid")

    verdict: str
    report: str | None
    """The stored report's id (`prodgraph parity show`); None when the diff itself failed."""
    reason: str
    pictures: list[str] = []
    """PNG paths: legacy, graph and their difference, side by side, one per image artifact."""
    differences: list[dict[str, Any]] = []


class OrderReport(RunReport):
    """What `order` prints: a run report plus the route and the effective parameters."""

    route: Literal["legacy", "graph", "shadow"] | None = None
    artifact_kinds: list[str] = []
    effective: dict[str, EffectiveCall] = {}
    parity: ParityReportSummary | None = None
    """In shadow mode, the comparison of the graph beside the legacy run."""


def failure_report(error: dict[str, Any]) -> RunReport:
    """The report of a command that failed before or outside any run."""
    return RunReport(status="failed", error=ErrorReport.model_validate(error))
