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

from activities.jobs.protocol import JobError, run_job

ENGINES = {"cycles": "CYCLES", "eevee": "BLENDER_EEVEE", "workbench": "BLENDER_WORKBENCH"}
IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG"}
#: Camera direction as (azimuth from the front towards the right, elevation), in degrees.
CAMERA_PRESETS = {
    "front_three_quarter": (35.0, 25.0),
    "front": (0.0, 0.0),
    "top": (0.0, 90.0),
    "iso": (45.0, math.degrees(math.atan(1 / math.sqrt(2)))),
}
DEFAULT_PRESET = "front_three_quarter"
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


def render_still(request: dict[str, Any]) -> dict[str, Any]:
    """Render one image of the part."""
    image_format = _choice(request, "image_format", "png", IMAGE_FORMATS)
    transparent = bool(request.get("transparent_background", False))
    _check_image_format(image_format, transparent)
    scene, built = _build_scene(request, turntable=False)
    output = Path(request["output_path"])
    _set_image_output(scene, image_format, transparent)
    with tempfile.TemporaryDirectory(prefix="prodgraph-still-") as tmp:
        # Blender rewrites '#' in output paths into frame numbers, so render to a plain name.
        scene.render.filepath = str(Path(tmp) / f"still.{image_format}")
        seconds = _render(scene, request, animation=False)
        _move_single_file(Path(tmp), output)
    return {
        "output_path": str(output),
        "width": scene.render.resolution_x,
        "height": scene.render.resolution_y,
        "engine": _choice(request, "engine", "cycles", ENGINES),
        "samples": _samples_used(scene),
        "render_seconds": round(seconds, 3),
        "object_count": len(built.meshes),
    }


def render_turntable(request: dict[str, Any]) -> dict[str, Any]:
    """Render an MP4 of the part turning about the vertical axis through its centre."""
    frame_count = _positive_int(request, "frame_count", 36)
    fps = _positive_int(request, "fps", 24)
    degrees = request.get("turntable_degrees")
    degrees = 360.0 if degrees is None else float(degrees)
    if request.get("transparent_background"):
        raise JobError("invalid_request", "an H.264 turntable cannot have a transparent background")
    scene, built = _build_scene(request, turntable=True)
    if scene.render.resolution_x % 2 or scene.render.resolution_y % 2:
        raise JobError("invalid_request", "H.264 needs an even width and height")
    _animate_turntable(scene, built, frame_count, degrees)
    scene.render.fps, scene.render.fps_base = fps, 1.0
    _set_video_output(scene, fps)
    output = Path(request["output_path"])
    with tempfile.TemporaryDirectory(prefix="prodgraph-turntable-") as tmp:
        scene.render.filepath = str(Path(tmp) / "turntable.mp4")
        seconds = _render(scene, request, animation=True)
        _move_single_file(Path(tmp), output)
    return {
        "output_path": str(output),
        "frame_count": frame_count,
        "fps": fps,
        "width": scene.render.resolution_x,
        "height": scene.render.resolution_y,
        "render_seconds": round(seconds, 3),
    }


def export_blend(request: dict[str, Any]) -> dict[str, Any]:
    """Save the still's scene, ready to render, as a compressed .blend file."""
    image_format = _choice(request, "image_format", "png", IMAGE_FORMATS)
    transparent = bool(request.get("transparent_background", False))
    _check_image_format(image_format, transparent)
    scene, built = _build_scene(request, turntable=False)
    _set_image_output(scene, image_format, transparent)
    output = Path(request["output_path"])
    output.parent.mkdir(parents=True, exist_ok=True)
    bpy.context.preferences.filepaths.save_version = 0
    bpy.ops.wm.save_as_mainfile(filepath=str(output), compress=True, check_existing=False)
    return {"output_path": str(output), "object_count": len(built.meshes)}


def _build_scene(request: dict[str, Any], *, turntable: bool) -> tuple[bpy.types.Scene, Imported]:
    """Open the template or an empty file, import the GLB, then add lights, world and camera."""
    glb_path = _checked_glb(request.get("glb_path"))
    azimuth, elevation = CAMERA_PRESETS[
        _choice(request, "camera_preset", DEFAULT_PRESET, CAMERA_PRESETS)
    ]
    width = _positive_int(request, "width", 640)
    height = _positive_int(request, "height", 480)
    given_box = _request_box(request.get("bbox"))
    template = request.get("template_path")
    _open_start_file(template)
    scene = bpy.context.scene
    # A template's own lights and world win; lights inside the GLB must not count as the template's.
    keep_lights = bool(template) and any(obj.type == "LIGHT" for obj in scene.objects)
    keep_world = bool(template) and scene.world is not None
    built = _import_glb(glb_path)
    if given_box is not None:
        built = replace(built, box=given_box)
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    framed = built.box.swept_about_z() if turntable else built.box
    _add_camera(scene, framed, _direction(azimuth, elevation), width / height)
    look = request.get("template") or {}
    _apply_material_map(built.meshes, request.get("material_map") or {})
    if not keep_lights:
        _add_studio_lights(scene, built.box, azimuth, float(look.get("light_strength", 1.0)))
    if not keep_world:
        _add_world(scene, look.get("background"))
        scene.view_settings.view_transform = "Standard"
    _configure_engine(scene, request)
    return scene, built


