"""Render modules: templates, Blender stills, turntables, production .blend files and thumbnails."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from activities.artifacts import ArtifactRef, LocalArtifactStore
from activities.cad import BBox
from activities.child_process import ChildJobRunner
from activities.materials import Material
from activities.module import CONTRACT, production_module
from core.vocabulary import Engine, ImageFormat, RetryPolicy

RENDER_RETRY = RetryPolicy(max_attempts=2, initial_interval_s=2.0)
RENDER_UI = {"palette_group": "Rendering", "icon": "camera", "color": "#e0803b"}

CameraPreset = Literal["front_three_quarter", "front", "top", "iso"]


class RenderTemplate(BaseModel):
    """The look of a render: backdrop, lighting and default camera."""

    model_config = CONTRACT

    name: str
    """Template name."""
    background: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    """Backdrop colour (sRGB hex)."""
    light_strength: float = Field(ge=0.1, le=10)
    """Multiplier on the studio lights."""
    camera_preset: CameraPreset = "front_three_quarter"
    """Camera placement unless the node sets one."""


TEMPLATES: dict[str, RenderTemplate] = {
    template.name: template
    for template in (
        RenderTemplate(name="studio_grey", background="#bfc3c7", light_strength=1.0),
        RenderTemplate(name="studio_white", background="#f4f4f2", light_strength=1.1),
        RenderTemplate(name="studio_dark", background="#2b2d30", light_strength=1.3),
    )
}
TemplateName = Literal["studio_grey", "studio_white", "studio_dark"]


class RenderSettings(BaseModel):
    """What every Blender output shares: engine, size, samples, film, camera."""

    model_config = CONTRACT

    engine: Engine = Engine.cycles
    """Render engine; Cycles on CPU needs no display."""
    width: int = Field(1920, ge=16, le=16384)
    """Output width in pixels."""
    height: int = Field(1080, ge=16, le=16384)
    """Output height in pixels."""
    samples: int = Field(64, ge=1, le=65536)
    """Samples per pixel (Cycles, EEVEE)."""
    transparent_background: bool = False
    """Transparent film instead of the studio backdrop."""
    denoise: bool = False
    """Denoise the render."""
    seed: int = Field(0, ge=0, le=2**31 - 1)
    """Cycles' sampling seed: another seed shows the render's own noise (parity calibration)."""
    camera_preset: CameraPreset | None = None
    """Camera placement around the bounding box; None takes the template's."""


class SceneInputs(BaseModel):
    """The intake's GLB and bounding box, and the optional look."""

    model_config = CONTRACT

    glb: ArtifactRef
    """The part as GLB."""
    bbox: BBox
    """Bounding box used to frame the camera and size the lights."""
    material_map: dict[str, Material] | None = None
    """Part name → material, from materials.resolve_map; CAD colours otherwise."""
    render_template: RenderTemplate | None = None
    """From render.resolve_template; the default studio otherwise."""


# --- render.resolve_template -------------------------------------------------------------


class ResolveTemplateParams(BaseModel):
    """Which template an order line renders with."""

    model_config = CONTRACT

    template: TemplateName = "studio_grey"
    """Template name."""


class ResolveTemplateInput(BaseModel):
    """Nothing but the choice of template."""

    model_config = CONTRACT

    product_category: str | None = None
    """Product category of the part (reserved for per-category templates)."""
    params: ResolveTemplateParams = ResolveTemplateParams()
    """Module parameters."""


class ResolveTemplateOutput(BaseModel):
    """The resolved template."""

    model_config = CONTRACT

    render_template: RenderTemplate
    """Backdrop, lighting, camera."""


# --- render.blender_still ----------------------------------------------------------------


class BlenderStillParams(RenderSettings):
    """How the still is rendered."""

    image_format: ImageFormat = ImageFormat.png
    """Output image format; JPEG has no alpha, so it cannot be transparent."""

    @field_validator("image_format")
    @classmethod
    def _alpha_needs_png(cls, image_format: ImageFormat, info: ValidationInfo) -> ImageFormat:
        if image_format == ImageFormat.jpeg and info.data.get("transparent_background"):
            raise ValueError("JPEG has no alpha channel: use png with transparent_background")
        return image_format


class BlenderStillInput(SceneInputs):
    """Scene inputs and still parameters."""

    params: BlenderStillParams = BlenderStillParams()
    """Module parameters."""


