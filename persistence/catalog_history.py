"""Catalogue snapshots by version, and the diff a stale definition is answered with."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from persistence.tables import CatalogSnapshot
from registry.catalog import Catalog
from registry.catalog_diff import CatalogChange, diff_definitions, document_nodes


def record_snapshot(session: Session, catalog: Catalog) -> None:
    """Store the catalogue's node definitions under its version, once per version."""
    if session.get(CatalogSnapshot, catalog.version) is None:
        definitions = [definition.model_dump(mode="json") for definition in catalog.list()]
        session.add(CatalogSnapshot(version=catalog.version, node_definitions=definitions))
        session.commit()


def catalog_change(
    session: Session, old_version: str, catalog: Catalog, document: Any = None
) -> CatalogChange | None:
    """What changed since old_version (None when it is current); nodes of document affected."""
    if old_version == catalog.version:
        return None
    snapshot = session.get(CatalogSnapshot, old_version)
    if snapshot is None:
        return CatalogChange(
            from_version=old_version,
            to_version=catalog.version,
            known=False,
            message=f"catalogue version {old_version!r} is unknown to this server; the "
            f"definition was re-validated against the current catalogue "
            f"{catalog.version!r}",
        )
    current = [definition.model_dump(mode="json") for definition in catalog.list()]
    added, removed, changed = diff_definitions(snapshot.node_definitions, current)
    touched = set(removed) | {change.step for change in changed}
    affected = sorted({node["id"] for node in document_nodes(document) if node.get("step") in touched})
    return CatalogChange(
        from_version=old_version,
        to_version=catalog.version,
        known=True,
        added=added,
        removed=removed,
        changed=changed,
        affected_nodes=affected,
        message=f"the catalogue changed from {old_version!r} to {catalog.version!r}: "
        f"{len(added)} steps added, {len(removed)} removed, {len(changed)} changed; "
        f"the definition was re-validated against the current catalogue",
    )
