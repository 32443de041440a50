"""Tables the API alone owns: the history of catalogue versions this server has seen."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel


class CatalogSnapshot(SQLModel, table=True):
    """Every node definition of one catalogue version, kept to diff old definitions against."""

    __tablename__ = "catalog_snapshots"

    version: str = Field(primary_key=True)
    node_definitions: list[dict[str, Any]] = Field(sa_type=JSON)
    first_seen: datetime = Field(default_factory=lambda: datetime.now(UTC))
