"""The STEP child job on the real fixtures, run exactly as an activity runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from activities.cad import ExportGlbParams, GlbJobRequest, StepJobRequest
from activities.jobs.protocol import EXIT_TYPED_ERROR
from core.errors import ModuleError

pytestmark = pytest.mark.occt

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PRODGRAPH_SHARED_DIR", REPO.parent / "shared")).resolve()
FIXTURES = SHARED / "fixtures" / "step"
JOB_TIMEOUT_S = 60

if not FIXTURES.is_dir():
    pytest.skip(f"STEP fixtures not found at {FIXTURES}", allow_module_level=True)


SINGLE_SOLIDS = [  # fixture, product name, source unit, faces, sRGB colour
    ("cq_box_export.step", "Body", "mm", 6, "#cccccc"),
    ("nist_ftc_11_asme1_rb_tiny.stp", "nist_ftc_11_asme1", "mm", 6, "#bfbf95"),
    ("m6_countersunk_screw.step", "Open CASCADE STEP translator 7.5 1", "mm", 28, None),
    ("occt_screw_cc1.step", "the product name", "mm", 10, None),
    ("featuretype_inch.STEP", "featuretype", "inch", 96, "#cad1ee"),
    ("base_interface_ap203_inch.STEP", "base_interface_AP203", "inch", 30, None),
    ("io1-cm-214_face_colors.stp", "io1", "mm", 29, "#ffff00"),
]

BBOXES = [  # fixture, min and max in mm (MANIFEST), in the file's frame
    ("red_cube_blue_cylinder.step", [-10.0, 0.0, 0.0], [15.0, 10.0, 10.0]),
    ("cq_box_export.step", [0.0, 0.0, 0.0], [10.0, 10.0, 10.0]),
    ("nist_ftc_11_asme1_rb_tiny.stp", [-31.5, -31.5, -1.5], [31.5, 31.5, 1.5]),
    ("m6_countersunk_screw.step", [-5.115, -5.182, -12.0], [5.115, 5.182, 0.0]),
    ("occt_screw_cc1.step", [-27.82, -10.826, -34.564], [-7.977, 9.174, 7.731]),
    ("featuretype_inch.STEP", [-63.5, -31.75, 0.0], [63.5, 31.75, 34.925]),
    ("base_interface_ap203_inch.STEP", [-299.706, -319.336, -2.381], [299.706, 319.336, 2.381]),
    ("io1-cm-214_face_colors.stp", [0.0, -44.0, -44.0], [31.0, 44.0, 44.0]),
    ("box_sides_assembly_inch.STEP", [-18.446, 46.718, 112.565], [165.704, 161.018, 207.815]),
    ("as1-oc-214_nested_assembly.stp", [-10.0, 0.0, -4.0], [190.0, 150.0, 80.0]),
    # Faces only: the PMI compound must not widen the 800 x 450 x 150 mm solid.
    ("nist_ctc_01_asme1_ap242-e1.stp", [-400.0, -225.0, -100.0], [400.0, 225.0, 50.0]),
]

PREFETCH = [
    *(("extract", row[0]) for row in SINGLE_SOLIDS),
    *(("bbox", row[0]) for row in BBOXES),
    ("extract", "red_cube_blue_cylinder.step"),
    ("extract", "as1-oc-214_nested_assembly.stp"),
    ("extract", "box_sides_assembly_inch.STEP"),
    ("extract", "nist_ctc_01_asme1_ap242-e1.stp"),
    ("extract", "edge_external_refs_no_solids.stp"),
    ("bbox", "edge_ap242_one_hole_crashes_occt77.stp"),
    ("glb", "red_cube_blue_cylinder.step"),
    ("glb", "as1-oc-214_nested_assembly.stp"),
    ("glb", "featuretype_inch.STEP"),
    ("glb", "nist_ctc_01_asme1_ap242-e1.stp"),
    ("glb", "edge_ap242_one_hole_crashes_occt77.stp"),
]


def run_job(op: str, request: dict[str, Any], folder: Path) -> tuple[int, dict[str, Any] | None]:
    """Run the job in a child process; its exit code and its response (None if it wrote none)."""
    folder.mkdir(parents=True, exist_ok=True)
    request_path, response_path = folder / f"{op}.request.json", folder / f"{op}.response.json"
    request_path.write_text(job_request(op, request).model_dump_json())
    response_path.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "activities.jobs.step_job", op, str(request_path), str(response_path)],
        cwd=REPO,
        capture_output=True,
        timeout=JOB_TIMEOUT_S,
        check=False,
    )
    response = json.loads(response_path.read_text()) if response_path.exists() else None
    return done.returncode, response


def job_request(op: str, fields: dict[str, Any]) -> StepJobRequest:
    """The contract model an op reads, from a test's plain fields (tessellation ones for glb)."""
    if op != "glb":
        return StepJobRequest(step_path=fields["step_path"])
    quality = {name: fields[name] for name in ExportGlbParams.model_fields if name in fields}
    return GlbJobRequest(
        step_path=fields["step_path"], glb_path=fields["glb_path"], tessellation=ExportGlbParams(**quality)
    )


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scratch folder for the module's job runs."""
    return tmp_path_factory.mktemp("step_job")


