"""What changed between two catalogue versions, step by step and parameter by parameter."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ParamChanges(BaseModel):
    """Parameters of one step's param_schema that appeared, disappeared or changed."""

    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []


class StepChange(BaseModel):
    """One step whose node definition differs between two catalogue versions."""

    step: str
    fields: list[str]
    """Top-level NodeDefinition fields that differ (param_schema, data_inputs, …)."""
    params: ParamChanges | None = None
    """Parameter-level detail when param_schema changed."""


class CatalogChange(BaseModel):
    """What changed between the catalogue a definition was written for and the current one."""

    from_version: str
    to_version: str
    known: bool
    """Whether this server has a snapshot of from_version; without one no diff is possible."""
    added: list[str] = []
    removed: list[str] = []
    changed: list[StepChange] = []
    affected_nodes: list[str] = []
    """Node ids of the definition whose step was removed or changed."""
    message: str


def diff_definitions(
    old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> tuple[list[str], list[str], list[StepChange]]:
    """Steps added, removed and changed (with the differing fields) from old to new."""
    before = {definition["step"]: definition for definition in old}
    after = {definition["step"]: definition for definition in new}
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = [
        change
        for step in sorted(set(before) & set(after))
        if (change := _step_change(step, before[step], after[step]))
    ]
    return added, removed, changed


def _step_change(step: str, old: dict[str, Any], new: dict[str, Any]) -> StepChange | None:
    fields = sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
    if not fields:
        return None
    params = (
        _param_changes(old.get("param_schema", {}), new.get("param_schema", {}))
        if "param_schema" in fields
        else None
    )
    return StepChange(step=step, fields=fields, params=params)


def _param_changes(old: dict[str, Any], new: dict[str, Any]) -> ParamChanges:
    before, after = old.get("properties", {}), new.get("properties", {})
    return ParamChanges(
        added=sorted(set(after) - set(before)),
        removed=sorted(set(before) - set(after)),
        changed=sorted(name for name in set(before) & set(after) if before[name] != after[name]),
    )


def document_nodes(document: Any) -> list[dict[str, Any]]:
    """The well-formed nodes of a raw document (anything else is the validator's business)."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    return (
        [node for node in nodes or [] if isinstance(node, dict) and isinstance(node.get("id"), str)]
        if isinstance(nodes, list)
        else []
    )
