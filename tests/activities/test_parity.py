"""The parity diff on real artifacts: OCP's GLB, Blender's stills, turntables and .blend files."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from activities.artifacts import ArtifactRef, LocalArtifactStore
from activities.cad import (
    CadActivities,
    ComputeBboxInput,
    ExportGlbInput,
    ExportGlbParams,
    ExtractObjectsInput,
    ResolveStepPathInput,
)
from activities.child_process import ChildJobRunner
from activities.module import module_spec
from activities.parity import (
    CompareInput,
    CompareOutput,
    EffectiveParams,
    ParityActivities,
    ParitySide,
    ParityThresholds,
    RunFailure,
    glb_summary,
)
from activities.render import (
    TEMPLATES,
    BlenderStillInput,
    BlenderStillParams,
    BlenderTurntableInput,
    BlenderTurntableParams,
    ExportBlendInput,
    ExportBlendParams,
    RenderActivities,
    ThumbnailInput,
)
from conftest import STEP_FIXTURES
from core.vocabulary import ArtifactKind
from legacy_adapter.pipeline_plan import legacy_plan
from registry.catalog import default_catalog

pytestmark = [pytest.mark.blender, pytest.mark.occt]

SMALL = {"width": 64, "height": 48, "samples": 4}
TURNTABLE = {**SMALL, "frame_count": 4, "fps": 12}
TEMPLATE_CHANGE = (
    "render.resolve_template.template: legacy studio_grey (module_default), "
    "graph studio_white (profile_override)"
)


@dataclass
class Produced:
    """Real artifacts of one STEP file, made once for the module."""

    store: LocalArtifactStore
    step: ArtifactRef
    glb: ArtifactRef
    coarse_glb: ArtifactRef
    objects: list[dict[str, Any]]
    bbox: dict[str, Any]
    still_grey: ArtifactRef
    still_grey_again: ArtifactRef
    still_white: ArtifactRef
    thumbnail_grey: ArtifactRef
    turntable: ArtifactRef
    turntable_longer: ArtifactRef
    blend_grey: ArtifactRef
    blend_white: ArtifactRef


@pytest.fixture(scope="module")
async def produced(tmp_path_factory: pytest.TempPathFactory) -> Produced:
    """The intake of red_cube_blue_cylinder.step, then tiny renders with two templates."""
    store = LocalArtifactStore(tmp_path_factory.mktemp("parity") / "store")
    jobs = ChildJobRunner()
    cad = CadActivities(store, jobs, (STEP_FIXTURES,))
    step = (
        await cad.resolve_step_path(
            ResolveStepPathInput(step_path=str(STEP_FIXTURES / "red_cube_blue_cylinder.step"))
        )
    ).step_file
    coarse = ExportGlbParams(relative_deflection=0.05, angular_deflection_rad=1.2)
    glb, coarse_glb, objects, bbox = await asyncio.gather(
        cad.export_glb(ExportGlbInput(step_file=step)),
        cad.export_glb(ExportGlbInput(step_file=step, params=coarse)),
        cad.extract_objects(ExtractObjectsInput(step_file=step)),
        cad.compute_bbox(ComputeBboxInput(step_file=step)),
    )
    render = RenderActivities(store, jobs)
    scene = {"glb": glb.glb, "bbox": bbox.bbox}
    grey, white = TEMPLATES["studio_grey"], TEMPLATES["studio_white"]

    def still(template: Any) -> Any:
        return render.blender_still(
            BlenderStillInput(**scene, render_template=template, params=BlenderStillParams(**SMALL))
        )

    def turntable(frames: int) -> Any:
        params = BlenderTurntableParams(**{**TURNTABLE, "frame_count": frames})
        return render.blender_turntable(BlenderTurntableInput(**scene, render_template=grey, params=params))

    def blend(template: Any) -> Any:
        return render.export_blend(
            ExportBlendInput(**scene, render_template=template, params=ExportBlendParams(**SMALL))
        )

    # Two at a time: the machine is shared.
    still_grey, still_grey_again = await asyncio.gather(still(grey), still(grey))
    still_white, short = await asyncio.gather(still(white), turntable(4))
    longer, blend_grey = await asyncio.gather(turntable(6), blend(grey))
    blend_white = await blend(white)
    thumbnail = await render.thumbnail(ThumbnailInput(still=still_grey.still))
    return Produced(
        store=store,
        step=step,
        glb=glb.glb,
        coarse_glb=coarse_glb.glb,
        objects=[item.model_dump() for item in objects.objects],
        bbox=bbox.bbox.model_dump(),
        still_grey=still_grey.still,
        still_grey_again=still_grey_again.still,
        still_white=still_white.still,
        thumbnail_grey=thumbnail.thumbnail,
        turntable=short.turntable,
        turntable_longer=longer.turntable,
        blend_grey=blend_grey.blend,
        blend_white=blend_white.blend,
    )


def effective(kind: ArtifactKind, overrides: dict[str, Any]) -> dict[str, EffectiveParams]:
    """Effective parameters with provenance, as the legacy chain resolves them for this kind."""
    plan = legacy_plan(kind, overrides, default_catalog())
    return {
        key: EffectiveParams(params=call.params, param_sources=call.param_sources)
        for key, call in plan.steps.items()
    }


def side(
    produced: Produced,
    *artifacts: ArtifactRef,
    kind: ArtifactKind = ArtifactKind.still_image,
    **overrides: Any,
) -> ParitySide:
    """One run: its artifacts, the intake's manifest and box, and the tiny render settings the
    fixture used (as profile overrides) plus the given ones."""
    settings = TURNTABLE if kind == ArtifactKind.turntable_video else SMALL
    return ParitySide(
        artifacts=list(artifacts),
        objects=produced.objects,
        bbox=produced.bbox,
        effective=effective(kind, {**settings, **overrides}),
    )


async def compare(produced: Produced, legacy: ParitySide, graph: ParitySide, **fields: Any) -> CompareOutput:
    parity = ParityActivities(produced.store, ChildJobRunner())
    return await parity.compare(CompareInput(legacy=legacy, graph=graph, **fields))


def by_artifact(output: CompareOutput) -> dict[str, dict[str, Any]]:
    """Each comparison's metrics by name, keyed by artifact."""
    return {c.artifact: {m.name: m for m in c.metrics} for c in output.report.comparisons}


