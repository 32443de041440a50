"""The compiled execution plan: everything the generic workflow needs, pinned, no lookups."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ParamSource = Literal["module_default", "node_param", "profile_override", "invocation"]


class PortBinding(BaseModel):
    """Where one input field comes from: the entry context or an upstream node's output."""

    model_config = ConfigDict(extra="forbid")

    source_node: str | None
    """Upstream node id, or None for the run's entry context."""
    field: str
    """Field name in that output (or entry key)."""


class PlanRetry(BaseModel):
    """Effective retry policy of a node."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int
    initial_interval_s: float
    backoff: float
    max_interval_s: float


class PlanNode(BaseModel):
    """One node, resolved: module, queue, bindings, effective params and where each came from."""

    model_config = ConfigDict(extra="forbid")

    id: str
    step: str
    module_key: str
    task_queue: str
    depends_on: list[str]
    inputs: dict[str, PortBinding]
    params: dict[str, Any]
    param_sources: dict[str, ParamSource]
    retry: PlanRetry
    timeout_s: float
    on_failure: Literal["fail_run", "wait_for_operator"]


class ExecutionPlan(BaseModel):
    """A workflow definition compiled for one invocation."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str
    workflow_version: int
    family: str
    catalog_version: str
    nodes: list[PlanNode]

    def node(self, node_id: str) -> PlanNode:
        """The plan node with this id."""
        return next(node for node in self.nodes if node.id == node_id)
