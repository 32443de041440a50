"""Parity child job: measure image pairs and draw their pictures; read .blend files and videos."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin

from activities.jobs.protocol import progress, run_job
from activities.parity import BlenderProbeRequest, ImagesJobRequest, MovieProbe

LABEL_HEIGHT = 16
GAP = 4
#: Panels narrower than this are enlarged (nearest neighbour) so their labels fit.
MIN_PANEL_WIDTH = 96
PANELS = ("legacy", "graph", "difference")


# --- images --------------------------------------------------------------------------------


def measure_images(request: ImagesJobRequest) -> dict[str, Any]:
    """Measure every pair and draw one picture per artifact: legacy, graph, heat-map per row."""
    pairs: dict[str, dict[str, Any]] = {}
    pictures: dict[str, str] = {}
    for picture in request.pictures:
        rows = []
        for pair in picture.pairs:
            progress(f"comparing {pair.key}")
            legacy, graph = _load(pair.legacy_path), _load(pair.graph_path)
            if legacy is None or graph is None:
                # Not an image at all: a difference to report, not a reason to fail the diff.
                pairs[pair.key] = {"unreadable": True, "readable": [legacy is not None, graph is not None]}
                continue
            measured, shown_graph, delta = measure_pair(legacy, graph, request.pixel_delta)
            pairs[pair.key] = measured
            rows.append((pair.key, legacy, shown_graph, heat_map(delta, request.pixel_delta)))
        if rows:
            output = Path(picture.output_path)
            draw_picture(rows, output, request.panel_max_px, request.pixel_delta, picture.artifact)
            pictures[picture.artifact] = picture.output_path
    return {"pairs": pairs, "pictures": pictures}


def _load(path: str) -> Image.Image | None:
    """The image, or None when the file is no image PIL can read."""
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, Image.DecompressionBombError):
        return None


def measure_pair(
    legacy: Image.Image, graph: Image.Image, pixel_delta: int
) -> tuple[dict[str, Any], Image.Image, np.ndarray]:
    """Metrics of a pair, the graph image as compared (resized to the legacy size if it differs)
    and the per-pixel largest channel difference."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    mode = legacy.mode if legacy.mode == graph.mode and legacy.mode in ("L", "RGB", "RGBA") else "RGBA"
    left = legacy.convert(mode)
    right = graph.convert(mode)
    if right.size != left.size:
        right = right.resize(left.size, Image.Resampling.LANCZOS)
    a, b = np.asarray(left), np.asarray(right)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.uint8)
    delta = diff.max(axis=2) if diff.ndim == 3 else diff
    identical = legacy.size == graph.size and legacy.mode == graph.mode and not delta.any()
    background_legacy, background_graph = _background(a), _background(b)
    side = min(left.size)
    measured = {
        "legacy_size": list(legacy.size),
        "graph_size": list(graph.size),
        "legacy_mode": legacy.mode,
        "graph_mode": graph.mode,
        "resized": legacy.size != graph.size,
        "identical": bool(identical),
        # SSIM of the luminance: the original definition, and a third of the memory of colour.
        "psnr": None if not diff.any() else float(peak_signal_noise_ratio(a, b, data_range=255)),
        "ssim": 1.0
        if not diff.any()
        else float(
            structural_similarity(
                np.asarray(left.convert("L")),
                np.asarray(right.convert("L")),
                data_range=255,
                win_size=min(7, side if side % 2 else side - 1),
            )
        ),
        "changed_pixels": float((delta > pixel_delta).mean()),
        "max_delta": int(delta.max()),
        "legacy_background": _hex(background_legacy),
        "graph_background": _hex(background_graph),
        "background_delta": int(np.abs(background_legacy - background_graph).max()),
    }
    return measured, right, delta


