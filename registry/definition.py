"""The workflow-definition model: a canonical JSON DAG of nodes that wrap modules."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.vocabulary import FailurePolicy, Family, RetryOverride

#: Longest ids (of definitions, nodes and the edges' ends) and step keys.
MAX_ID_LENGTH = 128
#: Longest name and description of a definition.
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 4000


class WorkflowNode(BaseModel):
    """A node: which step runs, with which parameters, retry and failure policy."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    step: str = Field(max_length=MAX_ID_LENGTH)
    params: dict[str, Any] = {}
    ui: dict[str, Any] = {}
    retry: RetryOverride = RetryOverride()
    on_failure: FailurePolicy | None = None
    """What the run does when this node fails for good; None takes the family's default."""
    timeout_s: float | None = Field(None, gt=0, le=86400)


class WorkflowEdge(BaseModel):
    """A dependency: target runs after source."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(max_length=MAX_ID_LENGTH)
    target: str = Field(max_length=MAX_ID_LENGTH)


class WorkflowDefinition(BaseModel):
    """A versioned DAG of nodes belonging to one family."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    version: int = Field(ge=1)
    family: Family
    name: str = Field(max_length=MAX_NAME_LENGTH)
    description: str = Field("", max_length=MAX_DESCRIPTION_LENGTH)
    migration_graph: bool = False
    """Accept nodes of several families (visible migration graphs only)."""
    catalog_version: str | None = Field(None, max_length=64)
    """Catalogue ETag the definition was last validated against."""
    nodes: list[WorkflowNode]
    edges: list[WorkflowEdge] = []

    def node(self, node_id: str) -> WorkflowNode:
        """The node with this id."""
        return next(node for node in self.nodes if node.id == node_id)
