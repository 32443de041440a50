"""What a dispatched order line runs: the route, the pinned plans, and effective parameters.

Pure pydantic, no database or server imports: the order-line workflow carries it in its input.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from activities.artifacts import ArtifactRef
from activities.parity import Difference, ParityThresholds, Verdict
from legacy_adapter.pipeline_plan import LegacyPlan
from registry.plan import ExecutionPlan

#: A client's id of an order line.
OrderLineId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


class OrderLine(BaseModel):
    """One order line to produce, as its workflow carries it."""

    model_config = ConfigDict(extra="forbid")

    order_line_id: OrderLineId
    """The client's id of the order line; it launches one run (a retry answers that run)."""
    step_path: str
    """The STEP file as a worker reads it: a store reference (uploads) or a path under an input
    root (the CLI's local files); never a client's path."""
    product_category: str | None = None
    invocation_params: dict[str, Any] = {}
    """Per-order parameter values; they win over the output type's overrides."""


class EffectiveCall(BaseModel):
    """Parameters one module ran with, and where each value came from."""

    params: dict[str, Any]
    param_sources: dict[str, str]


class DispatchPlan(BaseModel):
    """Where an order line goes and with what, decided before anything runs."""

    route: Literal["legacy", "graph", "shadow"]
    """shadow: the legacy pipeline is the customer's result, the graph runs beside it."""
    artifact_kinds: list[str]
    intake_plan: ExecutionPlan | None = None
    """The cad_file intake a graph route (or a shadow's graph side) runs first."""
    graph_plan: ExecutionPlan | None = None
    """The graph's render plan; in a shadow, without the nodes that act on the world."""
    legacy_plan: LegacyPlan | None = None
    parity_thresholds: ParityThresholds | None = None
    """A shadow's comparison thresholds: the output type's calibrated noise, else the defaults."""

    def effective(self) -> dict[str, EffectiveCall]:
        """Module key → effective parameters with provenance of the route the customer gets."""
        if self.route == "graph":
            return self.graph_effective()
        if self.legacy_plan is None:
            raise ValueError(f"the {self.route!r} dispatch plan has no legacy plan")
        return {
            key: EffectiveCall(params=call.params, param_sources=call.param_sources)
            for key, call in self.legacy_plan.steps.items()
        }

    def graph_effective(self) -> dict[str, EffectiveCall]:
        """Module key → effective parameters with provenance of the graph (a shadow's candidate)."""
        if self.graph_plan is None:
            raise ValueError(f"the {self.route!r} dispatch plan has no graph plan")
        return {
            node.module_key: EffectiveCall(params=node.params, param_sources=node.param_sources)
            for node in self.graph_plan.nodes
        }


class ParityOutcome(BaseModel):
    """A shadow's comparison: the verdict, its differences, and where the report is kept."""

    report_id: str
    """The stored report (GET /api/parity/reports/{id}, `prodgraph parity show`)."""
    verdict: Verdict
    reason: str
    differences: list[Difference]
    report_file: ArtifactRef
    pictures: list[ArtifactRef]
    """One PNG per image artifact: legacy, graph and the difference side by side."""


class ShadowResult(BaseModel):
    """The graph run beside a shadow's legacy one: never delivered, kept for the parity diff."""

    status: Literal["completed", "failed"]
    workflow_ids: list[str]
    artifacts: list[ArtifactRef]
    """What the graph made: in the store, never published."""
    effective: dict[str, EffectiveCall]
    error: dict[str, Any] | None = None
    parity: ParityOutcome | None = None
    parity_error: str | None = None
    """Why no comparison came out (the diff itself failed); the customer's result never waits on it."""


class InvocationResult(BaseModel):
    """The outcome of one dispatched order line (in a shadow, the legacy run's is the customer's)."""

    route: Literal["legacy", "graph", "shadow"]
    status: Literal["completed", "failed"]
    workflow_ids: list[str]
    artifacts: list[ArtifactRef]
    effective: dict[str, EffectiveCall]
    error: dict[str, Any] | None = None
    shadow: ShadowResult | None = None
    """A shadow's graph side; its failure never changes the customer's result."""
