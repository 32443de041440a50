"""Content-addressed artifact store: activities pass references, never bytes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, ConfigDict

from core.errors import ArtifactCorruptError, ArtifactMissingError

logger = logging.getLogger(__name__)

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
#: Read and write block size.
BLOCK = 1 << 20
#: Name of a file being written; never a blob, removed when its writer fails or goes stale.
PARTIAL_SUFFIX = ".partial"


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

    @property
    def suffix(self) -> str:
        """File extension of the stored blob (".png"), or "" when it has none."""
        return _location(self).suffix


def media_type_for(path: Path) -> str:
    """Standard media type from a file extension."""
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


def sha256_of(path: Path) -> str:
    """Streamed SHA-256 of a file."""
    with path.open("rb") as handle:
        return _copy(handle)[0]


class LocalArtifactStore:
    """A directory all workers can reach, keyed by content hash.

    Every blob is checked against its hash when it is read and when the same content is put
    again: a full SHA-256 of the file, every time. A cheaper check (trust a sidecar record of
    size, mtime_ns and inode, re-hash only when they change) misses an edit in place whose
    mtime is put back (`touch -r`, os.utime: size and inode stay too) and every corruption
    below the filesystem (a bad disk, a bad NFS cache), which changes no metadata at all.
    Hashing runs at about 1.1 GB/s here (0.09 s per 100 MB from the page cache, 0.22 s after
    evicting it; SHA-NI), and whoever asks for a blob then reads all of it anyway (a copy, OCP,
    Blender), so the full hash costs little next to the use. A corrupt blob is moved to
    `_quarantine/` beside a JSON note and reported as ArtifactCorruptError; never served.
    """

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def quarantine_root(self) -> Path:
        """Where corrupt blobs are moved, each beside a JSON note of what was expected."""
        return self.root / "_quarantine"

    def put_file(self, source: Path, role: str, media_type: str | None = None) -> ArtifactRef:
        """Copy a file in and return its reference.

        Idempotent: the same bytes land in the same place, and a blob already there is
        verified first; a corrupt one is quarantined and replaced by the good copy. The write
        is atomic and durable: a temporary file in the blob's folder, fsynced, renamed into
        place, then the folder fsynced, so a reader sees the whole blob or none.
        """
        source = Path(source)
        digest = sha256_of(source)
        target = self.root / digest[:2] / f"{digest}{source.suffix.lower()}"
        if not self._intact(target, digest, role):
            self._write(source, target, digest)
        return ArtifactRef(
            uri=target.as_uri(),
            sha256=digest,
            size=target.stat().st_size,
            media_type=media_type or media_type_for(source),
            role=role,
        )

    def path_of(self, ref: ArtifactRef) -> Path:
        """Local path of a referenced artifact, verified against its hash first.

        Raises:
            ArtifactMissingError: no blob where the reference points.
            ArtifactCorruptError: the blob's bytes no longer hash to the reference; it has been
                quarantined.
        """
        path = _location(ref)
        with self._open(ref, path) as handle:
            self._check(ref, path, *_copy(handle))
        return path

    def copy_to(self, ref: ArtifactRef, target: Path) -> Path:
        """Copy a referenced artifact to target, hashing the bytes as they are copied (one read,
        and nothing can change between the check and the copy); fsynced. A corrupt blob is
        quarantined and nothing is left at target.

        Raises:
            ArtifactMissingError: no blob where the reference points.
            ArtifactCorruptError: the blob's bytes do not hash to the reference.
        """
        path = _location(ref)
        target = Path(target)
        with self._open(ref, path) as handle:
            try:
                with target.open("wb") as out:
                    actual, seen = _copy(handle, out)
                    out.flush()
                    os.fsync(out.fileno())
                self._check(ref, path, actual, seen)
            except BaseException:
                target.unlink(missing_ok=True)
                raise
        return target

    def remove_stale_partials(self, older_than_s: float) -> list[Path]:
        """Remove temporary files of puts whose writer was killed mid-copy (older_than_s
        untouched); return them. Age is the only safe sign on a store several hosts share."""
        cutoff = time.time() - older_than_s
        removed = []
        for partial in sorted(self.root.glob(f"??/.*{PARTIAL_SUFFIX}")):
            with suppress(OSError):
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()
                    removed.append(partial)
        return removed

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

    # --- internals -------------------------------------------------------------------------

    @contextmanager
    def _open(self, ref: ArtifactRef, path: Path) -> Iterator[BinaryIO]:
        try:
            handle = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ArtifactMissingError(self._missing_message(ref, path)) from None
        with handle:
            yield handle

    def _missing_message(self, ref: ArtifactRef, path: Path) -> str:
        message = f"artifact {ref.role} ({ref.sha256[:12]}) missing at {path}"
        if self.quarantine_root.is_dir() and any(self.quarantine_root.glob(f"*-{ref.sha256[:16]}-*.json")):
            message += "; it was quarantined as corrupt: re-run the module that produced it"
        return message

    def _check(self, ref: ArtifactRef, path: Path, actual: str, seen: os.stat_result) -> None:
        if actual == ref.sha256:
            return
        self._quarantine(path, expected=ref.sha256, actual=actual, seen=seen, role=ref.role)
        raise ArtifactCorruptError(
            f"artifact {ref.role} ({ref.sha256[:12]}) is corrupt: its bytes hash to {actual[:12]}; "
            f"quarantined under {self.quarantine_root}; re-run the module that produced it"
        )

    def _intact(self, target: Path, digest: str, role: str) -> bool:
        """Whether target holds exactly digest; a corrupt target is quarantined."""
        try:
            handle = target.open("rb")
        except FileNotFoundError:
            return False
        with handle:
            actual, seen = _copy(handle)
            if actual == digest:
                return True
            self._quarantine(target, expected=digest, actual=actual, seen=seen, role=role)
            return False

    def _write(self, source: Path, target: Path, digest: str) -> None:
        folder = target.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_folder(folder.parent)  # the new folder's own entry
        partial = folder / f".{target.name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
        try:
            # open(.., "xb"), not mkstemp (0o600): the blob gets the usual 0o666 & ~umask,
            # which readers on other hosts or accounts need.
            with source.open("rb") as handle, open(partial, "xb") as out:
                written, _ = _copy(handle, out)
                out.flush()
                os.fsync(out.fileno())
            if written != digest:
                raise RuntimeError(f"{source} changed while it was being stored; put it again")
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        _fsync_folder(folder)

    def _quarantine(self, path: Path, *, expected: str, actual: str, seen: os.stat_result, role: str) -> None:
        """Move the corrupt file that was hashed (seen) into quarantine with a note. A file
        that is no longer the one hashed (a put repaired it meanwhile) is left in place. The
        caller still holds the hashed file open, so its inode cannot pass to a new file."""
        if not path.is_relative_to(self.root):
            logger.error("corrupt artifact %s (%s) lies outside the store; not moved", path, expected[:12])
            return
        now = datetime.now(UTC)
        folder = self.quarantine_root
        folder.mkdir(exist_ok=True)
        name = f"{now:%Y%m%dT%H%M%S%fZ}-{expected[:16]}-{uuid.uuid4().hex[:8]}"
        moved = folder / f"{name}{path.suffix}"
        try:
            if not _same_file(path.stat(), seen):
                return  # replaced by a good copy since it was hashed
            os.rename(path, moved)
        except FileNotFoundError:
            return  # another reader quarantined it first
        if not _same_file(moved.stat(), seen):
            # Lost a race with a repair between the check and the rename: put its copy back.
            actual = sha256_of(moved)
            if actual == expected:
                with suppress(FileExistsError):
                    os.link(moved, path)
                moved.unlink()
                return
        note = {
            "expected_sha256": expected,
            "actual_sha256": actual,
            "role": role,
            "size": moved.stat().st_size,
            "original_path": str(path),
            "quarantined_at": now.isoformat(),
        }
        (folder / f"{name}.json").write_text(json.dumps(note, indent=2) + "\n")
        _fsync_folder(folder)
        _fsync_folder(path.parent)
        logger.error("quarantined corrupt artifact %s (%s) as %s", role, expected[:12], moved)


def _location(ref: ArtifactRef) -> Path:
    return Path(unquote(urlparse(ref.uri).path))


def _copy(source: BinaryIO, out: BinaryIO | None = None) -> tuple[str, os.stat_result]:
    """Stream source (into out, if given); return its SHA-256 and the identity of what was read."""
    digest = hashlib.sha256()
    for block in iter(lambda: source.read(BLOCK), b""):
        digest.update(block)
        if out is not None:
            out.write(block)
    return digest.hexdigest(), os.fstat(source.fileno())


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _fsync_folder(folder: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