def run_ok(op: str, fixture: str, job_dir: Path) -> dict[str, Any]:
    """Run a job that must succeed on a fixture; its result."""
    folder = job_dir / f"{fixture}.{op}"
    request = {"step_path": str(FIXTURES / fixture), "glb_path": str(folder / "out.glb")}
    code, response = run_job(op, request, folder)
    assert response is not None, f"{op} {fixture}: no response, exit {code}"
    assert code == 0 and response["ok"], response
    return response["result"]


StepResult = Callable[[str, str], dict[str, Any]]


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads that wait on job processes, so the jobs run side by side."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as executor:
        yield executor
        executor.shutdown(cancel_futures=True)


@pytest.fixture(scope="module")
def step_result(job_dir: Path, pool: ThreadPoolExecutor) -> StepResult:
    """Each (op, fixture) runs once per module, all started up front; returns its result."""
    futures: dict[tuple[str, str], Future[dict[str, Any]]] = {}

    def submit(op: str, fixture: str) -> Future[dict[str, Any]]:
        if (op, fixture) not in futures:
            futures[op, fixture] = pool.submit(run_ok, op, fixture, job_dir)
        return futures[op, fixture]

    for op, fixture in PREFETCH:
        submit(op, fixture)
    return lambda op, fixture: submit(op, fixture).result()


def expect_error(op: str, path: Path, folder: Path) -> dict[str, str]:
    """Run a job that must fail with a typed error; return the error."""
    request = {"step_path": str(path), "glb_path": str(folder / "out.glb")}
    code, response = run_job(op, request, folder)
    assert code == EXIT_TYPED_ERROR, (code, response)
    assert response is not None and response["ok"] is False
    assert not (folder / "out.glb").exists()
    return response["error"]


def by_path(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Extracted objects keyed by path."""
    return {obj["path"]: obj for obj in result["objects"]}


def rgb(hex_color: str) -> tuple[int, int, int]:
    """#rrggbb as integers."""
    return int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16)


def glb_document(path: Path) -> dict[str, Any]:
    """The JSON chunk of a GLB file."""
    data = path.read_bytes()
    assert data[:4] == b"glTF"
    (length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20 : 20 + length])


