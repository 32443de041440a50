"""The dependencies routes declare: a database session, the catalogue, the Temporal session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from core.errors import TemporalUnavailableError
from core.temporal import TemporalSession, connect
from registry.catalog import Catalog


def get_session(request: Request) -> Iterator[Session]:
    """One session per request on the app's engine."""
    with Session(request.app.state.engine) as session:
        yield session


def get_catalog(request: Request) -> Catalog:
    """The catalogue the app serves."""
    return request.app.state.catalog


SessionDep = Annotated[Session, Depends(get_session)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]


async def get_temporal(request: Request) -> TemporalSession:
    """The app's Temporal session: connected on first use to PRODGRAPH_TEMPORAL_ADDRESS."""
    state = request.app.state
    if getattr(state, "temporal", None) is None:
        settings = state.settings
        if not settings.temporal_address:
            raise TemporalUnavailableError(
                "no Temporal server configured: set PRODGRAPH_TEMPORAL_ADDRESS and run workers "
                "(python worker.py)",
                field="PRODGRAPH_TEMPORAL_ADDRESS",
            )
        try:
            client = await connect(settings.temporal_address, settings)
        except RuntimeError as error:
            raise TemporalUnavailableError(
                f"Temporal at {settings.temporal_address} is unreachable: {error}"
            ) from None
        state.temporal = TemporalSession(client, settings.temporal_ui_url, settings)
    return state.temporal


TemporalDep = Annotated[TemporalSession, Depends(get_temporal)]
