"""Use cases of uploaded CAD files: one record per owner and content, its intake, its state."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.artifacts import ArtifactRef, store_reference
from activities.cad import BBox, CadObject
from core.errors import TemporalUnavailableError
from core.temporal import TemporalSession
from persistence.tables import CadFileRecord
from prodgraph.runs import graph_outcome, start_plan
from registry.catalog import Catalog
from registry.compiler import compile_intake
from registry.families import order_line_entry
from registry.starters import INTAKE_STARTER, starter
from workflows.graph import GraphWorkflow, NodeError

#: Longest stored display name (CadFileRecord.filename).
MAX_FILENAME = 255
#: The display name of a file uploaded without one.
UNNAMED = "upload.step"

IntakeStatus = Literal[
    "not_started", "running", "completed", "failed", "canceled", "terminated", "timed_out", "continued_as_new"
]


class IntakeState(BaseModel):
    """Where a CAD file's intake stands; what it found once it has completed."""

    workflow_id: str
    status: IntakeStatus
    objects: list[CadObject] | None = None
    bbox: BBox | None = None
    artifacts: list[ArtifactRef] = []
    """The intake's stored STEP file and GLB, once completed."""
    error: NodeError | None = None


def display_name(raw: str | None) -> str:
    """The client's file name, for display only: its last path component, printable, bounded."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable()).strip()
    return name[:MAX_FILENAME] if name not in ("", ".", "..") else UNNAMED


def intake_workflow_id(owner: str, file_id: str) -> str:
    """The one intake run of an owner's file."""
    return f"cad-intake-{owner}-{file_id}"


def register_upload(
    db: Session, owner: str, ref: ArtifactRef, filename: str | None
) -> tuple[CadFileRecord, bool]:
    """The owner's file of this content: the one registered before, or a new one (then True).

    Two uploads of the same content racing each other register one file: the loser of the
    (owner, sha256) unique constraint reads the winner's.
    """
    existing = _by_content(db, owner, ref.sha256)
    if existing is not None:
        return existing, False
    file_id = f"cad_{uuid.uuid4().hex}"
    record = CadFileRecord(
        id=file_id,
        owner=owner,
        sha256=ref.sha256,
        size=ref.size,
        filename=display_name(filename),
        uri=ref.uri,
        intake_workflow_id=intake_workflow_id(owner, file_id),
    )
    db.add(record)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        existing = _by_content(db, owner, ref.sha256)
        if existing is None:
            raise
        return existing, False
    db.refresh(record)
    return record, True


def _by_content(db: Session, owner: str, sha256: str) -> CadFileRecord | None:
    query = select(CadFileRecord).where(CadFileRecord.owner == owner, CadFileRecord.sha256 == sha256)
    return db.exec(query).first()


def find_file(db: Session, file_id: str) -> CadFileRecord | None:
    """A file by id, whoever owns it (the caller decides who may see it)."""
    return db.get(CadFileRecord, file_id)


def find_own_file(db: Session, owner: str, file_id: str | None) -> CadFileRecord | None:
    """The owner's file by id; another owner's is None, as unknown as a missing one."""
    record = find_file(db, file_id) if file_id else None
    return record if record is not None and record.owner == owner else None


def own_files(db: Session, owner: str) -> list[CadFileRecord]:
    """The owner's files, newest first."""
    query = select(CadFileRecord).where(CadFileRecord.owner == owner)
    return list(db.exec(query.order_by(col(CadFileRecord.created_at).desc(), col(CadFileRecord.id))))


def step_reference(record: CadFileRecord) -> str:
    """What a worker is given to read the file: its store reference, never a path."""
    return store_reference(stored_ref(record))


def stored_ref(record: CadFileRecord) -> ArtifactRef:
    """The file's blob as an artifact reference."""
    return ArtifactRef(
        uri=record.uri, sha256=record.sha256, size=record.size, media_type="model/step", role="step_file"
    )


async def start_intake(session: TemporalSession, catalog: Catalog, record: CadFileRecord) -> None:
    """Start the file's cad_file intake under its fixed id; a no-op once it was started."""
    assert record.intake_workflow_id, "every registered file names its intake run"
    plan = compile_intake(starter(INTAKE_STARTER), catalog)
    try:
        await start_plan(
            session, plan, {"step_path": step_reference(record)}, workflow_id=record.intake_workflow_id
        )
    except WorkflowAlreadyStartedError:
        pass


async def intake_state(session: TemporalSession, record: CadFileRecord) -> IntakeState:
    """Where the file's intake stands; its objects, bounding box and artifacts once completed."""
    workflow_id = record.intake_workflow_id or intake_workflow_id(record.owner, record.id)
    handle = session.client.get_workflow_handle_for(GraphWorkflow.run, workflow_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return IntakeState(workflow_id=workflow_id, status="not_started")
        raise TemporalUnavailableError(f"Temporal did not answer: {error.message}") from None
    status = description.status or WorkflowExecutionStatus.RUNNING
    state = IntakeState(workflow_id=workflow_id, status=status.name.lower())
    if status not in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
        return state
    result = await graph_outcome(handle)
    if result.status != "completed":
        return state.model_copy(update={"status": "failed", "error": result.error})
    entry = order_line_entry(result.outputs, "intake")
    return state.model_copy(
        update={
            "objects": [CadObject.model_validate(item) for item in entry["objects"]],
            "bbox": BBox.model_validate(entry["bbox"]),
            "artifacts": [ArtifactRef.model_validate(entry[role]) for role in ("step_file", "glb")],
        }
    )
