"""The canonical invocation overrides: what an output profile or an order may set on a graph."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.vocabulary import Engine, ImageFormat


class InvocationOverrides(BaseModel):
    """Per-invocation settings over a graph's defaults; None means not overridden."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    engine: Engine | None = None
    """Render engine."""
    width: int | None = Field(default=None, ge=1, le=16384)
    """Output width in pixels, after any resolution percentage."""
    height: int | None = Field(default=None, ge=1, le=16384)
    """Output height in pixels, after any resolution percentage."""
    samples: int | None = Field(default=None, ge=1, le=65536)
    """Render samples; None for workbench, which does not sample."""
    transparent_background: bool | None = None
    """Render the film transparent instead of over the world background."""
    image_format: ImageFormat | None = None
    """File format of a still image; None for videos and production blends."""
    frame_count: int | None = Field(default=None, ge=1, le=10000)
    """Frames in a turntable; None unless the artifact is a turntable video."""
    fps: int | None = Field(default=None, ge=1, le=240)
    """Frames per second of a turntable; None unless the artifact is a turntable video."""
    turntable_degrees: float | None = Field(default=None, gt=0, le=3600)
    """Degrees the turntable turns over all its frames; None unless a turntable video."""
    material_override: str | None = None
    """Material library key applied to every part."""
    denoise: bool | None = None
    """Denoise the render."""
    camera_preset: str | None = None
    """Named camera preset."""
    template: str | None = None
    """Named render template."""
    preview_thumbnail: bool | None = None
    """Also produce a preview thumbnail."""
