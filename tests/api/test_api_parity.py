"""The parity routes: comparisons listed and shown, their pictures downloadable by who saw them."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session

from activities.artifacts import LocalArtifactStore
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
