"""Workflow families: what a run starts from, which nodes it may use, what it can deliver."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from activities.artifacts import ArtifactRef
from activities.cad import BBox, CadObject
from core.errors import InvalidDefinitionError
from core.vocabulary import ArtifactKind, FailurePolicy, Family


class CadFileEntry(BaseModel):
    """A cad_file run starts from a customer's STEP file."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    step_path: str
    """The STEP file: an absolute path under a worker's input roots, or an upload's store
    reference (`store:<sha256>.step`)."""


class OrderLineEntry(BaseModel):
    """An order_line run starts from an order line and its CAD file's intake artifacts."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    #: Entry fields the order itself gives; every other field comes from the intake's outputs.
    ORDER_FIELDS: ClassVar[frozenset[str]] = frozenset({"order_line_id", "output_type", "product_category"})

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

    @classmethod
    def intake_fields(cls) -> list[str]:
        """The fields an intake run must produce, by output field name."""
        return [name for name in cls.model_fields if name not in cls.ORDER_FIELDS]


@dataclass(frozen=True)
class WorkflowFamily:
    """A runtime family of workflows."""

    name: Family
    label: str
    entry_model: type[BaseModel]
    palette: tuple[str, ...]
    """Steps a definition of this family may use."""
    artifact_kinds: tuple[ArtifactKind, ...]
    """Output contracts (artifact kinds) its workflows can satisfy."""
    preflight: tuple[str, ...]
    """What must hold before a run starts."""
    default_on_failure: FailurePolicy = FailurePolicy.fail_run
    """The failure policy of a node that sets none."""
    validation_rules: tuple[str, ...] = (
        "every step is in the catalogue and in this family's palette",
        "entry nodes (no incoming edges) belong to this family",
        "nodes of other families only in a graph marked migration_graph",
        "node ids unique, edges name existing nodes, no cycles, at most 200 nodes and 1000 edges",
        "each node's params and ui: at most 1000 values, 8 levels deep, strings of 4096 characters",
        "params match the node's param schema",
        "every consumed input is produced by exactly one nearest upstream node or the entry context",
    )
    """What validation checks for definitions of this family."""

    def entry_fields(self) -> set[str]:
        """Names the entry context provides to nodes."""
        return set(self.entry_model.model_fields)

    def describe(self) -> dict[str, Any]:
        """JSON document for the API and CLI: the family whole."""
        return {
            "name": self.name,
            "label": self.label,
            "entry_context_schema": self.entry_model.model_json_schema(),
            "palette": list(self.palette),
            "artifact_kinds": [str(kind) for kind in self.artifact_kinds],
            "preflight": list(self.preflight),
            "validation_rules": list(self.validation_rules),
            "default_on_failure": str(self.default_on_failure),
        }


def order_line_entry(
    intake_outputs: Mapping[str, Mapping[str, Any]],
    order_line_id: str,
    output_type: str | None = None,
    product_category: str | None = None,
) -> dict[str, Any]:
    """The order_line entry context, wired from an intake run's outputs by field and role.

    Whatever the intake's node ids, each entry field is taken from the one node output that
    carries a field of that name (an artifact must also have that role).

    Args:
        intake_outputs: node id → that node's output, of a completed cad_file run.
        order_line_id: the order line being produced.
        output_type: slug of the output type sold on it.
        product_category: the part's product category.
    """
    entry: dict[str, Any] = {
        "order_line_id": order_line_id,
        "output_type": output_type,
        "product_category": product_category,
    }
    for name in OrderLineEntry.intake_fields():
        found = [
            output[name]
            for output in intake_outputs.values()
            if name in output and _has_role(output[name], name)
        ]
        if len(found) != 1:
            raise InvalidDefinitionError(
                f"the intake run produced {len(found)} outputs named {name!r}; an order line "
                "needs exactly one",
                field=name,
            )
        entry[name] = found[0]
    return entry


def _has_role(value: Any, name: str) -> bool:
    """An artifact reference fits an entry field only when its role is that field's name."""
    if isinstance(value, dict) and {"uri", "sha256", "role"} <= set(value):
        return value["role"] == name
    return True