def panels(picture: Path) -> tuple[dict[str, Any], list[list[np.ndarray]]]:
    """The picture's layout and, per row, its legacy, graph and difference panels (no labels)."""
    with Image.open(picture) as image:
        layout = json.loads(image.text["prodgraph:layout"])
        pixels = np.asarray(image.convert("RGB"))
    width, height, label, gap = (layout[k] for k in ("panel_width", "panel_height", "label_height", "gap"))
    assert pixels.shape == (len(layout["rows"]) * (label + height + gap) - gap, 3 * width + 2 * gap, 3)
    rows = []
    for row in range(len(layout["rows"])):
        top = row * (label + height + gap) + label
        rows.append(
            [pixels[top : top + height, c * (width + gap) : c * (width + gap) + width] for c in range(3)]
        )
    return layout, rows


def labels_drawn(picture: Path) -> list[bool]:
    """Whether each panel's label strip (first row) holds dark text on white."""
    with Image.open(picture) as image:
        layout = json.loads(image.text["prodgraph:layout"])
        pixels = np.asarray(image.convert("L"))
    strip = pixels[: layout["label_height"]]
    width, gap = layout["panel_width"], layout["gap"]
    return [bool((strip[:, c * (width + gap) : c * (width + gap) + width] < 100).any()) for c in range(3)]


# --- agreement -----------------------------------------------------------------------------


def with_noise(store: LocalArtifactStore, ref: ArtifactRef, folder: Path) -> ArtifactRef:
    """The image with sampling-level noise (each channel moved by up to 3 levels)."""
    with Image.open(store.path_of(ref)) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    noise = np.random.default_rng(7).integers(-3, 4, size=pixels.shape)
    path = folder / "noisy.png"
    Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB").save(path)
    return store.put_file(path, role=ref.role)


async def test_the_same_render_twice_is_identical_and_noise_within_thresholds_equivalent(
    produced: Produced, tmp_path: Path
):
    noisy_thumbnail = with_noise(produced.store, produced.thumbnail_grey, tmp_path)
    legacy = side(produced, produced.step, produced.glb, produced.still_grey, produced.thumbnail_grey)
    graph = side(produced, produced.step, produced.glb, produced.still_grey_again, noisy_thumbnail)

    output = await compare(produced, legacy, graph)

    report = output.report
    assert report.verdict == "equivalent", report.differences
    assert report.differences == [] and report.parameter_changes == []
    assert [c.artifact for c in report.comparisons] == [
        "objects",
        "bbox",
        "step_file",
        "glb",
        "still",
        "thumbnail",
    ]
    outcomes = {c.artifact: c.outcome for c in report.comparisons}
    assert outcomes == {
        "objects": "identical",
        "bbox": "identical",
        "step_file": "identical",
        "glb": "identical",
        "still": "identical",
        "thumbnail": "equivalent",
    }
    metrics = by_artifact(output)
    assert metrics["glb"]["triangles"].legacy > 100
    assert metrics["still"]["size"].legacy == [64, 48] and metrics["still"]["psnr"].value is None
    thumbnail = metrics["thumbnail"]
    assert 40 < thumbnail["psnr"].value < 60 and thumbnail["changed_pixels"].value == 0
    assert 0.9 < thumbnail["ssim"].value < 1
    # The stored JSON is the report; one picture per image artifact.
    stored = json.loads(produced.store.path_of(output.report_file).read_text())
    assert output.report_file.role == "parity_report" and stored["verdict"] == "equivalent"
    assert [p.role for p in output.pictures] == ["parity_picture", "parity_picture"]
    still = next(c for c in report.comparisons if c.artifact == "still")
    assert still.picture == output.pictures[0]
    picture = produced.store.path_of(output.pictures[0])
    layout, [[left, right, heat]] = panels(picture)
    assert layout["panels"] == ["legacy", "graph", "difference"]
    assert labels_drawn(picture) == [True, True, True]
    assert np.array_equal(left, right) and not heat.any()
    _, [[_, _, thumbnail_heat]] = panels(produced.store.path_of(output.pictures[1]))
    assert thumbnail_heat.any(axis=-1).mean() > 0.5, "the noise shows in the heat-map"


