"""Definitions for orchestration tests: starters with some nodes changed."""

from __future__ import annotations

from typing import Any

from registry.definition import WorkflowDefinition
from registry.starters import INTAKE_STARTER, starter

#: A node that waits for the operator after one failed attempt.
OPERATED = {"on_failure": "wait_for_operator", "retry": {"max_attempts": 1}}


def with_nodes(definition: WorkflowDefinition, **changes: dict[str, Any]) -> WorkflowDefinition:
    """A copy of the definition with the named nodes' fields changed."""
    document = definition.model_dump()
    for node in document["nodes"]:
        node.update(changes.get(node["id"], {}))
    return WorkflowDefinition.model_validate(document)


def intake(**extract: Any) -> WorkflowDefinition:
    """The intake starter, its `extract` node changed."""
    return with_nodes(starter(INTAKE_STARTER), extract=extract)
