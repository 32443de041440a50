"""The shared vocabulary: every word more than one layer speaks is defined here, once."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Family = Literal["cad_file", "order_line"]
"""A runtime family of workflows: CAD intake, or rendering one order line."""
FAMILIES: tuple[Family, ...] = get_args(Family)

QueueName = Literal["default", "cad", "render"]
"""A logical task queue: workflows and light modules, OCP jobs, Blender jobs."""
QUEUES: tuple[QueueName, ...] = get_args(QueueName)


OWNER_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
"""Whom an API key acts for. No `:`: it ends the owner in an order line's workflow id."""


class Role(StrEnum):
    """What an API key may do: clients own files and runs; the others run the service."""

    client = "client"
    """Uploads, launches and reads its own files, runs and artifacts."""
    author = "author"
    """Manages workflow definitions and output types."""
    operator = "operator"
    """Sees every run and takes operator actions (retry, skip, abort, re-run)."""
    admin = "admin"
    """Manages API keys; may do everything the other roles may."""


class Engine(StrEnum):
    """The Blender render engine."""

    cycles = "cycles"
    eevee = "eevee"
    workbench = "workbench"


class ImageFormat(StrEnum):
    """The file format of a still image."""

    png = "png"
    jpeg = "jpeg"


class ArtifactKind(StrEnum):
    """A kind of deliverable an output type sells (its artifact contract)."""

    still_image = "still_image"
    turntable_video = "turntable_video"
    production_blend = "production_blend"
    preview_thumbnail = "preview_thumbnail"
    cad_intake = "cad_intake"


#: The produced artifact role that satisfies each sold artifact kind.
ARTIFACT_KIND_ROLES: dict[ArtifactKind, str] = {
    ArtifactKind.still_image: "still",
    ArtifactKind.turntable_video: "turntable",
    ArtifactKind.production_blend: "blend",
    ArtifactKind.preview_thumbnail: "thumbnail",
    ArtifactKind.cad_intake: "glb",
}
#: Roles an order line delivers to the customer (published, copied out by the CLI).
DELIVERABLE_ROLES: tuple[str, ...] = ("still", "turntable", "blend", "thumbnail")


class FailurePolicy(StrEnum):
    """What a run does when a node has failed for good."""

    fail_run = "fail_run"
    """Cancel the running siblings (their child processes die) and fail the run."""
    continue_run = "continue"
    """Mark the node failed, skip its dependants, finish the rest; fail unless nothing sold
    depends on it."""
    wait_for_operator = "wait_for_operator"
    """Wait at the node until an operator retries it, skips it or aborts the run."""


class RetryPolicy(BaseModel):
    """How often and how patiently a node is retried (Temporal's activity retry policy)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_attempts: int = Field(3, ge=1, le=100)
    """Attempts in all, the first included."""
    initial_interval_s: float = Field(1.0, gt=0, le=3600)
    """Wait before the first retry."""
    backoff: float = Field(2.0, ge=1, le=10)
    """Factor by which each wait grows."""
    max_interval_s: float = Field(30.0, gt=0, le=86400)
    """Longest wait between attempts."""

    def overridden(self, override: RetryOverride) -> RetryPolicy:
        """This policy with the fields a node sets replaced."""
        return self.model_copy(update=override.model_dump(exclude_none=True))


class RetryOverride(BaseModel):
    """A node's changes to its module's retry policy; unset fields keep the module's."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    max_attempts: int | None = Field(None, ge=1, le=100)
    """Attempts in all, the first included."""
    initial_interval_s: float | None = Field(None, gt=0, le=3600)
    """Wait before the first retry."""
    backoff: float | None = Field(None, ge=1, le=10)
    """Factor by which each wait grows."""
    max_interval_s: float | None = Field(None, gt=0, le=86400)
    """Longest wait between attempts."""
