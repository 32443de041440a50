"""The parity job's image metrics and pictures, explanations and calibration, without Blender."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from temporalio.testing import ActivityEnvironment

from activities.artifacts import LocalArtifactStore
from activities.child_process import ChildJobRunner
from activities.jobs.parity_job import draw_picture, heat_map, measure_pair, sampled_frames
from activities.parity import (
    ArtifactComparison,
    CompareInput,
    EffectiveParams,
    Metric,
    ParityActivities,
    ParityReport,
    ParitySide,
    ParityThresholds,
    calibrated_thresholds,
    explain,
    parameter_changes,
)

GREY = (190, 194, 198)


def grey(size: tuple[int, int] = (80, 60)) -> Image.Image:
    return Image.new("RGB", size, GREY)


def with_square(image: Image.Image, box: tuple[int, int, int, int], colour=(220, 30, 30)) -> Image.Image:
    changed = image.copy()
    changed.paste(colour, box)
    return changed


def picture_panels(path: Path) -> tuple[dict, list[np.ndarray]]:
    with Image.open(path) as image:
        layout = json.loads(image.text["prodgraph:layout"])
        pixels = np.asarray(image.convert("RGB"))
    width, height, label, gap = (layout[k] for k in ("panel_width", "panel_height", "label_height", "gap"))
    assert pixels.shape == (label + height, 3 * width + 2 * gap, 3)
    return layout, [pixels[label:, c * (width + gap) : c * (width + gap) + width] for c in range(3)]


def test_the_heat_map_lights_exactly_where_the_images_differ(tmp_path: Path):
    legacy = grey()
    graph = with_square(legacy, (20, 10, 30, 20))  # x 20..29, y 10..19

    measured, shown, delta = measure_pair(legacy, graph, pixel_delta=32)
    draw_picture([("still", legacy, shown, heat_map(delta, 32))], tmp_path / "p.png", 512, 32, "still")

    assert measured["identical"] is False and measured["changed_pixels"] == pytest.approx(100 / 4800)
    assert measured["max_delta"] == 198 - 30 and 0 < measured["psnr"] < 40
    assert measured["legacy_background"] == measured["graph_background"] == "#bec2c6"
    layout, (left, right, heat) = picture_panels(tmp_path / "p.png")
    scale = layout["panel_width"] // 80  # small images are enlarged so the labels fit
    assert layout["panel_width"] == 80 * scale >= 96 and layout["panel_height"] == 60 * scale
    lit = heat.any(axis=-1)
    square = np.zeros_like(lit)
    square[10 * scale : 20 * scale, 20 * scale : 30 * scale] = True
    assert np.array_equal(lit, square)
    assert tuple(left[0, 0]) == GREY and tuple(right[15 * scale, 25 * scale]) == (220, 30, 30)


def test_the_smallest_difference_shows_in_the_heat_map_but_does_not_count_as_changed():
    legacy = grey()
    graph = with_square(legacy, (0, 0, 80, 60), tuple(channel + 1 for channel in GREY))

    measured, _, delta = measure_pair(legacy, graph, pixel_delta=32)

    assert measured["changed_pixels"] == 0 and measured["background_delta"] == 1
    assert np.asarray(heat_map(delta, 32)).any(axis=-1).all()


def test_images_of_different_sizes_report_their_sizes_and_are_compared_resized():
    measured, shown, delta = measure_pair(grey((80, 60)), grey((40, 30)), pixel_delta=32)

    assert (measured["legacy_size"], measured["graph_size"], measured["resized"]) == (
        [80, 60],
        [40, 30],
        True,
    )
    assert shown.size == (80, 60) and delta.shape == (60, 80)
    assert measured["identical"] is False and measured["changed_pixels"] == 0


def test_a_transparent_graph_image_against_an_opaque_one_differs_in_mode():
    legacy = grey()
    graph = Image.new("RGBA", (80, 60), (0, 0, 0, 0))

    measured, _, _ = measure_pair(legacy, graph, pixel_delta=32)

    assert (measured["legacy_mode"], measured["graph_mode"]) == ("RGB", "RGBA")
    assert measured["graph_background"] == "#00000000" and measured["changed_pixels"] == 1.0


@pytest.mark.parametrize(
    ("count", "wanted", "frames"),
    [(36, 3, [1, 18, 36]), (4, 3, [1, 2, 4]), (2, 5, [1, 2]), (10, 1, [1]), (0, 3, [])],
)
def test_sampled_frames_are_first_last_and_evenly_between(count, wanted, frames):
    assert sampled_frames(count, wanted) == frames


def test_each_metric_is_explained_only_by_the_parameters_that_can_cause_it():
    legacy = {
        "render.resolve_template": EffectiveParams(
            params={"template": "studio_grey"}, param_sources={"template": "module_default"}
        ),
        "render.thumbnail": EffectiveParams(
            params={"max_size": 256}, param_sources={"max_size": "module_default"}
        ),
    }
    graph = {
        "render.resolve_template": EffectiveParams(
            params={"template": "studio_white"}, param_sources={"template": "node_param"}
        ),
        "render.thumbnail": EffectiveParams(
            params={"max_size": 128}, param_sources={"max_size": "invocation"}
        ),
        "materials.auto_populate": EffectiveParams(params={"use_cad_colors": True}),
    }
    changes = parameter_changes(legacy, graph)

    assert [change.text for change in changes] == [
        "materials.auto_populate.use_cad_colors: legacy (module not run), graph True (module_default)",
        "render.resolve_template.template: legacy studio_grey (module_default), "
        "graph studio_white (node_param)",
        "render.thumbnail.max_size: legacy 256 (module_default), graph 128 (invocation)",
    ]
    assert explain("thumbnail", "size", changes) == [changes[2].text]
    assert explain("still", "background", changes) == [changes[1].text]
    assert explain("still", "psnr", changes) == [changes[0].text, changes[1].text]
    assert explain("glb", "triangles", changes) == []


def test_calibration_sets_thresholds_from_the_measured_noise_times_the_margin():
    metrics = [
        Metric(name="psnr", value=38.0, threshold=30, outcome="equivalent"),
        Metric(name="ssim", value=0.945, threshold=0.9, outcome="equivalent"),
        Metric(name="changed_pixels", value=0.0024, threshold=0.01, outcome="equivalent"),
        Metric(name="size", legacy=[320, 240], graph=[320, 240], outcome="identical"),
    ]
    frames = [Metric(name="frame 18: psnr", value=35.0, threshold=30, outcome="equivalent")]
    noise = ParityReport(
        verdict="equivalent",
        reason="noise",
        comparisons=[
            ArtifactComparison(artifact="still", outcome="equivalent", metrics=metrics),
            ArtifactComparison(artifact="turntable", outcome="equivalent", metrics=frames),
        ],
        thresholds=ParityThresholds(),
    )

    thresholds = calibrated_thresholds(noise, margin=2.0)

    assert thresholds.psnr_min_db == pytest.approx(35.0 - 6.0206, abs=1e-3)
    assert thresholds.ssim_min == pytest.approx(0.89)
    assert thresholds.changed_pixels_max == pytest.approx(0.0048)
    # No noise was measured for these: the defaults stand.
    defaults = ParityThresholds()
    assert (thresholds.triangles_rel, thresholds.bbox_rel, thresholds.pixel_delta) == (
        defaults.triangles_rel,
        defaults.bbox_rel,
        defaults.pixel_delta,
    )


async def test_the_activity_runs_its_child_job_under_temporal_and_reports_an_unreadable_image(tmp_path: Path):
    store = LocalArtifactStore(tmp_path / "store")
    legacy_still, graph_still = grey(), with_square(grey(), (37, 27, 43, 33))
    legacy_still.save(tmp_path / "legacy.png")
    graph_still.save(tmp_path / "graph.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but nothing more")
    legacy = [store.put_file(tmp_path / "legacy.png", role=role) for role in ("still", "thumbnail")]
    graph = [
        store.put_file(tmp_path / "graph.png", role="still"),
        store.put_file(tmp_path / "broken.png", role="thumbnail"),
    ]
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, start_to_close_timeout=timedelta(seconds=120))
    heartbeats: list[str] = []
    environment.on_heartbeat = lambda *details: heartbeats.extend(map(str, details))
    parity = ParityActivities(store, ChildJobRunner(heartbeat_every_s=0.2))

    output = await environment.run(
        parity.compare, CompareInput(legacy=ParitySide(artifacts=legacy), graph=ParitySide(artifacts=graph))
    )

    report = output.report
    assert report.verdict == "different"
    differences = {(d.artifact, d.metric): d for d in report.differences}
    assert (differences["thumbnail", "readable"].legacy, differences["thumbnail", "readable"].graph) == (
        True,
        False,
    )
    assert ("still", "changed_pixels") not in differences  # 36 of 4800 pixels: within 1 %
    assert {("still", "psnr"), ("still", "ssim")} & set(differences) and (
        "still",
        "background",
    ) not in differences
    [picture] = output.pictures
    _, (_, _, heat) = picture_panels(store.path_of(picture))
    assert heat.any() and not heat[-10:, -10:].any()
    assert any("images" in beat for beat in heartbeats), heartbeats
