"""The parity routes: comparisons listed and shown, their pictures downloadable by who saw them."""

from __future__ import annotations

from pathlib import Path

from api_keys import authorized, with_test_key
from fastapi.testclient import TestClient
from sqlmodel import Session

from activities.artifacts import LocalArtifactStore
from api.app import create_app
from conftest import STEP_FIXTURES
from persistence.tables import ParityReportRecord

pytest_plugins = ["api_fixtures"]


def test_a_comparison_is_listed_shown_and_its_picture_downloaded(client: TestClient, tmp_path: Path):
    settings = client.app.state.settings  # type: ignore[attr-defined]
    png = tmp_path / "side-by-side.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n three panels")
    picture = LocalArtifactStore(settings.artifact_root()).put_file(png, role="parity_picture")
    report = {
        "verdict": "different",
        "reason": "1 difference",
        "differences": [{"artifact": "still", "metric": "background", "explained_by": ["template"]}],
        "pictures": [picture.model_dump(mode="json")],
    }
    with Session(client.app.state.engine) as db:  # type: ignore[attr-defined]
        db.add(
            ParityReportRecord(
                id="par_1",
                output_type="studio-still",
                order_line_workflow_id="order-acme:studio-still:ol-1",
                verdict="different",
                report=report,
            )
        )
        db.commit()

    listed = client.get("/api/parity/reports", params={"output_type": "studio-still"})
    assert listed.status_code == 200 and [item["id"] for item in listed.json()] == ["par_1"]
    assert client.get("/api/parity/reports", params={"output_type": "other"}).json() == []
    shown = client.get("/api/parity/reports/order-acme:studio-still:ol-1")
    assert shown.status_code == 200, shown.json()
    body = shown.json()
    assert body["verdict"] == "different" and body["report"]["differences"][0]["explained_by"] == ["template"]
    (link,) = body["pictures"]
    assert "file://" not in shown.text and link["url"] == f"/api/artifacts/{picture.sha256}"
    downloaded = client.get(link["url"])
    assert downloaded.status_code == 200 and downloaded.content == png.read_bytes()
    assert client.get("/api/parity/reports/par_none").status_code == 404


async def test_a_calibration_starts_on_an_uploaded_file(temporal_env, settings):
    address = temporal_env.client.service_client.config.target_host
    app = create_app(with_test_key(settings.model_copy(update={"temporal_address": address})))
    part = STEP_FIXTURES / "red_cube_blue_cylinder.step"
    with authorized(app) as client:
        uploaded = client.post("/api/cad-files", files={"file": (part.name, part.read_bytes())})
        assert uploaded.status_code == 201, uploaded.json()
        body = {"cad_file_id": uploaded.json()["id"], "invocation_params": {"width": 96, "height": 72}}
        started = client.post("/api/output-types/studio-still/parity/calibrate", json=body)
        assert started.status_code == 202, started.json()
        unknown_file = client.post(
            "/api/output-types/studio-still/parity/calibrate", json={"cad_file_id": "cad_" + "0" * 32}
        )
        assert unknown_file.status_code == 404 and unknown_file.json()["error"]["field"] == "cad_file_id"
        unknown_type = client.post("/api/output-types/no-such/parity/calibrate", json=body)
        assert unknown_type.status_code == 404
        by_path = client.post(
            "/api/output-types/studio-still/parity/calibrate", json={**body, "step_path": "/etc/passwd"}
        )
        assert by_path.status_code == 422
    handle = temporal_env.client.get_workflow_handle(started.json()["workflow_id"])
    assert (await handle.describe()).workflow_type == "ParityCalibrationWorkflow"
    await handle.terminate("test over: no workers poll this test's queues")
