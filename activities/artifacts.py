"""Content-addressed artifact store: activities pass references, never bytes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
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
#: A store reference names a blob by content only (`store:<sha256><suffix>`), never by path, so
#: whoever holds one can point at nothing but a blob of the store, and its read is verified.
STORE_REFERENCE = re.compile(r"store:(?P<sha256>[0-9a-f]{64})(?P<suffix>\.[a-z0-9]{1,8})?")


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


def store_reference(ref: ArtifactRef) -> str:
    """The store reference of a stored artifact (`store:<sha256><suffix>`)."""
    return f"store:{ref.sha256}{ref.suffix}"


def parse_store_reference(text: str) -> tuple[str, str] | None:
    """(sha256, suffix) of a store reference, or None when text is not exactly one."""
    match = STORE_REFERENCE.fullmatch(text)
    return (match["sha256"], match["suffix"] or "") if match else None


def local_path(ref: ArtifactRef) -> Path:
    """Where a reference points on this host (unverified: read through the store)."""
    return _location(ref)


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

    def find(self, sha256: str, suffix: str, role: str, media_type: str) -> ArtifactRef:
        """The blob of this content, verified; only a regular file at exactly its own place.

        Raises:
            ArtifactMissingError: no such blob, or something other than a plain file (a link,
                a folder) stands in its place or on the way to it.
            ArtifactCorruptError: the blob does not hash to its name; it has been quarantined.
        """
        target = self.root / sha256[:2] / f"{sha256}{suffix}"
        try:
            seen = os.lstat(target)
            placed = stat.S_ISREG(seen.st_mode) and target.resolve(strict=True) == target
        except OSError:
            placed = False
        if not placed:
            raise ArtifactMissingError(f"no stored {role} {sha256[:12]}")
        ref = ArtifactRef(
            uri=target.as_uri(), sha256=sha256, size=seen.st_size, media_type=media_type, role=role
        )
        self.path_of(ref)
        return ref

    def open_verified(self, ref: ArtifactRef) -> BinaryIO:
        """The referenced blob, open at its start, after its bytes were hashed through this very
        handle (a put replacing the file meanwhile cannot change what it reads); the caller
        closes it. Only blobs inside the store are opened.

        Raises:
            ArtifactMissingError: no blob where the reference points, or it points outside.
            ArtifactCorruptError: the blob's bytes do not hash to the reference; quarantined.
        """
        path = _location(ref)
        if not path.is_relative_to(self.root):
            raise ArtifactMissingError(f"artifact {ref.role} ({ref.sha256[:12]}) is not in the store")
        handle = self._handle(ref, path)
        try:
            self._check(ref, path, *_copy(handle))
            handle.seek(0)
        except BaseException:
            handle.close()
            raise
        return handle

    def was_quarantined(self, sha256: str) -> bool:
        """Whether a blob of this content has been quarantined as corrupt."""
        folder = self.quarantine_root
        return folder.is_dir() and any(folder.glob(f"*-{sha256[:16]}-*.json"))

    @contextmanager
    def receive(self, suffix: str = "") -> Iterator[IncomingBlob]:
        """A blob being streamed in (an upload): hashed and counted as it is written to a
        private scratch file on the store's disk; `commit` files it under its hash. Whatever is
        not committed is removed when the block ends, however it ends."""
        with self.scratch_file(f"incoming{PARTIAL_SUFFIX}") as path:
            with open(path, "xb") as handle:
                yield IncomingBlob(self, handle, path, suffix)

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
        with self._handle(ref, path) as handle:
            yield handle

    def _handle(self, ref: ArtifactRef, path: Path) -> BinaryIO:
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ArtifactMissingError(self._missing_message(ref, path)) from None

    def _missing_message(self, ref: ArtifactRef, path: Path) -> str:
        message = f"artifact {ref.role} ({ref.sha256[:12]}) missing at {path}"
        if self.was_quarantined(ref.sha256):
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

    def _adopt(self, partial: Path, digest: str, suffix: str, role: str) -> Path:
        """File a complete, fsynced file under its hash by renaming it (same disk); a blob
        already there is verified first and kept when intact."""
        target = self.root / digest[:2] / f"{digest}{suffix}"
        if self._intact(target, digest, role):
            return target
        folder = target.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_folder(folder.parent)
        os.replace(partial, target)
        _fsync_folder(folder)
        return target

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


class IncomingBlob:
    """Bytes being streamed into the store: hashed and counted as they are written."""

    def __init__(self, store: LocalArtifactStore, handle: BinaryIO, path: Path, suffix: str):
        self._store = store
        self._handle = handle
        self._path = path
        self._suffix = suffix
        self._digest = hashlib.sha256()
        self.size = 0
        """Bytes written so far."""

    def write(self, data: bytes) -> None:
        """Append bytes."""
        self._handle.write(data)
        self._digest.update(data)
        self.size += len(data)

    def commit(self, role: str, media_type: str) -> ArtifactRef:
        """Make the bytes durable and file them under their hash; their reference."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        digest = self._digest.hexdigest()
        target = self._store._adopt(self._path, digest, self._suffix, role)
        return ArtifactRef(
            uri=target.as_uri(), sha256=digest, size=self.size, media_type=media_type, role=role
        )


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
