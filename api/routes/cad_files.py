"""CAD file routes: upload a STEP file (streamed into the store, once per owner and content), read it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel
from sqlmodel import Session

from activities.artifacts import LocalArtifactStore
from activities.cad import BBox, CadObject
from api.auth import AUTHENTICATED, CallerDep, require_role
from api.deps import CatalogDep, SessionDep, TemporalDep, off_loop
from api.errors import ERROR_RESPONSES
from api.public import ArtifactLink, link, public_error
from api.ratelimit import RATE_LIMITED_RESPONSES, rate_limited
from api.uploads import FILE_FIELD, receive_step_file
from core.errors import NotFoundError
from core.settings import Settings
from core.temporal import TemporalSession
from core.vocabulary import Role
from persistence.tables import CadFileRecord
from prodgraph import cad_files
from prodgraph.cad_files import IntakeState, IntakeStatus
from prodgraph.grants import grant

router = APIRouter(
    prefix="/api/cad-files", tags=["CAD files"], responses=ERROR_RESPONSES, dependencies=AUTHENTICATED
)

CadFileIdPath = Annotated[str, Path(min_length=1, max_length=40, description="a CAD file's id (`cad_...`)")]
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


class IntakeView(BaseModel):
    """Where a CAD file's intake stands; once completed, what it found and the GLB to download."""

    workflow_id: str
    status: IntakeStatus
    temporal_ui: str | None
    objects: list[CadObject] | None = None
    bbox: BBox | None = None
    """Bounding box in metres, in the CAD file's frame."""
    glb: ArtifactLink | None = None
    error: dict[str, Any] | None = None


class CadFileSummary(BaseModel):
    """An uploaded CAD file."""

    id: str
    sha256: str
    size: int
    filename: str
    """The name it was uploaded under: for display, never a path."""
    created_at: datetime


class CadFilePublic(CadFileSummary):
    """An uploaded CAD file and its intake."""

    intake: IntakeView


@router.post(
    "",
    response_model=CadFilePublic,
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {"model": CadFilePublic, "description": "Already uploaded: the same file."},
        415: {},
        **RATE_LIMITED_RESPONSES,
    },
    dependencies=[require_role(Role.client), rate_limited],
)
async def upload_cad_file(
    request: Request,
    response: Response,
    session: SessionDep,
    catalog: CatalogDep,
    temporal: TemporalDep,
    caller: CallerDep,
) -> CadFilePublic:
    """Upload a STEP file as multipart field `file`, streamed into the artifact store.

    The first upload of a content by its owner answers 201 and starts the file's cad_file intake;
    the same content again answers 200 with the same id (one intake). Over PRODGRAPH_MAX_UPLOAD_MB
    is 413 (refused while it streams in), a file that is not STEP is 415, an empty one 422.
    """
    settings: Settings = request.app.state.settings
    store = LocalArtifactStore(settings.artifact_root())
    received = await receive_step_file(request, store, settings.max_upload_mb)
    record, created = await off_loop(
        session, cad_files.register_upload, caller.owner, received.ref, received.filename
    )
    await cad_files.start_intake(temporal, catalog, record)  # also for a copy whose start failed
    response.status_code = 201 if created else 200
    return await _public(record, temporal, session, settings)


@router.get("", response_model=list[CadFileSummary], dependencies=[require_role(Role.client)])
def list_cad_files(session: SessionDep, caller: CallerDep) -> list[CadFileSummary]:
    """The caller's uploaded files, newest first."""
    return [_summary(record) for record in cad_files.own_files(session, caller.owner)]


@router.get(
    "/{cad_file_id}", response_model=CadFilePublic, dependencies=[require_role(Role.client, Role.operator)]
)
async def read_cad_file(
    cad_file_id: CadFileIdPath,
    request: Request,
    session: SessionDep,
    temporal: TemporalDep,
    caller: CallerDep,
) -> CadFilePublic:
    """One of the caller's files: its intake's status and, once completed, its objects, bounding
    box and GLB (a download link). Another owner's file is 404."""
    record = await off_loop(session, cad_files.find_file, cad_file_id)
    if record is None or not caller.may_see(record.owner):
        raise NotFoundError(f"no CAD file {cad_file_id!r}", field="cad_file_id")
    return await _public(record, temporal, session, request.app.state.settings)


async def _public(
    record: CadFileRecord, temporal: TemporalSession, session: Session, settings: Settings
) -> CadFilePublic:
    """The file's answer; the GLB it links is granted to the file's owner as it is shown."""
    state: IntakeState = await cad_files.intake_state(temporal, record)
    glb = next((ref for ref in state.artifacts if ref.role == "glb"), None)
    if glb is not None:
        await off_loop(session, grant, record.owner, [glb], state.workflow_id)
    intake = IntakeView(
        workflow_id=state.workflow_id,
        status=state.status,
        temporal_ui=temporal.workflow_url(state.workflow_id),
        objects=state.objects,
        bbox=state.bbox,
        glb=link(glb) if glb else None,
        error=public_error(state.error.model_dump() if state.error else None, settings),
    )
    return CadFilePublic(**_summary(record).model_dump(), intake=intake)


def _summary(record: CadFileRecord) -> CadFileSummary:
    return CadFileSummary(
        id=record.id,
        sha256=record.sha256,
        size=record.size,
        filename=record.filename,
        created_at=record.created_at,
    )
