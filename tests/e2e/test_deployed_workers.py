"""With a Temporal address configured, the CLI connects and relies on deployed workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.occt]


def test_cli_runs_on_workers_started_with_worker_py(temporal_env, tmp_path, step_fixture):
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "PRODGRAPH_STATE_DIR": str(tmp_path / "state"),
        "PRODGRAPH_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "PRODGRAPH_DEFAULT_QUEUE": f"d-{suffix}",
        "PRODGRAPH_CAD_QUEUE": f"c-{suffix}",
        "PRODGRAPH_RENDER_QUEUE": f"r-{suffix}",
    }
    worker = subprocess.Popen(
        [sys.executable, "worker.py", "--queues", "default,cad,render"],
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "prodgraph.cli",
                "intake",
                str(step_fixture("cq_box_export.step")),
                "--out",
                str(tmp_path / "out"),
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert done.returncode == 0, report
        assert report["status"] == "completed"
        assert report["temporal_ui"] is None  # no UI URL configured for a deployed server
        assert not (tmp_path / "state" / "temporal-server.json").exists()  # nothing embedded
        assert [item["name"] for item in report["objects"]] == ["Body"]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


def test_worker_py_refuses_unknown_queues():
    done = subprocess.run(
        [sys.executable, "worker.py", "--queues", "default,gpu"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "unknown queue(s): gpu" in done.stderr