def world_matrices(result: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each object's placement in the file frame, composing parents' transforms."""
    world: dict[str, np.ndarray] = {}
    for obj in result["objects"]:  # parents come before their children
        local = np.array(obj["transform"]).reshape(4, 4)
        parent = obj["parent_path"]
        world[obj["path"]] = local if parent is None else world[parent] @ local
    return world


# --- extract -------------------------------------------------------------------------------


def test_extract_two_coloured_parts_in_metre_units(step_result: StepResult) -> None:
    result = step_result("extract", "red_cube_blue_cylinder.step")
    assert result["source_unit"] == "m"
    objects = by_path(result)
    assert set(objects) == {"red_cube", "blue_cylinder"}
    red, blue = objects["red_cube"], objects["blue_cylinder"]
    for obj in (red, blue):
        assert obj["kind"] == "part" and obj["parent_path"] is None and obj["solid_count"] == 1
        assert obj["instance_name"] is None
        assert obj["transform"] == pytest.approx(np.eye(4).flatten().tolist())
    assert red["face_count"] == 6 and blue["face_count"] == 3
    # sRGB of the file's COLOUR_RGB values (0.867, 0.322, 0.157) and (0.231, 0.380, 0.706).
    assert red["color"] == "#dd5228" and blue["color"] == "#3b61b4"
    r, g, b = rgb(red["color"])
    assert r > 2 * g and r > 2 * b
    r, g, b = rgb(blue["color"])
    assert b > 1.5 * r and b > 1.5 * g


def test_extract_nested_assembly(step_result: StepResult) -> None:
    result = step_result("extract", "as1-oc-214_nested_assembly.stp")
    assert result["source_unit"] == "mm"
    objects = result["objects"]
    paths = [obj["path"] for obj in objects]
    assert len(paths) == len(set(paths)) == 28
    assert objects[0]["path"] == "as1" and objects[0]["kind"] == "assembly"
    assert all(obj["parent_path"] in paths for obj in objects[1:])
    parts = [obj for obj in objects if obj["kind"] == "part"]
    assemblies = {obj["name"] for obj in objects if obj["kind"] == "assembly"}
    assert len(parts) == 18 and sum(p["solid_count"] for p in parts) == 18
    assert {p["name"] for p in parts} == {"bolt", "l-bracket", "nut", "plate", "rod"}
    assert assemblies == {"as1", "rod-assembly", "l-bracket-assembly", "nut-bolt-assembly"}
    assert max(path.count("/") for path in paths) == 3  # 4 levels
    assert objects[0]["solid_count"] == 18 and objects[0]["face_count"] == 160
    # Siblings sharing a product name are told apart in the path, not in the name.
    nuts = by_path(result)
    assert nuts["as1/rod-assembly/nut"]["instance_name"] == "nut_1"
    assert nuts["as1/rod-assembly/nut[2]"]["instance_name"] == "nut_2"
    assert nuts["as1/l-bracket-assembly[2]/nut-bolt-assembly[3]/bolt"]["name"] == "bolt"
    colours = {p["name"]: p["color"] for p in parts}
    assert colours == {
        "nut": "#ff0000",
        "bolt": "#0000ff",
        "l-bracket": "#00ff00",
        "rod": "#ff8000",
        "plate": "#ccff00",
    }
    rod_assembly = by_path(result)["as1/rod-assembly"]["transform"]
    assert rod_assembly[3::4][:3] == pytest.approx([-0.010, 0.075, 0.060])  # metres


def test_extract_flat_inch_assembly(step_result: StepResult) -> None:
    result = step_result("extract", "box_sides_assembly_inch.STEP")
    assert result["source_unit"] == "inch"
    objects = result["objects"]
    assert objects[0]["name"] == "box_sides" and objects[0]["kind"] == "assembly"
    parts = objects[1:]
    assert all(p["kind"] == "part" and p["parent_path"] == "box_sides" for p in parts)
    names = sorted(p["name"] for p in parts)
    assert names == sorted(
        [
            "box_base",
            "box_top",
            "side_long",
            "side_long",
            "side_short",
            "side_short_B",
            "gusset",
            "gusset",
            "gusset",
            "gusset",
        ]
    )
    assert sum(p["solid_count"] for p in parts) == 10
    assert sum(p["face_count"] for p in parts) == 417
    assert {p["color"] for p in parts} == {"#cad1ee"}


@pytest.mark.parametrize(("fixture", "name", "unit", "faces", "color"), SINGLE_SOLIDS)
def test_extract_single_solid(
    step_result: StepResult, fixture: str, name: str, unit: str, faces: int, color: str | None
) -> None:
    result = step_result("extract", fixture)
    assert result["source_unit"] == unit
    (obj,) = result["objects"]
    assert (obj["name"], obj["path"], obj["kind"]) == (name, name, "part")
    assert (obj["solid_count"], obj["face_count"], obj["color"]) == (1, faces, color)


def test_extract_ap242_with_pmi(step_result: StepResult) -> None:
    objects = step_result("extract", "nist_ctc_01_asme1_ap242-e1.stp")["objects"]
    # OCCT turns the product into an assembly of the solid plus a PMI compound, both auto-named.
    assert [(o["path"], o["face_count"]) for o in objects] == [
        ("NIST Complex Test Case 1", 117),
        ("NIST Complex Test Case 1/SOLID", 117),
        ("NIST Complex Test Case 1/COMPOUND", 0),
    ]
    assert objects[1]["instance_name"].startswith("=>[")


def test_extract_external_references_gives_the_tree_only(step_result: StepResult) -> None:
    # Chosen behaviour: extract shows the product tree of a file whose parts live in external
    # files (face_count 0 everywhere); glb and bbox reject it as invalid_cad_file.
    result = step_result("extract", "edge_external_refs_no_solids.stp")
    assert result["source_unit"] == "inch"
    assert [o["path"] for o in result["objects"]] == [
        "*MASTER",
        "*MASTER/TAIL",
        "*MASTER/HEAD",
        "*MASTER/MAINBODY",
        "*MASTER/FOOT",
        "*MASTER/FOOT[2]",
    ]
    assert all(o["face_count"] == 0 and o["solid_count"] == 0 for o in result["objects"])


# --- bbox ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "low_mm", "high_mm"), BBOXES)
def test_bbox_matches_manifest_in_metres(
    step_result: StepResult, fixture: str, low_mm: list[float], high_mm: list[float]
) -> None:
    box = step_result("bbox", fixture)
    assert box["unit"] == "m"
    assert box["min"] == pytest.approx([v / 1000 for v in low_mm], abs=1e-6)
    assert box["max"] == pytest.approx([v / 1000 for v in high_mm], abs=1e-6)


# --- glb -----------------------------------------------------------------------------------


def test_glb_two_parts_named_coloured_yup_metres(step_result: StepResult, job_dir: Path) -> None:
    trimesh = pytest.importorskip("trimesh")
    result = step_result("glb", "red_cube_blue_cylinder.step")
    path = Path(result["glb_path"])
    assert sorted(result["node_names"]) == ["blue_cylinder", "red_cube"]
    gltf = glb_document(path)
    assert {n["name"] for n in gltf["nodes"]} == {"blue_cylinder", "red_cube"}
    assert all("NORMAL" in p["attributes"] for m in gltf["meshes"] for p in m["primitives"])
    # glTF base colours are linear: the red part's material is red, the blue one's blue.
    factors = [m["pbrMetallicRoughness"]["baseColorFactor"] for m in gltf["materials"]]
    assert any(r > 0.5 and g < 0.2 and b < 0.2 for r, g, b, _ in factors)
    assert any(b > 0.4 and r < 0.1 and g < 0.2 for r, g, b, _ in factors)
    scene = trimesh.load(path)
    # File frame x [-10, 15], y [0, 10], z [0, 10] mm is glTF x, -z, y in metres.
    assert scene.bounds[0] == pytest.approx([-0.010, 0.0, -0.010], abs=1e-5)
    assert scene.bounds[1] == pytest.approx([0.015, 0.010, 0.0], abs=1e-5)
    assert result["triangle_count"] == len(scene.to_geometry().faces)


def test_glb_nested_assembly_keeps_hierarchy_and_instances(step_result: StepResult) -> None:
    trimesh = pytest.importorskip("trimesh")
    result = step_result("glb", "as1-oc-214_nested_assembly.stp")
    extracted = step_result("extract", "as1-oc-214_nested_assembly.stp")
    assert sorted(result["node_names"]) == sorted(o["name"] for o in extracted["objects"])
    scene = trimesh.load(result["glb_path"])
    assert len(scene.geometry) >= 5
    assert result["triangle_count"] == len(scene.to_geometry().faces)
    box = step_result("bbox", "as1-oc-214_nested_assembly.stp")
    (x0, y0, z0), (x1, y1, z1) = box["min"], box["max"]
    # Tessellation stays within the deflection of the exact box.
    assert scene.bounds[0] == pytest.approx([x0, z0, -y1], abs=5e-4)
    assert scene.bounds[1] == pytest.approx([x1, z1, -y0], abs=5e-4)


def gltf_world_matrices(gltf: dict[str, Any]) -> list[np.ndarray]:
    """World matrices of a glTF's nodes, in node order."""
    world: dict[int, np.ndarray] = {}

    def local(node: dict[str, Any]) -> np.ndarray:
        if "matrix" in node:
            return np.array(node["matrix"]).reshape(4, 4).T  # glTF stores column-major
        x, y, z, w = node.get("rotation", [0.0, 0.0, 0.0, 1.0])
        rotation = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        matrix = np.eye(4)
        matrix[:3, :3] = rotation * np.array(node.get("scale", [1.0, 1.0, 1.0]))
        matrix[:3, 3] = node.get("translation", [0.0, 0.0, 0.0])
        return matrix

    def visit(index: int, parent: np.ndarray) -> None:
        world[index] = parent @ local(gltf["nodes"][index])
        for child in gltf["nodes"][index].get("children", []):
            visit(child, world[index])

    for root in gltf["scenes"][gltf.get("scene", 0)]["nodes"]:
        visit(root, np.eye(4))
    return [world[i] for i in range(len(gltf["nodes"]))]


def test_glb_placements_match_extracted_transforms(step_result: StepResult) -> None:
    extracted = step_result("extract", "as1-oc-214_nested_assembly.stp")
    glb = step_result("glb", "as1-oc-214_nested_assembly.stp")
    gltf = glb_document(Path(glb["glb_path"]))
    # Both walk the product tree depth first, so nodes and objects line up one to one.
    assert [n["name"] for n in gltf["nodes"]] == [o["name"] for o in extracted["objects"]]
    z_up_to_y_up = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float)
    expected = world_matrices(extracted)
    for obj, actual in zip(extracted["objects"], gltf_world_matrices(gltf), strict=True):
        want = z_up_to_y_up @ expected[obj["path"]] @ z_up_to_y_up.T
        assert actual == pytest.approx(want, abs=1e-6), obj["path"]


