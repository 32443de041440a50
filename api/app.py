"""The FastAPI application: routers per resource, one error mapping, tables and seed on startup.

Every route under /api requires an API key of a role it serves (api/auth.py); request bodies
pass the edge limits (api/limits.py) before any route runs; `/docs` and `/openapi.json` are
public (api/docs.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from api.auth import ApiKeys, StoredKeys, document_roles
from api.docs import install_docs
from api.errors import install_error_handlers
from api.limits import MIB, RequestLimits
from api.ratelimit import TokenBuckets
from api.routes import artifacts, cad_files, keys, legacy, order_lines, output_types, parity, runs, workflows
from core.settings import Settings, get_settings
from persistence.engine import make_engine, prepare_database
from prodgraph.parity import configured_thresholds
from registry.catalog import default_catalog

#: Path prefixes whose bodies the edge limits leave alone: the upload route, which streams its
#: body into the store and enforces PRODGRAPH_MAX_UPLOAD_MB itself (its other routes take none).
BODY_LIMIT_EXEMPT: tuple[str, ...] = ("/api/cad-files",)

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Prepare the database before serving; say who may call."""
    configured: ApiKeys = app.state.api_keys
    limiter = anyio.to_thread.current_default_thread_limiter()
    threads = limiter.total_tokens
    size_thread_pool(app.state.settings)
    app.state.db_slots = None  # made anew on this event loop by the first request
    try:
        await anyio.to_thread.run_sync(prepare_database, app.state.engine, app.state.catalog)
        stored = await anyio.to_thread.run_sync(app.state.stored_keys.count)
        if configured.allow_anonymous or not (configured or stored):
            log.warning(configured.describe(stored))
        else:
            log.info(configured.describe(stored))
        yield
    finally:
        limiter.total_tokens = threads  # the loop may outlive the app (tests, in-process serving)
        app.state.engine.dispose()


def size_thread_pool(settings: Settings) -> int:
    """Size the thread pool of sync routes and dependencies to the database pool; its size.

    A thread holds at most one connection, and requests with a session are admitted only while
    the pool has a connection for them (api/deps.py), so no thread ever waits in the pool. The
    threads are as many as the connections the pool can open (db_pool_size + db_max_overflow:
    10 + 10 by default), so every admitted request can run its database work at once; anyio's
    default of 40 threads over SQLAlchemy's 5 + 10 connections is what froze the API before.
    Requests beyond that queue on the event loop, which stays free for everything else.
    """
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = settings.db_pool_size + settings.db_max_overflow
    return int(limiter.total_tokens)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API on these settings (the process-wide ones by default)."""
    settings = settings or get_settings()
    app = FastAPI(title="prodgraph", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.api_keys = ApiKeys.from_settings(settings)
    configured_thresholds(settings)  # a misconfigured deployment stops at start
    app.state.catalog = default_catalog()
    app.state.engine = make_engine(settings)
    app.state.stored_keys = StoredKeys(app.state.engine, settings.api_key_cache_s)
    app.state.invocation_buckets = TokenBuckets(settings.invocation_rate_per_s, settings.invocation_burst)
    install_error_handlers(app)
    app.add_middleware(
        RequestLimits,
        max_body_bytes=int(settings.max_body_mb * MIB),
        max_json_depth=settings.max_json_depth,
        skip_prefixes=BODY_LIMIT_EXEMPT,
    )
    install_docs(app)
    for router in (
        workflows.router,
        output_types.router,
        cad_files.router,
        order_lines.router,
        artifacts.router,
        runs.router,
        legacy.router,
        keys.router,
        parity.router,
    ):
        app.include_router(router)
    document_roles(app)
    return app


@asynccontextmanager
async def serving(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve the app with uvicorn on the running event loop while the block runs; its base URL.

    Args:
        app: the application (its lifespan runs: database prepared, thread pool sized).
        host: the address to listen on.
        port: the port; 0 picks a free one.
    """
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"the API did not start on {host}:{port}")
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        await task


def main(argv: list[str] | None = None) -> int:
    """Serve the API with uvicorn."""
    import uvicorn

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="prodgraph-api", description=__doc__)
    parser.add_argument("--host", default=settings.api_host, help="PRODGRAPH_API_HOST by default")
    parser.add_argument("--port", type=int, default=settings.api_port, help="PRODGRAPH_API_PORT by default")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