def _open_start_file(template: str | None) -> None:
    """Start from the template .blend with its scripts disabled, or from an empty scene."""
    if not template:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        return
    if not Path(template).is_file():
        raise JobError("invalid_template", f"template .blend not found: {template}")
    try:
        bpy.ops.wm.open_mainfile(filepath=str(template), load_ui=False, use_scripts=False)
    except RuntimeError as exc:
        raise JobError("invalid_template", f"cannot open template {template}: {exc}") from exc
    # Freestyle lines are a template setting we never want on product renders.
    bpy.context.scene.render.use_freestyle = False


def _checked_glb(path: Any) -> Path:
    """The GLB's path, after checking that the file looks like glTF at all."""
    if not path:
        raise JobError("invalid_glb", "request has no glb_path")
    glb = Path(path)
    if not glb.is_file():
        raise JobError("invalid_glb", f"GLB file not found: {glb}")
    with glb.open("rb") as handle:
        head = handle.read(64)
    if not head:
        raise JobError("invalid_glb", f"GLB file is empty: {glb}")
    if not head.startswith(b"glTF") and not head.lstrip().startswith(b"{"):
        raise JobError("invalid_glb", f"not a glTF/GLB file (no 'glTF' magic): {glb}")
    return glb


def _import_glb(glb: Path) -> Imported:
    """Import the GLB and return its mesh objects and their world-space box."""
    before = set(bpy.data.objects)
    try:
        bpy.ops.import_scene.gltf(filepath=str(glb))
    except RuntimeError as exc:
        raise JobError("invalid_glb", f"Blender cannot import {glb}: {exc}") from exc
    new = [obj for obj in bpy.data.objects if obj not in before]
    meshes = [obj for obj in new if obj.type == "MESH" and len(obj.data.vertices) > 0]
    if not meshes:
        raise JobError("invalid_glb", f"GLB holds no mesh geometry: {glb}")
    roots = [obj for obj in new if obj.parent is None or obj.parent not in new]
    return Imported(meshes, roots, _mesh_box(meshes))


def _mesh_box(meshes: list[bpy.types.Object]) -> Box:
    """World-space box around the meshes' own bounding boxes."""
    bpy.context.view_layer.update()
    points = [obj.matrix_world @ Vector(corner) for obj in meshes for corner in obj.bound_box]
    lo = Vector(tuple(min(p[i] for p in points) for i in range(3)))
    hi = Vector(tuple(max(p[i] for p in points) for i in range(3)))
    return Box(lo, hi)