def test_glb_inch_part_is_in_metres(step_result: StepResult) -> None:
    trimesh = pytest.importorskip("trimesh")
    result = step_result("glb", "featuretype_inch.STEP")
    assert result["node_names"] == ["featuretype"]
    scene = trimesh.load(result["glb_path"])
    assert scene.extents == pytest.approx([0.127, 0.034925, 0.0635], abs=2e-4)


@pytest.mark.parametrize(
    "quality",
    [
        {"linear_deflection_mm": 0.002, "angular_deflection_rad": 0.1},
        {"relative_deflection": 0.0001, "angular_deflection_rad": 0.2},
    ],
)
def test_glb_finer_deflection_gives_more_triangles(
    step_result: StepResult, job_dir: Path, quality: dict[str, float]
) -> None:
    coarse = step_result("glb", "red_cube_blue_cylinder.step")["triangle_count"]
    folder = job_dir / f"fine.{'-'.join(quality)}"
    request = {
        "step_path": str(FIXTURES / "red_cube_blue_cylinder.step"),
        "glb_path": str(folder / "sub" / "fine.glb"),
        **quality,
    }
    code, response = run_job("glb", request, folder)
    assert code == 0 and response is not None and response["ok"], response
    assert response["result"]["triangle_count"] > 2 * coarse
    assert Path(request["glb_path"]).is_file()
    assert [p.name for p in (folder / "sub").iterdir()] == ["fine.glb"]  # no partial file left


