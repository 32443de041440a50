"""Blender child job: import a GLB, light and frame it, then render it or save it as .blend."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import bpy
from mathutils import Matrix, Vector

from activities.cad import BBox
from activities.jobs.protocol import progress, run_job
from activities.materials import Material
from activities.render import (
    BlenderJobRequest,
    BlendJobRequest,
    RenderSettings,
    StillJobRequest,
    TurntableJobRequest,
)
from core.errors import InvalidGlbError, RenderFailedError
from core.vocabulary import Engine, ImageFormat

#: Blender's ids for our engines and image formats.
ENGINES = {Engine.cycles: "CYCLES", Engine.eevee: "BLENDER_EEVEE", Engine.workbench: "BLENDER_WORKBENCH"}
IMAGE_FORMATS = {ImageFormat.png: "PNG", ImageFormat.jpeg: "JPEG"}
#: Camera direction as (azimuth from the front towards the right, elevation), in degrees.
CAMERA_PRESETS = {
    "front_three_quarter": (35.0, 25.0),
    "front": (0.0, 0.0),
    "top": (0.0, 90.0),
    "iso": (45.0, math.degrees(math.atan(1 / math.sqrt(2)))),
}
LENS_MM = 70.0
SENSOR_MM = 36.0
#: How much larger than the part the frame is (1.15: the part fills about 87 % of it).
FRAME_MARGIN = 1.15
#: Background grey, linear; it also lights the part softly from everywhere.
WORLD_GREY = 0.18
#: Target irradiance of the key light on the part, W/m².
KEY_IRRADIANCE = 1.8


@dataclass(frozen=True)
class Box:
    """An axis-aligned bounding box in Blender world coordinates (Z up, metres)."""

    min: Vector
    max: Vector

    @property
    def center(self) -> Vector:
        """Centre of the box."""
        return (self.min + self.max) / 2

    @property
    def radius(self) -> float:
        """Radius of the bounding sphere, never zero."""
        return max((self.max - self.min).length / 2, 1e-5)

    def corners(self) -> list[Vector]:
        """The eight corners."""
        lo, hi = self.min, self.max
        return [Vector((x, y, z)) for x in (lo.x, hi.x) for y in (lo.y, hi.y) for z in (lo.z, hi.z)]

    def swept_about_z(self) -> Box:
        """The box holding this one at every turn about the vertical axis through its centre."""
        half = (self.max - self.min) / 2
        reach = math.hypot(half.x, half.y)
        extent = Vector((reach, reach, half.z))
        return Box(self.center - extent, self.center + extent)


@dataclass(frozen=True)
class Imported:
    """The imported part: its mesh objects, its top-level objects and its box."""

    meshes: list[bpy.types.Object]
    roots: list[bpy.types.Object]
    box: Box


def render_still(request: StillJobRequest) -> dict[str, Any]:
    """Render one image of the part."""
    settings = request.settings
    scene, built = _build_scene(request, settings, turntable=False)
    output = Path(request.output_path)
    _set_image_output(scene, settings.image_format, settings.transparent_background)
    with tempfile.TemporaryDirectory(prefix="prodgraph-still-") as tmp:
        # Blender rewrites '#' in output paths into frame numbers, so render to a plain name.
        scene.render.filepath = str(Path(tmp) / f"still.{settings.image_format}")
        seconds = _render(scene, settings.engine, animation=False)
        _move_single_file(Path(tmp), output)
    return {
        "output_path": str(output),
        "width": scene.render.resolution_x,
        "height": scene.render.resolution_y,
        "engine": settings.engine,
        "samples": _samples_used(scene),
        "render_seconds": round(seconds, 3),
        "object_count": len(built.meshes),
    }


def render_turntable(request: TurntableJobRequest) -> dict[str, Any]:
    """Render an MP4 of the part turning about the vertical axis through its centre."""
    settings = request.settings
    scene, built = _build_scene(request, settings, turntable=True)
    _animate_turntable(scene, built, settings.frame_count, settings.turntable_degrees)
    scene.render.fps, scene.render.fps_base = settings.fps, 1.0
    _set_video_output(scene, settings.fps)
    output = Path(request.output_path)
    with tempfile.TemporaryDirectory(prefix="prodgraph-turntable-") as tmp:
        scene.render.filepath = str(Path(tmp) / "turntable.mp4")
        seconds = _render(scene, settings.engine, animation=True)
        _move_single_file(Path(tmp), output)
    return {
        "output_path": str(output),
        "frame_count": settings.frame_count,
        "fps": settings.fps,
        "width": scene.render.resolution_x,
        "height": scene.render.resolution_y,
        "render_seconds": round(seconds, 3),
    }


def export_blend(request: BlendJobRequest) -> dict[str, Any]:
    """Save the still's scene, ready to render, as a compressed .blend file."""
    settings = request.settings
    scene, built = _build_scene(request, settings, turntable=False)
    _set_image_output(scene, ImageFormat.png, settings.transparent_background)
    output = Path(request.output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    bpy.context.preferences.filepaths.save_version = 0
    bpy.ops.wm.save_as_mainfile(filepath=str(output), compress=True, check_existing=False)
    return {"output_path": str(output), "object_count": len(built.meshes)}


def _build_scene(
    request: BlenderJobRequest, settings: RenderSettings, *, turntable: bool
) -> tuple[bpy.types.Scene, Imported]:
    """Start an empty scene, import the GLB, then add lights, world and camera."""
    glb_path = _checked_glb(request.glb_path)
    azimuth, elevation = CAMERA_PRESETS[request.camera_preset]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    built = replace(_import_glb(glb_path), box=_box(request.bbox))
    scene.render.resolution_x, scene.render.resolution_y = settings.width, settings.height
    scene.render.resolution_percentage = 100
    framed = built.box.swept_about_z() if turntable else built.box
    _add_camera(scene, framed, _direction(azimuth, elevation), settings.width / settings.height)
    _apply_material_map(built.meshes, request.material_map)
    _add_studio_lights(scene, built.box, azimuth, request.template.light_strength)
    _add_world(scene, request.template.background)
    scene.view_settings.view_transform = "Standard"
    _configure_engine(scene, settings)
    return scene, built


def _checked_glb(path: str) -> Path:
    """The GLB's path, after checking that the file looks like glTF at all."""
    glb = Path(path)
    if not glb.is_file():
        raise InvalidGlbError(f"GLB file not found: {glb}")
    with glb.open("rb") as handle:
        head = handle.read(64)
    if not head:
        raise InvalidGlbError(f"GLB file is empty: {glb}")
    if not head.startswith(b"glTF") and not head.lstrip().startswith(b"{"):
        raise InvalidGlbError(f"not a glTF/GLB file (no 'glTF' magic): {glb}")
    return glb


def _import_glb(glb: Path) -> Imported:
    """Import the GLB and return its mesh objects and their world-space box."""
    before = set(bpy.data.objects)
    try:
        bpy.ops.import_scene.gltf(filepath=str(glb))
    except RuntimeError as exc:
        raise InvalidGlbError(f"Blender cannot import {glb}: {exc}") from exc
    new = [obj for obj in bpy.data.objects if obj not in before]
    meshes = [obj for obj in new if obj.type == "MESH" and len(obj.data.vertices) > 0]
    if not meshes:
        raise InvalidGlbError(f"GLB holds no mesh geometry: {glb}")
    roots = [obj for obj in new if obj.parent is None or obj.parent not in new]
    return Imported(meshes, roots, _mesh_box(meshes))


def _mesh_box(meshes: list[bpy.types.Object]) -> Box:
    """World-space box around the meshes' own bounding boxes."""
    bpy.context.view_layer.update()
    points = [obj.matrix_world @ Vector(corner) for obj in meshes for corner in obj.bound_box]
    lo = Vector(tuple(min(p[i] for p in points) for i in range(3)))
    hi = Vector(tuple(max(p[i] for p in points) for i in range(3)))
    return Box(lo, hi)


def _box(bbox: BBox) -> Box:
    """The intake's box (CAD frame, Z up, metres, which is Blender's world frame)."""
    return Box(Vector(bbox.min), Vector(bbox.max))


def _direction(azimuth_deg: float, elevation_deg: float) -> Vector:
    """Unit vector from the part towards the viewer; azimuth 0 is the front (-Y), 90 the right."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return Vector((math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)))


def _look_rotation(direction: Vector) -> Matrix:
    """Rotation of an object whose -Z looks along -direction with Z up in the image."""
    back = direction.normalized()
    world_up = Vector((0, 0, 1)) if abs(back.z) < 0.999 else Vector((0, 1, 0))
    right = world_up.cross(back).normalized()
    up = back.cross(right)
    return Matrix((right, up, back)).transposed()


def _add_camera(scene: bpy.types.Scene, box: Box, direction: Vector, aspect: float) -> None:
    """Add a camera looking at the box's centre, just far enough for all its corners to fit."""
    data = bpy.data.cameras.new("prodgraph_camera")
    data.lens, data.sensor_width, data.sensor_height = LENS_MM, SENSOR_MM, SENSOR_MM
    data.sensor_fit = "HORIZONTAL" if aspect >= 1 else "VERTICAL"
    tan_long = (SENSOR_MM / 2) / LENS_MM
    tan_x, tan_y = (tan_long, tan_long / aspect) if aspect >= 1 else (tan_long * aspect, tan_long)
    rotation = _look_rotation(direction)
    right, up, back = rotation.col[0], rotation.col[1], rotation.col[2]
    offsets = [corner - box.center for corner in box.corners()]
    distance = max(
        off.dot(back) + max(abs(off.dot(right)) / tan_x, abs(off.dot(up)) / tan_y) * FRAME_MARGIN
        for off in offsets
    )
    depths = [distance - off.dot(back) for off in offsets]
    data.clip_start = max(min(depths) * 0.5, box.radius * 1e-3)
    data.clip_end = max(depths) * 2 + box.radius
    camera = bpy.data.objects.new("prodgraph_camera", data)
    camera.matrix_world = Matrix.Translation(box.center + back * distance) @ rotation.to_4x4()
    scene.collection.objects.link(camera)
    scene.camera = camera


def _apply_material_map(meshes: list[bpy.types.Object], material_map: dict[str, Material]) -> None:
    """Give each part the material the order asks for, matched by part (node) name."""
    made: dict[str, bpy.types.Material] = {}
    for obj in meshes:
        material = _material_for(obj, material_map)
        if material is None:
            continue
        if material.key not in made:
            made[material.key] = _principled(material)
        obj.data.materials.clear()
        obj.data.materials.append(made[material.key])


def _material_for(obj: bpy.types.Object, material_map: dict[str, Material]) -> Material | None:
    """The part's entry, looked up by the object's name, its parent's, without '.001' suffixes."""
    for candidate in (obj, obj.parent):
        while candidate is not None:
            name = candidate.name
            base = name.rsplit(".", 1)[0] if name[-4:-3] == "." and name[-3:].isdigit() else name
            if name in material_map or base in material_map:
                return material_map.get(name) or material_map[base]
            candidate = None
    return None


def _principled(spec: Material) -> bpy.types.Material:
    """A Principled BSDF material from an sRGB hex colour, metallic and roughness."""
    material = bpy.data.materials.new(f"prodgraph_{spec.key}")
    bsdf = material.node_tree.nodes.get("Principled BSDF")
    colour = (*_srgb_to_linear(spec.base_color), 1.0)
    material.diffuse_color = colour
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = colour
        bsdf.inputs["Metallic"].default_value = spec.metallic
        bsdf.inputs["Roughness"].default_value = spec.roughness
    return material


def _srgb_to_linear(hex_colour: str) -> tuple[float, float, float]:
    """Blender's material colours are linear; orders speak sRGB hex."""
    red, green, blue = (int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return _channel_to_linear(red), _channel_to_linear(green), _channel_to_linear(blue)


def _channel_to_linear(channel: float) -> float:
    """One sRGB channel in 0..1 as linear light."""
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def _add_studio_lights(scene: bpy.types.Scene, box: Box, azimuth_deg: float, strength: float = 1.0) -> None:
    """Add key, fill and rim area lights placed around the camera's side and sized to the part."""
    radius = box.radius
    # (name, azimuth offset from the camera, elevation, share of the key's irradiance, size)
    rig = [
        ("key", -45.0, 40.0, 1.0, 2.0),
        ("fill", 60.0, 15.0, 0.4, 3.0),
        ("rim", 170.0, 50.0, 0.6, 1.5),
    ]
    for name, offset, elevation, share, size in rig:
        direction = _direction(azimuth_deg + offset, elevation)
        distance = 5.0 * radius
        data = bpy.data.lights.new(f"prodgraph_{name}", type="AREA")
        data.shape, data.size = "DISK", size * radius
        # Irradiance falls with distance squared, so power grows with the part's size squared.
        data.energy = KEY_IRRADIANCE * share * strength * math.pi * distance**2
        light = bpy.data.objects.new(f"prodgraph_{name}", data)
        position = box.center + direction * distance
        light.matrix_world = Matrix.Translation(position) @ _look_rotation(direction).to_4x4()
        scene.collection.objects.link(light)


def _add_world(scene: bpy.types.Scene, background_hex: str) -> None:
    """A uniform world (the template backdrop, else soft grey) that also lights softly."""
    world = bpy.data.worlds.new("prodgraph_world")
    colour = _srgb_to_linear(background_hex) if background_hex else (WORLD_GREY,) * 3
    world.color = colour
    background = world.node_tree.nodes.get("Background")
    if background is not None:
        background.inputs["Color"].default_value = (*colour, 1.0)
        background.inputs["Strength"].default_value = 1.0
    scene.world = world


def _configure_engine(scene: bpy.types.Scene, settings: RenderSettings) -> None:
    """Pick the engine and its quality settings."""
    engine = ENGINES[settings.engine]
    samples = settings.samples
    scene.render.engine = engine
    scene.render.film_transparent = settings.transparent_background
    if engine == "CYCLES":
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.seed = settings.seed
        scene.cycles.use_adaptive_sampling = True
        scene.cycles.use_denoising = settings.denoise and _oidn_available()
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
    elif engine == "BLENDER_EEVEE":
        scene.eevee.taa_render_samples = samples
    else:
        scene.display.shading.light = "STUDIO"
        scene.display.shading.color_type = "MATERIAL"


def _oidn_available() -> bool:
    """Whether this Cycles build can denoise with OpenImageDenoise."""
    try:
        import _cycles  # Blender's own module, present once the Cycles add-on is registered.
    except ImportError:
        return False
    return bool(getattr(_cycles, "with_openimagedenoise", False))


def _samples_used(scene: bpy.types.Scene) -> int | None:
    """Samples per pixel of the chosen engine; Workbench has none."""
    if scene.render.engine == "CYCLES":
        return scene.cycles.samples
    if scene.render.engine == "BLENDER_EEVEE":
        return scene.eevee.taa_render_samples
    return None


def _set_image_output(scene: bpy.types.Scene, image_format: ImageFormat, transparent: bool) -> None:
    """Write 8-bit PNG (RGBA when transparent) or JPEG."""
    settings = scene.render.image_settings
    settings.media_type = "IMAGE"
    settings.file_format = IMAGE_FORMATS[image_format]
    settings.color_mode = "RGBA" if transparent else "RGB"
    if image_format == ImageFormat.png:
        settings.color_depth = "8"
        settings.compression = 15
    else:
        settings.quality = 92
    scene.render.use_file_extension = False


def _set_video_output(scene: bpy.types.Scene, fps: int) -> None:
    """Write an H.264 MP4 with no audio."""
    settings = scene.render.image_settings
    # Blender 5.0 only offers FFMPEG once the media type is video.
    settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    settings.color_mode = "RGB"
    ffmpeg = scene.render.ffmpeg
    ffmpeg.format, ffmpeg.codec = "MPEG4", "H264"
    ffmpeg.constant_rate_factor, ffmpeg.ffmpeg_preset = "HIGH", "GOOD"
    ffmpeg.gopsize = fps
    ffmpeg.audio_codec = "NONE"
    scene.render.use_file_extension = False


def _animate_turntable(scene: bpy.types.Scene, built: Imported, frame_count: int, degrees: float) -> None:
    """Parent the part to a pivot at the box's centre and turn the pivot linearly about Z."""
    pivot = bpy.data.objects.new("prodgraph_turntable", None)
    pivot.location = built.box.center
    scene.collection.objects.link(pivot)
    bpy.context.view_layer.update()
    for root in built.roots:
        world = root.matrix_world.copy()
        root.parent = pivot
        root.matrix_parent_inverse = pivot.matrix_world.inverted()
        root.matrix_world = world
    full_turn = math.isclose(degrees % 360.0, 0.0) and degrees != 0
    # A full turn keys its end one frame past the last so the loop does not repeat a frame.
    end = frame_count + 1 if full_turn else max(frame_count, 2)
    scene.frame_start, scene.frame_end = 1, frame_count
    pivot.rotation_euler.z = 0.0
    pivot.keyframe_insert("rotation_euler", index=2, frame=1)
    pivot.rotation_euler.z = math.radians(degrees)
    pivot.keyframe_insert("rotation_euler", index=2, frame=end)
    animation = pivot.animation_data
    # Blender 5.0 has no Action.fcurves: F-curves live in the slot's channelbag.
    channelbag = animation.action.layers[0].strips[0].channelbag(animation.action_slot)
    for fcurve in channelbag.fcurves:
        for point in fcurve.keyframe_points:
            point.interpolation = "LINEAR"


def _render(scene: bpy.types.Scene, engine: Engine, *, animation: bool) -> float:
    """Render to scene.render.filepath and return the seconds it took."""
    started = time.perf_counter()
    _report_progress(scene)
    try:
        if animation:
            scene.render.use_persistent_data = True
            bpy.ops.render.render(animation=True)
        else:
            bpy.ops.render.render(write_still=True)
    except RuntimeError as exc:
        raise RenderFailedError(f"engine {engine} failed on this machine: {exc}") from exc
    return time.perf_counter() - started


def _report_progress(scene: bpy.types.Scene) -> None:
    """Print progress lines (frames written, Blender's sample counter) for the activity's heartbeat."""
    frames = scene.frame_end - scene.frame_start + 1
    last_stats = [0.0]

    def frame_written(written_scene: bpy.types.Scene, *_: Any) -> None:
        done = written_scene.frame_current - written_scene.frame_start + 1
        progress(f"frame {done}/{frames}")

    def stats(text: str, *_: Any) -> None:
        now = time.monotonic()
        sample = next((part.strip() for part in str(text).split("|") if "Sample" in part), None)
        if sample and now - last_stats[0] > 1.0:  # Blender reports many times a second
            last_stats[0] = now
            progress(sample)

    bpy.app.handlers.render_write.append(frame_written)
    bpy.app.handlers.render_stats.append(stats)


def _move_single_file(folder: Path, output: Path) -> None:
    """Move the one file the renderer wrote in folder to output."""
    written = [path for path in folder.iterdir() if path.is_file() and path.stat().st_size > 0]
    if len(written) != 1:
        names = [path.name for path in folder.iterdir()]
        raise RenderFailedError(f"renderer wrote {names}, expected one file")
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(written[0]), str(output))


if __name__ == "__main__":
    run_job(
        {
            "still": (render_still, StillJobRequest),
            "turntable": (render_turntable, TurntableJobRequest),
            "blend": (export_blend, BlendJobRequest),
        }
    )
