"""The docs served offline: Swagger UI (`/docs`) and ReDoc (`/redoc`) from the `fastapi-offline`
package's files.

FastAPI's own pages load Swagger UI and ReDoc (and Google Fonts) from CDNs, which a machine
without internet (or a browser that blocks third parties) cannot reach. The pages and their
assets are public, like `/openapi.json`: they hold no data, and a browser opening them cannot
send a Bearer header. Calling a route from a page needs a token (Swagger UI's Authorize button),
like any other client.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
#: ReDoc's bundle always shows a "by Redocly" logo from cdn.redoc.ly (no option turns it off): the
#: browser may load images from this server only, and ReDoc hides the logo it cannot load.
REDOC_POLICY = "img-src 'self' data:"
ASSETS_URL = "/docs/assets"
ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


def install_docs(app: FastAPI) -> None:
    """Serve `/docs`, `/redoc` and the files they load, all from this server."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = REDOC_POLICY
        return page
