"""Baseline: the six tables as `SQLModel.metadata.create_all` made them before migrations.

Each table is created only when missing, so a database made by create_all (some or all of these
tables, no alembic_version) is adopted by running this revision, and an empty one gets them all.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 15:19:23
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString as String
from sqlmodel.sql.sqltypes import UTCDateTime as Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _output_types() -> None:
    op.create_table(
        "output_types",
        sa.Column("slug", String(length=80), nullable=False),
        sa.Column("name", String(length=200), nullable=False),
        sa.Column("visible_in_shop", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("pricing_tier", String(), nullable=True),
        sa.Column("family", String(), nullable=True),
        sa.Column("workflow_id", String(), nullable=True),
        sa.Column("workflow_version", sa.Integer(), nullable=True),
        sa.Column("artifact_kinds", sa.JSON(), nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.Column("material_constraints", sa.JSON(), nullable=False),
        sa.Column("legacy_render_settings", sa.JSON(), nullable=True),
        sa.Column("rollout", sa.Enum("legacy", "graph", "shadow", name="rollout"), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("legacy_id", sa.Integer(), nullable=True),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_index("ix_output_types_slug", "output_types", ["slug"], unique=False)


def _workflow_definitions() -> None:
    op.create_table(
        "workflow_definitions",
        sa.Column("id", String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("family", String(), nullable=False),
        sa.Column("name", String(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("catalog_version", String(), nullable=False),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", "version"),
    )


def _catalog_snapshots() -> None:
    op.create_table(
        "catalog_snapshots",
        sa.Column("version", String(), nullable=False),
        sa.Column("node_definitions", sa.JSON(), nullable=False),
        sa.Column("first_seen", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )


def _api_keys() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", String(length=32), nullable=False),
        sa.Column("digest", String(length=64), nullable=False),
        sa.Column("role", String(length=16), nullable=False),
        sa.Column("owner", String(length=64), nullable=False),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("revoked_at", Timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_api_keys_digest", "api_keys", ["digest"], unique=True)


def _cad_files() -> None:
    op.create_table(
        "cad_files",
        sa.Column("id", String(length=40), nullable=False),
        sa.Column("owner", String(length=64), nullable=False),
        sa.Column("sha256", String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("filename", String(length=255), nullable=False),
        sa.Column("uri", String(), nullable=False),
        sa.Column("intake_workflow_id", String(length=255), nullable=True),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "sha256"),
    )
    op.create_index("ix_cad_files_owner", "cad_files", ["owner"], unique=False)


def _artifact_grants() -> None:
    op.create_table(
        "artifact_grants",
        sa.Column("owner", String(length=64), nullable=False),
        sa.Column("sha256", String(length=64), nullable=False),
        sa.Column("role", String(length=64), nullable=False),
        sa.Column("media_type", String(length=128), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("uri", String(), nullable=False),
        sa.Column("workflow_id", String(length=255), nullable=True),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "sha256"),
    )


TABLES: dict[str, Callable[[], None]] = {
    "output_types": _output_types,
    "workflow_definitions": _workflow_definitions,
    "catalog_snapshots": _catalog_snapshots,
    "api_keys": _api_keys,
    "cad_files": _cad_files,
    "artifact_grants": _artifact_grants,
}


def upgrade() -> None:
    """Create every baseline table the database does not have yet."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in TABLES.items():
        if name not in existing:
            create()


def downgrade() -> None:
    """Drop every baseline table (and PostgreSQL's enum type of output_types.rollout)."""
    for name in reversed(TABLES):
        op.drop_table(name)
    sa.Enum(name="rollout").drop(op.get_bind(), checkfirst=True)
