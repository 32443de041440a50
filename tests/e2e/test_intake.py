"""Intake on real fixtures through in-process workers on the shared dev server."""

from __future__ import annotations

import pytest

from prodgraph.runs import run_plan
from registry.catalog import default_catalog
from registry.compiler import compile_plan
from registry.starters import starter

pytestmark = [pytest.mark.e2e, pytest.mark.occt]


async def intake(session, path):
    """Run the intake starter on one file."""
    plan = compile_plan(starter("cad-intake-v1"), default_catalog())
    _, result = await run_plan(session, plan, {"step_path": str(path)})
    return result


@pytest.mark.parametrize(
    "name",
    [
        "malformed_dangling_reference.stp",
        "edge_ap242_one_hole_crashes_occt77.stp",
        "malformed_garbage_in_entity.stp",
        "edge_external_refs_no_solids.stp",
        "malformed_header_only_no_data.step",
        "malformed_obj_renamed.step",
    ],
)
async def test_hostile_files_end_the_run_cleanly_and_the_worker_lives_on(session, step_fixture, name):
    hostile = await intake(session, step_fixture(name))
    if hostile.status == "failed":
        assert hostile.error.code == "invalid_cad_file", hostile.error
        assert hostile.error.node_id in {"resolve", "extract", "glb", "bbox"}
    else:  # OCCT 7.9 reads some files 7.7 crashed on: then the result must be real geometry
        bbox = hostile.outputs["bbox"]["bbox"]
        assert all(hi > lo for lo, hi in zip(bbox["min"], bbox["max"], strict=True))
    # the same in-process workers go on serving
    after = await intake(session, step_fixture("cq_box_export.step"))
    assert after.status == "completed"
    assert after.outputs["bbox"]["bbox"]["max"] == pytest.approx([0.01, 0.01, 0.01], abs=1e-6)


async def test_nested_assembly_keeps_names_hierarchy_and_inch_units_scale(session, step_fixture):
    nested = await intake(session, step_fixture("as1-oc-214_nested_assembly.stp"))
    assert nested.status == "completed"
    names = {item["name"] for item in nested.outputs["extract"]["objects"]}
    assert {"as1", "rod-assembly", "nut", "bolt", "l-bracket", "plate"} <= names
    assert set(nested.outputs["glb"]["node_names"]) >= {"nut", "bolt", "plate"}
    bbox = nested.outputs["bbox"]["bbox"]
    size = [hi - lo for lo, hi in zip(bbox["min"], bbox["max"], strict=True)]
    assert size == pytest.approx([0.200, 0.150, 0.084], abs=1e-3)

    inch = await intake(session, step_fixture("box_sides_assembly_inch.STEP"))
    bbox = inch.outputs["bbox"]["bbox"]
    size = [hi - lo for lo, hi in zip(bbox["min"], bbox["max"], strict=True)]
    assert size == pytest.approx([0.18415, 0.1143, 0.09525], abs=1e-3)
