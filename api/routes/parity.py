"""Parity routes: the shadow comparisons behind a rollout decision, with their pictures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.auth import AUTHENTICATED, CallerDep, require_role
from api.deps import SessionDep, SettingsDep, off_loop
from api.errors import ERROR_RESPONSES
from api.public import ArtifactLink, link, scrubbed
from core.vocabulary import Role
from prodgraph.grants import grant
from prodgraph.parity import (
    MAX_LISTED,
    ParityReportListing,
    ParityReportView,
    find_report,
    list_reports,
    report_pictures,
)

router = APIRouter(
    prefix="/api/parity",
    tags=["parity"],
    responses=ERROR_RESPONSES,
    dependencies=[*AUTHENTICATED, require_role(Role.author, Role.operator)],
)
ReportIdPath = Annotated[
    str, Path(min_length=1, max_length=255, description="a report id, or the order-line run it compared")
]


class ParityReportAnswer(ParityReportView):
    """A comparison in full: the report, and its pictures as download links."""

    pictures: list[ArtifactLink]


@router.get("/reports", response_model=list[ParityReportListing])
async def parity_reports(
    session: SessionDep,
    output_type: Annotated[str | None, Query(min_length=1, max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 50,
) -> list[ParityReportView]:
    """Shadow comparisons, newest first, of one output type or all."""
    return await off_loop(session, list_reports, output_type, limit)


@router.get("/reports/{report_id}", response_model=ParityReportAnswer)
async def parity_report(
    report_id: ReportIdPath, session: SessionDep, caller: CallerDep, settings: SettingsDep
) -> ParityReportAnswer:
    """One comparison: verdict, differences with the parameters behind them, pictures to download."""

    def shown(db: Any) -> tuple[ParityReportView, list[Any]]:
        view = find_report(db, report_id)
        pictures = report_pictures(view)
        grant(db, caller.owner, pictures, view.order_line_workflow_id)  # shown, so downloadable
        return view, pictures

    view, pictures = await off_loop(session, shown)
    # Files are answered as links; the report's own references lose their store paths.
    report = {key: value for key, value in view.report.items() if key not in ("pictures", "report_file")}
    return ParityReportAnswer(
        **view.model_dump(exclude={"report"}),
        report=scrubbed(report, settings),
        pictures=[link(ref) for ref in pictures],
    )
