"""The main job through the CLI: embedded Temporal dev server, real OCP, real Blender."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trimesh

from imaging import colour_fractions
from prodgraph.embedded import stop_dev_server
from prodgraph.reports import RunReport

pytestmark = [pytest.mark.e2e, pytest.mark.occt, pytest.mark.blender]
SMALL = ["--width", "200", "--height", "150", "--samples", "8"]


@pytest.fixture(autouse=True)
def stop_embedded_server(tmp_path):
    """The embedded server outlives each CLI call by design; stop it after the test."""
    yield
    stop_dev_server(tmp_path / "state")


def run_cli(*args: str, state: Path) -> tuple[int, dict, str]:
    """Run `prodgraph ... --json` on the embedded default; return exit code, JSON, stderr."""
    env = {**os.environ, "PRODGRAPH_STATE_DIR": str(state)}
    env.pop("PRODGRAPH_TEMPORAL_ADDRESS", None)
    completed = subprocess.run(
        [sys.executable, "-m", "prodgraph.cli", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = completed.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {completed.stderr[-2000:]}"
    return completed.returncode, json.loads(lines[-1]), completed.stderr


def test_render_red_cube_blue_cylinder(tmp_path, step_fixture, validate_gltf):
    code, report, progress = run_cli(
        "render",
        str(step_fixture("red_cube_blue_cylinder.step")),
        "--out",
        str(tmp_path / "out"),
        *SMALL,
        state=tmp_path / "state",
    )
    assert code == 0, report
    assert report["status"] == "completed" and report["error"] is None
    assert report["temporal_ui"].startswith("http://127.0.0.1:")
    assert report["workflow_id"] in report["temporal_ui"]
    assert report["workflow_ids"][0].startswith("cad-intake-v1-")
    assert "still: completed" in progress and "glb: completed" in progress
    assert RunReport.model_validate(report).model_dump(mode="json") == report

    artifacts = {artifact["role"]: artifact for artifact in report["artifacts"]}
    assert artifacts["still"]["media_type"] == "image/png"
    assert artifacts["glb"]["media_type"] == "model/gltf-binary"
    png = Path(artifacts["still"]["path"])
    fractions = colour_fractions(png)
    assert fractions["red"] > 0.005 and fractions["blue"] > 0.005, fractions

    glb = Path(artifacts["glb"]["path"])
    scene = trimesh.load(glb, force="scene")
    assert {"red_cube", "blue_cylinder"} <= set(scene.graph.nodes_geometry)
    validation = validate_gltf(glb)
    assert validation["issues"]["numErrors"] == 0, validation["issues"]["messages"][:5]

    assert {item["name"] for item in report["objects"]} >= {"red_cube", "blue_cylinder"}
    assert report["bbox"]["unit"] == "m"
    assert report["bbox"]["min"] == pytest.approx([-0.010, 0.0, 0.0], abs=1e-6)
    assert report["bbox"]["max"] == pytest.approx([0.015, 0.010, 0.010], abs=1e-6)


@pytest.mark.parametrize(
    "name", ["malformed_empty.step", "malformed_truncated.step", "malformed_png_renamed.step"]
)
def test_malformed_step_fails_quickly_with_a_clear_error(tmp_path, step_fixture, name):
    started = time.monotonic()
    code, report, _ = run_cli(
        "intake", str(step_fixture(name)), "--out", str(tmp_path), state=tmp_path / "state"
    )
    assert code == 1
    assert report["status"] == "failed"
    assert report["error"]["code"] == "invalid_cad_file"
    assert report["error"]["node_id"] in {"resolve", "extract", "glb", "bbox"}
    assert name in report["error"]["message"] or "STEP" in report["error"]["message"]
    assert time.monotonic() - started < 60
