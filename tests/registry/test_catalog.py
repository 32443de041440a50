"""The catalogue loads: every module of the design, every contract field, schemas that render."""

from __future__ import annotations

import jsonschema
import pytest

from activities.module import production_module
from registry.catalog import Catalog, default_catalog
from registry.node_definition import NodeDefinition

DESIGN_MODULES = {
    "cad.resolve_step_path",
    "cad.extract_objects",
    "cad.export_glb",
    "cad.compute_bbox",
    "materials.resolve_map",
    "materials.auto_populate",
    "render.resolve_template",
    "render.blender_still",
    "render.blender_turntable",
    "render.export_blend",
    "output.publish_asset",
    "output.notify",
}
FIELDS = {
    "family",
    "families",
    "module_key",
    "step",
    "label",
    "category",
    "description",
    "input_contract",
    "output_contract",
    "param_schema",
    "artifact_roles_consumed",
    "artifact_roles_produced",
    "legacy_source",
    "ui",
    "retry_defaults",
    "timeout_s",
    "task_queue",
}


def test_every_module_of_the_design_is_present_with_every_field():
    definitions = {definition.step: definition.model_dump() for definition in default_catalog().list()}
    assert DESIGN_MODULES <= set(definitions)
    for step, definition in definitions.items():
        assert FIELDS <= set(definition), step
        assert definition["module_key"] == step
        assert definition["label"] and definition["description"], step
        assert {"palette_group", "icon", "color"} <= set(definition["ui"]), step
        assert definition["legacy_source"], step
        assert definition["task_queue"] in {"default", "cad", "render"}


def test_every_schema_renders_and_every_param_has_a_default_and_a_description():
    for definition in default_catalog().list():
        for schema in (definition.input_contract, definition.output_contract, definition.param_schema):
            jsonschema.Draft202012Validator.check_schema(schema)
        for name, field in definition.param_schema.get("properties", {}).items():
            assert "default" in field, f"{definition.step}.{name} has no default"
            assert field.get("description"), f"{definition.step}.{name} has no description"
        jsonschema.validate({}, definition.param_schema)  # defaults alone are valid params


def test_heavy_modules_run_on_their_own_queues():
    catalog = default_catalog()
    assert {key for key, spec in catalog.specs.items() if spec.task_queue == "cad"} >= {
        "cad.extract_objects",
        "cad.export_glb",
        "cad.compute_bbox",
    }
    assert {key for key, spec in catalog.specs.items() if spec.task_queue == "render"} >= {
        "render.blender_still",
        "render.blender_turntable",
        "render.export_blend",
    }


def test_roles_and_families_are_consistent():
    catalog = default_catalog()
    assert catalog.definitions["cad.export_glb"].artifact_roles_produced == ["glb"]
    assert catalog.definitions["render.blender_still"].artifact_roles_consumed == ["glb"]
    assert set(catalog.families["cad_file"].palette) == {
        key for key in catalog.specs if key.startswith("cad.")
    }
    assert "render.blender_still" in catalog.families["order_line"].palette


def test_keys_are_unique():
    glb = _method("cad.export_glb")
    with pytest.raises(ValueError, match="registered twice"):
        Catalog((glb, glb))


def test_the_catalogue_version_is_a_stable_content_hash():
    modules = _catalog_modules()
    assert Catalog(modules).version == default_catalog().version
    assert Catalog(modules[:-1]).version != default_catalog().version


def test_a_module_without_typed_contracts_fails_at_import_and_says_the_fix():
    with pytest.raises(TypeError, match="annotate the return with a BaseModel subclass"):

        @production_module("bad.module", families=("cad_file",), label="Bad", category="cad")
        async def bad(input: NodeDefinition) -> dict:  # noqa: ARG001
            return {}


def _catalog_modules():
    from registry.catalog import MODULES

    return MODULES


def _method(key: str):
    return next(fn for fn in _catalog_modules() if fn.__prodgraph_module__.key == key)