@pytest.mark.parametrize(
    "fixture",
    [
        "red_cube_blue_cylinder.step",
        "as1-oc-214_nested_assembly.stp",
        "nist_ctc_01_asme1_ap242-e1.stp",
    ],
)
def test_glb_passes_the_khronos_validator(step_result: StepResult, validate_gltf, fixture: str) -> None:
    report = validate_gltf(Path(step_result("glb", fixture)["glb_path"]))
    issues = report["issues"]
    assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), issues["messages"][:5]


def test_glb_skips_pmi_and_meshes_ap242(step_result: StepResult) -> None:
    result = step_result("glb", "nist_ctc_01_asme1_ap242-e1.stp")
    assert "SOLID" in result["node_names"] and result["triangle_count"] > 100


# --- bad and odd files ---------------------------------------------------------------------


OPS = ("extract", "glb", "bbox")


@pytest.mark.parametrize(
    ("fixture", "ops", "fragments"),
    [
        # Rejected before OCCT sees them, in one code path for every op: one op is enough.
        ("malformed_empty.step", ["extract"], ["file is empty"]),
        ("malformed_png_renamed.step", ["glb"], ["not a STEP file", "ISO-10303-21", "PNG"]),
        ("malformed_obj_renamed.step", ["bbox"], ["not a STEP file", "ISO-10303-21"]),
        ("malformed_truncated.step", OPS, ["could not be parsed", "truncated"]),
        ("malformed_header_only_no_data.step", OPS, ["contains no geometry"]),
        # OCCT 7.9 loads it "successfully" as 3 shells with a +/-1e100 box and no solid; the parser's
        # complaints plus the missing solid give it away before the box check (the second guard).
        ("malformed_garbage_in_entity.stp", OPS, ["damaged", "0 of 1 solids", "Incorrect syntax"]),
    ],
)
def test_malformed_file_is_invalid_cad_file(
    job_dir: Path, pool: ThreadPoolExecutor, fixture: str, ops: list[str], fragments: list[str]
) -> None:
    errors = pool.map(lambda op: expect_error(op, FIXTURES / fixture, job_dir / f"bad.{fixture}.{op}"), ops)
    for op, error in zip(ops, errors, strict=True):
        assert error["code"] == "invalid_cad_file", op
        for fragment in [fixture, *fragments]:
            assert fragment in error["message"], (op, error)