def _background(pixels: np.ndarray) -> np.ndarray:
    """Mean colour of the four corner patches: the backdrop, where the framing leaves it bare."""
    height, width = pixels.shape[:2]
    size = max(1, min(height, width) // 32)
    corners = [
        pixels[:size, :size],
        pixels[:size, -size:],
        pixels[-size:, :size],
        pixels[-size:, -size:],
    ]
    stacked = np.concatenate(
        [corner.reshape(-1, pixels.shape[2] if pixels.ndim == 3 else 1) for corner in corners]
    )
    return np.rint(stacked.mean(axis=0)).astype(int)


def _hex(colour: np.ndarray) -> str:
    return "#" + "".join(f"{int(channel):02x}" for channel in colour)


def heat_map(delta: np.ndarray, pixel_delta: int) -> Image.Image:
    """Black where the pixels match, then red, yellow and white as the difference grows; white
    from twice the per-pixel threshold. Any difference at all shows."""
    scale = max(2 * pixel_delta, 1)
    t = np.clip(delta.astype(np.float32) / scale, 0, 1) * 3
    rgb = np.stack([np.clip(t, 0, 1), np.clip(t - 1, 0, 1), np.clip(t - 2, 0, 1)], axis=-1)
    pixels = np.ceil(rgb * 255).astype(np.uint8)  # ceil: the smallest difference is not black
    return Image.fromarray(pixels, "RGB")


def draw_picture(
    rows: list[tuple[str, Image.Image, Image.Image, Image.Image]],
    output: Path,
    panel_max_px: int,
    pixel_delta: int,
    artifact: str,
) -> None:
    """Rows of three labelled panels (legacy, graph, difference), written as PNG with its layout
    in the PNG text chunk `prodgraph:layout`."""
    width, height = rows[0][1].size
    scale = min(1.0, panel_max_px / max(width, height))
    if width * scale < MIN_PANEL_WIDTH:
        scale = math.ceil(MIN_PANEL_WIDTH / width)
    panel = (max(1, round(width * scale)), max(1, round(height * scale)))
    row_height = LABEL_HEIGHT + panel[1]
    canvas = Image.new(
        "RGB", (3 * panel[0] + 2 * GAP, len(rows) * row_height + (len(rows) - 1) * GAP), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for index, (key, legacy, graph, heat) in enumerate(rows):
        top = index * (row_height + GAP)
        prefix = f"{key[len(artifact) + 1 :]} " if key != artifact else ""
        labels = (f"{prefix}legacy", f"{prefix}graph", f"{prefix}difference >{pixel_delta}")
        for column, (image, label) in enumerate(zip((legacy, graph, heat), labels, strict=True)):
            left = column * (panel[0] + GAP)
            resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
            shown = image.convert("RGBA").resize(panel, resample)
            backdrop = Image.new("RGBA", panel, (255, 255, 255, 255))
            canvas.paste(Image.alpha_composite(backdrop, shown).convert("RGB"), (left, top + LABEL_HEIGHT))
            draw.text((left + 3, top + 2), label, fill="black")
    layout = {
        "panels": list(PANELS),
        "panel_width": panel[0],
        "panel_height": panel[1],
        "label_height": LABEL_HEIGHT,
        "gap": GAP,
        "rows": [key for key, *_ in rows],
    }
    info = PngImagePlugin.PngInfo()
    info.add_text("prodgraph:layout", json.dumps(layout))
    output.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(output, format="PNG", pnginfo=info)


# --- Blender: .blend files and videos ------------------------------------------------------


def probe_with_blender(request: BlenderProbeRequest) -> dict[str, Any]:
    """Summaries of .blend files, and each video's frame count, fps, size and sampled frames."""
    result: dict[str, Any] = {}
    for blend in request.blends:
        progress(f"reading {blend.key}")
        result[blend.key] = blend_summary(blend.path)
    for movie in request.movies:
        progress(f"sampling {movie.key}")
        result[movie.key] = movie_summary(movie)
    return result


def blend_summary(path: str) -> dict[str, Any]:
    """Objects, triangle count, materials and render settings of a .blend file."""
    import bpy

    bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
    scene = bpy.context.scene
    objects = sorted(
        [obj.name, obj.type, [slot.material.name for slot in obj.material_slots if slot.material]]
        for obj in scene.objects
    )
    triangles = 0
    for obj in scene.objects:
        if obj.type == "MESH":
            obj.data.calc_loop_triangles()
            triangles += len(obj.data.loop_triangles)
    materials = {material.name: _material(material) for material in bpy.data.materials if material.users}
    return {
        "objects": objects,
        "triangles": triangles,
        "materials": materials,
        "render": _render_settings(scene),
    }


def _material(material: Any) -> dict[str, Any]:
    bsdf = material.node_tree.nodes.get("Principled BSDF") if material.node_tree else None
    if bsdf is None:
        return {"base_color": _round(material.diffuse_color)}
    return {
        "base_color": _round(bsdf.inputs["Base Color"].default_value),
        "metallic": _round(bsdf.inputs["Metallic"].default_value),
        "roughness": _round(bsdf.inputs["Roughness"].default_value),
    }


def _render_settings(scene: Any) -> dict[str, Any]:
    render = scene.render
    engine = render.engine
    samples = (
        scene.cycles.samples
        if engine == "CYCLES"
        else scene.eevee.taa_render_samples
        if engine.startswith("BLENDER_EEVEE")
        else None
    )
    camera = scene.camera
    world = scene.world
    background = world.node_tree.nodes.get("Background") if world and world.node_tree else None
    return {
        "engine": engine,
        "resolution": [render.resolution_x, render.resolution_y, render.resolution_percentage],
        "samples": samples,
        "denoise": bool(scene.cycles.use_denoising) if engine == "CYCLES" else None,
        "film_transparent": bool(render.film_transparent),
        "view_transform": scene.view_settings.view_transform,
        "image_format": [render.image_settings.file_format, render.image_settings.color_mode],
        "world_color": _round(background.inputs["Color"].default_value) if background else None,
        "camera_lens": _round(camera.data.lens) if camera else None,
        "camera_location": _round(camera.matrix_world.translation) if camera else None,
        "frames": [scene.frame_start, scene.frame_end, render.fps],
    }


def movie_summary(movie: MovieProbe) -> dict[str, Any]:
    """Frame count, fps, duration and size of a video, and its sampled frames as PNG files,
    decoded by Blender's own FFmpeg (the sequencer renders the movie strip at each frame)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    clip = bpy.data.movieclips.load(movie.path)
    count, fps, (width, height) = clip.frame_duration, float(clip.fps), tuple(clip.size)
    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    editor.strips.new_movie(name="movie", filepath=movie.path, channel=1, frame_start=1)
    scene.frame_start, scene.frame_end = 1, max(count, 1)
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.use_file_extension = False
    scene.view_settings.view_transform = "Standard"
    frames: dict[str, str] = {}
    for frame in sampled_frames(count, movie.sampled_frames):
        scene.frame_set(frame)
        scene.render.filepath = str(Path(movie.output_dir) / f"frame-{frame:05d}.png")
        bpy.ops.render.render(write_still=True)
        frames[str(frame)] = scene.render.filepath
    return {
        "frame_count": count,
        "fps": fps,
        "duration": count / fps if fps else 0.0,
        "size": [width, height],
        "frames": frames,
    }


def sampled_frames(count: int, wanted: int) -> list[int]:
    """First, last and evenly between: `wanted` frame numbers (1-based) of `count`."""
    if count < 1:
        return []
    if wanted <= 1 or count == 1:
        return [1]
    return sorted({round(1 + (count - 1) * index / (wanted - 1)) for index in range(wanted)})


def _round(value: Any, digits: int = 5) -> Any:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return round(float(value), digits)
    return [round(float(item), digits) for item in value]


if __name__ == "__main__":
    run_job(
        {
            "images": (measure_images, ImagesJobRequest),
            "blender": (probe_with_blender, BlenderProbeRequest),
        }
    )
