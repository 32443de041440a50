"""The artifact store: atomic writes, blobs verified on every read and re-put, corrupt ones quarantined."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

import activities.artifacts as artifacts
from activities.artifacts import ArtifactRef, LocalArtifactStore
from core.errors import MODULE_ERRORS, ArtifactCorruptError, ArtifactMissingError

CONTENT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "render.png"
    path.write_bytes(CONTENT)
    return path


def _blob(ref: ArtifactRef) -> Path:
    return artifacts._location(ref)


def _tamper_keeping_times(path: Path, offset: int = 100) -> None:
    """Flip one byte in place, then put atime and mtime back: size, inode and mtime all match."""
    before = path.stat()
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (
        before.st_size,
        before.st_ino,
        before.st_mtime_ns,
    )


def _files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def test_a_put_stores_the_bytes_under_their_hash_and_leaves_nothing_else(store, source):
    ref = store.put_file(source, role="still")
    digest = hashlib.sha256(CONTENT).hexdigest()
    assert (ref.sha256, ref.size, ref.media_type, ref.role) == (digest, len(CONTENT), "image/png", "still")
    assert store.path_of(ref) == store.root / digest[:2] / f"{digest}.png"
    assert store.path_of(ref).read_bytes() == CONTENT
    assert _files_under(store.root) == [store.path_of(ref)]  # no temporary file left behind


def test_a_put_that_fails_midway_leaves_no_partial_file(store, source, monkeypatch):
    def fail(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk gone"):
        store.put_file(source, role="still")
    monkeypatch.undo()
    assert _files_under(store.root) == []
    ref = store.put_file(source, role="still")  # and the next put works
    assert store.path_of(ref).read_bytes() == CONTENT


def test_a_source_that_changes_while_it_is_stored_is_refused_and_leaves_nothing(store, source, monkeypatch):
    monkeypatch.setattr(
        artifacts, "sha256_of", lambda path: hashlib.sha256(b"what it held before").hexdigest()
    )
    with pytest.raises(RuntimeError, match="changed while it was being stored"):
        store.put_file(source, role="still")
    assert _files_under(store.root) == []


def test_a_blob_is_written_with_the_usual_permissions(store, source):
    umask = os.umask(0o022)
    os.umask(umask)
    ref = store.put_file(source, role="still")
    assert store.path_of(ref).stat().st_mode & 0o777 == 0o666 & ~umask


def test_putting_the_same_bytes_again_keeps_the_intact_blob(store, source):
    first = store.put_file(source, role="still")
    inode = _blob(first).stat().st_ino
    again = store.put_file(source, role="still")
    assert again == first and _blob(again).stat().st_ino == inode


def test_a_tampered_blob_is_detected_on_read_quarantined_and_never_served(store, source):
    ref = store.put_file(source, role="still")
    blob = _blob(ref)
    _tamper_keeping_times(blob)
    actual = hashlib.sha256(blob.read_bytes()).hexdigest()

    with pytest.raises(ArtifactCorruptError) as corrupt:
        store.path_of(ref)
    assert "still" in corrupt.value.message and ref.sha256[:12] in corrupt.value.message
    assert not blob.exists()  # out of the store: nobody can be handed it any more

    quarantined = sorted(store.quarantine_root.iterdir())
    assert [path.suffix for path in quarantined] == [".json", ".png"]
    note_path, moved = quarantined
    assert hashlib.sha256(moved.read_bytes()).hexdigest() == actual
    note = json.loads(note_path.read_text())
    assert note["expected_sha256"] == ref.sha256 and note["actual_sha256"] == actual
    assert note["role"] == "still" and note["original_path"] == str(blob) and note["quarantined_at"]

    with pytest.raises(ArtifactMissingError, match="quarantined as corrupt"):
        store.path_of(ref)


def test_a_verified_copy_of_a_tampered_blob_raises_and_leaves_no_copy(store, source, tmp_path):
    ref = store.put_file(source, role="still")
    _tamper_keeping_times(_blob(ref), offset=len(CONTENT) - 1)
    target = tmp_path / "out.png"
    with pytest.raises(ArtifactCorruptError):
        store.copy_to(ref, target)
    assert not target.exists() and not _blob(ref).exists()


def test_a_verified_copy_of_an_intact_blob_holds_its_bytes(store, source, tmp_path):
    ref = store.put_file(source, role="still")
    assert store.copy_to(ref, tmp_path / "out.png").read_bytes() == CONTENT


def test_putting_the_content_again_repairs_a_corrupt_blob(store, source):
    ref = store.put_file(source, role="still")
    _tamper_keeping_times(_blob(ref))

    repaired = store.put_file(source, role="still")  # verifies the blob already there first
    assert repaired == ref
    assert store.path_of(ref).read_bytes() == CONTENT
    assert len(list(store.quarantine_root.glob("*.json"))) == 1


def test_putting_the_content_again_after_a_quarantine_repairs_the_reference(store, source):
    ref = store.put_file(source, role="still")
    _tamper_keeping_times(_blob(ref))
    with pytest.raises(ArtifactCorruptError):
        store.path_of(ref)
    assert store.put_file(source, role="still") == ref
    assert store.path_of(ref).read_bytes() == CONTENT


def test_a_blob_repaired_after_it_was_hashed_is_not_quarantined(store, source):
    ref = store.put_file(source, role="still")
    blob = _blob(ref)
    _tamper_keeping_times(blob)
    good = blob.with_name("good-copy")
    good.write_bytes(CONTENT)
    with blob.open("rb") as handle:  # a reader hashes the corrupt blob ...
        actual, seen = artifacts._copy(handle)
        os.replace(good, blob)  # ... a concurrent put renames a good copy into place ...
        store._quarantine(blob, expected=ref.sha256, actual=actual, seen=seen, role="still")
    assert store.path_of(ref).read_bytes() == CONTENT  # ... and the good copy stays
    assert not store.quarantine_root.exists() or not any(store.quarantine_root.iterdir())


def test_a_missing_blob_is_a_typed_permanent_error(store, source):
    ref = store.put_file(source, role="glb")
    _blob(ref).unlink()
    with pytest.raises(ArtifactMissingError) as missing:
        store.path_of(ref)
    assert "glb" in missing.value.message and ref.sha256[:12] in missing.value.message
    assert "quarantined" not in missing.value.message


def test_the_store_errors_are_module_errors_with_stable_codes():
    assert MODULE_ERRORS["artifact_corrupt"] is ArtifactCorruptError
    assert MODULE_ERRORS["artifact_missing"] is ArtifactMissingError
    assert not ArtifactCorruptError.retryable and not ArtifactMissingError.retryable


def test_stale_partial_files_are_removed_and_fresh_ones_kept(store):
    shard = store.root / "ab"
    shard.mkdir()
    stale = shard / f".abc.png.{'0' * 32}.partial"
    fresh = shard / f".abd.png.{'1' * 32}.partial"
    blob = shard / "ab12.png"
    for path in (stale, fresh, blob):
        path.write_bytes(b"x")
    old = time.time() - 3 * 86400
    os.utime(stale, (old, old))
    os.utime(blob, (old, old))
    assert store.remove_stale_partials(older_than_s=2 * 86400) == [stale]
    assert fresh.exists() and blob.exists()


# --- streamed in (uploads), found by content, opened verified --------------------------------


def _scratch_entries(store: LocalArtifactStore) -> list[Path]:
    return list(store.scratch_root.iterdir()) if store.scratch_root.is_dir() else []


def test_a_streamed_blob_is_filed_under_its_hash_and_its_scratch_file_removed(store):
    with store.receive(".step") as incoming:
        for block in (CONTENT[:1000], CONTENT[1000:]):
            incoming.write(block)
        ref = incoming.commit("step_file", "model/step")
    digest = hashlib.sha256(CONTENT).hexdigest()
    assert (ref.sha256, ref.size, ref.role) == (digest, len(CONTENT), "step_file")
    assert _blob(ref) == store.root / digest[:2] / f"{digest}.step"
    assert _blob(ref).read_bytes() == CONTENT
    assert _scratch_entries(store) == []


def test_a_stream_that_fails_midway_leaves_nothing_in_the_store(store):
    with pytest.raises(RuntimeError), store.receive(".step") as incoming:
        incoming.write(CONTENT)
        raise RuntimeError("the client went away")
    assert _scratch_entries(store) == []
    assert [path for path in store.root.rglob("*") if path.is_file()] == []


def test_streaming_in_content_already_stored_keeps_the_intact_blob(store, source):
    first = store.put_file(source, role="still")
    inode = _blob(first).stat().st_ino
    with store.receive(".png") as incoming:
        incoming.write(CONTENT)
        again = incoming.commit("still", "image/png")
    assert again.uri == first.uri and _blob(again).stat().st_ino == inode


def test_find_returns_the_verified_blob_of_a_content(store, source):
    stored = store.put_file(source, role="still")
    found = store.find(stored.sha256, ".png", role="still", media_type="image/png")
    assert found == stored


def test_find_refuses_a_link_standing_where_a_blob_belongs(store, source, tmp_path):
    digest = hashlib.sha256(CONTENT).hexdigest()
    place = store.root / digest[:2] / f"{digest}.png"
    place.parent.mkdir(parents=True)
    place.symlink_to(source)  # the right bytes, but not a blob of the store
    with pytest.raises(ArtifactMissingError):
        store.find(digest, ".png", role="still", media_type="image/png")


def test_find_refuses_a_blob_folder_that_is_a_link_out_of_the_store(store, source, tmp_path):
    digest = hashlib.sha256(CONTENT).hexdigest()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f"{digest}.png").write_bytes(CONTENT)
    (store.root / digest[:2]).symlink_to(outside)
    with pytest.raises(ArtifactMissingError):
        store.find(digest, ".png", role="still", media_type="image/png")


def test_find_quarantines_a_tampered_blob(store, source):
    stored = store.put_file(source, role="still")
    _tamper_keeping_times(_blob(stored))
    with pytest.raises(ArtifactCorruptError):
        store.find(stored.sha256, ".png", role="still", media_type="image/png")
    assert store.was_quarantined(stored.sha256) and not _blob(stored).exists()


def test_open_verified_reads_from_the_start_of_the_checked_bytes(store, source):
    stored = store.put_file(source, role="still")
    with store.open_verified(stored) as handle:
        assert handle.read() == CONTENT


def test_open_verified_never_opens_a_tampered_blob_or_a_file_outside_the_store(store, source):
    stored = store.put_file(source, role="still")
    outside = stored.model_copy(update={"uri": source.as_uri()})
    with pytest.raises(ArtifactMissingError):
        store.open_verified(outside)
    _tamper_keeping_times(_blob(stored))
    with pytest.raises(ArtifactCorruptError):
        store.open_verified(stored)
    assert store.was_quarantined(stored.sha256)
    with pytest.raises(ArtifactMissingError):
        store.open_verified(stored)  # later reads find nothing to serve


def test_store_references_name_content_only():
    digest = "ab" * 32
    assert artifacts.parse_store_reference(f"store:{digest}.step") == (digest, ".step")
    for text in (
        f"store:{digest}/../../etc/passwd",
        "store:../../etc/passwd",
        f"store:{digest.upper()}.step",
        f"store:{digest[:-1]}.step",
        f"/tmp/{digest[:2]}/{digest}.step",
        f"store:{digest}.step\n",
    ):
        assert artifacts.parse_store_reference(text) is None, text
