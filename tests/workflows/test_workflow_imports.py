"""Workflow code stays light: no bpy, OCP, SQLModel or FastAPI behind the Temporal sandbox."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT


def test_workflow_modules_import_no_heavy_or_server_libraries():
    probe = (
        "import sys, workflows.graph, workflows.legacy, workflows.order_line; "
        "print(sorted(m for m in ('bpy', 'OCP', 'sqlmodel', 'sqlalchemy', 'fastapi') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
