"""Output modules: publish the deliverables of an order line, and tell someone they are ready."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from temporalio import activity

from activities.artifacts import ArtifactRef, LocalArtifactStore
from activities.module import CONTRACT, production_module
from core.errors import ContractViolationError
from core.vocabulary import DELIVERABLE_ROLES

OUTPUT_UI = {"palette_group": "Delivery", "icon": "send", "color": "#8a63d2"}
#: Longest order line id publish accepts.
MAX_ORDER_LINE_ID = 128


class PublishedAsset(BaseModel):
    """One delivered file."""

    model_config = CONTRACT

    role: str
    """Artifact role (still, turntable, blend, thumbnail)."""
    path: str
    """Where it was published."""
    sha256: str
    """Content hash, as stored."""
    media_type: str
    """IANA media type."""


# --- output.publish_asset ----------------------------------------------------------------


class PublishAssetParams(BaseModel):
    """Where and how deliverables are published."""

    model_config = CONTRACT

    file_stem: str = Field("render", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    """File name stem of each published file."""


class PublishAssetInput(BaseModel):
    """The order line and whichever deliverables the graph produced."""

    model_config = CONTRACT

    order_line_id: str
    """The order line being delivered."""
    still: ArtifactRef | None = None
    """Still image, if produced."""
    turntable: ArtifactRef | None = None
    """Turntable video, if produced."""
    blend: ArtifactRef | None = None
    """Production .blend, if produced."""
    thumbnail: ArtifactRef | None = None
    """Preview thumbnail, if produced."""
    params: PublishAssetParams = PublishAssetParams()
    """Module parameters."""


class PublishAssetOutput(BaseModel):
    """What was published, and a manifest of it."""

    model_config = CONTRACT

    published: list[PublishedAsset]
    """Every published file."""
    manifest: ArtifactRef
    """JSON manifest of the delivery."""


# --- output.notify -----------------------------------------------------------------------


class NotifyParams(BaseModel):
    """Who hears about a finished delivery."""

    model_config = CONTRACT

    channel: Literal["outbox"] = "outbox"
    """Delivery channel; the outbox is a JSON-lines file other systems read."""
    recipient: str = "orders"
    """Recipient or topic name."""


class NotifyInput(BaseModel):
    """The delivery to announce."""

    model_config = CONTRACT

    order_line_id: str
    """The order line."""
    published: list[PublishedAsset]
    """What was published."""
    params: NotifyParams = NotifyParams()
    """Module parameters."""


class NotifyOutput(BaseModel):
    """Proof the notification was written."""

    model_config = CONTRACT

    notification_id: str
    """Id of the written notification."""


class OutputActivities:
    """Publishing and notification, bound to the artifact store and a publish directory."""

    def __init__(self, store: LocalArtifactStore, publish_root: Path):
        self.store = store
        self.publish_root = publish_root

    @production_module(
        "output.publish_asset",
        families=("order_line",),
        label="Publish asset",
        category="output",
        timeout_s=300,
        legacy_source="legacy.publish",
        ui=OUTPUT_UI,
        side_effects=True,
    )
    async def publish_asset(self, input: PublishAssetInput) -> PublishAssetOutput:
        """Copy each deliverable into a folder of its own for this order line and run, with a manifest."""
        folder = self._publish_folder(input.order_line_id, _run_id())
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Built beside its final place and renamed into it: readers see the whole delivery or none.
        staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.partial"
        staging.mkdir()
        try:
            published = []
            for role in DELIVERABLE_ROLES:
                ref: ArtifactRef | None = getattr(input, role)
                if ref is None:
                    continue
                name = f"{input.params.file_stem}.{role}{ref.suffix}"
                self.store.copy_to(ref, staging / name)  # verified against ref.sha256 as it copies
                published.append(
                    PublishedAsset(
                        role=role, path=str(folder / name), sha256=ref.sha256, media_type=ref.media_type
                    )
                )
            (staging / "manifest.json").write_text(
                json.dumps(
                    {
                        "order_line_id": input.order_line_id,
                        "assets": [asset.model_dump() for asset in published],
                    },
                    indent=2,
                )
            )
            _move_into_place(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        manifest = self.store.put_file(folder / "manifest.json", role="manifest")
        return PublishAssetOutput(published=published, manifest=manifest)

    def _publish_folder(self, order_line_id: str, run_id: str) -> Path:
        """publish_root/<order line>/<run>: each part a readable, safe name plus a hash of the
        exact id, so ids that sanitise alike never share a folder and none escapes the root."""
        if not order_line_id or len(order_line_id) > MAX_ORDER_LINE_ID:
            raise ContractViolationError(
                f"order line id must be 1 to {MAX_ORDER_LINE_ID} characters, got {len(order_line_id)}",
                field="order_line_id",
            )
        root = self.publish_root.resolve()
        folder = (root / _folder_name(order_line_id) / _folder_name(run_id)).resolve()
        if not folder.is_relative_to(root) or folder.parent.parent != root:
            raise ContractViolationError(
                f"order line {order_line_id!r} would publish to {folder}, not a folder of its own in {root}",
                field="order_line_id",
            )
        return folder

    @production_module(
        "output.notify",
        families=("order_line",),
        label="Notify",
        category="output",
        timeout_s=60,
        legacy_source="legacy.notify",
        ui=OUTPUT_UI,
        local=True,
        side_effects=True,
    )
    async def notify(self, input: NotifyInput) -> NotifyOutput:
        """Append a delivery notification to the outbox."""
        stamp = datetime.now(UTC).isoformat()
        notification_id = f"{_safe(input.order_line_id)}-{len(input.published)}-{stamp}"
        record = {
            "id": notification_id,
            "recipient": input.params.recipient,
            "at": stamp,
            "order_line_id": input.order_line_id,
            "assets": [asset.model_dump() for asset in input.published],
        }
        self.publish_root.mkdir(parents=True, exist_ok=True)
        with (self.publish_root / "outbox.jsonl").open("a") as outbox:
            outbox.write(json.dumps(record) + "\n")
        return NotifyOutput(notification_id=notification_id)


def _safe(name: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in name)[:128]


def _folder_name(name: str) -> str:
    """A folder name for an id: at most 64 readable ASCII characters (no leading dot, so never
    "." or ".."), then 12 hex digits of the exact id's SHA-256."""
    readable = "".join(char if char.isascii() and (char.isalnum() or char in "-_.") else "_" for char in name)
    readable = readable[:64].lstrip(".") or "_"
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def _run_id() -> str:
    """The workflow running this publish (so a retry of it replaces its own folder), or a fresh
    id outside Temporal."""
    workflow_id = activity.info().workflow_id if activity.in_activity() else None
    return workflow_id or uuid.uuid4().hex


def _move_into_place(staging: Path, folder: Path) -> None:
    """Rename a finished staging folder to folder, durably; an earlier attempt's folder of the
    same run (a retry) is replaced."""
    for path in staging.iterdir():
        _fsync(path)
    _fsync(staging)
    try:
        staging.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
        earlier = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.replaced"
        folder.rename(earlier)
        staging.rename(folder)
        shutil.rmtree(earlier, ignore_errors=True)
    _fsync(folder.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
