"""The tables: output types, stored workflow-definition versions, catalogue snapshots."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from output_profiles.models import OutputTypeBase


class OutputType(OutputTypeBase, table=True):
    """A persisted output type."""

    __tablename__ = "output_types"
    __table_args__ = (UniqueConstraint("slug"),)

    id: int | None = Field(default=None, primary_key=True)
    legacy_id: int | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class WorkflowDefinitionRecord(SQLModel, table=True):
    """A stored workflow definition version (immutable once saved)."""

    __tablename__ = "workflow_definitions"

    id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    family: str
    name: str
    document: dict[str, Any] = Field(sa_type=JSON)
    catalog_version: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class CatalogSnapshot(SQLModel, table=True):
    """Every node definition of one catalogue version, kept to diff old definitions against."""

    __tablename__ = "catalog_snapshots"

    version: str = Field(primary_key=True)
    node_definitions: list[dict[str, Any]] = Field(sa_type=JSON)
    first_seen: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ApiKeyRecord(SQLModel, table=True):
    """An API key: only its SHA-256 digest is stored, with the role and owner it grants."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=32)
    """Public id of the key (its listing and revocation handle), never the secret."""
    digest: str = Field(unique=True, index=True, max_length=64)
    """Hex SHA-256 of the token."""
    role: str = Field(max_length=16)
    """client, author, operator or admin (core.vocabulary.Role)."""
    owner: str = Field(max_length=64)
    """Who the key acts for: a client's objects belong to its owner."""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    revoked_at: datetime | None = None


class CadFileRecord(SQLModel, table=True):
    """An uploaded STEP file of one owner: deduplicated per owner by content hash."""

    __tablename__ = "cad_files"
    __table_args__ = (UniqueConstraint("owner", "sha256"),)

    id: str = Field(primary_key=True, max_length=40)
    """The file id clients name it by (`cad_...`)."""
    owner: str = Field(index=True, max_length=64)
    sha256: str = Field(max_length=64)
    size: int
    filename: str = Field(max_length=255)
    """The name the client uploaded it under (shown, never used as a path)."""
    uri: str
    """The stored blob's artifact-store URI."""
    intake_workflow_id: str | None = Field(default=None, max_length=255)
    """The cad_file intake its first upload started."""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ArtifactGrant(SQLModel, table=True):
    """That an owner may download an artifact: recorded when one of its runs produced it."""

    __tablename__ = "artifact_grants"

    owner: str = Field(primary_key=True, max_length=64)
    sha256: str = Field(primary_key=True, max_length=64)
    role: str = Field(max_length=64)
    media_type: str = Field(max_length=128)
    size: int
    uri: str
    workflow_id: str | None = Field(default=None, max_length=255)
    """The run that produced it (the first one, if several did)."""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