@pytest.mark.parametrize("op", ["glb", "bbox"])
def test_external_references_have_no_geometry_to_show(job_dir: Path, op: str) -> None:
    error = expect_error(op, FIXTURES / "edge_external_refs_no_solids.stp", job_dir / f"ext.{op}")
    assert error == {
        "code": "invalid_cad_file",
        "message": "edge_external_refs_no_solids.stp: STEP file contains no geometry (no solids or faces)",
    }


def test_missing_file_is_not_found(job_dir: Path) -> None:
    error = expect_error("extract", job_dir / "nope.step", job_dir / "missing")
    assert error["code"] == "cad_file_not_found"


def test_leading_bom_and_whitespace_are_accepted(job_dir: Path) -> None:
    # OCCT's parser rejects a UTF-8 BOM; the job reads a copy without it.
    path = job_dir / "bom.step"
    path.write_bytes(b"\xef\xbb\xbf\r\n  " + (FIXTURES / "cq_box_export.step").read_bytes())
    code, response = run_job("bbox", {"step_path": str(path)}, job_dir / "bom")
    assert code == 0 and response is not None, response
    assert response["result"]["max"] == pytest.approx([0.01, 0.01, 0.01])


def test_step_extension_does_not_matter(job_dir: Path) -> None:
    path = job_dir / "cube.dat"
    shutil.copyfile(FIXTURES / "cq_box_export.step", path)
    code, response = run_job("bbox", {"step_path": str(path)}, job_dir / "ext")
    assert code == 0 and response is not None and response["ok"]


