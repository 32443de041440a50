"""The authorization matrix: every route of the app, from one table of the roles that may call it.

Each route is called with no key (401), with a key of every role (403 `forbidden` for a role the
table does not give it, never 401/403 for one it does) and, for routes that name a client's
object, with another client's key (404: the object does not exist for them). A route the table
does not classify fails the suite, so a new route is classified when it is added or merged.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from api_keys import bearer, token_for, with_keys
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlmodel import Session
from temporalio.worker import Worker

from activities.artifacts import LocalArtifactStore
from api.app import create_app
from conftest import STEP_FIXTURES
from core.settings import Settings
from core.temporal import TemporalSession
from core.vocabulary import Role
from prodgraph.grants import grant
from support.pollers import until_polled
from support.stand_ins import StandIns
from workflows.graph import GraphWorkflow
from workflows.order_line import OrderLineWorkflow

pytest_plugins = ["api_fixtures"]

CLIENT, AUTHOR, OPERATOR, ADMIN = Role.client, Role.author, Role.operator, Role.admin
#: Routes answered without a key.
PUBLIC = {"/docs", "/docs/assets", "/redoc", "/openapi.json"}


@dataclass(frozen=True)
class Access:
    """Who may call a route (an admin may call every one), and the client object it names."""

    roles: tuple[Role, ...]
    owned: str | None = None
    """The kind of client object in the path: another client's answers 404."""


#: Clients read output types and their options (to order) and may preview a dispatch; authors and
#: operators read definitions; only authors change definitions and output types.
READ_CATALOGUE = Access((CLIENT, AUTHOR, OPERATOR))
STAFF_READ = Access((AUTHOR, OPERATOR))
AUTHORS = Access((AUTHOR,))
OPERATORS = Access((OPERATOR,))
ADMINS = Access(())

ROUTES: dict[str, Access] = {
    "GET /api/workflows/node-definitions": STAFF_READ,
    "GET /api/workflows/families": STAFF_READ,
    "GET /api/workflows/starters": STAFF_READ,
    "POST /api/workflows/validate": AUTHORS,
    "GET /api/workflows/definitions": STAFF_READ,
    "GET /api/workflows/definitions/{definition_id}": STAFF_READ,
    "GET /api/workflows/definitions/{definition_id}/versions/{version}": STAFF_READ,
    "POST /api/workflows/definitions": AUTHORS,
    "GET /api/output-types": READ_CATALOGUE,
    "GET /api/output-types/schema/options": READ_CATALOGUE,
    "GET /api/output-types/{slug}": READ_CATALOGUE,
    "POST /api/output-types/{slug}/dispatch-plan": READ_CATALOGUE,
    "POST /api/output-types/import": AUTHORS,
    "POST /api/output-types": AUTHORS,
    "PATCH /api/output-types/{slug}": AUTHORS,
    "POST /api/output-types/{slug}/validate": AUTHORS,
    "POST /api/output-types/{slug}/rollout": AUTHORS,
    "GET /api/output-types/{slug}/parity": STAFF_READ,
    "POST /api/output-types/{slug}/parity/calibrate": STAFF_READ,
    "POST /api/legacy/map": AUTHORS,
    "POST /api/cad-files": Access((CLIENT,)),
    "GET /api/cad-files": Access((CLIENT,)),
    "GET /api/cad-files/{cad_file_id}": Access((CLIENT, OPERATOR), owned="cad_file"),
    "GET /api/artifacts/{sha256}": Access((CLIENT, OPERATOR), owned="artifact"),
    "HEAD /api/artifacts/{sha256}": Access((CLIENT, OPERATOR), owned="artifact"),
    "POST /api/order-lines": Access((CLIENT,)),
    "POST /api/order-lines/preflight": Access((CLIENT,)),
    "GET /api/order-lines/{workflow_id}": Access((CLIENT, OPERATOR), owned="order_line"),
    "GET /api/runs": Access((CLIENT, OPERATOR)),
    "GET /api/runs/{workflow_id}": Access((CLIENT, OPERATOR), owned="run"),
    "POST /api/runs/{workflow_id}/nodes/{node_id}/retry": OPERATORS,
    "POST /api/runs/{workflow_id}/nodes/{node_id}/skip": OPERATORS,
    "POST /api/runs/{workflow_id}/abort": OPERATORS,
    "POST /api/runs/{workflow_id}/rerun": OPERATORS,
    "GET /api/parity/reports": STAFF_READ,
    "GET /api/parity/reports/{report_id}": STAFF_READ,
    "POST /api/keys": ADMINS,
    "GET /api/keys": ADMINS,
    "DELETE /api/keys/{key_id}": ADMINS,
}

