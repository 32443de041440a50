"""The Blender job, run as a child process exactly as an activity runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from PIL import Image

from activities.render import (
    TEMPLATES,
    BlenderJobRequest,
    BlenderStillParams,
    BlenderTurntableParams,
    BlendJobRequest,
    ExportBlendParams,
    StillJobRequest,
    TurntableJobRequest,
)

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
SMALL = {"width": 160, "height": 120, "samples": 8}
UNIT_BOX = {"min": [-0.01, -0.01, -0.01], "max": [0.01, 0.01, 0.01]}
REQUESTS = {
    "still": (StillJobRequest, BlenderStillParams),
    "turntable": (TurntableJobRequest, BlenderTurntableParams),
    "blend": (BlendJobRequest, ExportBlendParams),
}


def _bbox_of(glb: Path) -> dict[str, list[float]]:
    """The GLB's box in Blender's (and the CAD file's) Z-up frame; glTF is Y-up."""
    (x0, y0, z0), (x1, y1, z1) = trimesh.load(glb).bounds
    return {"min": [x0, -z1, y0], "max": [x1, -z0, y1]}


def _request(op: str, fields: dict[str, Any]) -> BlenderJobRequest:
    """The contract model the op reads, as the render activity builds it (studio_grey look
    unless the fields name a template)."""
    model, params = REQUESTS[op]
    settings = params(**{name: value for name, value in fields.items() if name in params.model_fields})
    template = TEMPLATES[fields.get("template", "studio_grey")]
    return model(
        glb_path=fields["glb_path"],
        output_path=fields["output_path"],
        bbox=fields.get("bbox") or _bbox_of(Path(fields["glb_path"])),
        material_map={},
        template=template,
        camera_preset=settings.camera_preset or template.camera_preset,
        settings=settings,
    )


def _run(op: str, request: dict[str, Any], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """Run the job once and return its exit code and response document."""
    request_path, response_path = tmp_path / f"{op}-request.json", tmp_path / f"{op}-response.json"
    request_path.write_text(_request(op, request).model_dump_json())
    command = [sys.executable, "-m", "activities.jobs.blender_job", op, str(request_path), str(response_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert response_path.exists(), done.stderr[-3000:]
    return done.returncode, json.loads(response_path.read_text())


def _coloured(material_rgb: list[int]) -> trimesh.visual.TextureVisuals:
    """A matte PBR material of one colour."""
    material = trimesh.visual.material.PBRMaterial(
        baseColorFactor=[*material_rgb, 255], metallicFactor=0.0, roughnessFactor=0.6
    )
    return trimesh.visual.TextureVisuals(material=material)


@pytest.fixture(scope="module")
def glb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 mm red cube and a blue cylinder (r 5 mm, h 10 mm) side by side, glTF Y-up metres."""
    cube = trimesh.creation.box(extents=[0.01, 0.01, 0.01])
    cube.apply_translation([-0.005, 0.005, 0.0])
    cube.visual = _coloured([220, 20, 20])
    cylinder = trimesh.creation.cylinder(radius=0.005, height=0.01, sections=48)
    # trimesh builds cylinders along Z; glTF's up axis is Y.
    cylinder.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    cylinder.apply_translation([0.010, 0.005, 0.0])
    cylinder.visual = _coloured([20, 40, 220])
    scene = trimesh.Scene()
    scene.add_geometry(cube, node_name="red_cube")
    scene.add_geometry(cylinder, node_name="blue_cylinder")
    path = tmp_path_factory.mktemp("glb") / "parts.glb"
    path.write_bytes(scene.export(file_type="glb"))
    return path


def _masks(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clearly red and clearly blue pixels of an RGB(A) image."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return (r > 150) & (g < 100) & (b < 100), (b > 150) & (r < 120) & (g < 120)


def test_still_shows_both_coloured_parts_on_a_grey_background(glb: Path, tmp_path: Path) -> None:
    output = tmp_path / "renders" / "still #1.png"
    code, response = _run("still", {"glb_path": str(glb), "output_path": str(output), **SMALL}, tmp_path)

    assert code == 0, response
    result = response["result"]
    assert result["output_path"] == str(output)
    assert (result["width"], result["height"], result["engine"]) == (160, 120, "cycles")
    assert result["samples"] == 8 and result["object_count"] == 2 and result["render_seconds"] > 0
    image = np.asarray(Image.open(output).convert("RGB"))
    assert image.shape == (120, 160, 3)
    red, blue = _masks(image)
    assert red.mean() > 0.005 and blue.mean() > 0.005
    # The cube sits left of the cylinder, as in the CAD frame.
    assert np.nonzero(red)[1].mean() < np.nonzero(blue)[1].mean()
    corners = image[[0, 0, -1, -1], [0, -1, 0, -1]].astype(int)
    assert np.ptp(corners, axis=1).max() < 10, "background should be neutral grey"
    assert 60 < corners.mean() < 200


def test_transparent_still_has_clear_background_and_opaque_parts(glb: Path, tmp_path: Path) -> None:
    output = tmp_path / "transparent.png"
    request = {
        "glb_path": str(glb),
        "output_path": str(output),
        "transparent_background": True,
        "camera_preset": "iso",
        **SMALL,
    }
    code, response = _run("still", request, tmp_path)

    assert code == 0, response
    image = np.asarray(Image.open(output))
    assert image.shape == (120, 160, 4)
    assert image[[0, 0, -1, -1], [0, -1, 0, -1], 3].tolist() == [0, 0, 0, 0]
    red, blue = _masks(image)
    assert red.mean() > 0.005 and blue.mean() > 0.005
    # Only anti-aliased silhouette pixels may be partly transparent.
    assert (image[..., 3][red | blue] == 255).mean() > 0.8


def test_jpeg_top_view_with_given_bbox(glb: Path, tmp_path: Path) -> None:
    output = tmp_path / "top.jpg"
    bbox = {"min": [-0.01, -0.005, 0.0], "max": [0.015, 0.005, 0.01]}
    # The dark studio: a bright backdrop lights a top view until the colours wash out.
    request = {
        "glb_path": str(glb),
        "output_path": str(output),
        "image_format": "jpeg",
        "camera_preset": "top",
        "bbox": bbox,
        "template": "studio_dark",
        **SMALL,
    }
    code, response = _run("still", request, tmp_path)

    assert code == 0, response
    assert output.read_bytes()[:3] == b"\xff\xd8\xff"
    red, blue = _masks(np.asarray(Image.open(output).convert("RGB")))
    assert red.mean() > 0.02 and blue.mean() > 0.02


@pytest.mark.parametrize("content", [b"", b"not a gltf file at all", None])
def test_invalid_glb_is_a_typed_error(content: bytes | None, tmp_path: Path) -> None:
    glb = tmp_path / "broken.glb"
    if content is not None:
        glb.write_bytes(content)
    code, response = _run(
        "still", {"glb_path": str(glb), "output_path": str(tmp_path / "x.png"), "bbox": UNIT_BOX}, tmp_path
    )

    assert code == 3
    assert response["error"]["code"] == "invalid_glb"
    assert str(glb) in response["error"]["message"]
    assert not (tmp_path / "x.png").exists()


def test_turntable_writes_an_mp4(glb: Path, tmp_path: Path) -> None:
    output = tmp_path / "turntable.mp4"
    request = {
        "glb_path": str(glb),
        "output_path": str(output),
        "width": 96,
        "height": 96,
        "samples": 4,
        "frame_count": 6,
        "fps": 12,
    }
    code, response = _run("turntable", request, tmp_path)

    assert code == 0, response
    result = response["result"]
    sizes = (result["frame_count"], result["fps"], result["width"], result["height"])
    assert sizes == (6, 12, 96, 96)
    data = output.read_bytes()
    assert len(data) > 1000 and data[4:8] == b"ftyp"


def test_blend_saves_a_scene_file(glb: Path, tmp_path: Path) -> None:
    output = tmp_path / "scene.blend"
    code, response = _run("blend", {"glb_path": str(glb), "output_path": str(output)}, tmp_path)

    assert code == 0, response
    assert response["result"] == {"output_path": str(output), "object_count": 2}
    # A compressed .blend is a zstd stream; an uncompressed one starts with BLENDER.
    assert output.read_bytes()[:4] in (b"\x28\xb5\x2f\xfd", b"BLEN")
