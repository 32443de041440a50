"""The docs work offline: Swagger UI (`/docs`) and ReDoc (`/redoc`) are served from this server,
never from a CDN, and render in a real browser that can reach nothing else."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from core.settings import Settings
from prodgraph.embedded import free_port
from support.processes import wait_for

pytest_plugins = ["api_fixtures"]


def test_the_docs_page_loads_nothing_from_elsewhere(api_settings: Settings):
    with TestClient(create_app(api_settings)) as anonymous:
        page = anonymous.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert not re.search(r"https?://|//cdn|\bcdn\.", page.text), page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets)
        for asset in assets:
            answer = anonymous.get(asset)
            assert answer.status_code == 200 and len(answer.content) > 0, asset
        assert "SwaggerUIBundle" in anonymous.get("/docs/assets/swagger-ui-bundle.js").text
        assert "url: '/openapi.json'" in page.text
        assert anonymous.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_the_redoc_page_loads_nothing_from_elsewhere(api_settings: Settings):
    with TestClient(create_app(api_settings)) as anonymous:
        page = anonymous.get("/redoc")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert not re.search(r"https?://|//cdn|\bcdn\.|fonts\.googleapis", page.text), page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert set(assets) == {"/docs/assets/redoc.standalone.js", "/docs/assets/favicon.png"}
        for asset in assets:
            answer = anonymous.get(asset)
            assert answer.status_code == 200 and len(answer.content) > 0, asset
        assert 'spec-url="/openapi.json"' in page.text
        assert page.headers["content-security-policy"] == "img-src 'self' data:"


def test_the_oauth2_redirect_page_is_gone(client: TestClient):
    assert client.get("/docs/oauth2-redirect").status_code == 404


def test_the_docs_honour_a_root_path(api_settings: Settings):
    with TestClient(create_app(api_settings), root_path="/prodgraph") as anonymous:
        page = anonymous.get("/docs").text
    assert "/prodgraph/docs/assets/swagger-ui-bundle.js" in page
    assert "url: '/prodgraph/openapi.json'" in page
    with TestClient(create_app(api_settings), root_path="/prodgraph") as anonymous:
        redoc = anonymous.get("/redoc").text
    assert "/prodgraph/docs/assets/redoc.standalone.js" in redoc
    assert 'spec-url="/prodgraph/openapi.json"' in redoc


# --- in a real browser: Debian's chromium through Playwright, offline ---------------------------

CHROMIUM = Path("/usr/lib/chromium/chromium")  # the binary; /usr/bin/chromium is a shell wrapper


@pytest.fixture
def served(api_settings: Settings) -> Iterator[str]:
    """The app on a real port of 127.0.0.1 (uvicorn in a thread); its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(api_settings), host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 60)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(30)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium (scripts/install-system-packages.sh)")
@pytest.mark.parametrize(
    ("page_path", "title", "operation"),
    [
        # ReDoc heads the page with the title and version, and each operation with its summary.
        ("/redoc", ("h1", "prodgraph (0.1.0)"), ("h2", "List Output Types")),
        # Swagger UI heads the page with the title, and names each operation by its path.
        ("/docs", ("h1", "prodgraph"), (".opblock-summary-path", "/api/output-types/schema/options")),
    ],
    ids=["redoc", "swagger-ui"],
)
def test_the_docs_render_in_a_browser_that_reaches_only_the_app(
    served: str, page_path: str, title: tuple[str, str], operation: tuple[str, str]
):
    from playwright.sync_api import Route, expect, sync_playwright

    requested: list[str] = []
    blocked: list[str] = []

    def only_the_app(route: Route) -> None:
        url = route.request.url
        if url == served or url.startswith(f"{served}/"):
            requested.append(url)
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            page.route("**/*", only_the_app)
            page.goto(f"{served}{page_path}")
            for selector, text in (title, operation):
                expect(page.locator(selector, has_text=text).first).to_be_visible(timeout=60_000)
        finally:
            browser.close()
    assert f"{served}/openapi.json" in requested
    assert blocked == [], blocked
