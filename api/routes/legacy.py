"""Legacy routes: the compatibility adapter over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from api.auth import AUTHENTICATED, require_role
from api.errors import ERROR_RESPONSES
from api.schemas import LegacyInvocation
from core.vocabulary import Role
from legacy_adapter.mapping import map_legacy_export

router = APIRouter(
    prefix="/api/legacy", tags=["legacy"], responses=ERROR_RESPONSES, dependencies=AUTHENTICATED
)


@router.post("/map", response_model=list[LegacyInvocation], dependencies=[require_role(Role.author)])
def map_export(records: Annotated[list[dict[str, Any]], Body()]) -> list[dict[str, Any]]:
    """Each legacy record as artifact kind + canonical overrides, or an error naming the key."""
    return map_legacy_export(records)
