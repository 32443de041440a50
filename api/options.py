"""Allowed output-type values, read from the registry so front end and back end cannot disagree."""

from __future__ import annotations

from typing import Any

from activities.materials import LIBRARY
from api.schemas import CreationStep, OverrideOption, SchemaOptions
from output_profiles.models import Rollout
from output_profiles.validation import CONTRACT_OVERRIDES, CREATION_STEPS
from registry.catalog import Catalog
from registry.invocation import InvocationOverrides

ORDER_FAMILY = "order_line"


def schema_options(catalog: Catalog) -> SchemaOptions:
    """Every allowed value and override schema of an output type."""
    params = param_schemas(catalog, ORDER_FAMILY)
    return SchemaOptions(
        catalog_version=catalog.version,
        families=sorted(catalog.families),
        artifact_kinds={
            name: list(family.artifact_kinds) for name, family in sorted(catalog.families.items())
        },
        rollouts=[rollout.value for rollout in Rollout],
        engines=param_enum(params, "engine"),
        image_formats=param_enum(params, "image_format"),
        camera_presets=param_enum(params, "camera_preset"),
        templates=param_enum(params, "template"),
        materials=sorted(LIBRARY),
        overrides=override_options(params),
        creation_steps=[CreationStep(step=step, fields=list(fields)) for step, fields in CREATION_STEPS],
    )


def param_schemas(catalog: Catalog, family: str) -> dict[str, dict[str, Any]]:
    """Step → param_schema (references inlined) of one family's node definitions."""
    return {definition.step: inline_refs(definition.param_schema) for definition in catalog.list(family)}


def param_enum(params: dict[str, dict[str, Any]], name: str) -> list[Any]:
    """Allowed values of a parameter, in schema order, across every step that has it."""
    values: list[Any] = []
    for schema in params.values():
        for value in enum_values(schema.get("properties", {}).get(name, {})):
            if value not in values:
                values.append(value)
    return values


def override_options(params: dict[str, dict[str, Any]]) -> dict[str, OverrideOption]:
    """Each override: its own schema and the node parameter schemas it targets."""
    vocabulary = inline_refs(InvocationOverrides.model_json_schema())["properties"]
    return {
        name: OverrideOption(
            description=field.description,
            json_schema=vocabulary[name],
            targets={
                step: schema["properties"][name]
                for step, schema in params.items()
                if name in schema.get("properties", {})
            },
            contract=name in CONTRACT_OVERRIDES,
        )
        for name, field in InvocationOverrides.model_fields.items()
    }


def enum_values(schema: dict[str, Any]) -> list[Any]:
    """The enum values of a schema fragment, looking through anyOf/oneOf (null left out)."""
    if "enum" in schema:
        return list(schema["enum"])
    return [value for key in ("anyOf", "oneOf") for sub in schema.get(key, []) for value in enum_values(sub)]


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with local `#/$defs/...` references replaced by their targets (not recursive ones)."""
    defs = schema.get("$defs", {})

    def resolve(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        name = node.get("$ref", "").removeprefix("#/$defs/")
        if name in defs and name not in seen:
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return {**resolve(defs[name], seen | {name}), **resolve(rest, seen)}
        return {key: resolve(value, seen) for key, value in node.items() if key != "$defs"}

    return resolve(schema, frozenset())
