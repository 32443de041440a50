"""API keys: create one (its token is shown once), list them without secrets, revoke one.

Only a token's SHA-256 digest is stored. A token is 32 random bytes, so its digest cannot be
guessed or inverted, and looking one up by digest through the database index leaks nothing a
timing attacker could use: they cannot choose tokens whose digests approach a stored one.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, col, func, select

from core.errors import NotFoundError, ProdgraphError, first_problem
from core.vocabulary import OWNER_PATTERN, Role
from persistence.tables import ApiKeyRecord

#: Every token starts so, which makes a leaked one easy to recognise (and to scan for).
TOKEN_PREFIX = "pgk_"
#: Owners name objects and workflow ids, so they keep to a safe alphabet.


class KeyCreate(BaseModel):
    """A key to create: the role it grants and the owner it acts for."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    role: Role
    """client, author, operator or admin."""
    owner: str = Field(pattern=OWNER_PATTERN)
    """Who the key acts for (letters, digits, `.`, `_`, `-`; at most 64): a client's files and runs
    belong to its owner."""


class KeyPublic(BaseModel):
    """A stored key as it is listed: never its token, never its digest."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    id: str
    """The key's public id, to revoke it by."""
    role: Role
    owner: str
    created_at: datetime
    revoked_at: datetime | None = None
    """When it was revoked; a revoked key is refused."""


class KeyCreated(KeyPublic):
    """A new key with its token: the only time the token is shown."""

    key: str
    """The token to send as `Authorization: Bearer <key>`; store it now, it cannot be shown again."""


class KeyGrant(BaseModel):
    """What a presented token grants: the key, its role and owner, and whether it is revoked."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    role: Role
    owner: str
    revoked: bool = False


def digest_of(token: str) -> str:
    """Hex SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh token: the prefix and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def key_request(role: str, owner: str) -> KeyCreate:
    """A validated key request, or an error naming the field (for callers without a model)."""
    try:
        return KeyCreate(role=role, owner=owner)
    except ValidationError as error:
        field, message = first_problem(error)
        if field == "owner":
            message = "an owner is 1 to 64 letters, digits, '.', '_' or '-'"
        raise ProdgraphError(f"{field}: {message}", field=field) from None


def create_key(session: Session, request: KeyCreate) -> KeyCreated:
    """Store a new key's digest; the answer carries the token, which is kept nowhere."""
    token = new_token()
    record = ApiKeyRecord(
        id=f"key_{secrets.token_hex(8)}", digest=digest_of(token), role=request.role, owner=request.owner
    )
    session.add(record)
    session.commit()
    session.refresh(record)
    return KeyCreated(key=token, **_public(record).model_dump())


def list_keys(session: Session) -> list[KeyPublic]:
    """Every stored key, oldest first, without secrets."""
    records = session.exec(select(ApiKeyRecord).order_by(col(ApiKeyRecord.created_at), col(ApiKeyRecord.id)))
    return [_public(record) for record in records]


def revoke_key(session: Session, key_id: str) -> KeyPublic:
    """Revoke a key from now on (revoking it again keeps the first time); 404 for an unknown id."""
    record = session.get(ApiKeyRecord, key_id)
    if record is None:
        raise NotFoundError(f"no API key {key_id!r}", field="key_id")
    if record.revoked_at is None:
        record.revoked_at = datetime.now(UTC)
        session.add(record)
        session.commit()
        session.refresh(record)
    return _public(record)


def find_grant(session: Session, digest: str) -> KeyGrant | None:
    """What the stored key with this digest grants (revoked ones too), or None."""
    record = session.exec(select(ApiKeyRecord).where(ApiKeyRecord.digest == digest)).first()
    if record is None:
        return None
    return KeyGrant(
        key_id=record.id, role=Role(record.role), owner=record.owner, revoked=record.revoked_at is not None
    )


def count_active(session: Session) -> int:
    """How many stored keys are not revoked."""
    active = select(func.count()).select_from(ApiKeyRecord).where(col(ApiKeyRecord.revoked_at).is_(None))
    return session.exec(active).one()


def _public(record: ApiKeyRecord) -> KeyPublic:
    return KeyPublic(
        id=record.id,
        role=Role(record.role),
        owner=record.owner,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
    )
