"""OutputType as invocation profile: what is sold, bound to a family, a workflow and overrides."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from core.vocabulary import ArtifactKind

SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")


class Rollout(StrEnum):
    """How an output type's order lines are dispatched."""

    legacy = "legacy"
    graph = "graph"
    shadow = "shadow"


class OutputTypeBase(SQLModel):
    """Fields an output type carries, whether draft or complete."""

    slug: str = Field(min_length=1, max_length=80, index=True)
    name: str = Field(min_length=1, max_length=200)
    visible_in_shop: bool = False
    is_active: bool = True
    categories: list[str] = Field(default_factory=list, sa_type=JSON)
    pricing_tier: str | None = None
    family: str | None = None
    workflow_id: str | None = None
    workflow_version: int | None = None
    artifact_kinds: list[ArtifactKind] = Field(default_factory=list, sa_type=JSON)
    overrides: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    material_constraints: list[str] = Field(default_factory=list, sa_type=JSON)
    legacy_render_settings: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    rollout: Rollout = Rollout.legacy

    @field_validator("slug")
    @classmethod
    def _slug_shape(cls, slug: str) -> str:
        if not SLUG.fullmatch(slug):
            raise ValueError("use lower-case letters, digits and dashes")
        return slug


class OutputTypeCreate(OutputTypeBase):
    """Body of POST /api/output-types (drafts welcome)."""


class OutputTypeUpdate(SQLModel):
    """Body of PATCH /api/output-types/{slug}: any subset of fields."""

    name: str | None = None
    visible_in_shop: bool | None = None
    is_active: bool | None = None
    categories: list[str] | None = None
    pricing_tier: str | None = None
    family: str | None = None
    workflow_id: str | None = None
    workflow_version: int | None = None
    artifact_kinds: list[ArtifactKind] | None = None
    overrides: dict[str, Any] | None = None
    material_constraints: list[str] | None = None
    rollout: Rollout | None = None
