"""API key routes for admins: create a key (its token is answered once), list keys, revoke one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from api.auth import AUTHENTICATED, StoredKeys, require_role
from api.deps import SessionDep
from api.errors import ERROR_RESPONSES
from core.vocabulary import Role
from prodgraph.keys import KeyCreate, KeyCreated, KeyPublic, create_key, list_keys, revoke_key

router = APIRouter(
    prefix="/api/keys",
    tags=["keys"],
    responses=ERROR_RESPONSES,
    dependencies=[*AUTHENTICATED, require_role(Role.admin)],
)


@router.post("", response_model=KeyCreated, status_code=201)
def create(body: KeyCreate, session: SessionDep) -> KeyCreated:
    """Create a key; the answer is the only time its token is shown (only its digest is stored)."""
    return create_key(session, body)


@router.get("", response_model=list[KeyPublic])
def list_all(session: SessionDep) -> list[KeyPublic]:
    """Every key in the database, oldest first, without tokens or digests (PRODGRAPH_API_KEYS
    keys are not listed: they change with the server's environment)."""
    return list_keys(session)


@router.delete("/{key_id}", response_model=KeyPublic)
def revoke(
    key_id: Annotated[str, Path(min_length=1, max_length=32, description="a key's id")],
    session: SessionDep,
    request: Request,
) -> KeyPublic:
    """Revoke a key: this API refuses it from now on, other processes within PRODGRAPH_API_KEY_CACHE_S."""
    revoked = revoke_key(session, key_id)
    stored: StoredKeys = request.app.state.stored_keys
    stored.forget(revoked.id)
    return revoked
