"""The compiled execution plan: everything the generic workflow needs, pinned, no lookups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from activities.artifacts import ArtifactRef
from core.vocabulary import FailurePolicy, Family, QueueName, RetryPolicy

ParamSource = Literal["module_default", "node_param", "profile_override", "invocation", "operator"]
"""Where an effective parameter came from; `operator` is a repair (a retry or a re-run)."""


class PortBinding(BaseModel):
    """Where one input field comes from: the entry context or an upstream node's output."""

    model_config = ConfigDict(extra="forbid")

    source_node: str | None
    """Upstream node id, or None for the run's entry context."""
    field: str
    """Field name in that output (or entry key)."""


class ModuleCall(BaseModel):
    """One module call, resolved: where it runs, how long it may take, its effective params."""

    model_config = ConfigDict(extra="forbid")

    module_key: str
    task_queue: QueueName
    timeout_s: float
    params: dict[str, Any]
    param_sources: dict[str, ParamSource]
    """Where each effective parameter came from."""
    artifact_outputs: list[str] = []
    """Output fields that carry artifact references, from the module's output contract."""


class PlanNode(ModuleCall):
    """One node of a graph: a module call plus its place in the graph and its policies."""

    local: bool = False
    """A light module the interpreter runs as a local activity (no task-queue round trip)."""
    id: str
    step: str
    depends_on: list[str]
    inputs: dict[str, PortBinding]
    retry: RetryPolicy
    on_failure: FailurePolicy


def artifacts_of(
    calls: Mapping[str, ModuleCall], outputs: Mapping[str, Mapping[str, Any]]
) -> list[ArtifactRef]:
    """The artifacts among a run's outputs, read from each call's typed artifact fields.

    Args:
        calls: call key (node id, or module key in the legacy chain) → the resolved call.
        outputs: the same keys → what each call returned.
    """
    return [
        ArtifactRef.model_validate(outputs[key][field])
        for key, call in calls.items()
        for field in call.artifact_outputs
        if outputs.get(key, {}).get(field) is not None
    ]


class ExecutionPlan(BaseModel):
    """A workflow definition compiled for one invocation."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str
    workflow_version: int
    family: Family
    catalog_version: str
    nodes: list[PlanNode]

    def node(self, node_id: str) -> PlanNode:
        """The plan node with this id."""
        return next(node for node in self.nodes if node.id == node_id)

    def with_descendants(self, roots: set[str]) -> set[str]:
        """These node ids and every node downstream of them."""
        found = set(roots)
        for node in self.nodes:  # plan nodes are in topological order
            if set(node.depends_on) & found:
                found.add(node.id)
        return found

    def without(self, node_ids: set[str]) -> ExecutionPlan:
        """The plan less these nodes and everything downstream of them."""
        dropped = self.with_descendants(node_ids)
        return self.model_copy(update={"nodes": [node for node in self.nodes if node.id not in dropped]})

    def artifacts(self, outputs: Mapping[str, Mapping[str, Any]]) -> list[ArtifactRef]:
        """The artifacts among a run's outputs (node id → output), in plan order."""
        return artifacts_of({node.id: node for node in self.nodes}, outputs)
