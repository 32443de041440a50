"""An order line is wired from its intake by output field and role, never by node id."""

from __future__ import annotations

import uuid

import pytest

from core.errors import InvalidDefinitionError
from output_profiles.dispatch_plan import DispatchPlan, OrderLine
from prodgraph.orders import start_order_line
from registry.catalog import default_catalog
from registry.compiler import compile_intake, compile_plan
from registry.definition import WorkflowDefinition
from registry.families import order_line_entry
from registry.starters import INTAKE_STARTER, starter

SMALL = {"width": 160, "height": 120, "samples": 4}
RENAMED = {"resolve": "take-file", "extract": "read-tree", "glb": "mesh-it", "bbox": "measure"}
REF = {"uri": "file:///x", "sha256": "0" * 64, "size": 1, "media_type": "model/gltf-binary"}


def renamed_intake() -> WorkflowDefinition:
    """The intake starter with every node id changed."""
    definition = starter(INTAKE_STARTER)
    nodes = [node.model_copy(update={"id": RENAMED[node.id]}) for node in definition.nodes]
    edges = [
        edge.model_copy(update={"source": RENAMED[edge.source], "target": RENAMED[edge.target]})
        for edge in definition.edges
    ]
    return definition.model_copy(update={"id": "renamed-intake", "nodes": nodes, "edges": edges})


def test_the_entry_is_found_by_field_and_role_whatever_the_node_ids():
    outputs = {
        "a": {"step_file": {**REF, "role": "step_file"}, "source_name": "x.step"},
        "b": {"glb": {**REF, "role": "glb"}, "node_names": []},
        "c": {"bbox": {"min": [0, 0, 0], "max": [1, 1, 1]}},
        "d": {"objects": [], "source_unit": "mm"},
    }
    entry = order_line_entry(outputs, "ol-1", "studio-still")
    assert entry["glb"]["role"] == "glb" and entry["bbox"]["max"] == [1, 1, 1]
    assert entry["order_line_id"] == "ol-1" and entry["objects"] == []


def test_an_artifact_of_another_role_does_not_fill_an_entry_field():
    outputs = {
        "a": {"step_file": {**REF, "role": "step_file"}},
        "b": {"glb": {**REF, "role": "thumbnail"}},
        "c": {"bbox": {"min": [0, 0, 0], "max": [1, 1, 1]}},
        "d": {"objects": []},
    }
    with pytest.raises(InvalidDefinitionError) as refused:
        order_line_entry(outputs, "ol-1")
    assert refused.value.field == "glb"


def test_an_intake_that_cannot_feed_an_order_line_is_refused_at_compile_time():
    definition = renamed_intake()
    kept = [node for node in definition.nodes if node.step != "cad.compute_bbox"]
    edges = [edge for edge in definition.edges if edge.target != "measure"]
    with pytest.raises(InvalidDefinitionError) as refused:
        compile_intake(definition.model_copy(update={"nodes": kept, "edges": edges}), default_catalog())
    assert "bbox" in refused.value.message
    assert refused.value.problems[0]["code"] == "intake_output_missing"


@pytest.mark.e2e
@pytest.mark.occt
@pytest.mark.blender
async def test_an_order_line_completes_after_its_intake_nodes_are_renamed(session, step_fixture):
    catalog = default_catalog()
    plan = DispatchPlan(
        route="graph",
        artifact_kinds=["still_image"],
        intake_plan=compile_intake(renamed_intake(), catalog),
        graph_plan=compile_plan(starter("order-still-v1"), catalog, invocation_params=SMALL),
    )
    order = OrderLine(
        order_line_id=f"renamed-{uuid.uuid4().hex[:6]}",
        step_path=str(step_fixture("red_cube_blue_cylinder.step")),
    )
    result = await (await start_order_line(session, plan, order, "studio-still")).result()
    assert result.status == "completed", result.error
    roles = {ref.role for ref in result.artifacts}
    assert {"step_file", "glb", "still"} <= roles
