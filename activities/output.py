"""Output modules: publish the deliverables of an order line, and tell someone they are ready."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from activities.artifacts import ArtifactRef, LocalArtifactStore
from activities.module import CONTRACT, production_module
from core.vocabulary import DELIVERABLE_ROLES

OUTPUT_UI = {"palette_group": "Delivery", "icon": "send", "color": "#8a63d2"}


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
    )
    async def publish_asset(self, input: PublishAssetInput) -> PublishAssetOutput:
        """Copy each deliverable into the order line's publish folder and write a manifest."""
        folder = self.publish_root / _safe(input.order_line_id)
        folder.mkdir(parents=True, exist_ok=True)
        published = []
        for role in DELIVERABLE_ROLES:
            ref: ArtifactRef | None = getattr(input, role)
            if ref is None:
                continue
            source = self.store.path_of(ref)
            target = folder / f"{input.params.file_stem}.{role}{source.suffix}"
            shutil.copyfile(source, target)
            published.append(
                PublishedAsset(role=role, path=str(target), sha256=ref.sha256, media_type=ref.media_type)
            )
        manifest_path = folder / "manifest.json"
        manifest_path.write_text(
            json.dumps(
                {"order_line_id": input.order_line_id, "assets": [asset.model_dump() for asset in published]},
                indent=2,
            )
        )
        manifest = self.store.put_file(manifest_path, role="manifest")
        return PublishAssetOutput(published=published, manifest=manifest)

    @production_module(
        "output.notify",
        families=("order_line",),
        label="Notify",
        category="output",
        timeout_s=60,
        legacy_source="legacy.notify",
        ui=OUTPUT_UI,
        local=True,
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
