"""The legacy pipeline's fixed chain, with parameters from the adapter's overrides and provenance."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from activities.artifacts import ArtifactRef
from core.vocabulary import ArtifactKind
from registry.catalog import Catalog
from registry.compiler import check_override_targets, effective_params, override_layers
from registry.plan import ModuleCall, artifacts_of

#: The render module the legacy pipeline calls for each artifact kind.
RENDER_STEP = {
    ArtifactKind.still_image: "render.blender_still",
    ArtifactKind.turntable_video: "render.blender_turntable",
    ArtifactKind.production_blend: "render.export_blend",
}
INTAKE_CHAIN = ("cad.resolve_step_path", "cad.extract_objects", "cad.export_glb", "cad.compute_bbox")
LOOK_CHAIN = ("materials.auto_populate", "materials.resolve_map", "render.resolve_template")
DELIVERY_CHAIN = ("output.publish_asset", "output.notify")


class LegacyPlan(BaseModel):
    """The hard-coded chain for one order line: which render, which params."""

    model_config = ConfigDict(extra="forbid")

    artifact_kind: ArtifactKind
    render_step: str
    thumbnail: bool
    steps: dict[str, ModuleCall]

    def call(self, module_key: str) -> ModuleCall:
        """The resolved call of one module."""
        return self.steps[module_key]

    def artifacts(self, outputs: dict[str, dict[str, Any]]) -> list[ArtifactRef]:
        """The artifacts among a run's outputs (module key → output), in chain order."""
        return artifacts_of(self.steps, outputs)

    def with_render_params(self, **params: Any) -> LegacyPlan:
        """The plan with these params set on its render step (a calibration's sampling seed)."""
        call = self.steps[self.render_step]
        changed = call.model_copy(update={"params": {**call.params, **params}})
        return self.model_copy(update={"steps": {**self.steps, self.render_step: changed}})


def legacy_plan(
    artifact_kind: ArtifactKind,
    overrides: dict[str, Any],
    catalog: Catalog,
    invocation_params: dict[str, Any] | None = None,
) -> LegacyPlan:
    """Resolve every call of the legacy chain for this artifact kind."""
    render_step = RENDER_STEP.get(ArtifactKind(artifact_kind), "render.blender_still")
    thumbnail = bool(overrides.get("preview_thumbnail")) or artifact_kind == ArtifactKind.preview_thumbnail
    chain = [
        *INTAKE_CHAIN,
        *LOOK_CHAIN,
        render_step,
        *(["render.thumbnail"] if thumbnail else []),
        *DELIVERY_CHAIN,
    ]
    # preview_thumbnail chooses a deliverable (decided above), not a module parameter.
    profile = {key: value for key, value in overrides.items() if key != "preview_thumbnail"}
    layers = override_layers(profile, invocation_params)
    # The adapter's profile overrides are checked where they are mapped; the client's are here.
    invocation_layer = [(source, values) for source, values in layers if source == "invocation"]
    check_override_targets(
        {name for key in chain for name in catalog.specs[key].params_model.model_fields},
        invocation_layer,
        "the legacy pipeline",
    )
    steps = {}
    for key in chain:
        spec = catalog.specs[key]
        params, sources = effective_params(key, spec.params_model, {}, layers)
        steps[key] = ModuleCall(
            module_key=key,
            task_queue=spec.task_queue,
            timeout_s=spec.timeout_s,
            params=params,
            param_sources=sources,
            artifact_outputs=spec.artifact_roles_produced(),
        )
    return LegacyPlan(artifact_kind=artifact_kind, render_step=render_step, thumbnail=thumbnail, steps=steps)