class BlenderStillOutput(BaseModel):
    """The rendered still image."""

    model_config = CONTRACT

    still: ArtifactRef
    """The image."""
    render_seconds: float
    """Wall time Blender spent rendering."""


# --- render.blender_turntable ------------------------------------------------------------


class BlenderTurntableParams(RenderSettings):
    """How the turntable is animated and rendered."""

    width: int = Field(1280, ge=16, le=16384)
    """Output width in pixels."""
    height: int = Field(720, ge=16, le=16384)
    """Output height in pixels."""
    samples: int = Field(32, ge=1, le=65536)
    """Samples per pixel per frame."""
    frame_count: int = Field(36, ge=2, le=10000)
    """Frames in the video."""
    fps: int = Field(24, ge=1, le=240)
    """Frames per second."""
    turntable_degrees: float = Field(360.0, gt=0, le=3600)
    """Rotation over the whole video."""

    @field_validator("width", "height")
    @classmethod
    def _even_for_h264(cls, pixels: int, info: ValidationInfo) -> int:
        if pixels % 2:
            raise ValueError(f"H.264 needs an even {info.field_name}; {pixels} is odd")
        return pixels

    @field_validator("transparent_background")
    @classmethod
    def _opaque_for_h264(cls, transparent: bool) -> bool:
        if transparent:
            raise ValueError("an H.264 turntable has no alpha channel: it cannot be transparent")
        return transparent


class BlenderTurntableInput(SceneInputs):
    """Scene inputs and turntable parameters."""

    params: BlenderTurntableParams = BlenderTurntableParams()
    """Module parameters."""


class BlenderTurntableOutput(BaseModel):
    """The turntable video."""

    model_config = CONTRACT

    turntable: ArtifactRef
    """MP4 (H.264)."""
    render_seconds: float
    """Wall time Blender spent rendering."""


# --- render.export_blend -----------------------------------------------------------------


class ExportBlendParams(RenderSettings):
    """Render settings saved into the production .blend."""


class ExportBlendInput(SceneInputs):
    """Scene inputs and the settings to save with it."""

    params: ExportBlendParams = ExportBlendParams()
    """Module parameters."""


class ExportBlendOutput(BaseModel):
    """The production .blend file, ready for an artist."""

    model_config = CONTRACT

    blend: ArtifactRef
    """The .blend file."""


# --- render.thumbnail --------------------------------------------------------------------


class ThumbnailParams(BaseModel):
    """Size of the preview thumbnail."""

    model_config = CONTRACT

    max_size: int = Field(256, ge=16, le=2048)
    """Longest side in pixels; the aspect ratio is kept."""


class ThumbnailInput(BaseModel):
    """The still to shrink."""

    model_config = CONTRACT

    still: ArtifactRef
    """The rendered still."""
    params: ThumbnailParams = ThumbnailParams()
    """Module parameters."""


class ThumbnailOutput(BaseModel):
    """The preview thumbnail."""

    model_config = CONTRACT

    thumbnail: ArtifactRef
    """PNG thumbnail."""


# --- what a Blender child job reads -----------------------------------------------------


class BlenderJobRequest(BaseModel):
    """The scene a Blender child job builds: files, framing box, look, and resolved camera."""

    model_config = CONTRACT

    glb_path: str
    """Local path of the part's GLB."""
    output_path: str
    """Where the job writes its file."""
    bbox: BBox
    """Framing box (CAD frame, Z up, metres: Blender's world frame)."""
    material_map: dict[str, Material]
    """Part name → material; parts not named keep their CAD colours."""
    template: RenderTemplate
    """Backdrop, lights and default camera."""
    camera_preset: CameraPreset
    """The camera placement, resolved from the node or the template."""


class StillJobRequest(BlenderJobRequest):
    """A still to render."""

    settings: BlenderStillParams
    """The module's validated parameters."""


class TurntableJobRequest(BlenderJobRequest):
    """A turntable video to render."""

    settings: BlenderTurntableParams
    """The module's validated parameters."""


class BlendJobRequest(BlenderJobRequest):
    """A production .blend to save."""

    settings: ExportBlendParams
    """The module's validated parameters."""