#: The keys the matrix calls with: one per role, and a second client.
OWNER_OF = {CLIENT: "acme", AUTHOR: "cms", OPERATOR: "ops", ADMIN: "root"}
OTHER_CLIENT = "globex"
KEYS = [(role, owner) for role, owner in OWNER_OF.items()] + [(CLIENT, OTHER_CLIENT)]


def served(app: FastAPI) -> dict[str, str]:
    """ "METHOD /path" → the path of every route the app serves outside PUBLIC."""
    routes = {}
    for context in iter_route_contexts(app.routes):
        if context.path in PUBLIC:
            continue
        for method in sorted(context.methods or ()):
            routes[f"{method} {context.path}"] = context.path
    return routes


#: What `error_of` reads from a HEAD answer, which has no body.
HEAD_ANSWER = "(no body)"


def error_of(route: str, answer: Any, key: str) -> Any:
    """A field of the answer's error (HEAD answers carry none)."""
    return HEAD_ANSWER if route.startswith("HEAD ") else answer.json()["error"][key]


def filled(path: str, value: str = "x") -> str:
    """A path with every parameter filled in (versions are numbers)."""
    return re.sub(r"\{[^}]+\}", value, path.replace("{version}", "1"))


def call(client: TestClient, route: str, url: str, token: str | None) -> Any:
    """One request as the matrix sends it: a JSON body for methods that take one."""
    method = route.split(" ", 1)[0]
    headers = bearer(token) if token else {}
    body = {"json": {}} if method in ("POST", "PATCH", "PUT") else {}
    return client.request(method, url, headers=headers, **body)


@pytest.fixture(scope="module")
def matrix_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app with a key per role, and a second client, configured (no Temporal)."""
    settings = with_keys(Settings(state_dir=tmp_path_factory.mktemp("matrix")), *KEYS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_every_route_is_classified(matrix_client: TestClient):
    routes = served(matrix_client.app)  # type: ignore[arg-type]
    unclassified = sorted(set(routes) - set(ROUTES))
    assert not unclassified, f"classify these routes in ROUTES (who may call them?): {unclassified}"
    gone = sorted(set(ROUTES) - set(routes))
    assert not gone, f"ROUTES names routes the app no longer serves: {gone}"


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_without_a_key_every_route_is_401(matrix_client: TestClient, route: str):
    answer = call(matrix_client, route, filled(route.split(" ", 1)[1]), None)
    assert answer.status_code == 401, answer.text
    assert error_of(route, answer, "code") in ("unauthorized", HEAD_ANSWER)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_each_role_is_served_or_forbidden_as_the_table_says(matrix_client: TestClient, route: str):
    access = ROUTES[route]
    allowed = {*access.roles, ADMIN}
    url = filled(route.split(" ", 1)[1])
    for role, owner in OWNER_OF.items():
        answer = call(matrix_client, route, url, token_for(role, owner))
        if role in allowed:
            assert answer.status_code not in (401, 403, 500), (role, answer.text)
        else:
            assert answer.status_code == 403, (role, answer.text)
            if route.startswith("HEAD "):
                continue  # a HEAD answer has no body
            error = answer.json()["error"]
            assert error["code"] == "forbidden" and error["field"] == "Authorization"
            needed = (access.roles or (ADMIN,))[0]
            assert f"the {needed}" in error["message"] and role in error["message"], error


def test_the_openapi_declares_the_bearer_scheme_403_and_the_roles_of_every_route(matrix_client: TestClient):
    document = matrix_client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    operations = {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) == set(ROUTES)
    for route, operation in operations.items():
        assert operation["security"] == [{"ApiKey": []}], route
        assert {"401", "403"} <= set(operation["responses"]), route
        # The docs say who may call, and say what the table says.
        assert set(operation["x-roles"]) == {*ROUTES[route].roles, ADMIN}, route
        assert operation["description"].endswith(f"Roles: {', '.join(operation['x-roles'])}."), route


# --- another client's objects ----------------------------------------------------------------


@dataclass
class Objects:
    """A client's objects of every kind, made through the API, on an app with Temporal."""

    http: TestClient
    ids: dict[str, str]

    async def call(self, route: str, url: str, owner: str) -> Any:
        """One request in a thread, so this loop's workers go on meanwhile."""
        return await asyncio.to_thread(call, self.http, route, url, token_for(CLIENT, owner))


