"""Database engine, per-request session and the dependencies routes declare."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, create_engine

import api.models  # noqa: F401  (registers CatalogSnapshot on the metadata)
import output_profiles.models  # noqa: F401  (registers OutputType and WorkflowDefinitionRecord)
from prodgraph.runs import TemporalSession
from prodgraph.settings import Settings
from registry.catalog import Catalog


def make_engine(settings: Settings) -> Engine:
    """An engine on the settings' database; SQLite under STATE_DIR unless DATABASE_URL is set."""
    url = settings.database()
    if settings.database_url is None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    # FastAPI runs sync routes in a thread pool, so SQLite must accept other threads.
    connect_args = {"check_same_thread": False} if url.startswith("sqlite") else {}
    return create_engine(url, connect_args=connect_args)


def create_tables(engine: Engine) -> None:
    """Create every table that does not exist yet."""
    SQLModel.metadata.create_all(engine)


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
    from api.errors import TemporalUnavailableError
    from worker import connect

    state = request.app.state
    if getattr(state, "temporal", None) is None:
        settings = state.settings
        if not settings.temporal_address:
            raise TemporalUnavailableError(
                "no Temporal server configured: set PRODGRAPH_TEMPORAL_ADDRESS and run workers "
                "(python worker.py)", field="PRODGRAPH_TEMPORAL_ADDRESS")
        try:
            client = await connect(settings.temporal_address, settings)
        except RuntimeError as error:
            raise TemporalUnavailableError(
                f"Temporal at {settings.temporal_address} is unreachable: {error}") from None
        state.temporal = TemporalSession(client, settings.temporal_ui_url, settings)
    return state.temporal


TemporalDep = Annotated[TemporalSession, Depends(get_temporal)]