class RenderActivities:
    """The render modules, bound to an artifact store and a child-job runner."""

    def __init__(self, store: LocalArtifactStore, jobs: ChildJobRunner):
        self.store = store
        self.jobs = jobs

    @production_module(
        "render.resolve_template",
        families=("order_line",),
        label="Resolve render template",
        category="render",
        timeout_s=30,
        legacy_source="legacy.render_template",
        ui=RENDER_UI,
        local=True,
    )
    async def resolve_template(self, input: ResolveTemplateInput) -> ResolveTemplateOutput:
        """Pick the render template (backdrop, lights, camera) for the order line."""
        return ResolveTemplateOutput(render_template=TEMPLATES[input.params.template])

    @production_module(
        "render.blender_still",
        families=("order_line",),
        label="Blender still",
        category="render",
        task_queue="render",
        timeout_s=1800,
        retry=RENDER_RETRY,
        legacy_source="legacy.render_still",
        ui=RENDER_UI,
    )
    async def blender_still(self, input: BlenderStillInput) -> BlenderStillOutput:
        """Render a studio-lit still of the part, camera framed on the bounding box."""
        suffix = ".jpg" if input.params.image_format == ImageFormat.jpeg else ".png"
        ref, result = await self._render("still", StillJobRequest, input, input.params, suffix)
        return BlenderStillOutput(still=ref, render_seconds=result.get("render_seconds", 0.0))

    @production_module(
        "render.blender_turntable",
        families=("order_line",),
        label="Blender turntable",
        category="render",
        task_queue="render",
        timeout_s=7200,
        retry=RENDER_RETRY,
        legacy_source="legacy.render_turntable",
        ui=RENDER_UI,
    )
    async def blender_turntable(self, input: BlenderTurntableInput) -> BlenderTurntableOutput:
        """Render the part turning on its vertical axis to an H.264 MP4."""
        ref, result = await self._render("turntable", TurntableJobRequest, input, input.params, ".mp4")
        return BlenderTurntableOutput(turntable=ref, render_seconds=result.get("render_seconds", 0.0))

    @production_module(
        "render.export_blend",
        families=("order_line",),
        label="Export production .blend",
        category="render",
        task_queue="render",
        timeout_s=900,
        retry=RENDER_RETRY,
        legacy_source="legacy.export_blend",
        ui=RENDER_UI,
    )
    async def export_blend(self, input: ExportBlendInput) -> ExportBlendOutput:
        """Save the lit, framed scene as a production .blend file."""
        ref, _ = await self._render("blend", BlendJobRequest, input, input.params, ".blend")
        return ExportBlendOutput(blend=ref)

    @production_module(
        "render.thumbnail",
        families=("order_line",),
        label="Preview thumbnail",
        category="render",
        timeout_s=60,
        legacy_source="legacy.thumbnail",
        ui=RENDER_UI,
    )
    async def thumbnail(self, input: ThumbnailInput) -> ThumbnailOutput:
        """Shrink the still to a PNG preview thumbnail."""
        from PIL import Image

        with self.store.scratch_file("thumbnail.png") as output:
            with Image.open(self.store.path_of(input.still)) as image:
                image.thumbnail((input.params.max_size, input.params.max_size))
                image.save(output, format="PNG")
            return ThumbnailOutput(thumbnail=self.store.put_file(output, role="thumbnail"))

    async def _render(
        self,
        role: str,
        request_model: type[BlenderJobRequest],
        input: SceneInputs,
        settings: RenderSettings,
        suffix: str,
    ) -> tuple[ArtifactRef, dict]:
        """Run the Blender job op named like the role it produces; store what it wrote."""
        with self.store.scratch_file(f"{role}{suffix}") as output:
            request = _job_request(request_model, self.store, input, settings, output)
            result = await self.jobs.run("blender_job", role, request)
            return self.store.put_file(output, role=role), result


def _job_request(
    request_model: type[BlenderJobRequest],
    store: LocalArtifactStore,
    input: SceneInputs,
    settings: RenderSettings,
    output: Path,
) -> BlenderJobRequest:
    """The job's request: the scene inputs resolved, the node's params passed as they are."""
    template = input.render_template or TEMPLATES["studio_grey"]
    return request_model(
        glb_path=str(store.path_of(input.glb)),
        output_path=str(output),
        bbox=input.bbox,
        material_map=input.material_map or {},
        template=template,
        camera_preset=settings.camera_preset or template.camera_preset,
        settings=settings,
    )
