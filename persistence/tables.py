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
