"""Workflow families: what a run starts from, which nodes it may use, what it can deliver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from activities.artifacts import ArtifactRef
from activities.cad import BBox, CadObject


class CadFileEntry(BaseModel):
    """A cad_file run starts from a customer's STEP file."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    step_path: str
    """Absolute path of the STEP file."""


class OrderLineEntry(BaseModel):
    """An order_line run starts from an order line and its CAD file's intake artifacts."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    order_line_id: str
    """The order line being produced."""
    output_type: str | None = None
    """Slug of the output type sold on this line."""
    product_category: str | None = None
    """Product category of the part."""
    step_file: ArtifactRef
    """The intake's stored STEP file."""
    glb: ArtifactRef
    """The intake's GLB."""
    bbox: BBox
    """The intake's bounding box."""
    objects: list[CadObject] = []
    """The intake's product tree."""


@dataclass(frozen=True)
class Family:
    """A runtime family of workflows."""

    name: str
    label: str
    entry_model: type[BaseModel]
    palette: tuple[str, ...]
    """Steps a definition of this family may use."""
    artifact_kinds: tuple[str, ...]
    """Output contracts (artifact kinds) its workflows can satisfy."""
    preflight: tuple[str, ...]
    """What must hold before a run starts."""
    validation_rules: tuple[str, ...] = (
        "every step is in the catalogue and in this family's palette",
        "entry nodes (no incoming edges) belong to this family",
        "nodes of other families only in a graph marked migration_graph",
        "node ids unique, edges name existing nodes, no cycles, at most 200 nodes",
        "params match the node's param schema",
        "every consumed input is produced by exactly one nearest upstream node or the entry context",
    )
    """What validation checks for definitions of this family."""

    def entry_fields(self) -> set[str]:
        """Names the entry context provides to nodes."""
        return set(self.entry_model.model_fields)

    def describe(self) -> dict[str, Any]:
        """JSON document for the API and CLI."""
        return {"name": self.name, "label": self.label,
                "entry_context_schema": self.entry_model.model_json_schema(),
                "palette": list(self.palette), "artifact_kinds": list(self.artifact_kinds),
                "preflight": list(self.preflight), "validation_rules": list(self.validation_rules)}