async def test_a_thumbnail_the_graph_does_not_make_is_a_difference(produced: Produced):
    legacy = side(produced, produced.glb, produced.thumbnail_grey)
    graph = side(produced, produced.glb)

    output = await compare(produced, legacy, graph)

    assert output.report.verdict == "different"
    [difference] = output.report.differences
    assert (difference.artifact, difference.metric, difference.legacy, difference.graph) == (
        "thumbnail",
        "present",
        True,
        False,
    )


# --- differences on purpose ----------------------------------------------------------------


async def test_a_white_template_against_grey_is_different_and_names_the_template(produced: Produced):
    legacy = side(produced, produced.glb, produced.still_grey)
    graph = side(produced, produced.glb, produced.still_white, template="studio_white")

    output = await compare(produced, legacy, graph)

    report = output.report
    assert report.verdict == "different"
    differences = {d.metric: d for d in report.differences if d.artifact == "still"}
    assert {"background", "psnr", "changed_pixels"} <= set(differences)
    background = differences["background"]
    assert (background.legacy, background.graph) != (None, None)
    assert background.explained_by == [TEMPLATE_CHANGE]
    assert TEMPLATE_CHANGE in differences["psnr"].explained_by
    # Nothing that shaped the GLB changed, and it is identical.
    assert by_artifact(output)["glb"]["triangles"].outcome == "identical"
    _, [[left, right, heat]] = panels(produced.store.path_of(output.pictures[0]))
    corner = (slice(0, 4), slice(0, 4))
    assert left[corner].mean() < right[corner].mean(), "the legacy backdrop is the darker grey"
    assert heat[corner].any() and heat.any(axis=-1).mean() > 0.5


async def test_a_coarser_tessellation_differs_in_triangle_count_explained_by_the_deflection(
    produced: Produced,
):
    legacy = side(produced, produced.glb)
    graph = side(produced, produced.coarse_glb, relative_deflection=0.05, angular_deflection_rad=1.2)

    output = await compare(produced, legacy, graph)

    assert output.report.verdict == "different"
    [triangles] = output.report.differences
    assert triangles.metric == "triangles" and triangles.graph < triangles.legacy
    assert glb_summary(produced.store.path_of(produced.coarse_glb))["triangles"] == triangles.graph
    assert triangles.explained_by == [
        "cad.export_glb.angular_deflection_rad: legacy 0.5 (module_default), graph 1.2 (profile_override)",
        "cad.export_glb.relative_deflection: legacy 0.001 (module_default), graph 0.05 (profile_override)",
    ]
    metrics = by_artifact(output)["glb"]
    assert metrics["nodes"].outcome == metrics["materials"].outcome == "identical"


async def test_a_looser_triangle_threshold_makes_the_coarse_mesh_equivalent(produced: Produced):
    output = await compare(
        produced,
        side(produced, produced.glb),
        side(produced, produced.coarse_glb),
        thresholds=ParityThresholds(triangles_rel=0.99),
    )

    assert output.report.verdict == "equivalent" and output.report.differences == []


# --- turntables and .blend files -----------------------------------------------------------


