"""Catalogue snapshots by version, and the diff a stale definition is answered with."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from api.models import CatalogSnapshot
from api.schemas import CatalogChange, ParamChanges, StepChange
from registry.catalog import Catalog


def record_snapshot(session: Session, catalog: Catalog) -> None:
    """Store the catalogue's node definitions under its version, once per version."""
    if session.get(CatalogSnapshot, catalog.version) is None:
        definitions = [definition.model_dump(mode="json") for definition in catalog.list()]
        session.add(CatalogSnapshot(version=catalog.version, node_definitions=definitions))
        session.commit()


def catalog_change(session: Session, old_version: str, catalog: Catalog,
                   document: Any = None) -> CatalogChange | None:
    """What changed since old_version (None when it is current); nodes of document affected."""
    if old_version == catalog.version:
        return None
    snapshot = session.get(CatalogSnapshot, old_version)
    if snapshot is None:
        return CatalogChange(
            from_version=old_version, to_version=catalog.version, known=False,
            message=f"catalogue version {old_version!r} is unknown to this server; the "
                    f"definition was re-validated against the current catalogue "
                    f"{catalog.version!r}")
    current = [definition.model_dump(mode="json") for definition in catalog.list()]
    added, removed, changed = diff_definitions(snapshot.node_definitions, current)
    touched = set(removed) | {change.step for change in changed}
    affected = sorted({node["id"] for node in _nodes(document) if node.get("step") in touched})
    return CatalogChange(
        from_version=old_version, to_version=catalog.version, known=True, added=added,
        removed=removed, changed=changed, affected_nodes=affected,
        message=f"the catalogue changed from {old_version!r} to {catalog.version!r}: "
                f"{len(added)} steps added, {len(removed)} removed, {len(changed)} changed; "
                f"the definition was re-validated against the current catalogue")


def diff_definitions(old: list[dict[str, Any]], new: list[dict[str, Any]]
                     ) -> tuple[list[str], list[str], list[StepChange]]:
    """Steps added, removed and changed (with the differing fields) from old to new."""
    before = {definition["step"]: definition for definition in old}
    after = {definition["step"]: definition for definition in new}
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = [change for step in sorted(set(before) & set(after))
               if (change := _step_change(step, before[step], after[step]))]
    return added, removed, changed


def _step_change(step: str, old: dict[str, Any], new: dict[str, Any]) -> StepChange | None:
    fields = sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
    if not fields:
        return None
    params = (_param_changes(old.get("param_schema", {}), new.get("param_schema", {}))
              if "param_schema" in fields else None)
    return StepChange(step=step, fields=fields, params=params)


def _param_changes(old: dict[str, Any], new: dict[str, Any]) -> ParamChanges:
    before, after = old.get("properties", {}), new.get("properties", {})
    return ParamChanges(
        added=sorted(set(after) - set(before)), removed=sorted(set(before) - set(after)),
        changed=sorted(name for name in set(before) & set(after)
                       if before[name] != after[name]))


def _nodes(document: Any) -> list[dict[str, Any]]:
    """The well-formed nodes of a raw document (anything else is the validator's business)."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    return [node for node in nodes or [] if isinstance(node, dict)
            and isinstance(node.get("id"), str)] if isinstance(nodes, list) else []
