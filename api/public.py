"""What API answers may show of stored things: download links, never store URIs or server paths."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel

from activities.artifacts import ArtifactRef
from core.settings import Settings

#: Where artifacts are downloaded; links are relative to the API's base URL.
ARTIFACTS_PATH = "/api/artifacts"


class ArtifactLink(BaseModel):
    """A stored artifact as a client downloads it."""

    role: str
    """What it is in the production (step_file, glb, still, ...)."""
    media_type: str
    sha256: str
    """Hex SHA-256 of the content; also its ETag."""
    size: int
    """Size in bytes."""
    url: str
    """Where to GET it, relative to the API's base URL: `/api/artifacts/<sha256>`."""


def link(ref: ArtifactRef) -> ArtifactLink:
    """The download link of a stored artifact."""
    return ArtifactLink(
        role=ref.role,
        media_type=ref.media_type,
        sha256=ref.sha256,
        size=ref.size,
        url=f"{ARTIFACTS_PATH}/{ref.sha256}",
    )


def without_paths(text: str, settings: Settings) -> str:
    """Text (a run's error message) with every server path under the state, store, publish and
    input folders cut down to its last component, and no file:// URI."""
    roots = {settings.state_dir.resolve(), settings.artifact_root(), settings.publish_root()}
    roots.update(settings.input_folders())
    alternatives = "|".join(re.escape(str(root)) for root in sorted(roots, key=lambda r: -len(str(r))))
    rest = r"[^\s'\",;:)\]]"
    pattern = rf"file://{rest}+|(?:{alternatives})(?:/{rest}*)?"
    return re.sub(pattern, lambda match: PurePosixPath(match.group(0)).name or "…", text)


def public_error(error: dict[str, Any] | None, settings: Settings) -> dict[str, Any] | None:
    """A run's error for an answer: its message without server paths."""
    if error is None:
        return None
    return {**error, "message": without_paths(str(error.get("message", "")), settings)}


def scrubbed(value: Any, settings: Settings) -> Any:
    """A JSON value with every string passed through `without_paths` (a client's view of a run)."""
    if isinstance(value, str):
        return without_paths(value, settings)
    if isinstance(value, list):
        return [scrubbed(item, settings) for item in value]
    if isinstance(value, dict):
        return {key: scrubbed(item, settings) for key, item in value.items()}
    return value
