"""Content-addressed artifact store: activities pass references, never bytes."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, ConfigDict

MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".glb": "model/gltf-binary",
    ".mp4": "video/mp4",
    ".blend": "application/x-blender",
    ".step": "model/step",
    ".stp": "model/step",
    ".json": "application/json",
}


class ArtifactRef(BaseModel):
    """A reference to stored bytes: where, what, and a hash that proves which."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    uri: str
    """file:// URI inside the artifact store."""
    sha256: str
    """Hex SHA-256 of the content."""
    size: int
    """Size in bytes."""
    media_type: str
    """IANA media type, e.g. image/png."""
    role: str
    """What the artifact is in the production (step_file, glb, still, ...)."""


def media_type_for(path: Path) -> str:
    """Standard media type from a file extension."""
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


def sha256_of(path: Path) -> str:
    """Streamed SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalArtifactStore:
    """A directory all workers can reach, keyed by content hash."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def put_file(self, source: Path, role: str, media_type: str | None = None) -> ArtifactRef:
        """Copy a file in (idempotent: same bytes, same place) and return its reference."""
        source = Path(source)
        digest = sha256_of(source)
        target = self.root / digest[:2] / f"{digest}{source.suffix.lower()}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".partial")
            shutil.copyfile(source, partial)
            partial.replace(target)  # atomic: readers never see half a file
        return ArtifactRef(
            uri=target.as_uri(),
            sha256=digest,
            size=target.stat().st_size,
            media_type=media_type or media_type_for(source),
            role=role,
        )

    def path_of(self, ref: ArtifactRef) -> Path:
        """Local path of a referenced artifact."""
        path = Path(unquote(urlparse(ref.uri).path))
        if not path.is_file():
            raise FileNotFoundError(f"artifact {ref.role} ({ref.sha256[:12]}) missing at {path}")
        return path

    @property
    def scratch_root(self) -> Path:
        """Where scratch folders live: inside the store, on its disk."""
        return self.root / "_scratch"

    @contextmanager
    def scratch_file(self, name: str) -> Iterator[Path]:
        """A path in a fresh private folder on the store's disk, removed afterwards."""
        parent = self.scratch_root
        parent.mkdir(exist_ok=True)
        # Same filesystem as the store, so put_file copies locally; always cleaned up.
        with tempfile.TemporaryDirectory(dir=parent) as folder:
            yield Path(folder) / name

    def remove_stale_scratch(self, older_than_s: float) -> list[Path]:
        """Remove scratch folders nothing has written to for older_than_s (left by a worker
        that was killed mid-module); return them. The store may be shared by several hosts,
        so age is the only safe sign that no live job still uses a folder."""
        cutoff = time.time() - older_than_s
        removed = []
        for folder in sorted(self.scratch_root.iterdir()) if self.scratch_root.is_dir() else []:
            try:
                newest = max([folder.stat().st_mtime, *(entry.stat().st_mtime for entry in folder.iterdir())])
            except OSError:
                continue  # removed meanwhile, or not a folder
            if newest < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed
