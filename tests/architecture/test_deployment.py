"""docker-compose.temporal.yml and the Dockerfile: Temporal stays inside the deployment's network,
the API listens on every interface of its container, and the image holds every package."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO_ROOT
from core.settings import Settings

COMPOSE = REPO_ROOT / "docker-compose.temporal.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def published(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(host address or None for every interface, host port) of each port the service publishes."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip"), str(port.get("published", ""))))
            continue
        parts = str(port).split(":")
        # "container", "host:container" or "address:host:container"
        found.append((parts[0] if len(parts) == 3 else None, parts[-2] if len(parts) > 1 else ""))
    return found


def test_the_temporal_frontend_is_not_published(services: dict[str, Any]):
    assert published(services["temporal"]) == []
    assert services["temporal"].get("network_mode") != "host"


def test_the_temporal_ui_is_published_on_the_host_loopback_only(services: dict[str, Any]):
    assert published(services["temporal-ui"]) == [("127.0.0.1", "8080")]
    assert services["temporal-ui"].get("network_mode") != "host"


def test_only_the_api_is_reachable_from_other_machines(services: dict[str, Any]):
    open_to_all = {
        name
        for name, service in services.items()
        if any(ip in (None, "0.0.0.0") for ip, _ in published(service))
    }
    assert open_to_all == {"api"}


def test_the_api_listens_on_every_interface_of_its_container(services: dict[str, Any], monkeypatch):
    api = services["api"]
    assert "--host" not in api["command"] and "--port" not in api["command"]
    for name, value in api["environment"].items():
        if "${" not in str(value):  # values the operator supplies at `docker compose up`
            monkeypatch.setenv(name, str(value))
    settings = Settings()
    assert (settings.api_host, settings.api_port) == ("0.0.0.0", 8000)
    assert published(api) == [(None, "8000")]
    assert re.search(r"^EXPOSE 8000$", DOCKERFILE.read_text(), re.MULTILINE)


def test_the_image_copies_every_package_the_project_installs():
    import tomllib

    packages = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    copied = set(re.findall(r"^COPY (\S+) \1$", DOCKERFILE.read_text(), re.MULTILINE))
    top_level = {package.split(".")[0] for package in packages}
    assert top_level <= copied, top_level - copied
    assert all(Path(REPO_ROOT, package).is_dir() for package in top_level)
