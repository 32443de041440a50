"""Pure mapping of legacy output types' `render_settings` onto canonical invocation overrides."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.errors import LegacyMappingError
from core.vocabulary import ArtifactKind, Engine, ImageFormat
from registry.invocation import InvocationOverrides

MAX_SIDE = 16384
MAX_SAMPLES = 65536


class LegacyMapping(BaseModel):
    """What one legacy `render_settings` bag becomes in the canonical vocabulary."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    artifact_kind: ArtifactKind
    """The deliverable the legacy output type produced."""
    overrides: InvocationOverrides
    """Every override filled in, legacy defaults included."""
    ignored_keys: list[str]
    """Recognised keys that had no effect, sorted."""
    unknown_keys: list[str]
    """Keys the adapter does not recognise, sorted; carried as warnings."""


def _fail(key: str, value: Any, problem: str) -> LegacyMappingError:
    """The error for an unreadable value, naming the key and the value."""
    return LegacyMappingError(f"render_settings.{key}: {value!r} {problem}", key=key)


_INT_TEXT = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_SIZE_TEXT = re.compile(r"\s*([0-9]+)\s*[xX×]\s*([0-9]+)\s*")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})

_ENGINE_IDS = {
    "cycles": Engine.cycles,
    "eevee": Engine.eevee,
    "blender_eevee": Engine.eevee,
    "blender_eevee_next": Engine.eevee,
    "workbench": Engine.workbench,
    "blender_workbench": Engine.workbench,
}
_FILE_FORMATS: dict[str, tuple[ArtifactKind, ImageFormat | None]] = {
    "png": (ArtifactKind.still_image, ImageFormat.png),
    "jpeg": (ArtifactKind.still_image, ImageFormat.jpeg),
    "jpg": (ArtifactKind.still_image, ImageFormat.jpeg),
    "ffmpeg": (ArtifactKind.turntable_video, None),
    "mp4": (ArtifactKind.turntable_video, None),
    "blend": (ArtifactKind.production_blend, None),
}


