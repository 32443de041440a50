"""Who may download an artifact: a grant per owner and content, recorded when the owner is shown it.

A grant is written when an owner reads the answer that lists the artifact (a completed order
line, a CAD file's completed intake), not by the workflows: runs never touch the database, and a
download URL is only ever learnt from such an answer, so the grant always precedes the download.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from activities.artifacts import ArtifactRef
from persistence.tables import ArtifactGrant


def grant(db: Session, owner: str, refs: Iterable[ArtifactRef], workflow_id: str | None) -> None:
    """Let the owner download these artifacts (kept as first granted: the first run that made them)."""
    wanted = {ref.sha256: ref for ref in refs}
    if not wanted:
        return
    held = set(
        db.exec(
            select(ArtifactGrant.sha256).where(
                ArtifactGrant.owner == owner, col(ArtifactGrant.sha256).in_(wanted)
            )
        )
    )
    for sha256, ref in wanted.items():
        if sha256 not in held:
            db.add(
                ArtifactGrant(
                    owner=owner,
                    sha256=sha256,
                    role=ref.role,
                    media_type=ref.media_type,
                    size=ref.size,
                    uri=ref.uri,
                    workflow_id=workflow_id,
                )
            )
    try:
        db.commit()
    except IntegrityError:
        db.rollback()  # a concurrent read of the same answer granted them first


def find_grant(db: Session, sha256: str, owner: str | None) -> ArtifactGrant | None:
    """The owner's grant of this content; with owner None, any owner's (for operators)."""
    query = select(ArtifactGrant).where(ArtifactGrant.sha256 == sha256)
    if owner is not None:
        query = query.where(ArtifactGrant.owner == owner)
    return db.exec(query.order_by(col(ArtifactGrant.created_at))).first()


def granted_ref(record: ArtifactGrant) -> ArtifactRef:
    """The artifact a grant is for."""
    return ArtifactRef(
        uri=record.uri, sha256=record.sha256, size=record.size, media_type=record.media_type, role=record.role
    )