async def upload(http: TestClient, owner: str) -> str:
    """A CAD file of this client, uploaded: its id."""
    part = STEP_FIXTURES / "red_cube_blue_cylinder.step"
    files = {"file": (part.name, part.read_bytes())}
    uploaded = await asyncio.to_thread(
        http.post, "/api/cad-files", files=files, headers=bearer(token_for(CLIENT, owner))
    )
    assert uploaded.status_code == 201, uploaded.json()
    return uploaded.json()["id"]


async def launch_order_line(http: TestClient, owner: str, cad_file_id: str) -> dict[str, Any]:
    """An order line of this client, launched and followed to its end: its status answer."""
    body = {
        "output_type": "studio-still",
        "order_line_id": f"ol-{uuid.uuid4().hex[:8]}",
        "cad_file_id": cad_file_id,
        "invocation_params": {"width": 160, "height": 120, "samples": 4},
    }
    headers = bearer(token_for(CLIENT, owner))
    launched = await asyncio.to_thread(http.post, "/api/order-lines", json=body, headers=headers)
    assert launched.status_code == 202, launched.json()
    workflow_id = launched.json()["workflow_id"]
    for _ in range(200):
        status = await asyncio.to_thread(http.get, f"/api/order-lines/{workflow_id}", headers=headers)
        if status.json()["status"] != "running":
            return status.json()
        await asyncio.sleep(0.1)
    pytest.fail(f"order line {workflow_id} never ended")


@pytest.fixture
async def objects(temporal_env, tmp_path: Path) -> AsyncIterator[Objects]:
    """acme's objects: an order line and the graph run it started (instant stand-in modules)."""
    queue = f"authz-{uuid.uuid4().hex[:8]}"
    settings = with_keys(
        Settings(state_dir=tmp_path, default_queue=queue, cad_queue=queue, render_queue=queue), *KEYS
    )
    app = create_app(settings)
    app.state.temporal = TemporalSession(temporal_env.client, None, settings)
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[OrderLineWorkflow, GraphWorkflow],
        activities=StandIns().activities(),
    ):
        with TestClient(app) as http:
            await until_polled(app.state.temporal)
            cad_file = await upload(http, OWNER_OF[CLIENT])
            order_line = await launch_order_line(http, OWNER_OF[CLIENT], cad_file)
            assert order_line["status"] == "completed", order_line
            runs = [run for run in order_line["result"]["workflow_ids"] if run != order_line["workflow_id"]]
            # The stand-in modules make no files: acme is shown a real one, as a run would show it.
            blob = tmp_path / "still.png"
            blob.write_bytes(b"\x89PNG a still")
            ref = LocalArtifactStore(settings.artifact_root()).put_file(blob, role="still")
            with Session(app.state.engine) as db:
                grant(db, OWNER_OF[CLIENT], [ref], order_line["workflow_id"])
            ids = {"order_line": order_line["workflow_id"], "run": runs[-1], "cad_file": cad_file}
            yield Objects(http, {**ids, "artifact": ref.sha256})


def owned_routes() -> list[str]:
    return [route for route, access in sorted(ROUTES.items()) if access.owned]


@pytest.mark.e2e
@pytest.mark.parametrize("route", owned_routes())
async def test_another_clients_object_is_404(objects: Objects, route: str):
    access = ROUTES[route]
    assert access.owned is not None
    url = filled(route.split(" ", 1)[1], objects.ids[access.owned])
    mine = await objects.call(route, url, OWNER_OF[CLIENT])
    assert mine.status_code == 200, mine.text
    theirs = await objects.call(route, url, OTHER_CLIENT)
    assert theirs.status_code == 404, theirs.text
    assert error_of(route, theirs, "code") in ("not_found", HEAD_ANSWER)