def _request_box(bbox: Any) -> Box | None:
    """The caller's box (CAD frame, Z up, metres, which is Blender's world frame), if any."""
    if bbox is None:
        return None
    try:
        lo, hi = Vector([float(v) for v in bbox["min"]]), Vector([float(v) for v in bbox["max"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise JobError("invalid_request", f"bbox needs min and max as [x, y, z]: {bbox}") from exc
    if len(lo) != 3 or len(hi) != 3 or any(lo[i] > hi[i] for i in range(3)):
        raise JobError("invalid_request", f"bbox min must be [x, y, z] below max: {bbox}")
    return Box(lo, hi)


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


def _apply_material_map(meshes: list[bpy.types.Object], material_map: dict[str, Any]) -> None:
    """Give each part the material the order asks for, matched by part (node) name."""
    made: dict[str, bpy.types.Material] = {}
    for obj in meshes:
        spec = _material_for(obj, material_map)
        if spec is None:
            continue
        key = spec.get("key") or spec["base_color"]
        if key not in made:
            made[key] = _principled(key, spec)
        obj.data.materials.clear()
        obj.data.materials.append(made[key])


def _material_for(obj: bpy.types.Object, material_map: dict[str, Any]) -> dict | None:
    """The part's entry, looked up by the object's name, its parent's, without '.001' suffixes."""
    for candidate in (obj, obj.parent):
        while candidate is not None:
            name = candidate.name
            base = name.rsplit(".", 1)[0] if name[-4:-3] == "." and name[-3:].isdigit() else name
            if name in material_map or base in material_map:
                return material_map.get(name) or material_map[base]
            candidate = None
    return None


def _principled(key: str, spec: dict[str, Any]) -> bpy.types.Material:
    """A Principled BSDF material from an sRGB hex colour, metallic and roughness."""
    material = bpy.data.materials.new(f"prodgraph_{key}")
    bsdf = material.node_tree.nodes.get("Principled BSDF")
    colour = (*_srgb_to_linear(spec["base_color"]), 1.0)
    material.diffuse_color = colour
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = colour
        bsdf.inputs["Metallic"].default_value = float(spec.get("metallic", 0.0))
        bsdf.inputs["Roughness"].default_value = float(spec.get("roughness", 0.5))
    return material


def _srgb_to_linear(hex_colour: str) -> tuple[float, float, float]:
    """Blender's material colours are linear; orders speak sRGB hex."""
    channels = [int(hex_colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    return tuple(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)


def _add_studio_lights(scene: bpy.types.Scene, box: Box, azimuth_deg: float,
                       strength: float = 1.0) -> None:
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


def _add_world(scene: bpy.types.Scene, background_hex: str | None = None) -> None:
    """A uniform world (the template backdrop, else soft grey) that also lights softly."""
    world = bpy.data.worlds.new("prodgraph_world")
    colour = _srgb_to_linear(background_hex) if background_hex else (WORLD_GREY,) * 3
    world.color = colour
    background = world.node_tree.nodes.get("Background")
    if background is not None:
        background.inputs["Color"].default_value = (*colour, 1.0)
        background.inputs["Strength"].default_value = 1.0
    scene.world = world


def _configure_engine(scene: bpy.types.Scene, request: dict[str, Any]) -> None:
    """Pick the engine and its quality settings."""
    engine = ENGINES[_choice(request, "engine", "cycles", ENGINES)]
    samples = _positive_int(request, "samples", 16)
    scene.render.engine = engine
    scene.render.film_transparent = bool(request.get("transparent_background", False))
    if engine == "CYCLES":
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.use_adaptive_sampling = True
        scene.cycles.use_denoising = bool(request.get("denoise", False)) and _oidn_available()
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


def _check_image_format(image_format: str, transparent: bool) -> None:
    """Refuse a transparent background in a format without alpha."""
    if transparent and image_format == "jpeg":
        raise JobError("invalid_request", "transparent_background needs image_format png, not jpeg")


def _set_image_output(scene: bpy.types.Scene, image_format: str, transparent: bool) -> None:
    """Write 8-bit PNG (RGBA when transparent) or JPEG."""
    settings = scene.render.image_settings
    settings.media_type = "IMAGE"
    settings.file_format = IMAGE_FORMATS[image_format]
    settings.color_mode = "RGBA" if transparent else "RGB"
    if image_format == "png":
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


def _animate_turntable(
    scene: bpy.types.Scene, built: Imported, frame_count: int, degrees: float
) -> None:
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


def _render(scene: bpy.types.Scene, request: dict[str, Any], *, animation: bool) -> float:
    """Render to scene.render.filepath and return the seconds it took."""
    started = time.perf_counter()
    try:
        if animation:
            scene.render.use_persistent_data = True
            bpy.ops.render.render(animation=True)
        else:
            bpy.ops.render.render(write_still=True)
    except RuntimeError as exc:
        engine = request.get("engine", "cycles")
        raise JobError("render_failed", f"engine {engine} failed on this machine: {exc}") from exc
    return time.perf_counter() - started


def _move_single_file(folder: Path, output: Path) -> None:
    """Move the one file the renderer wrote in folder to output."""
    written = [path for path in folder.iterdir() if path.is_file() and path.stat().st_size > 0]
    if len(written) != 1:
        names = [path.name for path in folder.iterdir()]
        raise JobError("render_failed", f"renderer wrote {names}, expected one file")
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(written[0]), str(output))


def _choice(request: dict[str, Any], key: str, default: str, options: dict[str, Any]) -> str:
    """The name of the option the request picks under key, checked against options."""
    name = request.get(key) or default
    if name not in options:
        raise JobError("invalid_request", f"{key} must be one of {sorted(options)}, not {name!r}")
    return name


def _positive_int(request: dict[str, Any], key: str, default: int) -> int:
    """A positive integer field of the request; missing or null means the default."""
    value = request.get(key)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise JobError("invalid_request", f"{key} must be a positive integer, not {value!r}")
    return value


if __name__ == "__main__":
    run_job({"still": render_still, "turntable": render_turntable, "blend": export_blend})
