"""An imported legacy output type produces an order line through the CLI: legacy route, real
Workbench JPEG and PNG thumbnail, effective settings explained."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from conftest import SHARED_DIR, STEP_FIXTURES
from prodgraph.embedded import stop_dev_server

pytestmark = [pytest.mark.e2e, pytest.mark.occt, pytest.mark.blender]


def test_legacy_web_preview_order_line(tmp_path):
    env = {**os.environ, "PRODGRAPH_STATE_DIR": str(tmp_path / "state")}
    env.pop("PRODGRAPH_TEMPORAL_ADDRESS", None)
    cli = [sys.executable, "-m", "prodgraph.cli"]
    try:
        subprocess.run(
            [
                *cli,
                "output-types",
                "import",
                str(SHARED_DIR / "fixtures" / "legacy" / "output_types_export.json"),
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        done = subprocess.run(
            [
                *cli,
                "order",
                "web-preview",
                str(STEP_FIXTURES / "red_cube_blue_cylinder.step"),
                "--out",
                str(tmp_path / "out"),
                "--width",
                "160",
                "--height",
                "120",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        stop_dev_server(tmp_path / "state")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, report
    assert (report["route"], report["status"]) == ("legacy", "completed")
    assert report["artifact_kinds"] == ["still_image", "preview_thumbnail"]
    artifacts = {artifact["role"]: artifact for artifact in report["artifacts"]}
    assert artifacts["still"]["media_type"] == "image/jpeg"
    with Image.open(artifacts["still"]["path"]) as still:
        assert (still.format, still.size) == ("JPEG", (160, 120))
    with Image.open(artifacts["thumbnail"]["path"]) as thumbnail:
        assert thumbnail.format == "PNG" and max(thumbnail.size) <= 256
    still = report["effective"]["render.blender_still"]
    assert still["params"]["engine"] == "workbench"
    assert still["param_sources"] == {
        **still["param_sources"],
        "engine": "profile_override",
        "width": "invocation",
        "image_format": "profile_override",
    }


def test_graph_order_line_reports_each_childs_nodes_as_they_change(tmp_path):
    env = {**os.environ, "PRODGRAPH_STATE_DIR": str(tmp_path / "state")}
    env.pop("PRODGRAPH_TEMPORAL_ADDRESS", None)
    command = [sys.executable, "-m", "prodgraph.cli", "order", "studio-still"]
    command += [str(STEP_FIXTURES / "red_cube_blue_cylinder.step"), "--out", str(tmp_path / "out")]
    command += ["--width", "160", "--height", "120", "--samples", "4", "--json"]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    finally:
        stop_dev_server(tmp_path / "state")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and report["route"] == "graph", report
    lines = done.stderr.splitlines()
    intake, render = f"{report['workflow_id']}-intake", f"{report['workflow_id']}-render"
    assert f"[✓] {intake} glb: completed" in lines
    assert f"[✓] {render} still: completed" in lines
    # In plan order: the intake's nodes come before the render's, and pending is no news.
    assert lines.index(f"[✓] {intake} glb: completed") < lines.index(f"[✓] {render} still: completed")
    assert not any(": pending" in line for line in lines)


def test_a_shadow_order_line_ends_with_its_parity(tmp_path):
    """The imported web preview moved to shadow: the CLI's last JSON line carries the comparison
    of the graph beside the legacy run, with its pictures copied out."""
    env = {**os.environ, "PRODGRAPH_STATE_DIR": str(tmp_path / "state")}
    env.pop("PRODGRAPH_TEMPORAL_ADDRESS", None)
    cli = [sys.executable, "-m", "prodgraph.cli"]
    export = str(SHARED_DIR / "fixtures" / "legacy" / "output_types_export.json")
    try:
        for command in (
            ["output-types", "import", export],
            ["output-types", "set-rollout", "web-preview", "shadow"],
        ):
            subprocess.run([*cli, *command], env=env, check=True, capture_output=True, timeout=120)
        done = subprocess.run(
            [
                *cli,
                "order",
                "web-preview",
                str(STEP_FIXTURES / "red_cube_blue_cylinder.step"),
                "--out",
                str(tmp_path / "out"),
                "--param",
                "width=160",
                "--param",
                "height=120",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        stop_dev_server(tmp_path / "state")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, report
    assert (report["route"], report["status"]) == ("shadow", "completed")
    parity = report["parity"]
    assert parity["verdict"] in ("identical", "equivalent"), parity
    assert parity["report"].startswith("par_") and parity["pictures"]
    for picture in parity["pictures"]:
        assert Image.open(picture).size[0] >= 3 * 16  # legacy, graph and their difference
    assert set(parity) == {"verdict", "report", "reason", "pictures", "differences"}
