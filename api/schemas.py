"""Request and response models of the API (table models never leave the database layer)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Field as ColumnField

from api.deps import MAX_VERSION
from output_profiles.dispatch_plan import EffectiveCall
from output_profiles.models import OutputTypeBase, OutputTypeCreate, OutputTypeUpdate, Rollout
from output_profiles.validation import ProfileReport
from prodgraph.rollout import GateVerdict
from registry.catalog_diff import CatalogChange
from registry.definition import WorkflowDefinition
from registry.node_definition import NodeDefinition
from registry.validation import ValidationReport
from workflows.graph import NodeState

FORBID = ConfigDict(extra="forbid")

# --- workflows ------------------------------------------------------------------------------


class NodeDefinitionList(BaseModel):
    """The palette, stamped with the catalogue version it came from."""

    catalog_version: str
    node_definitions: list[NodeDefinition]


class FamilyPublic(BaseModel):
    """A workflow family as the editor shows it."""

    name: str
    label: str
    entry_context_schema: dict[str, Any]
    palette: list[str]
    artifact_kinds: list[str]
    preflight: list[str]
    validation_rules: list[str]
    """What validation checks for definitions of this family."""
    default_on_failure: str
    """The failure policy of a node that sets none."""


class DefinitionValidation(ValidationReport):
    """A validation report, plus what changed when the definition names an older catalogue."""

    catalog_changed: CatalogChange | None = None


class DefinitionSummary(BaseModel):
    """One stored definition id at its latest version."""

    id: str
    version: int
    versions: list[int]
    family: str
    name: str
    catalog_version: str
    catalog_current: bool
    created_at: datetime


class DefinitionPublic(BaseModel):
    """One stored, immutable definition version."""

    id: str
    version: int
    family: str
    name: str
    catalog_version: str
    catalog_current: bool
    """False when it was saved against another catalogue version than the one served now."""
    created_at: datetime
    definition: WorkflowDefinition


class DefinitionSaved(BaseModel):
    """Answer of a save: the new version and its validation (warnings may remain)."""

    definition: DefinitionPublic
    validation: ValidationReport


# --- output types ---------------------------------------------------------------------------


class OutputTypeIn(OutputTypeCreate):
    """Body of POST /api/output-types; unknown keys are refused by name."""

    # A literal, not FORBID: SQLModel types model_config as its own (unexported) SQLModelConfig.
    model_config = {"extra": "forbid"}

    workflow_version: int | None = ColumnField(default=None, ge=1, le=MAX_VERSION)
    """Bounded so an absurd number is a 422, not a database overflow."""


class OutputTypePatch(OutputTypeUpdate):
    """Body of PATCH /api/output-types/{slug}; unknown keys are refused by name."""

    model_config = {"extra": "forbid"}

    workflow_version: int | None = ColumnField(default=None, ge=1, le=MAX_VERSION)


class RolloutRequest(BaseModel):
    """Body of POST /api/output-types/{slug}/rollout: the rollout wanted, through the parity gate."""

    model_config = ConfigDict(extra="forbid")

    rollout: Rollout
    workflow_id: str | None = Field(default=None, min_length=1, max_length=128)
    """The workflow to link; a legacy-only type gets its artifact kind's starter by default."""
    workflow_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    force: bool = False
    """Move to the graph although the gate is closed (needs a reason, which is recorded)."""
    reason: str | None = Field(default=None, min_length=1, max_length=500)


class OutputTypePublic(OutputTypeBase):
    """An output type as stored."""

    id: int
    legacy_id: int | None = None
    created_at: datetime
    updated_at: datetime


class OutputTypeEnvelope(BaseModel):
    """An output type and its validation report (where the create flow stands)."""

    output_type: OutputTypePublic
    validation: ProfileReport


class OverrideOption(BaseModel):
    """One invocation override: its own schema and the node parameters it sets."""

    description: str | None
    json_schema: dict[str, Any] = Field(serialization_alias="schema")
    """Schema of the override vocabulary (InvocationOverrides)."""
    targets: dict[str, dict[str, Any]]
    """Step → schema of the node parameter it sets (both must accept a value)."""
    contract: bool = False
    """True when it chooses a deliverable rather than setting a parameter."""


class CreationStep(BaseModel):
    """One step of the create/edit flow and the fields it fills."""

    step: str
    fields: list[str]


class SchemaOptions(BaseModel):
    """Every allowed value of an output type, read from the registry."""

    catalog_version: str
    families: list[str]
    artifact_kinds: dict[str, list[str]]
    rollouts: list[str]
    engines: list[str]
    image_formats: list[str]
    camera_presets: list[str]
    templates: list[str]
    materials: list[str]
    overrides: dict[str, OverrideOption]
    creation_steps: list[CreationStep]


class DispatchPlanRequest(BaseModel):
    """Body of a dispatch-plan request."""

    model_config = FORBID

    invocation_params: dict[str, Any] = {}
    """Per-order values; they win over the output type's overrides."""


class DispatchPlanSummary(BaseModel):
    """Where an order line of this output type would go, with what, and why."""

    slug: str
    route: Literal["legacy", "graph", "shadow"]
    artifact_kinds: list[str]
    workflow_id: str | None
    workflow_version: int | None
    catalog_version: str
    effective: dict[str, EffectiveCall]
    """Module key → effective params and the source of each (module_default … invocation)."""


class LegacyInvocation(BaseModel):
    """One legacy record in the canonical vocabulary (the expected_invocations.json shape)."""

    slug: str | None
    artifact_kind: str | None
    overrides: dict[str, Any] | None
    ignored_keys: list[str]
    error: dict[str, str] | None
    unknown_keys: list[str]


# --- runs (on-call) -------------------------------------------------------------------------


class RetryRequest(BaseModel):
    """Body of a node retry: params and timeout changed for this retry only."""

    model_config = FORBID

    params: dict[str, Any] = Field(default_factory=dict, max_length=100)
    """Param name → value, checked against the node's param schema."""
    timeout_s: float | None = Field(None, gt=0, le=86400)
    """The node's timeout for this retry."""


class SkipRequest(BaseModel):
    """Body of a node skip."""

    model_config = FORBID

    output: dict[str, Any] | None = None
    """What downstream nodes see, checked against the node's output contract; null lets the run
    decide (a node that produces a deliverable needs one)."""


class AbortRequest(BaseModel):
    """Body of a run abort."""

    model_config = FORBID

    reason: str = Field(min_length=1, max_length=500)
    """Why; recorded in the run's failure."""


class RerunRequest(BaseModel):
    """Body of a re-run of a closed run."""

    model_config = FORBID

    from_node: str | None = Field(None, min_length=1, max_length=128)
    """Run this node (and everything downstream) again even if it completed."""
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, max_length=200)
    """Node id → changed params (each node and what downstream of it runs again)."""


class NodeActionResult(BaseModel):
    """What became of the node an operator retried or skipped."""

    workflow_id: str
    node_id: str
    action: Literal["retry", "skip"]
    node: NodeState


class AbortResult(BaseModel):
    """An accepted abort: running nodes are being cancelled, then the run fails as aborted."""

    workflow_id: str
    status: str


class RerunStarted(BaseModel):
    """The new run a re-run started."""

    workflow_id: str
    rerun_of: str
    temporal_ui: str | None


class RolloutAnswer(BaseModel):
    """The output type after a rollout change, and the gate's verdict at the time."""

    output_type: OutputTypePublic
    gate: GateVerdict
