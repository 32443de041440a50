"""First-start content: the starter workflows and the default catalogue of output types."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import Session, select

import output_profiles
from output_profiles.models import OutputTypeCreate
from persistence.tables import OutputType, WorkflowDefinitionRecord
from registry.catalog import Catalog
from registry.starters import starters

DEFAULT_OUTPUT_TYPES = Path(output_profiles.__file__).parent / "default_output_types.json"


def default_output_types() -> list[OutputTypeCreate]:
    """The shipped output types, validated as create bodies."""
    return [OutputTypeCreate.model_validate(entry) for entry in json.loads(DEFAULT_OUTPUT_TYPES.read_text())]


def seed(session: Session, catalog: Catalog) -> None:
    """Seed each table that is still empty."""
    if session.exec(select(WorkflowDefinitionRecord)).first() is None:
        for definition in starters().values():
            stamped = definition.model_copy(update={"catalog_version": catalog.version})
            session.add(
                WorkflowDefinitionRecord(
                    id=stamped.id,
                    version=stamped.version,
                    family=stamped.family,
                    name=stamped.name,
                    document=stamped.model_dump(mode="json"),
                    catalog_version=catalog.version,
                )
            )
    if session.exec(select(OutputType)).first() is None:
        for profile in default_output_types():
            session.add(OutputType.model_validate(profile))
    session.commit()
