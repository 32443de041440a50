"""Render modules: Blender stills, turntables and production .blend files, each in a child process."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.exceptions import ApplicationError

from activities.artifacts import ArtifactRef, LocalArtifactStore
from activities.cad import BBox
from activities.child_process import ChildJobRunner, JobFailure
from activities.module import RetryDefaults, production_module

CONTRACT = ConfigDict(extra="forbid", use_attribute_docstrings=True)
RENDER_RETRY = RetryDefaults(max_attempts=2, initial_interval_s=2.0)
RENDER_UI = {"palette_group": "Rendering", "icon": "camera", "color": "#e0803b"}

Engine = Literal["cycles", "eevee", "workbench"]
CameraPreset = Literal["front_three_quarter", "front", "top", "iso"]


class BlenderStillParams(BaseModel):
    """How the still is rendered."""

    model_config = CONTRACT

    engine: Engine = "cycles"
    """Render engine; Cycles on CPU needs no display."""
    width: int = Field(1920, ge=16, le=16384)
    """Output width in pixels."""
    height: int = Field(1080, ge=16, le=16384)
    """Output height in pixels."""
    samples: int = Field(64, ge=1, le=65536)
    """Samples per pixel (Cycles, EEVEE)."""
    transparent_background: bool = False
    """Transparent film instead of the studio backdrop."""
    image_format: Literal["png", "jpeg"] = "png"
    """Output image format."""
    denoise: bool = False
    """Denoise the render."""
    camera_preset: CameraPreset = "front_three_quarter"
    """Camera placement around the bounding box."""


class BlenderStillInput(BaseModel):
    """The intake's GLB and bounding box, and render parameters."""

    model_config = CONTRACT

    glb: ArtifactRef
    """The part as GLB."""
    bbox: BBox
    """Bounding box used to frame the camera and size the lights."""
    params: BlenderStillParams = BlenderStillParams()
    """Module parameters."""


class BlenderStillOutput(BaseModel):
    """The rendered still image."""

    model_config = CONTRACT

    still: ArtifactRef
    """The image."""
    render_seconds: float
    """Wall time Blender spent rendering."""


class RenderActivities:
    """The render modules, bound to an artifact store and a child-job runner."""

    def __init__(self, store: LocalArtifactStore, jobs: ChildJobRunner):
        self.store = store
        self.jobs = jobs

    @production_module("render.blender_still", families=("order_line",), label="Blender still",
                       category="render", task_queue="render", timeout_s=1800, retry=RENDER_RETRY,
                       legacy_source="legacy.render_still", ui=RENDER_UI)
    async def blender_still(self, input: BlenderStillInput) -> BlenderStillOutput:
        """Render a studio-lit still of the part with Cycles, camera framed on the bounding box."""
        params = input.params
        suffix = ".jpg" if params.image_format == "jpeg" else ".png"
        scratch = self.store.scratch_dir()
        output = scratch / f"still{suffix}"
        request = {"glb_path": str(self.store.path_of(input.glb)), "output_path": str(output),
                   "bbox": input.bbox.model_dump(), **params.model_dump()}
        result = await self._blender_job("still", request, timeout_s=1800)
        ref = self.store.put_file(output, role="still")
        output.unlink(missing_ok=True)
        scratch.rmdir()
        return BlenderStillOutput(still=ref, render_seconds=result.get("render_seconds", 0.0))

    async def _blender_job(self, op: str, request: dict, timeout_s: float) -> dict:
        try:
            return await self.jobs.run("blender_job", op, request, timeout_s=timeout_s)
        except JobFailure as failure:
            raise ApplicationError(failure.message, type=failure.code,
                                   non_retryable=not failure.retryable) from None
