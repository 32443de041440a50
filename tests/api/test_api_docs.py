"""`/docs` works offline: Swagger UI is served from this server, never from a CDN."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.app import create_app
from core.settings import Settings

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


def test_the_cdn_pages_are_gone(client: TestClient):
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 404


def test_the_docs_honour_a_root_path(api_settings: Settings):
    with TestClient(create_app(api_settings), root_path="/prodgraph") as anonymous:
        page = anonymous.get("/docs").text
    assert "/prodgraph/docs/assets/swagger-ui-bundle.js" in page
    assert "url: '/prodgraph/openapi.json'" in page
