"""The legacy adapter reproduces the shared fixture pair and the README's semantics."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.errors import LegacyMappingError
from core.vocabulary import ArtifactKind
from legacy_adapter.mapping import (
    HINT_KEYS,
    KNOWN_KEYS,
    LegacyMapping,
    map_legacy_export,
    map_legacy_record,
    map_legacy_settings,
)
from registry.invocation import InvocationOverrides

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PRODGRAPH_SHARED_DIR", REPO.parent / "shared"))
LEGACY = SHARED / "fixtures" / "legacy"


def _load(name: str) -> Any:
    """One JSON file of the legacy fixture pair."""
    return json.loads((LEGACY / name).read_text())


RECORDS = _load("output_types_export.json")
EXPECTED = {entry["slug"]: entry for entry in _load("expected_invocations.json")}


def _comparable(entry: dict) -> dict:
    """An entry with its error reduced to the key, as the expected file states it."""
    error = entry["error"]
    return {**entry, "error": None if error is None else {"key": error["key"]}}


def test_fixture_pair_is_complete() -> None:
    """Every exported record has exactly one expectation."""
    assert sorted(r["slug"] for r in RECORDS) == sorted(EXPECTED)


@pytest.mark.parametrize("record", RECORDS, ids=[r["slug"] for r in RECORDS])
def test_fixture_record_maps_as_expected(record: dict) -> None:
    """Each legacy record reproduces its expected entry exactly (error compared on key)."""
    assert _comparable(map_legacy_record(record)) == EXPECTED[record["slug"]]


def test_export_maps_in_order() -> None:
    """The whole export maps record by record, in order."""
    entries = map_legacy_export(RECORDS)
    assert [e["slug"] for e in entries] == [r["slug"] for r in RECORDS]
    assert [_comparable(e) for e in entries] == [EXPECTED[r["slug"]] for r in RECORDS]


def test_error_entries_carry_a_message_naming_key_and_value() -> None:
    """An error entry says which key and which value could not be read."""
    entry = map_legacy_record({"slug": "x", "render_settings": {"resolution": "hd"}})
    assert entry["error"] == {
        "key": "resolution",
        "message": "render_settings.resolution: 'hd' is not WIDTHxHEIGHT",
    }
    assert entry["artifact_kind"] is None and entry["overrides"] is None


DEFAULTS = map_legacy_settings(None).overrides.model_dump(mode="json")

# (id, render_settings, artifact_kind, override changes from the defaults, ignored, unknown)
CASES: list[tuple[str, dict, str, dict, list[str], list[str]]] = [
    ("empty", {}, "still_image", {}, [], []),
    ("renderer-lower", {"renderer": "eevee"}, "still_image", {"engine": "eevee", "samples": 16}, [], []),
    ("renderer-mixed-case", {"renderer": " Cycles "}, "still_image", {}, [], []),
    (
        "renderer-blender-eevee",
        {"renderer": "BLENDER_EEVEE"},
        "still_image",
        {"engine": "eevee", "samples": 16},
        [],
        [],
    ),
    (
        "renderer-blender-eevee-next",
        {"renderer": "blender_eevee_next"},
        "still_image",
        {"engine": "eevee", "samples": 16},
        [],
        [],
    ),
    (
        "renderer-workbench",
        {"renderer": "WORKBENCH"},
        "still_image",
        {"engine": "workbench", "samples": None},
        [],
        [],
    ),
    (
        "renderer-blender-workbench",
        {"renderer": "BLENDER_WORKBENCH"},
        "still_image",
        {"engine": "workbench", "samples": None},
        [],
        [],
    ),
    (
        "resolution-spaces",
        {"resolution": " 1280 x 720 "},
        "still_image",
        {"width": 1280, "height": 720},
        [],
        [],
    ),
    (
        "resolution-capital-x",
        {"resolution": "1280X720"},
        "still_image",
        {"width": 1280, "height": 720},
        [],
        [],
    ),
    (
        "resolution-times-sign",
        {"resolution": "1280×720"},
        "still_image",
        {"width": 1280, "height": 720},
        [],
        [],
    ),
    ("res-x-res-y", {"res_x": 640, "res_y": "480"}, "still_image", {"width": 640, "height": 480}, [], []),
    ("res-x-alone", {"res_x": 640}, "still_image", {"width": 640}, [], []),
    (
        "resolution-beats-res-xy",
        {"resolution": "1280x720", "res_x": 1280, "res_y": 600},
        "still_image",
        {"width": 1280, "height": 720},
        ["res_y"],
        [],
    ),
    (
        "percentage-50",
        {"resolution": "1000x500", "resolution_percentage": 50},
        "still_image",
        {"width": 500, "height": 250},
        [],
        [],
    ),
    (
        "percentage-truncates",
        {"resolution": "1920x1080", "resolution_percentage": "33"},
        "still_image",
        {"width": 633, "height": 356},
        [],
        [],
    ),
    (
        "percentage-floor-at-one-pixel",
        {"resolution": "1x1", "resolution_percentage": 1},
        "still_image",
        {"width": 1, "height": 1},
        [],
        [],
    ),
    (
        "percentage-with-res-xy",
        {"res_x": 800, "res_y": 600, "resolution_percentage": 25},
        "still_image",
        {"width": 200, "height": 150},
        [],
        [],
    ),
    ("percentage-100", {"resolution_percentage": 100}, "still_image", {}, [], []),
    ("samples-string", {"samples": " 256 "}, "still_image", {"samples": 256}, [], []),
    ("samples-integral-float", {"samples": 128.0}, "still_image", {"samples": 128}, [], []),
    ("samples-integral-float-text", {"samples": "128.0"}, "still_image", {"samples": 128}, [], []),
    ("cycles-samples-on-cycles", {"cycles_samples": 200}, "still_image", {"samples": 200}, [], []),
    ("eevee-samples-on-cycles", {"eevee_samples": 32}, "still_image", {}, ["eevee_samples"], []),
    (
        "cycles-samples-on-eevee",
        {"renderer": "eevee", "cycles_samples": 500},
        "still_image",
        {"engine": "eevee", "samples": 16},
        ["cycles_samples"],
        [],
    ),
    (
        "eevee-samples-on-eevee",
        {"renderer": "BLENDER_EEVEE", "eevee_samples": "48"},
        "still_image",
        {"engine": "eevee", "samples": 48},
        [],
        [],
    ),
    (
        "samples-beats-cycles-samples",
        {"samples": 100, "cycles_samples": 50},
        "still_image",
        {"samples": 100},
        ["cycles_samples"],
        [],
    ),
    (
        "samples-agrees-cycles-samples",
        {"samples": 100, "cycles_samples": "100"},
        "still_image",
        {"samples": 100},
        [],
        [],
    ),
    (
        "workbench-ignores-samples",
        {"renderer": "workbench", "samples": 8, "cycles_samples": 8, "eevee_samples": 8},
        "still_image",
        {"engine": "workbench", "samples": None},
        ["cycles_samples", "eevee_samples", "samples"],
        [],
    ),
    *[
        (
            f"bool-true-{value!r}",
            {"transparent_bg": value},
            "still_image",
            {"transparent_background": True},
            [],
            [],
        )
        for value in (True, 1, 1.0, "true", "TRUE", "True", "yes", "YES", "1", " yes ")
    ],
    *[
        (
            f"bool-false-{value!r}",
            {"transparent_bg": value},
            "still_image",
            {"transparent_background": False},
            [],
            [],
        )
        for value in (False, 0, 0.0, "false", "FALSE", "no", "No", "0")
    ],
    ("file-format-jpeg", {"file_format": "JPEG"}, "still_image", {"image_format": "jpeg"}, [], []),
    ("file-format-jpg", {"file_format": "jpg"}, "still_image", {"image_format": "jpeg"}, [], []),
    ("file-format-png-lower", {"file_format": "png"}, "still_image", {}, [], []),
    (
        "file-format-ffmpeg",
        {"file_format": "ffmpeg"},
        "turntable_video",
        {"image_format": None, "frame_count": 36, "fps": 24, "turntable_degrees": 360.0},
        [],
        [],
    ),
    (
        "file-format-mp4",
        {"file_format": "Mp4"},
        "turntable_video",
        {"image_format": None, "frame_count": 36, "fps": 24, "turntable_degrees": 360.0},
        [],
        [],
    ),
    ("file-format-blend", {"file_format": "blend"}, "production_blend", {"image_format": None}, [], []),
    (
        "turntable-alone",
        {"turntable": "YES"},
        "turntable_video",
        {"image_format": None, "frame_count": 36, "fps": 24, "turntable_degrees": 360.0},
        [],
        [],
    ),
    (
        "turntable-aliases",
        {"turntable": 1, "frames": "12", "frame_rate": 60, "turntable_degrees": "90.5"},
        "turntable_video",
        {"image_format": None, "frame_count": 12, "fps": 60, "turntable_degrees": 90.5},
        [],
        [],
    ),
    (
        "turntable-canonical-beats-alias",
        {"turntable": True, "frame_count": 24, "frames": 12, "fps": 30, "frame_rate": 30},
        "turntable_video",
        {"image_format": None, "frame_count": 24, "fps": 30, "turntable_degrees": 360.0},
        ["frames"],
        [],
    ),
    (
        "turntable-png-format-ignored",
        {"turntable": True, "file_format": "PNG"},
        "turntable_video",
        {"image_format": None, "frame_count": 36, "fps": 24, "turntable_degrees": 360.0},
        ["file_format"],
        [],
    ),
    ("turntable-false-on-still", {"turntable": "no", "file_format": "PNG"}, "still_image", {}, [], []),
    (
        "turntable-keys-on-still",
        {"frame_count": 72, "fps": 30, "frames": 9, "frame_rate": 12, "turntable_degrees": 90},
        "still_image",
        {},
        ["fps", "frame_count", "frame_rate", "frames", "turntable_degrees"],
        [],
    ),
    (
        "video-format-beats-turntable-false",
        {"turntable": False, "file_format": "FFMPEG"},
        "turntable_video",
        {"image_format": None, "frame_count": 36, "fps": 24, "turntable_degrees": 360.0},
        ["turntable"],
        [],
    ),
    ("export-blend-alone", {"export_blend": "1"}, "production_blend", {"image_format": None}, [], []),
    ("export-blend-false-on-still", {"export_blend": False}, "still_image", {}, [], []),
    (
        "export-blend-beats-png",
        {"export_blend": True, "file_format": "PNG"},
        "production_blend",
        {"image_format": None},
        ["file_format"],
        [],
    ),
    (
        "blend-format-beats-export-blend-false",
        {"export_blend": "no", "file_format": "BLEND"},
        "production_blend",
        {"image_format": None},
        ["export_blend"],
        [],
    ),
    (
        "blend-beats-turntable",
        {"export_blend": True, "turntable": True, "frame_count": 10, "file_format": "MP4"},
        "production_blend",
        {"image_format": None},
        ["file_format", "frame_count", "turntable"],
        [],
    ),
    (
        "blend-keeps-render-settings",
        {
            "file_format": "BLEND",
            "renderer": "eevee",
            "resolution": "100x100",
            "transparent_bg": "yes",
            "material_override": "steel",
        },
        "production_blend",
        {
            "image_format": None,
            "engine": "eevee",
            "samples": 16,
            "width": 100,
            "height": 100,
            "transparent_background": True,
            "material_override": "steel",
        },
        [],
        [],
    ),
    (
        "names",
        {"material_override": " brushed_steel ", "template": "studio_white", "camera_preset": "top"},
        "still_image",
        {"material_override": "brushed_steel", "template": "studio_white", "camera_preset": "top"},
        [],
        [],
    ),
    (
        "empty-names",
        {"material_override": "", "template": "  ", "camera_preset": ""},
        "still_image",
        {},
        [],
        [],
    ),
    (
        "denoise-and-thumbnail",
        {"denoise": "Yes", "thumbnail": "1"},
        "still_image",
        {"denoise": True, "preview_thumbnail": True},
        [],
        [],
    ),
    (
        "null-values-mean-defaults",
        {"renderer": None, "samples": None, "material_override": None},
        "still_image",
        {},
        [],
        [],
    ),
    (
        "hints-ignored",
        {"render_backend": "celery", "tile_size": "junk", "gpu_device": None, "use_gpu": True, "threads": -1},
        "still_image",
        {},
        ["gpu_device", "render_backend", "threads", "tile_size", "use_gpu"],
        [],
    ),
    (
        "unknown-keys",
        {"Renderer": "eevee", "motion_blur": True, "aa": 8, "samples": 32},
        "still_image",
        {"samples": 32},
        [],
        ["Renderer", "aa", "motion_blur"],
    ),
]


@pytest.mark.parametrize(
    ("settings_", "kind", "changes", "ignored", "unknown"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_mapping_case(
    settings_: dict, kind: str, changes: dict, ignored: list[str], unknown: list[str]
) -> None:
    """A hand-written case maps to its kind, overrides, ignored and unknown keys."""
    mapping = map_legacy_settings(settings_)
    assert mapping.artifact_kind == ArtifactKind(kind)
    assert mapping.overrides.model_dump(mode="json") == {**DEFAULTS, **changes}
    assert mapping.ignored_keys == ignored
    assert mapping.unknown_keys == unknown


# (id, render_settings, the key the error must name)
ERRORS: list[tuple[str, Any, str]] = [
    ("not-an-object", ["cycles"], "render_settings"),
    ("renderer-unknown", {"renderer": "luxcore"}, "renderer"),
    ("renderer-not-text", {"renderer": 1}, "renderer"),
    ("resolution-words", {"resolution": "hd"}, "resolution"),
    ("resolution-one-side", {"resolution": "1920"}, "resolution"),
    ("resolution-zero", {"resolution": "0x1080"}, "resolution"),
    ("resolution-too-big", {"resolution": "20000x1080"}, "resolution"),
    ("resolution-list", {"resolution": [1920, 1080]}, "resolution"),
    ("resolution-negative", {"resolution": "-1920x1080"}, "resolution"),
    ("res-x-text", {"res_x": "wide", "res_y": 600}, "res_x"),
    ("res-y-zero", {"res_x": 800, "res_y": 0}, "res_y"),
    ("res-x-fraction", {"res_x": 800.5, "res_y": 600}, "res_x"),
    ("percentage-zero", {"resolution_percentage": 0}, "resolution_percentage"),
    ("percentage-over", {"resolution_percentage": 150}, "resolution_percentage"),
    ("percentage-text", {"resolution_percentage": "half"}, "resolution_percentage"),
    ("samples-negative", {"samples": -5}, "samples"),
    ("samples-zero", {"samples": 0}, "samples"),
    ("samples-text", {"samples": "many"}, "samples"),
    ("samples-bool", {"samples": True}, "samples"),
    ("samples-fraction", {"samples": "12.5"}, "samples"),
    ("samples-too-many", {"samples": 10**6}, "samples"),
    ("samples-nan", {"samples": float("nan")}, "samples"),
    ("cycles-samples-negative", {"cycles_samples": "-1"}, "cycles_samples"),
    ("eevee-samples-zero", {"renderer": "eevee", "eevee_samples": 0}, "eevee_samples"),
    ("inapplicable-samples-still-read", {"eevee_samples": "x"}, "eevee_samples"),
    ("transparent-maybe", {"transparent_bg": "maybe"}, "transparent_bg"),
    ("transparent-two", {"transparent_bg": 2}, "transparent_bg"),
    ("file-format-tiff", {"file_format": "TIFF"}, "file_format"),
    ("file-format-number", {"file_format": 3}, "file_format"),
    ("turntable-text", {"turntable": "spin"}, "turntable"),
    ("frame-count-zero", {"turntable": True, "frame_count": 0}, "frame_count"),
    ("frames-text", {"turntable": True, "frames": "lots"}, "frames"),
    ("fps-too-high", {"turntable": True, "fps": 1000}, "fps"),
    ("frame-rate-fraction", {"turntable": True, "frame_rate": 29.97}, "frame_rate"),
    ("degrees-zero", {"turntable": True, "turntable_degrees": 0}, "turntable_degrees"),
    ("degrees-negative", {"turntable": True, "turntable_degrees": "-90"}, "turntable_degrees"),
    ("degrees-too-many", {"turntable": True, "turntable_degrees": 7200}, "turntable_degrees"),
    ("degrees-inf", {"turntable": True, "turntable_degrees": float("inf")}, "turntable_degrees"),
    ("material-not-text", {"material_override": 5}, "material_override"),
    ("template-not-text", {"template": ["a"]}, "template"),
    ("camera-not-text", {"camera_preset": {"name": "top"}}, "camera_preset"),
    ("denoise-text", {"denoise": "sometimes"}, "denoise"),
    ("thumbnail-text", {"thumbnail": "please"}, "thumbnail"),
    ("export-blend-text", {"export_blend": "blend"}, "export_blend"),
    ("first-bad-key-in-table-order", {"samples": -1, "renderer": "luxcore"}, "renderer"),
]


@pytest.mark.parametrize(
    ("settings_", "key"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS]
)
def test_unreadable_value_names_the_key(settings_: Any, key: str) -> None:
    """An unreadable value raises LegacyMappingError naming its key and value."""
    with pytest.raises(LegacyMappingError) as caught:
        map_legacy_settings(settings_)
    assert caught.value.key == key
    assert caught.value.message.startswith(
        "render_settings" if key == "render_settings" else f"render_settings.{key}: "
    )
    if isinstance(settings_, dict):
        assert repr(settings_[key]) in caught.value.message


def test_error_record_still_reports_unknown_keys() -> None:
    """Unknown keys are a property of the bag, so a failing record still lists them."""
    entry = map_legacy_record({"slug": "x", "render_settings": {"samples": 0, "legacy_aa": 4}})
    assert entry["error"]["key"] == "samples"
    assert entry["ignored_keys"] == [] and entry["unknown_keys"] == ["legacy_aa"]


def test_record_without_render_settings_gets_defaults() -> None:
    """A record with no render_settings key maps like null settings."""
    entry = map_legacy_record({"slug": "bare"})
    assert entry["overrides"] == DEFAULTS and entry["artifact_kind"] == "still_image"


def test_overrides_model_shape_and_bounds() -> None:
    """InvocationOverrides has exactly the expected fields, all optional, documented, bounded."""
    expected_fields = next(iter(EXPECTED.values()))["overrides"].keys()
    assert list(InvocationOverrides.model_fields) == list(expected_fields)
    assert InvocationOverrides().model_dump(mode="json") == dict.fromkeys(expected_fields)
    assert all(f.description for f in InvocationOverrides.model_fields.values())
    for bad in (
        {"width": 0},
        {"height": 16385},
        {"samples": 0},
        {"frame_count": 10001},
        {"fps": 241},
        {"turntable_degrees": 0},
        {"turntable_degrees": 3600.5},
        {"engine": "luxcore"},
        {"image_format": "tiff"},
        {"unexpected": 1},
    ):
        with pytest.raises(ValidationError):
            InvocationOverrides(**bad)


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["", " ", "1", "0", "yes", "NO", "png", "blend", "mp4", "eevee", "1920x1080", "3 × 4", "-1", "1e3"]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
BAGS = st.dictionaries(st.sampled_from(sorted(KNOWN_KEYS) + ["mystery", "Renderer"]), JUNK)


@settings(max_examples=400, deadline=None)
@given(BAGS)
def test_mapping_never_raises_anything_but_legacy_mapping_error(bag: dict) -> None:
    """Arbitrary values under the known keys either map cleanly or name a key of the bag."""
    try:
        mapping = map_legacy_settings(bag)
    except LegacyMappingError as exc:
        assert exc.key in bag
        entry = map_legacy_record({"slug": "s", "render_settings": bag})
        assert entry["error"]["key"] == exc.key
        return
    assert isinstance(mapping, LegacyMapping)
    assert set(mapping.ignored_keys) >= HINT_KEYS & bag.keys()
    assert set(mapping.ignored_keys) <= bag.keys() and set(mapping.unknown_keys) <= bag.keys()
    assert not set(mapping.ignored_keys) & set(mapping.unknown_keys)
    dumped = mapping.overrides.model_dump(mode="json")
    assert None not in (dumped["engine"], dumped["width"], dumped["height"])
    assert (dumped["samples"] is None) == (dumped["engine"] == "workbench")
    is_turntable = mapping.artifact_kind == ArtifactKind.turntable_video
    assert (dumped["frame_count"] is not None) == is_turntable
    assert (dumped["image_format"] is not None) == (mapping.artifact_kind == "still_image")
    assert InvocationOverrides.model_validate(dumped) == mapping.overrides