async def test_turntables_compare_frame_count_fps_duration_and_sampled_frames(produced: Produced):
    # The same turntable on both sides, then a longer one on the graph side.
    turntables = (produced.turntable, produced.turntable)
    legacy = side(produced, *turntables, kind=ArtifactKind.turntable_video)
    graph = side(
        produced,
        produced.turntable,
        produced.turntable_longer,
        kind=ArtifactKind.turntable_video,
        frame_count=6,
    )

    output = await compare(produced, legacy, graph)

    same, longer = output.report.comparisons[2:]
    assert (same.artifact, same.outcome, longer.artifact, longer.outcome) == (
        "turntable",
        "identical",
        "turntable#2",
        "different",
    )
    metrics = by_artifact(output)["turntable"]
    assert (metrics["frame_count"].legacy, metrics["fps"].legacy, metrics["duration"].legacy) == (
        4,
        12.0,
        4 / 12,
    )
    assert {"frame 1: psnr", "frame 2: ssim", "frame 4: changed_pixels"} <= set(metrics)
    layout, rows = panels(produced.store.path_of(same.picture))
    assert layout["rows"] == ["turntable frame 1", "turntable frame 2", "turntable frame 4"]
    assert len(rows) == 3 and all(not heat.any() for _, _, heat in rows)
    assert labels_drawn(produced.store.path_of(same.picture)) == [True, True, True]
    differences = {d.metric: d for d in output.report.differences if d.artifact == "turntable#2"}
    assert (differences["frame_count"].legacy, differences["frame_count"].graph) == (4, 6)
    assert differences["frame_count"].explained_by == [
        "render.blender_turntable.frame_count: legacy 4 (profile_override), graph 6 (profile_override)"
    ]
    assert "duration" in differences


async def test_blend_files_compare_objects_materials_and_render_settings(produced: Produced):
    legacy = side(produced, produced.blend_grey, produced.blend_grey, kind=ArtifactKind.production_blend)
    graph = side(
        produced,
        produced.blend_grey,
        produced.blend_white,
        kind=ArtifactKind.production_blend,
        template="studio_white",
    )

    output = await compare(produced, legacy, graph)

    metrics = by_artifact(output)
    same, white = metrics["blend"], metrics["blend#2"]
    assert all(metric.outcome == "identical" for metric in same.values())
    assert same["render.engine"].legacy == "CYCLES" and same["triangles"].legacy > 100
    assert same["render.resolution"].legacy == [64, 48, 100]
    assert any(name == "prodgraph_camera" for name, _, _ in same["objects"].legacy)
    assert output.report.verdict == "different"
    differences = {d.metric: d for d in output.report.differences if d.artifact == "blend#2"}
    assert set(differences) == {"render.world_color"}
    assert differences["render.world_color"].explained_by == [TEMPLATE_CHANGE]
    assert white["objects"].outcome == white["materials"].outcome == "identical"


# --- the graph side failed ----------------------------------------------------------------


async def test_a_failed_graph_run_is_shadow_failed_and_says_why(produced: Produced):
    failure = RunFailure(code="render_failed", message="engine eevee failed on this machine", node_id="still")

    output = await compare(produced, side(produced, produced.still_grey), ParitySide(), graph_failure=failure)

    assert output.report.verdict == "shadow_failed"
    assert output.report.graph_failure == failure
    assert "engine eevee failed" in output.report.reason and output.pictures == []
    stored = json.loads(produced.store.path_of(output.report_file).read_text())
    assert stored["verdict"] == "shadow_failed" and stored["graph_failure"]["code"] == "render_failed"


# --- manifests and boxes (no files) --------------------------------------------------------


async def test_object_colours_and_a_shifted_box_are_compared_within_tolerance(produced: Produced):
    recoloured = [
        dict(item, color="#00ff00") if item["name"] == "red_cube" else item for item in produced.objects
    ]
    nudged = {**produced.bbox, "max": [value + 1e-7 for value in produced.bbox["max"]]}
    moved = {**produced.bbox, "max": [value + 1e-3 for value in produced.bbox["max"]]}
    legacy = side(produced)

    graph = side(produced).model_dump()
    nudge = await compare(produced, legacy, ParitySide.model_validate({**graph, "bbox": nudged}))
    move = await compare(
        produced, legacy, ParitySide.model_validate({**graph, "bbox": moved, "objects": recoloured})
    )

    assert nudge.report.verdict == "equivalent", nudge.report.differences
    differences = {(d.artifact, d.metric): d for d in move.report.differences}
    assert set(differences) == {("objects", "colors"), ("bbox", "corners")}
    colours = differences["objects", "colors"]
    assert colours.legacy["red_cube"] == "#dd5228" and colours.graph["red_cube"] == "#00ff00"


# --- registration --------------------------------------------------------------------------


async def test_the_worker_runs_parity_compare_on_the_default_queue_outside_the_palette(session, settings):
    from prodgraph.workers import activity_implementations

    specs = {module_spec(fn).key: module_spec(fn) for fn in activity_implementations(settings)}
    assert specs["parity.compare"].task_queue == "default" and not specs["parity.compare"].local
    assert "parity.compare" not in default_catalog().specs
    assert "parity.compare" not in default_catalog().families["order_line"].palette
    # `session` built and started this settings' workers: the SDK accepted every activity.
    assert session.settings is settings
