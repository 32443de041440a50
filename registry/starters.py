"""Starter workflow definitions shipped as JSON, one file per definition."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from registry.definition import WorkflowDefinition

STARTER_DIR = Path(__file__).parent / "starters"
#: The cad_file intake every order line's CAD file goes through first.
INTAKE_STARTER = "cad-intake-v1"


@lru_cache
def starters() -> dict[str, WorkflowDefinition]:
    """Every starter definition by id."""
    loaded = [
        WorkflowDefinition.model_validate(json.loads(path.read_text()))
        for path in sorted(STARTER_DIR.glob("*.json"))
    ]
    return {definition.id: definition for definition in loaded}


def starter(definition_id: str) -> WorkflowDefinition:
    """One starter definition by id."""
    return starters()[definition_id]
