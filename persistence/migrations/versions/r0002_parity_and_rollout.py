"""parity reports, calibrations and rollout changes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 16:08:21.902780
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "parity_calibrations",
        sa.Column("output_type", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("step_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("measured_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("output_type"),
    )
    op.create_table(
        "parity_reports",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("output_type", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("order_line_workflow_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("verdict", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("calibration", sa.Boolean(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("parity_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parity_reports_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_parity_reports_order_line_workflow_id"), ["order_line_workflow_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_parity_reports_output_type"), ["output_type"], unique=False)

    op.create_table(
        "rollout_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("output_type", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("from_rollout", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("to_rollout", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("gate", sa.JSON(), nullable=False),
        sa.Column("changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rollout_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rollout_changes_output_type"), ["output_type"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("rollout_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollout_changes_output_type"))

    op.drop_table("rollout_changes")
    with op.batch_alter_table("parity_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parity_reports_output_type"))
        batch_op.drop_index(batch_op.f("ix_parity_reports_order_line_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_parity_reports_created_at"))

    op.drop_table("parity_reports")
    op.drop_table("parity_calibrations")
