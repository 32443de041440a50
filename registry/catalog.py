"""The one explicit catalogue of production modules: the single source for worker, API and editor."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cached_property, lru_cache
from typing import Any

from activities.cad import CadActivities
from activities.materials import MaterialActivities
from activities.module import ModuleSpec, module_spec
from activities.output import OutputActivities
from activities.parity import ParityActivities
from activities.render import RenderActivities
from core.vocabulary import ArtifactKind, Family
from registry.families import CadFileEntry, OrderLineEntry, WorkflowFamily
from registry.node_definition import NodeDefinition

MODULES: tuple[Callable[..., Any], ...] = (
    CadActivities.resolve_step_path,
    CadActivities.extract_objects,
    CadActivities.export_glb,
    CadActivities.compute_bbox,
    MaterialActivities.auto_populate,
    MaterialActivities.resolve_map,
    RenderActivities.resolve_template,
    RenderActivities.blender_still,
    RenderActivities.blender_turntable,
    RenderActivities.export_blend,
    RenderActivities.thumbnail,
    OutputActivities.publish_asset,
    OutputActivities.notify,
)
#: Activities the order-line workflow calls itself, outside any workflow definition: the worker
#: runs them, but they are no palette entry, no node and no part of the catalogue's version.
SERVICE_MODULES: tuple[Callable[..., Any], ...] = (ParityActivities.compare,)


class Catalog:
    """Node definitions by step, the families, and a content hash (ETag) of it all."""

    def __init__(self, modules: tuple[Callable[..., Any], ...]):
        self.specs: dict[str, ModuleSpec] = {}
        for fn in modules:
            spec = module_spec(fn)
            if spec.key in self.specs:
                raise ValueError(f"module key {spec.key!r} is registered twice")
            self.specs[spec.key] = spec
        self.definitions = {key: NodeDefinition.from_spec(spec) for key, spec in self.specs.items()}
        self.families: dict[str, WorkflowFamily] = {
            "cad_file": WorkflowFamily(
                "cad_file",
                "CAD intake",
                CadFileEntry,
                self._palette("cad_file"),
                (ArtifactKind.cad_intake,),
                ("the STEP file exists and is readable",),
            ),
            "order_line": WorkflowFamily(
                "order_line",
                "Order rendering",
                OrderLineEntry,
                self._palette("order_line"),
                (
                    ArtifactKind.still_image,
                    ArtifactKind.turntable_video,
                    ArtifactKind.production_blend,
                    ArtifactKind.preview_thumbnail,
                ),
                (
                    "the CAD file is the caller's, and its intake completed or can start",
                    "the output type is active and sold for the order's product category",
                    "the workflow is valid against the current catalogue and compiles",
                    "the output type's material constraints can be met",
                    "workers poll every task queue the plan needs",
                    "every render is within the render budget (pixels × samples × frames)",
                ),
            ),
        }

    def _palette(self, family: Family) -> tuple[str, ...]:
        return tuple(sorted(key for key, spec in self.specs.items() if family in spec.families))

    @cached_property
    def version(self) -> str:
        """Content hash of every node definition: changes whenever a contract changes."""
        document = [definition.model_dump(mode="json") for definition in self.list()]
        payload = json.dumps(document, sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def list(self, family: str | None = None) -> list[NodeDefinition]:
        """Definitions, optionally of one family, sorted by step."""
        return [
            definition
            for key, definition in sorted(self.definitions.items())
            if family is None or family in definition.families
        ]


@lru_cache
def default_catalog() -> Catalog:
    """The production catalogue."""
    return Catalog(MODULES)
