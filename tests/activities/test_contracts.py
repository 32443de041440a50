"""Rules only the Blender job knew now live in the contracts, so they are reported before a run;
module errors leave a module as ApplicationErrors of the same code."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.materials import MaterialActivities, ResolveMapInput, ResolveMapParams
from activities.render import BlenderStillParams, BlenderTurntableParams
from core.errors import MODULE_ERRORS, JobInternalError, ModuleError, module_error
from registry.catalog import default_catalog
from registry.starters import starter
from registry.validation import validate_definition


def test_jpeg_cannot_be_transparent():
    with pytest.raises(ValidationError) as refused:
        BlenderStillParams(transparent_background=True, image_format="jpeg")
    assert refused.value.errors()[0]["loc"] == ("image_format",)
    assert BlenderStillParams(transparent_background=True, image_format="png")


@pytest.mark.parametrize(("field", "value"), [("width", 1281), ("height", 721)])
def test_h264_needs_even_dimensions(field, value):
    with pytest.raises(ValidationError) as refused:
        BlenderTurntableParams(**{field: value})
    assert refused.value.errors()[0]["loc"] == (field,)
    assert "even" in refused.value.errors()[0]["msg"]


def test_an_h264_turntable_cannot_be_transparent():
    with pytest.raises(ValidationError):
        BlenderTurntableParams(transparent_background=True)


def test_the_validator_names_the_node_and_field_before_anything_runs():
    definition = starter("order-turntable-v1")
    nodes = [
        node.model_copy(update={"params": {**node.params, "width": 641}})
        if node.step == "render.blender_turntable"
        else node
        for node in definition.nodes
    ]
    report = validate_definition(definition.model_copy(update={"nodes": nodes}), default_catalog())
    problem = next(problem for problem in report.errors if problem.code == "invalid_params")
    turntable = next(node.id for node in nodes if node.step == "render.blender_turntable")
    assert problem.node_id == turntable and problem.path.endswith("params.width")
    assert "even" in problem.message


async def test_a_module_error_leaves_the_module_as_a_typed_application_error():
    module = MaterialActivities()
    with pytest.raises(ApplicationError) as failed:
        await module.resolve_map(
            ResolveMapInput(
                objects=[{"name": "p", "path": "p", "kind": "part"}],
                params=ResolveMapParams(material_override="unobtainium"),
            )
        )
    assert (failed.value.type, failed.value.non_retryable) == ("unknown_material", True)
    assert "unobtainium" in failed.value.message


def test_every_module_code_reads_back_as_its_own_class():
    for code, cls in MODULE_ERRORS.items():
        error = module_error(code, "words")
        assert type(error) is cls and error.code == code and isinstance(error, ModuleError)
    assert type(module_error("never_heard_of", "words")) is JobInternalError
