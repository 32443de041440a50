"""The FastAPI application: routers per resource, one error mapping, tables and seed on startup.

Every route under /api requires an API key (api/auth.py); request bodies pass the edge limits
(api/limits.py) before any route runs; `/docs` and `/openapi.json` are public (api/docs.py).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.auth import ApiKeys
from api.docs import install_docs
from api.errors import install_error_handlers
from api.limits import MIB, RequestLimits
from api.routes import legacy, order_lines, output_types, runs, workflows
from core.settings import Settings, get_settings
from persistence.engine import make_engine, prepare_database
from registry.catalog import default_catalog

#: Path prefixes whose bodies the edge limits leave alone (routes streaming large uploads, which
#: enforce a limit of their own); none yet.
BODY_LIMIT_EXEMPT: tuple[str, ...] = ()

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Prepare the database before serving; say who may call."""
    keys: ApiKeys = app.state.api_keys
    if keys.allow_anonymous or not keys:
        log.warning(keys.describe())
    else:
        log.info(keys.describe())
    prepare_database(app.state.engine, app.state.catalog)
    yield
    app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API on these settings (the process-wide ones by default)."""
    settings = settings or get_settings()
    app = FastAPI(title="prodgraph", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.api_keys = ApiKeys.from_settings(settings)
    app.state.catalog = default_catalog()
    app.state.engine = make_engine(settings)
    install_error_handlers(app)
    app.add_middleware(
        RequestLimits,
        max_body_bytes=int(settings.max_body_mb * MIB),
        max_json_depth=settings.max_json_depth,
        skip_prefixes=BODY_LIMIT_EXEMPT,
    )
    install_docs(app)
    for router in (workflows.router, output_types.router, order_lines.router, runs.router, legacy.router):
        app.include_router(router)
    return app


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
