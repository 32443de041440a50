"""What a person checks in a rendered image: is the part there, in its colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def colour_fractions(path: Path) -> dict[str, float]:
    """Share of pixels that read clearly red, clearly blue, and differ from the corner colour."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    background = rgb[0, 0]
    differs = np.abs(rgb - background).sum(axis=-1) > 30
    return {
        "red": float(((red > 90) & (red > 2 * green) & (red > 2 * blue)).mean()),
        "blue": float(((blue > 60) & (blue > 1.6 * red) & (blue > 1.3 * green)).mean()),
        "foreground": float(differs.mean()),
    }