def _to_int(key: str, value: Any) -> int:
    """An integer from an int, an integral float or a numeric string."""
    if isinstance(value, bool):
        raise _fail(key, value, "is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip().split(".")[0])
    raise _fail(key, value, "is not an integer")


def _int_in(low: int, high: int) -> Callable[[str, Any], int]:
    """A reader of integers within low..high inclusive."""

    def read(key: str, value: Any) -> int:
        number = _to_int(key, value)
        if not low <= number <= high:
            raise _fail(key, value, f"is outside {low}..{high}")
        return number

    return read


def _read_degrees(key: str, value: Any) -> float:
    """Turntable degrees: a number or numeric string in (0, 3600]."""
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        degrees = float(value.strip())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        degrees = float(value)
    else:
        raise _fail(key, value, "is not a number")
    if not (math.isfinite(degrees) and 0 < degrees <= 3600):
        raise _fail(key, value, "is outside (0, 3600]")
    return degrees


def _read_bool(key: str, value: Any) -> bool:
    """A bool from a bool, 1/0, or true/false, yes/no, 1/0 text in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return value == 1
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _fail(key, value, "is not a boolean (true/false, yes/no, 1/0)")


def _read_engine(key: str, value: Any) -> Engine:
    """The engine from its name or Blender id, in any case."""
    if isinstance(value, str) and value.strip().lower() in _ENGINE_IDS:
        return _ENGINE_IDS[value.strip().lower()]
    raise _fail(key, value, "is not a known renderer (cycles, eevee, workbench)")


def _read_size(key: str, value: Any) -> tuple[int, int]:
    """Width and height from "WxH" text (spaces, 'x', 'X' or '×' tolerated)."""
    match = _SIZE_TEXT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _fail(key, value, "is not WIDTHxHEIGHT")
    width, height = int(match[1]), int(match[2])
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise _fail(key, value, f"has a side outside 1..{MAX_SIDE}")
    return width, height


def _read_file_format(key: str, value: Any) -> tuple[ArtifactKind, ImageFormat | None]:
    """The artifact kind a file format implies, and the still format if it is one."""
    if isinstance(value, str) and value.strip().lower() in _FILE_FORMATS:
        return _FILE_FORMATS[value.strip().lower()]
    raise _fail(key, value, "is not a known file_format (PNG, JPEG, FFMPEG, MP4, BLEND)")


def _read_name(key: str, value: Any) -> str | None:
    """A name (material, template, camera preset); empty means none."""
    if not isinstance(value, str):
        raise _fail(key, value, "is not a string")
    return value.strip() or None


_ALL_ENGINES = frozenset(Engine)


@dataclass(frozen=True)
class _Key:
    """How one legacy key is read, which canonical slots it feeds, and when it applies."""

    read: Callable[[str, Any], Any]
    slots: tuple[str, ...] = ()
    engines: frozenset[Engine] = _ALL_ENGINES
    vote: Callable[[Any], tuple[ArtifactKind, bool]] | None = None


# Order matters twice: within a slot the earlier key wins, and keys are read (so errors are
# reported) in this order whatever the order of the legacy dict.
_KEYS: dict[str, _Key] = {
    "renderer": _Key(_read_engine, ("engine",)),
    "resolution": _Key(_read_size, ("width", "height")),
    "res_x": _Key(_int_in(1, MAX_SIDE), ("width",)),
    "res_y": _Key(_int_in(1, MAX_SIDE), ("height",)),
    "resolution_percentage": _Key(_int_in(1, 100), ("percentage",)),
    "samples": _Key(_int_in(1, MAX_SAMPLES), ("samples",), frozenset({Engine.cycles, Engine.eevee})),
    "cycles_samples": _Key(_int_in(1, MAX_SAMPLES), ("samples",), frozenset({Engine.cycles})),
    "eevee_samples": _Key(_int_in(1, MAX_SAMPLES), ("samples",), frozenset({Engine.eevee})),
    "transparent_bg": _Key(_read_bool, ("transparent_background",)),
    "file_format": _Key(_read_file_format, vote=lambda fmt: (fmt[0], True)),
    "turntable": _Key(_read_bool, vote=lambda on: (ArtifactKind.turntable_video, on)),
    "frame_count": _Key(_int_in(1, 10000), ("frame_count",)),
    "frames": _Key(_int_in(1, 10000), ("frame_count",)),
    "fps": _Key(_int_in(1, 240), ("fps",)),
    "frame_rate": _Key(_int_in(1, 240), ("fps",)),
    "turntable_degrees": _Key(_read_degrees, ("turntable_degrees",)),
    "material_override": _Key(_read_name, ("material_override",)),
    "template": _Key(_read_name, ("template",)),
    "camera_preset": _Key(_read_name, ("camera_preset",)),
    "denoise": _Key(_read_bool, ("denoise",)),
    "thumbnail": _Key(_read_bool, ("preview_thumbnail",)),
    "export_blend": _Key(_read_bool, vote=lambda on: (ArtifactKind.production_blend, on)),
}
HINT_KEYS = frozenset({"render_backend", "tile_size", "gpu_device", "use_gpu", "threads"})
KNOWN_KEYS = frozenset(_KEYS) | HINT_KEYS

# A production .blend carries the whole scene, so it outranks a turntable asked for beside it.
_KIND_PRECEDENCE = (ArtifactKind.production_blend, ArtifactKind.turntable_video)
_TURNTABLE_SLOTS = frozenset({"frame_count", "fps", "turntable_degrees"})
_VALUE_SLOTS = (
    "width",
    "height",
    "percentage",
    "samples",
    "transparent_background",
    "frame_count",
    "fps",
    "turntable_degrees",
    "material_override",
    "template",
    "camera_preset",
    "denoise",
    "preview_thumbnail",
)
_DEFAULTS: dict[str, Any] = {
    "engine": Engine.cycles,
    "width": 1920,
    "height": 1080,
    "percentage": 100,
    "transparent_background": False,
    "frame_count": 36,
    "fps": 24,
    "turntable_degrees": 360.0,
    "material_override": None,
    "template": None,
    "camera_preset": None,
    "denoise": False,
    "preview_thumbnail": False,
}
_DEFAULT_SAMPLES = {Engine.cycles: 64, Engine.eevee: 16, Engine.workbench: None}


def _settings_dict(render_settings: Any) -> dict:
    """The settings bag, with null meaning empty."""
    if render_settings is None:
        return {}
    if not isinstance(render_settings, dict):
        raise LegacyMappingError(
            f"render_settings: {render_settings!r} is not an object", key="render_settings"
        )
    return render_settings


def _slot_value(key: str, slot: str, parsed: Any) -> Any:
    """The part of a parsed key's value that feeds one slot."""
    slots = _KEYS[key].slots
    return parsed[slots.index(slot)] if len(slots) > 1 else parsed


def _choose(slot: str, parsed: dict[str, Any], engine: Engine) -> tuple[Any, list[str]]:
    """A slot's value and the keys that gave or agreed with it."""
    given = [
        (key, _slot_value(key, slot, parsed[key]))
        for key, spec in _KEYS.items()
        if slot in spec.slots and key in parsed and engine in spec.engines
    ]
    if not given:
        default = _DEFAULT_SAMPLES[engine] if slot == "samples" else _DEFAULTS[slot]
        return default, []
    winner = given[0][1]
    return winner, [key for key, value in given if value == winner]


def _artifact_kind(parsed: dict[str, Any]) -> tuple[ArtifactKind, list[str]]:
    """The artifact kind the votes pick, and the keys consistent with it."""
    votes = {
        key: spec.vote(parsed[key]) for key, spec in _KEYS.items() if spec.vote is not None and key in parsed
    }
    kind = next((k for k in _KIND_PRECEDENCE if (k, True) in votes.values()), ArtifactKind.still_image)
    return kind, [key for key, (voted, wanted) in votes.items() if (voted == kind) == wanted]


def _scaled(size: int, percentage: int) -> int:
    """A side scaled by a resolution percentage, truncating as Blender does."""
    return max(1, size * percentage // 100)


def unknown_legacy_keys(render_settings: Any) -> list[str]:
    """The keys of a settings bag the adapter does not recognise, sorted."""
    if not isinstance(render_settings, dict):
        return []
    return sorted(str(key) for key in render_settings if key not in KNOWN_KEYS)


def map_legacy_settings(render_settings: dict | None) -> LegacyMapping:
    """Map one legacy `render_settings` bag; raises LegacyMappingError naming a bad key."""
    settings = _settings_dict(render_settings)
    # A null value reads as the key being absent: the legacy default applies.
    parsed = {
        key: spec.read(key, settings[key]) for key, spec in _KEYS.items() if settings.get(key) is not None
    }
    engine, engine_keys = _choose("engine", parsed, Engine.cycles)
    kind, kind_keys = _artifact_kind(parsed)
    effective = set(engine_keys) | set(kind_keys)
    values: dict[str, Any] = {}
    for slot in _VALUE_SLOTS:
        # Turntable settings on anything but a turntable have no effect, so they stay unset.
        if slot in _TURNTABLE_SLOTS and kind != ArtifactKind.turntable_video:
            continue
        values[slot], keys = _choose(slot, parsed, engine)
        effective.update(keys)
    image_format = None
    if kind == ArtifactKind.still_image:
        image_format = parsed["file_format"][1] if "file_format" in parsed else ImageFormat.png
    percentage = values.pop("percentage")
    overrides = InvocationOverrides(
        engine=engine,
        image_format=image_format,
        width=_scaled(values.pop("width"), percentage),
        height=_scaled(values.pop("height"), percentage),
        **values,
    )
    ignored = [str(key) for key in settings if key in HINT_KEYS or (key in parsed and key not in effective)]
    return LegacyMapping(
        artifact_kind=kind,
        overrides=overrides,
        ignored_keys=sorted(ignored),
        unknown_keys=unknown_legacy_keys(settings),
    )


def map_legacy_record(record: dict) -> dict:
    """One output-type record as an expected-invocation entry; errors become an `error` entry."""
    render_settings = record.get("render_settings")
    entry: dict[str, Any] = {"slug": record.get("slug")}
    try:
        mapping = map_legacy_settings(render_settings)
    except LegacyMappingError as exc:
        entry.update(
            artifact_kind=None,
            overrides=None,
            ignored_keys=[],
            error={"key": exc.key, "message": exc.message},
        )
    else:
        entry.update(
            artifact_kind=mapping.artifact_kind.value,
            overrides=mapping.overrides.model_dump(mode="json"),
            ignored_keys=mapping.ignored_keys,
            error=None,
        )
    # Unknown keys are a property of the bag alone, so they are reported even when mapping fails.
    entry["unknown_keys"] = unknown_legacy_keys(render_settings)
    return entry


def map_legacy_export(records: list[dict]) -> list[dict]:
    """Every record of a legacy export, in order."""
    return [map_legacy_record(record) for record in records]
