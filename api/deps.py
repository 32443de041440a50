"""The dependencies routes declare: a database session, the catalogue, the Temporal session, and
the bounded path parameters (an over-long id is a 422, never a lookup)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Concatenate, ParamSpec, TypeVar

import anyio
from fastapi import Depends, FastAPI, Path, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from core.errors import TemporalUnavailableError
from core.settings import Settings
from core.temporal import TemporalSession, connect
from registry.catalog import Catalog


def database_slots(app: FastAPI) -> asyncio.Semaphore:
    """The app's admission to the database: one slot per connection its pool can open."""
    slots: asyncio.Semaphore | None = getattr(app.state, "db_slots", None)
    if slots is None:
        settings = app.state.settings
        slots = app.state.db_slots = asyncio.Semaphore(settings.db_pool_size + settings.db_max_overflow)
    return slots


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request on the app's engine, once one of the app's database slots is free.

    A request holds a connection from its first query until its session closes, after the
    response is sent; serialising a sync route's response takes a thread meanwhile. Were the pool
    exhausted with every thread waiting in it for a connection, those requests could never finish
    and give theirs back (the 30 s freeze). With no more sessions than connections, a thread never
    waits for one: requests beyond the pool queue here, on the event loop, holding nothing.
    """
    async with database_slots(request.app):
        session = Session(request.app.state.engine)
        try:
            yield session
        finally:
            # Rolling back is a round trip: off the loop; shielded, so a dropped client's
            # cancellation never leaves the connection checked out.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(session.close)


def get_catalog(request: Request) -> Catalog:
    """The catalogue the app serves."""
    return request.app.state.catalog


def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]

P = ParamSpec("P")
T = TypeVar("T")


async def off_loop(
    session: Session, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Database work of an async route: run in the thread pool, the connection handed back after.

    The database driver is synchronous, so on the event loop one slow query would stall every
    request. Closing the session returns its connection to the pool before the route awaits
    anything else (a Temporal call), so a slow Temporal never holds the pool hostage.
    """

    def run() -> T:
        try:
            return work(session, *args, **kwargs)
        finally:
            session.close()

    return await run_in_threadpool(run)


async def get_temporal(request: Request) -> TemporalSession:
    """The app's Temporal session: connected on first use to PRODGRAPH_TEMPORAL_ADDRESS."""
    state = request.app.state
    if getattr(state, "temporal", None) is not None:
        return state.temporal
    if getattr(state, "temporal_lock", None) is None:
        state.temporal_lock = asyncio.Lock()
    async with state.temporal_lock:  # the first requests, arriving together, connect once
        if getattr(state, "temporal", None) is not None:
            return state.temporal
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


#: Longest ids the path accepts; each at least the longest its model stores.
MAX_SLUG = 80  # OutputTypeBase.slug
MAX_DEFINITION_ID = 128  # WorkflowDefinition.id
MAX_NODE_ID = 128  # WorkflowNode.id
MAX_WORKFLOW_ID = 255  # Temporal ids here: a definition id and short suffixes
#: Largest version number (the database stores 32-bit integers at least).
MAX_VERSION = 2**31 - 1

SlugPath = Annotated[str, Path(min_length=1, max_length=MAX_SLUG, description="an output type's slug")]
DefinitionIdPath = Annotated[
    str, Path(min_length=1, max_length=MAX_DEFINITION_ID, description="a workflow definition's id")
]
NodeIdPath = Annotated[str, Path(min_length=1, max_length=MAX_NODE_ID, description="a node's id")]
WorkflowIdPath = Annotated[
    str, Path(min_length=1, max_length=MAX_WORKFLOW_ID, description="a Temporal workflow id")
]
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION, description="a definition version, from 1")]