def crash_or_typed(code: int, response: dict[str, Any] | None) -> bool:
    """Outcomes the parent activity can handle: success, a typed error, or a crash signal."""
    typed = code == EXIT_TYPED_ERROR and response is not None and not response["ok"]
    success = code == 0 and response is not None and response["ok"]
    return typed or success or code in (-signal.SIGSEGV, -signal.SIGABRT, 139, 134)


def test_dangling_reference_observed_behaviour(job_dir: Path, pool: ThreadPoolExecutor) -> None:
    # OCCT 7.7.2 segfaulted here. Observed with OCP 7.9.3: it loads without crashing, but builds
    # only 2 of the solid's 29 faces and no solid (parser: "Unresolved Reference"); the job
    # rejects that half-success as a damaged file in every op.
    request = {
        "step_path": str(FIXTURES / "malformed_dangling_reference.stp"),
        "glb_path": str(job_dir / "dangling" / "out.glb"),
    }
    runs = pool.map(lambda op: run_job(op, request, job_dir / f"dangling.{op}"), OPS)
    for code, response in runs:
        assert crash_or_typed(code, response), (code, response)
        assert code == EXIT_TYPED_ERROR and response is not None
        assert response["error"]["code"] == "invalid_cad_file"
        assert "damaged, only 0 of 1 solids" in response["error"]["message"]
        assert "Unresolved Reference" in response["error"]["message"]


def test_ap242_file_that_crashed_occt77_observed_behaviour(step_result: StepResult, job_dir: Path) -> None:
    # OCCT 7.7.2 segfaulted in transfer. Observed with OCP 7.9.3: it loads. The file holds the
    # part twice (B-rep and TESSELLATED_SOLID); the job reads the B-rep only, so one solid.
    request = {"step_path": str(FIXTURES / "edge_ap242_one_hole_crashes_occt77.stp")}
    code, response = run_job("extract", request, job_dir / "onehole")
    assert crash_or_typed(code, response), (code, response)
    assert code == 0 and response is not None and response["ok"]
    objects = response["result"]["objects"]
    assert response["result"]["source_unit"] == "inch"
    assert [(o["path"], o["solid_count"]) for o in objects] == [
        ("One Hole", 1),
        ("One Hole/SOLID", 1),
        ("One Hole/COMPOUND", 0),
    ]
    assert objects[1]["color"] == "#0080ff"
    box = step_result("bbox", "edge_ap242_one_hole_crashes_occt77.stp")
    assert box["min"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert box["max"] == pytest.approx([0.0254, 0.0508, 0.0762], abs=1e-6)  # 1 x 2 x 3 inch
    glb = step_result("glb", "edge_ap242_one_hole_crashes_occt77.stp")
    assert "SOLID" in glb["node_names"] and glb["triangle_count"] > 0


def test_absurd_coordinates_are_rejected() -> None:
    # The second guard behind the damage check: garbage geometry OCCT still turns into faces.
    from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox
    from OCP.TCollection import TCollection_ExtendedString
    from OCP.TDocStd import TDocStd_Document
    from OCP.XCAFApp import XCAFApp_Application
    from OCP.XCAFDoc import XCAFDoc_DocumentTool

    from activities.jobs import step_job

    doc = TDocStd_Document(TCollection_ExtendedString("XmlXCAF"))
    XCAFApp_Application.GetApplication_s().InitDocument(doc)
    label = XCAFDoc_DocumentTool.ShapeTool_s(doc.Main()).AddShape(BRepPrimAPI_MakeBox(1e9, 1.0, 1.0).Shape())
    loaded = step_job._Loaded(doc, [label], 0.001, "mm")
    with pytest.raises(ModuleError) as caught:
        step_job._require_geometry(loaded, "huge.step")
    assert caught.value.code == "invalid_cad_file"
    assert "coordinates beyond" in caught.value.message
