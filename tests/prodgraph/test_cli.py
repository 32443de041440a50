"""The CLI's documents: nodes, validate, legacy map (no Temporal needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import SHARED_DIR

LEGACY = SHARED_DIR / "fixtures" / "legacy"


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run `prodgraph ARGS` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "prodgraph.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_legacy_map_reproduces_the_expected_invocations_exactly():
    done = cli("legacy", "map", str(LEGACY / "output_types_export.json"), "--json")
    assert done.returncode == 0, done.stderr
    expected = json.loads((LEGACY / "expected_invocations.json").read_text())
    assert json.loads(done.stdout) == expected
    assert "broken-resolution" in done.stderr and "'hd'" in done.stderr


def test_nodes_json_lists_every_module_with_its_contract():
    done = cli("nodes", "--json")
    document = json.loads(done.stdout)
    steps = {node["step"] for node in document["node_definitions"]}
    assert {"cad.export_glb", "render.blender_still", "output.notify"} <= steps
    assert document["catalog_version"]
    order_line = json.loads(cli("nodes", "--family", "order_line", "--json").stdout)
    assert all("order_line" in node["families"] for node in order_line["node_definitions"])


def test_validate_reports_problems_and_exits_non_zero(tmp_path: Path):
    definition = {
        "id": "bad",
        "version": 1,
        "family": "cad_file",
        "name": "bad",
        "nodes": [{"id": "a", "step": "cad.nope"}],
        "edges": [],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(definition))
    done = cli("validate", str(path), "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["valid"] is False
    assert report["errors"][0] | {"message": ""} == {
        "code": "unknown_step",
        "node_id": "a",
        "path": "$.nodes[0].step",
        "message": "",
    }


def test_unreadable_files_are_a_clear_error_not_a_traceback(tmp_path: Path):
    done = cli("validate", str(tmp_path / "missing.json"), "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["message"].startswith("cannot read")
    assert "Traceback" not in done.stderr


def test_output_types_import_creates_then_updates(tmp_path: Path):
    import os

    env = {**os.environ, "PRODGRAPH_STATE_DIR": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "prodgraph.cli",
        "output-types",
        "import",
        str(LEGACY / "output_types_export.json"),
        "--json",
    ]
    first = json.loads(
        subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    )
    assert (first["created"], first["updated"], first["errors"]) == (11, 0, 3)
    errors = {record["slug"]: record["error"]["key"] for record in first["records"] if record["error"]}
    assert errors == {
        "broken-resolution": "resolution",
        "negative-samples": "samples",
        "unknown-renderer": "renderer",
    }
    again = json.loads(
        subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    )
    assert (again["created"], again["updated"]) == (0, 11)
