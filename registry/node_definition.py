"""Node definitions: the machine-usable contract of a module, as the editor and runtime read it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from activities.module import ModuleSpec, module_spec
from core.vocabulary import Family, QueueName, RetryPolicy


class NodeDefinition(BaseModel):
    """One palette entry: module contract, schemas, roles and defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str
    """Stable runtime key stored in workflow JSON."""
    module_key: str
    """The production module (Temporal activity name) the step maps to."""
    family: Family
    """Primary family (the first of `families`)."""
    families: list[Family]
    label: str
    category: str
    description: str
    input_contract: dict[str, Any]
    output_contract: dict[str, Any]
    param_schema: dict[str, Any]
    data_inputs: dict[str, bool]
    """Input ports (field name → required) bound from upstream outputs or the entry context."""
    data_outputs: list[str]
    artifact_roles_consumed: list[str]
    artifact_roles_produced: list[str]
    legacy_source: str | None
    ui: dict[str, str]
    retry_defaults: RetryPolicy
    timeout_s: float
    task_queue: QueueName
    local: bool = False
    """Runs as a local activity in the workflow's worker (light modules: no queue round trip)."""
    side_effects: bool = False
    """Acts on the world (publishes, notifies): shadow runs leave it and what follows it out."""

    @classmethod
    def from_module(cls, fn: Callable[..., Any]) -> NodeDefinition:
        """Read the definition back from a @production_module function."""
        return cls.from_spec(module_spec(fn))

    @classmethod
    def from_spec(cls, spec: ModuleSpec) -> NodeDefinition:
        """Build the definition from a module spec."""
        return cls(
            step=spec.key,
            module_key=spec.key,
            family=spec.families[0],
            families=list(spec.families),
            label=spec.label,
            category=spec.category,
            description=spec.description,
            input_contract=spec.input_model.model_json_schema(),
            output_contract=spec.output_model.model_json_schema(),
            param_schema=spec.params_model.model_json_schema(),
            data_inputs=spec.data_inputs(),
            data_outputs=spec.data_outputs(),
            artifact_roles_consumed=spec.artifact_roles_consumed(),
            artifact_roles_produced=spec.artifact_roles_produced(),
            legacy_source=spec.legacy_source,
            ui=dict(spec.ui),
            retry_defaults=spec.retry,
            timeout_s=spec.timeout_s,
            task_queue=spec.task_queue,
            local=spec.local,
            side_effects=spec.side_effects,
        )
