"""The tables: output types, workflow-definition versions, catalogue snapshots, API keys, uploaded
CAD files and artifact grants, parity reports, calibrations and rollout changes."""

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


class ParityReportRecord(SQLModel, table=True):
    """One shadow comparison of an order line: its verdict and the full report."""

    __tablename__ = "parity_reports"

    id: str = Field(primary_key=True, max_length=40)
    """`par_…`; the order line links to it."""
    output_type: str = Field(index=True, max_length=80)
    order_line_workflow_id: str = Field(index=True, max_length=255)
    owner: str | None = Field(default=None, max_length=64)
    verdict: str = Field(max_length=32)
    """identical, equivalent, different or shadow_failed."""
    calibration: bool = False
    """A legacy-against-legacy run measuring noise; never counted by the rollout gate."""
    report: dict[str, Any] = Field(sa_type=JSON)
    """The parity report as the diff activity wrote it (differences, metrics, pictures)."""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC), index=True)


class ParityCalibration(SQLModel, table=True):
    """An output type's measured noise floor: the thresholds its comparisons use."""

    __tablename__ = "parity_calibrations"

    output_type: str = Field(primary_key=True, max_length=80)
    thresholds: dict[str, Any] = Field(sa_type=JSON)
    step_sha256: str = Field(max_length=64)
    """The STEP file calibrated on."""
    measured_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class RolloutChange(SQLModel, table=True):
    """Every change of an output type's rollout, with the gate's word and any forced reason."""

    __tablename__ = "rollout_changes"

    id: int | None = Field(default=None, primary_key=True)
    output_type: str = Field(index=True, max_length=80)
    from_rollout: str = Field(max_length=16)
    to_rollout: str = Field(max_length=16)
    forced: bool = False
    reason: str | None = Field(default=None, max_length=500)
    actor: str = Field(max_length=64)
    gate: dict[str, Any] = Field(sa_type=JSON)
    """The gate's verdict when the change was asked for."""
    changed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
