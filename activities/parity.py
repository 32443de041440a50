"""Parity: compare a legacy run with its graph shadow, artifact by artifact, and explain the differences."""

from __future__ import annotations

import json
import math
import struct
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from activities.artifacts import ArtifactRef, LocalArtifactStore
from activities.cad import BBox, CadObject
from activities.child_process import ChildJobRunner
from activities.module import CONTRACT, production_module
from core.errors import InvalidGlbError

PARITY_UI = {"palette_group": "Parity", "icon": "compare", "color": "#7a7f87"}
Outcome = Literal["identical", "equivalent", "different"]
Verdict = Literal["identical", "equivalent", "different", "shadow_failed"]
#: Outcomes from best to worst: an artifact's (and a report's) outcome is its worst metric's.
OUTCOME_ORDER: tuple[Outcome, ...] = ("identical", "equivalent", "different")
IMAGE_ROLES = ("still", "thumbnail")
MOVIE_ROLES = ("turntable",)
BLEND_ROLES = ("blend",)
GLB_ROLES = ("glb",)
#: The render module behind each image-bearing role (a thumbnail is shrunk from the still).
RENDER_MODULE = {
    "still": "render.blender_still",
    "thumbnail": "render.blender_still",
    "turntable": "render.blender_turntable",
    "blend": "render.export_blend",
}
#: Modules whose parameters change the look of everything rendered: materials, template, mesh.
LOOK_MODULES = (
    "materials.auto_populate",
    "materials.resolve_map",
    "render.resolve_template",
    "cad.export_glb",
)
ANY = "*"


# --- contracts -----------------------------------------------------------------------------


class ParityThresholds(BaseModel):
    """How far a graph run may stray from the legacy one and still count as equivalent."""

    model_config = CONTRACT

    bbox_rel: float = Field(1e-4, ge=0, le=1)
    """Largest corner deviation of the bounding box, as a share of the legacy box's diagonal."""
    triangles_rel: float = Field(0.02, ge=0, le=1)
    """Relative difference in triangle count (GLB and .blend meshes)."""
    value_rel: float = Field(1e-6, ge=0, le=1)
    """Relative difference of any other number (material values, camera, render settings)."""
    pixel_delta: int = Field(32, ge=0, le=255)
    """A pixel counts as changed when one of its channels differs by more than this (0-255)."""
    changed_pixels_max: float = Field(0.01, ge=0, le=1)
    """Largest share of changed pixels in an image or sampled frame."""
    psnr_min_db: float = Field(30.0, ge=0, le=100)
    """Lowest peak signal-to-noise ratio over all channels, in dB."""
    ssim_min: float = Field(0.90, ge=-1, le=1)
    """Lowest structural similarity of the luminance."""
    duration_s: float = Field(0.05, ge=0, le=60)
    """Largest difference in a video's duration, in seconds."""


class EffectiveParams(BaseModel):
    """The parameters one module ran with, and where each value came from (a run's provenance)."""

    model_config = CONTRACT

    params: dict[str, Any] = {}
    """Parameter name → effective value."""
    param_sources: dict[str, str] = {}
    """Parameter name → source (module_default, node_param, profile_override, invocation, operator)."""


class RunFailure(BaseModel):
    """Why a run failed."""

    model_config = CONTRACT

    code: str
    """Error code (core.errors)."""
    message: str
    """What went wrong."""
    node_id: str | None = None
    """The node that failed, when one did."""


class ParitySide(BaseModel):
    """One run's results as the diff reads them."""

    model_config = CONTRACT

    artifacts: list[ArtifactRef] = []
    """Every artifact the run produced, matched with the other side's by role."""
    objects: list[CadObject] | None = None
    """The object manifest (cad.extract_objects), when the run has one."""
    bbox: BBox | None = None
    """The bounding box (cad.compute_bbox, metres), when the run has one."""
    effective: dict[str, EffectiveParams] = {}
    """Module key → the parameters it ran with, with provenance."""


class CompareParams(BaseModel):
    """What the diff samples, skips and draws."""

    model_config = CONTRACT

    sampled_frames: int = Field(3, ge=1, le=50)
    """Turntable frames compared as stills: first, last and evenly between."""
    ignored_roles: list[str] = ["manifest"]
    """Roles never compared (the publish manifest: a shadow never publishes)."""
    panel_max_px: int = Field(512, ge=32, le=4096)
    """Longest side of each panel in a picture; larger images are shrunk for it."""


class CompareInput(BaseModel):
    """The two runs of one order line, and the thresholds of its output type."""

    model_config = CONTRACT

    legacy: ParitySide
    """The primary (legacy) run."""
    graph: ParitySide
    """The shadow (graph) run."""
    graph_failure: RunFailure | None = None
    """Set when the graph run failed: nothing is compared."""
    thresholds: ParityThresholds = ParityThresholds()
    """The output type's calibrated thresholds, or the defaults."""
    params: CompareParams = CompareParams()
    """Module parameters."""


class Metric(BaseModel):
    """One measurement of an artifact pair."""

    model_config = CONTRACT

    name: str
    """What is measured (size, psnr, triangles, render.engine, ...)."""
    legacy: Any = None
    """The legacy side's value, for a per-side metric."""
    graph: Any = None
    """The graph side's value, for a per-side metric."""
    value: float | None = None
    """The measured comparison, for a pairwise metric (psnr, ssim, changed_pixels); a PSNR of
    identical images (infinite) is None."""
    threshold: float | None = None
    """The tolerance it is held to; None when it must match exactly."""
    outcome: Outcome
    """identical, equivalent (within the threshold) or different."""


class ParamChange(BaseModel):
    """One effective parameter whose value differs between the runs."""

    model_config = CONTRACT

    module: str
    """Module key."""
    param: str
    """Parameter name."""
    legacy: Any = None
    """The legacy run's value (None when the module did not run there)."""
    graph: Any = None
    """The graph run's value (None when the module did not run there)."""
    legacy_source: str | None = None
    """Where the legacy value came from; None when the module did not run."""
    graph_source: str | None = None
    """Where the graph value came from; None when the module did not run."""

    @property
    def text(self) -> str:
        """E.g. 'render.resolve_template.template: legacy studio_grey (module_default), graph
        studio_white (profile_override)'."""
        legacy, graph = _side(self.legacy, self.legacy_source), _side(self.graph, self.graph_source)
        return f"{self.module}.{self.param}: legacy {legacy}, graph {graph}"


class Difference(BaseModel):
    """A metric beyond its threshold, with the parameters that can explain it."""

    model_config = CONTRACT

    artifact: str
    """Artifact role (still, turntable, glb, objects, bbox, ...)."""
    metric: str
    """The metric."""
    legacy: Any = None
    """The legacy side's value."""
    graph: Any = None
    """The graph side's value."""
    value: float | None = None
    """The measured comparison, for a pairwise metric."""
    threshold: float | None = None
    """The tolerance; None when it must match exactly."""
    explained_by: list[str] = []
    """Effective parameters that differ between the runs and can cause this difference."""


class ArtifactComparison(BaseModel):
    """One artifact role compared."""

    model_config = CONTRACT

    artifact: str
    """Artifact role; a second artifact of the same role is `role#2`."""
    legacy: ArtifactRef | None = None
    """The legacy artifact (None for outputs that are not files, or when the side lacks it)."""
    graph: ArtifactRef | None = None
    """The graph artifact."""
    outcome: Outcome
    """The worst outcome of its metrics."""
    metrics: list[Metric]
    """Every measurement."""
    picture: ArtifactRef | None = None
    """Legacy, graph and difference heat-map side by side (images and turntables)."""


class ParityReport(BaseModel):
    """The verdict on a shadow run, and why."""

    model_config = CONTRACT

    verdict: Verdict
    """identical, equivalent (within thresholds), different, or shadow_failed."""
    reason: str
    """One sentence on the verdict."""
    graph_failure: RunFailure | None = None
    """The graph run's failure, for shadow_failed."""
    comparisons: list[ArtifactComparison] = []
    """Every artifact role compared."""
    differences: list[Difference] = []
    """Every metric beyond its threshold."""
    parameter_changes: list[ParamChange] = []
    """Every effective parameter that differs between the runs."""
    thresholds: ParityThresholds
    """The thresholds applied."""


class CompareOutput(BaseModel):
    """The report, stored as JSON, and its pictures."""

    model_config = CONTRACT

    report: ParityReport
    """The verdict and the comparisons."""
    report_file: ArtifactRef
    """The report as a JSON artifact (role parity_report)."""
    pictures: list[ArtifactRef]
    """One PNG per image artifact (role parity_picture)."""


# --- what the parity child job reads -------------------------------------------------------


class ImagePair(BaseModel):
    """Two images to measure against each other."""

    model_config = CONTRACT

    key: str
    """Name of the pair in the result (`still`, `turntable frame 12`)."""
    legacy_path: str
    """Local path of the legacy image."""
    graph_path: str
    """Local path of the graph image."""


class PictureRequest(BaseModel):
    """Image pairs of one artifact, drawn as one picture: a row of three panels per pair."""

    model_config = CONTRACT

    artifact: str
    """The artifact the picture shows."""
    pairs: list[ImagePair]
    """One row each."""
    output_path: str
    """Where the job writes the PNG."""


class ImagesJobRequest(BaseModel):
    """Every image comparison of a report, done in one child process."""

    model_config = CONTRACT

    pictures: list[PictureRequest]
    """Pairs grouped by picture."""
    pixel_delta: int
    """Per-pixel threshold (the heat-map's scale and the changed-pixel count)."""
    panel_max_px: int
    """Longest side of a panel."""


class BlendProbe(BaseModel):
    """A .blend file to summarise."""

    model_config = CONTRACT

    key: str
    """Name in the result."""
    path: str
    """Local path."""


class MovieProbe(BaseModel):
    """A video to measure and sample."""

    model_config = CONTRACT

    key: str
    """Name in the result."""
    path: str
    """Local path."""
    sampled_frames: int
    """How many frames to write as PNG: first, last and evenly between."""
    output_dir: str
    """Where the sampled frames go."""


class BlenderProbeRequest(BaseModel):
    """.blend files and videos read with Blender in one child process."""

    model_config = CONTRACT

    blends: list[BlendProbe] = []
    """Files whose objects, materials and render settings are read."""
    movies: list[MovieProbe] = []
    """Videos whose frame count, fps and size are read and whose frames are sampled."""


class RecordParityInput(BaseModel):
    """A comparison to keep: whose order line, of which output type, and what it found."""

    model_config = CONTRACT

    order_line_workflow_id: str
    run_id: str
    """The order line's run: one report per run, however often the activity is retried."""
    output_type: str
    owner: str | None = None
    compared: CompareOutput
    calibration: bool = False


class StoreCalibrationInput(BaseModel):
    """An output type's measured noise floor, to keep as the thresholds its comparisons use."""

    model_config = CONTRACT

    output_type: str
    thresholds: ParityThresholds
    step_sha256: str
    """The STEP file calibrated on."""
    report_id: str
    """The legacy-against-legacy comparison the thresholds come from."""


# --- the module ----------------------------------------------------------------------------


class ParityActivities:
    """The parity diff, bound to an artifact store and a child-job runner.

    Pixel metrics and pictures run in a child job (`jobs/parity_job.py`): SSIM on a 4K pair
    holds about 2 GB of float arrays for seconds, which in the worker would block its event loop
    (the default queue also runs workflow tasks) and escape the job memory cap; a child is
    capped, killed on cancel and heartbeated. Reading .blend files and decoding videos needs
    bpy, which only ever runs in a child. What is left here (manifests, bbox, the GLB's JSON
    chunk, explanations) is small.
    """

    def __init__(self, store: LocalArtifactStore, jobs: ChildJobRunner):
        self.store = store
        self.jobs = jobs

    @production_module(
        "parity.compare",
        families=("order_line",),
        label="Compare shadow run",
        category="parity",
        timeout_s=1800,
        ui=PARITY_UI,
    )
    async def compare(self, input: CompareInput) -> CompareOutput:
        """Compare a graph shadow run with its legacy primary, artifact by artifact by role."""
        if input.graph_failure is not None:
            report = ParityReport(
                verdict="shadow_failed",
                reason=f"the graph run failed ({input.graph_failure.code}): {input.graph_failure.message}",
                graph_failure=input.graph_failure,
                parameter_changes=parameter_changes(input.legacy.effective, input.graph.effective),
                thresholds=input.thresholds,
            )
            return CompareOutput(report=report, report_file=self._store_report(report), pictures=[])
        with self.store.scratch_file("parity") as scratch:
            scratch.mkdir()
            comparisons = await self._compare_all(input, scratch)
        report = build_report(comparisons, input.legacy.effective, input.graph.effective, input.thresholds)
        pictures = [c.picture for c in comparisons if c.picture is not None]
        return CompareOutput(report=report, report_file=self._store_report(report), pictures=pictures)

    async def _compare_all(self, input: CompareInput, scratch: Path) -> list[ArtifactComparison]:
        thresholds = input.thresholds
        legacy_side, graph_side = input.legacy, input.graph
        comparisons = [
            *compare_objects(_objects(legacy_side), _objects(graph_side)),
            *compare_bbox(_box(legacy_side), _box(graph_side), thresholds),
        ]
        pairs = pair_by_role(input.legacy.artifacts, input.graph.artifacts, input.params.ignored_roles)
        probed = await self._probe_with_blender(pairs, input.params, scratch)
        pictures: list[PictureRequest] = []
        pending: list[tuple[str, ArtifactRef | None, ArtifactRef | None, list[Metric]]] = []
        for key, legacy, graph in pairs:
            role = key.split("#")[0]
            if legacy is None or graph is None:
                comparisons.append(_one_sided(key, legacy, graph))
            elif role in GLB_ROLES:
                comparisons.append(self._compare_glb(key, legacy, graph, thresholds))
            elif role in BLEND_ROLES:
                metrics = compare_blend_summaries(probed[f"{key}/legacy"], probed[f"{key}/graph"], thresholds)
                comparisons.append(_comparison(key, legacy, graph, metrics))
            elif role in IMAGE_ROLES:
                pair = ImagePair(
                    key=key,
                    legacy_path=str(self.store.path_of(legacy)),
                    graph_path=str(self.store.path_of(graph)),
                )
                pictures.append(
                    PictureRequest(artifact=key, pairs=[pair], output_path=str(scratch / f"{key}.png"))
                )
                pending.append((key, legacy, graph, []))
            elif role in MOVIE_ROLES:
                metrics, frame_pairs = movie_metrics(
                    key, probed[f"{key}/legacy"], probed[f"{key}/graph"], thresholds
                )
                if frame_pairs:
                    output = str(scratch / f"{key}.png")
                    pictures.append(PictureRequest(artifact=key, pairs=frame_pairs, output_path=output))
                pending.append((key, legacy, graph, metrics))
            else:
                comparisons.append(
                    _comparison(key, legacy, graph, [_exact("sha256", legacy.sha256, graph.sha256)])
                )
        measured = await self._measure_images(pictures, input) if pictures else {"pairs": {}, "pictures": {}}
        comparisons += [self._with_images(*item, measured, thresholds) for item in pending]
        # Manifest and box first, then the files in the order the legacy run produced them.
        order = {key: index for index, key in enumerate(["objects", "bbox", *(key for key, _, _ in pairs)])}
        return sorted(comparisons, key=lambda comparison: order[comparison.artifact])

    def _with_images(
        self,
        key: str,
        legacy: ArtifactRef | None,
        graph: ArtifactRef | None,
        metrics: list[Metric],
        measured: dict[str, Any],
        thresholds: ParityThresholds,
    ) -> ArtifactComparison:
        """The comparison of an image or video: its metrics, its measured pairs, its picture stored."""
        for row, pair in measured["pairs"].items():
            if row == key or row.startswith(f"{key} frame "):
                prefix = "" if row == key else f"{row[len(key) + 1 :]}: "  # "frame 12: "
                metrics = [*metrics, *image_metrics(pair, thresholds, prefix=prefix)]
        picture_path = measured["pictures"].get(key)
        picture = self.store.put_file(Path(picture_path), role="parity_picture") if picture_path else None
        return _comparison(key, legacy, graph, metrics, picture)

    async def _probe_with_blender(
        self,
        pairs: list[tuple[str, ArtifactRef | None, ArtifactRef | None]],
        params: CompareParams,
        scratch: Path,
    ) -> dict[str, dict[str, Any]]:
        """Summaries of both sides' .blend files and videos (`<key>/legacy`, `<key>/graph`)."""
        request = BlenderProbeRequest()
        for key, legacy, graph in pairs:
            role = key.split("#")[0]
            if legacy is None or graph is None or role not in (*BLEND_ROLES, *MOVIE_ROLES):
                continue
            for side, ref in (("legacy", legacy), ("graph", graph)):
                name, path = f"{key}/{side}", str(self.store.path_of(ref))
                if role in BLEND_ROLES:
                    request.blends.append(BlendProbe(key=name, path=path))
                else:
                    folder = scratch / f"frames-{key}-{side}"
                    folder.mkdir()
                    request.movies.append(
                        MovieProbe(
                            key=name, path=path, sampled_frames=params.sampled_frames, output_dir=str(folder)
                        )
                    )
        if not request.blends and not request.movies:
            return {}
        return await self.jobs.run("parity_job", "blender", request)

    async def _measure_images(self, pictures: list[PictureRequest], input: CompareInput) -> dict[str, Any]:
        request = ImagesJobRequest(
            pictures=pictures,
            pixel_delta=input.thresholds.pixel_delta,
            panel_max_px=input.params.panel_max_px,
        )
        return await self.jobs.run("parity_job", "images", request)

    def _compare_glb(
        self, key: str, legacy: ArtifactRef, graph: ArtifactRef, thresholds: ParityThresholds
    ) -> ArtifactComparison:
        metrics = compare_glb_summaries(
            glb_summary(self.store.path_of(legacy)), glb_summary(self.store.path_of(graph)), thresholds
        )
        return _comparison(key, legacy, graph, metrics)

    def _store_report(self, report: ParityReport) -> ArtifactRef:
        with self.store.scratch_file("parity_report.json") as path:
            path.write_text(report.model_dump_json(indent=2))
            return self.store.put_file(path, role="parity_report", media_type="application/json")


def _objects(side: ParitySide) -> list[dict[str, Any]] | None:
    return None if side.objects is None else [item.model_dump() for item in side.objects]


def _box(side: ParitySide) -> dict[str, Any] | None:
    return None if side.bbox is None else side.bbox.model_dump()


# --- pairing -------------------------------------------------------------------------------


def pair_by_role(
    legacy: list[ArtifactRef], graph: list[ArtifactRef], ignored: Iterable[str] = ()
) -> list[tuple[str, ArtifactRef | None, ArtifactRef | None]]:
    """Legacy and graph artifacts matched by role, in order of first appearance; a second
    artifact of a role is `role#2`, and a role on one side only pairs with None."""
    skip = set(ignored)
    by_role: dict[str, tuple[list[ArtifactRef], list[ArtifactRef]]] = defaultdict(lambda: ([], []))
    for side, refs in enumerate((legacy, graph)):
        for ref in refs:
            if ref.role not in skip:
                by_role[ref.role][side].append(ref)
    pairs: list[tuple[str, ArtifactRef | None, ArtifactRef | None]] = []
    for role, (left, right) in by_role.items():
        for index in range(max(len(left), len(right))):
            key = role if index == 0 else f"{role}#{index + 1}"
            pairs.append((key, _at(left, index), _at(right, index)))
    return pairs


def _at(refs: list[ArtifactRef], index: int) -> ArtifactRef | None:
    return refs[index] if index < len(refs) else None


def _one_sided(key: str, legacy: ArtifactRef | None, graph: ArtifactRef | None) -> ArtifactComparison:
    return _comparison(key, legacy, graph, [_exact("present", legacy is not None, graph is not None)])


# --- object manifest and bounding box ------------------------------------------------------


def compare_objects(
    legacy: list[dict[str, Any]] | None, graph: list[dict[str, Any]] | None
) -> list[ArtifactComparison]:
    """Names, counts by kind and colours of the two object manifests."""
    if legacy is None and graph is None:
        return []
    if legacy is None or graph is None:
        return [
            _comparison("objects", None, None, [_exact("present", legacy is not None, graph is not None)])
        ]
    metrics = [
        _exact(
            "names", sorted(_object_key(item) for item in legacy), sorted(_object_key(item) for item in graph)
        ),
        _exact("counts", _kind_counts(legacy), _kind_counts(graph)),
        _exact("colors", _colours(legacy), _colours(graph)),
    ]
    return [_comparison("objects", None, None, metrics)]


def _object_key(item: dict[str, Any]) -> str:
    return str(item.get("path") or item.get("name"))


def _kind_counts(objects: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in objects:
        counts[str(item.get("kind", "object"))] += 1
    return dict(sorted(counts.items()))


def _colours(objects: list[dict[str, Any]]) -> dict[str, str | None]:
    return {
        _object_key(item): (item.get("color") or "").lower() or None
        for item in sorted(objects, key=_object_key)
    }


def compare_bbox(
    legacy: dict[str, Any] | None, graph: dict[str, Any] | None, thresholds: ParityThresholds
) -> list[ArtifactComparison]:
    """The largest corner deviation, against a share of the legacy box's diagonal."""
    if legacy is None and graph is None:
        return []
    if legacy is None or graph is None:
        return [_comparison("bbox", None, None, [_exact("present", legacy is not None, graph is not None)])]
    corners_legacy = [*legacy["min"], *legacy["max"]]
    corners_graph = [*graph["min"], *graph["max"]]
    deviation = max(abs(a - b) for a, b in zip(corners_legacy, corners_graph, strict=True))
    diagonal = math.dist(legacy["min"], legacy["max"]) or 1.0
    relative = deviation / diagonal
    outcome = _graded(relative == 0, relative <= thresholds.bbox_rel)
    metric = Metric(
        name="corners",
        legacy=corners_legacy,
        graph=corners_graph,
        value=relative,
        threshold=thresholds.bbox_rel,
        outcome=outcome,
    )
    return [_comparison("bbox", None, None, [metric])]


# --- GLB -----------------------------------------------------------------------------------

GLB_MAGIC = b"glTF"
GLB_JSON_CHUNK = 0x4E4F534A
TRIANGLES_MODE = 4


def glb_summary(path: Path) -> dict[str, Any]:
    """Nodes, meshes, materials and triangle count, read from the GLB's JSON chunk alone
    (accessor counts give the triangles; the binary chunk is never parsed)."""
    data = path.read_bytes()
    if len(data) < 20 or data[:4] != GLB_MAGIC:
        raise InvalidGlbError(f"{path.name}: not a GLB file (no 'glTF' magic)")
    length, chunk_type = struct.unpack_from("<II", data, 12)
    if chunk_type != GLB_JSON_CHUNK:
        raise InvalidGlbError(f"{path.name}: the first GLB chunk is not JSON")
    document = json.loads(data[20 : 20 + length])
    accessors = document.get("accessors", [])
    triangles = 0
    for mesh in document.get("meshes", []):
        for primitive in mesh.get("primitives", []):
            if primitive.get("mode", TRIANGLES_MODE) != TRIANGLES_MODE:
                continue
            source = primitive.get("indices", primitive.get("attributes", {}).get("POSITION"))
            triangles += accessors[source]["count"] // 3 if source is not None else 0
    return {
        "nodes": sorted(node.get("name", "") for node in document.get("nodes", [])),
        "meshes": len(document.get("meshes", [])),
        "materials": sorted(
            (
                material.get("name", ""),
                _rounded(material.get("pbrMetallicRoughness", {}).get("baseColorFactor")),
            )
            for material in document.get("materials", [])
        ),
        "triangles": triangles,
    }


def compare_glb_summaries(
    legacy: dict[str, Any], graph: dict[str, Any], thresholds: ParityThresholds
) -> list[Metric]:
    """Nodes, meshes and materials exactly; triangles within thresholds.triangles_rel."""
    return [
        _exact("nodes", legacy["nodes"], graph["nodes"]),
        _exact("meshes", legacy["meshes"], graph["meshes"]),
        _exact("materials", [list(m) for m in legacy["materials"]], [list(m) for m in graph["materials"]]),
        _relative("triangles", legacy["triangles"], graph["triangles"], thresholds.triangles_rel),
    ]


def _rounded(value: Any, digits: int = 4) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, list | tuple):
        return [_rounded(item, digits) for item in value]
    return value


# --- .blend --------------------------------------------------------------------------------


def compare_blend_summaries(
    legacy: dict[str, Any], graph: dict[str, Any], thresholds: ParityThresholds
) -> list[Metric]:
    """Objects and materials, triangle count, and each render setting of two .blend summaries."""
    metrics = [
        _exact("objects", legacy["objects"], graph["objects"]),
        _relative("triangles", legacy["triangles"], graph["triangles"], thresholds.triangles_rel),
        _close("materials", legacy["materials"], graph["materials"], thresholds.value_rel),
    ]
    for name in sorted(set(legacy["render"]) | set(graph["render"])):
        metrics.append(
            _close(
                f"render.{name}", legacy["render"].get(name), graph["render"].get(name), thresholds.value_rel
            )
        )
    return metrics


# --- images and videos ---------------------------------------------------------------------


def image_metrics(measured: dict[str, Any], thresholds: ParityThresholds, prefix: str = "") -> list[Metric]:
    """Size, mode, background, PSNR, SSIM and changed-pixel share of one measured image pair
    (only `readable` when either image cannot be read)."""
    if "unreadable" in measured:
        return [_exact(f"{prefix}readable", *measured["readable"])]
    metrics = [
        _exact(f"{prefix}size", measured["legacy_size"], measured["graph_size"]),
        _exact(f"{prefix}mode", measured["legacy_mode"], measured["graph_mode"]),
        Metric(
            name=f"{prefix}background",
            legacy=measured["legacy_background"],
            graph=measured["graph_background"],
            value=measured["background_delta"],
            threshold=thresholds.pixel_delta,
            outcome=_graded(
                measured["background_delta"] == 0, measured["background_delta"] <= thresholds.pixel_delta
            ),
        ),
    ]
    identical = measured["identical"]
    psnr = measured["psnr"]
    metrics += [
        Metric(
            name=f"{prefix}psnr",
            value=psnr,
            threshold=thresholds.psnr_min_db,
            outcome=_graded(identical, psnr is None or psnr >= thresholds.psnr_min_db),
        ),
        Metric(
            name=f"{prefix}ssim",
            value=measured["ssim"],
            threshold=thresholds.ssim_min,
            outcome=_graded(identical, measured["ssim"] >= thresholds.ssim_min),
        ),
        Metric(
            name=f"{prefix}changed_pixels",
            value=measured["changed_pixels"],
            threshold=thresholds.changed_pixels_max,
            outcome=_graded(identical, measured["changed_pixels"] <= thresholds.changed_pixels_max),
        ),
    ]
    return metrics


def movie_metrics(
    key: str, legacy: dict[str, Any], graph: dict[str, Any], thresholds: ParityThresholds
) -> tuple[list[Metric], list[ImagePair]]:
    """Frame count, fps, duration and size; and the sampled frames both videos have, as pairs."""
    metrics = [
        _exact("frame_count", legacy["frame_count"], graph["frame_count"]),
        _exact("fps", legacy["fps"], graph["fps"]),
        _exact("size", legacy["size"], graph["size"]),
        _within("duration", legacy["duration"], graph["duration"], thresholds.duration_s),
    ]
    shared = sorted(set(legacy["frames"]) & set(graph["frames"]), key=int)
    pairs = [
        ImagePair(
            key=f"{key} frame {frame}", legacy_path=legacy["frames"][frame], graph_path=graph["frames"][frame]
        )
        for frame in shared
    ]
    return metrics, pairs


# --- explanations and the verdict ----------------------------------------------------------


def causes(artifact: str, metric: str) -> list[tuple[str, str]]:
    """(module, parameter) pairs that can cause a metric of an artifact to differ; `*` is any
    parameter of that module."""
    role = artifact.split("#")[0]
    metric = metric.rsplit(": ", 1)[-1]  # "frame 12: psnr" → "psnr"
    render = RENDER_MODULE.get(role)
    if role == "objects":
        return [("cad.extract_objects", ANY)]
    if role == "bbox":
        return [("cad.compute_bbox", ANY)]
    if role in GLB_ROLES:
        return [("cad.export_glb", ANY), *([("cad.extract_objects", ANY)] if metric == "nodes" else [])]
    if render is None:
        return [("*", ANY)]
    thumbnail = [("render.thumbnail", "max_size")] if role == "thumbnail" else []
    if metric == "size":
        return [(render, "width"), (render, "height"), *thumbnail]
    if metric == "mode":
        return [(render, "transparent_background"), (render, "image_format")]
    if metric == "background":
        return [
            ("render.resolve_template", "template"),
            (render, "transparent_background"),
            (render, "engine"),
        ]
    if metric in ("frame_count", "fps", "duration"):
        return [(render, "frame_count"), (render, "fps")] if metric == "duration" else [(render, metric)]
    if metric == "objects":
        return [("cad.extract_objects", ANY), ("cad.export_glb", ANY)]
    if metric == "triangles":
        return [("cad.export_glb", ANY)]
    if metric == "materials":
        return [("materials.auto_populate", ANY), ("materials.resolve_map", ANY)]
    if metric.startswith("render."):
        return [(render, ANY), ("render.resolve_template", "template")]
    return [(render, ANY), *thumbnail, *((module, ANY) for module in LOOK_MODULES)]


def parameter_changes(
    legacy: dict[str, EffectiveParams], graph: dict[str, EffectiveParams]
) -> list[ParamChange]:
    """Every effective parameter whose value differs between the runs, or that only one side ran."""
    changes = []
    for module in sorted(set(legacy) | set(graph)):
        left, right = legacy.get(module), graph.get(module)
        names = set(left.params if left else {}) | set(right.params if right else {})
        for name in sorted(names):
            value_left = left.params.get(name) if left else None
            value_right = right.params.get(name) if right else None
            present = (left is not None and name in left.params, right is not None and name in right.params)
            if value_left == value_right and present[0] == present[1]:
                continue
            changes.append(
                ParamChange(
                    module=module,
                    param=name,
                    legacy=value_left,
                    graph=value_right,
                    legacy_source=left.param_sources.get(name, "module_default")
                    if present[0] and left
                    else None,
                    graph_source=right.param_sources.get(name, "module_default")
                    if present[1] and right
                    else None,
                )
            )
    return changes


def explain(artifact: str, metric: str, changes: list[ParamChange]) -> list[str]:
    """The changed parameters that can cause this metric to differ, as sentences."""
    wanted = causes(artifact, metric)
    return [
        change.text
        for change in changes
        if any(module in (change.module, "*") and param in (change.param, ANY) for module, param in wanted)
    ]


def build_report(
    comparisons: list[ArtifactComparison],
    legacy_effective: dict[str, EffectiveParams],
    graph_effective: dict[str, EffectiveParams],
    thresholds: ParityThresholds,
) -> ParityReport:
    """The verdict over every comparison, with each difference explained."""
    changes = parameter_changes(legacy_effective, graph_effective)
    differences = [
        Difference(
            artifact=comparison.artifact,
            metric=metric.name,
            legacy=metric.legacy,
            graph=metric.graph,
            value=metric.value,
            threshold=metric.threshold,
            explained_by=explain(comparison.artifact, metric.name, changes),
        )
        for comparison in comparisons
        for metric in comparison.metrics
        if metric.outcome == "different"
    ]
    verdict = _worst(comparison.outcome for comparison in comparisons)
    return ParityReport(
        verdict=verdict,
        reason=_reason(verdict, comparisons, differences),
        comparisons=comparisons,
        differences=differences,
        parameter_changes=changes,
        thresholds=thresholds,
    )


def _reason(verdict: Outcome, comparisons: list[ArtifactComparison], differences: list[Difference]) -> str:
    if verdict == "identical":
        return f"all {len(comparisons)} compared artifacts match exactly"
    if verdict == "equivalent":
        return f"all {len(comparisons)} compared artifacts match within the thresholds"
    names = sorted({f"{d.artifact} {d.metric}" for d in differences})
    return f"{len(differences)} metric(s) beyond their thresholds: {', '.join(names[:8])}" + (
        ", ..." if len(names) > 8 else ""
    )


# --- calibration (Diffy's noise floor) ------------------------------------------------------


def calibrated_thresholds(
    noise: ParityReport, margin: float = 2.0, base: ParityThresholds | None = None
) -> ParityThresholds:
    """Thresholds from a report of the legacy route compared with itself (different sampling
    seeds): each measured noise times `margin` (PSNR lowered by 20·log10(margin) dB, SSIM's
    distance from 1 times margin). A metric that showed no noise keeps its value in `base` (the
    defaults): noise never seen cannot be measured. Exact metrics stay exact.
    """
    base = base or ParityThresholds()
    worst: dict[str, float] = {}
    for comparison in noise.comparisons:
        for metric in comparison.metrics:
            kind = metric.name.rsplit(": ", 1)[-1]
            key = f"{comparison.artifact.split('#')[0]}.{kind}" if kind == "triangles" else kind
            if metric.value is None or metric.outcome == "identical":
                continue
            better_low = kind in ("psnr", "ssim")
            current = worst.get(key)
            if current is None or (metric.value < current if better_low else metric.value > current):
                worst[key] = metric.value
    update: dict[str, float] = {}
    if "psnr" in worst:
        update["psnr_min_db"] = max(worst["psnr"] - 20 * math.log10(margin), 0.0)
    if "ssim" in worst:
        update["ssim_min"] = max(1 - margin * (1 - worst["ssim"]), -1.0)
    if "changed_pixels" in worst:
        update["changed_pixels_max"] = min(margin * worst["changed_pixels"], 1.0)
    triangles = [value for key, value in worst.items() if key.endswith(".triangles")]
    if triangles:
        update["triangles_rel"] = min(margin * max(triangles), 1.0)
    if "corners" in worst:
        update["bbox_rel"] = min(margin * worst["corners"], 1.0)
    if "duration" in worst:
        update["duration_s"] = min(margin * worst["duration"], 60.0)
    return base.model_copy(update=update)


# --- metric helpers ------------------------------------------------------------------------


def _comparison(
    key: str,
    legacy: ArtifactRef | None,
    graph: ArtifactRef | None,
    metrics: list[Metric],
    picture: ArtifactRef | None = None,
) -> ArtifactComparison:
    return ArtifactComparison(
        artifact=key,
        legacy=legacy,
        graph=graph,
        outcome=_worst(metric.outcome for metric in metrics),
        metrics=metrics,
        picture=picture,
    )


def _worst(outcomes: Iterable[Outcome]) -> Outcome:
    return max(outcomes, key=OUTCOME_ORDER.index, default="identical")


def _graded(identical: bool, within: bool) -> Outcome:
    return "identical" if identical else "equivalent" if within else "different"


def _exact(name: str, legacy: Any, graph: Any) -> Metric:
    return Metric(
        name=name, legacy=legacy, graph=graph, outcome="identical" if legacy == graph else "different"
    )


def _within(name: str, legacy: float, graph: float, tolerance: float) -> Metric:
    delta = abs(legacy - graph)
    return Metric(
        name=name,
        legacy=legacy,
        graph=graph,
        value=delta,
        threshold=tolerance,
        outcome=_graded(delta == 0, delta <= tolerance),
    )


def _relative(name: str, legacy: float, graph: float, tolerance: float) -> Metric:
    share = abs(legacy - graph) / max(abs(legacy), 1e-12)
    return Metric(
        name=name,
        legacy=legacy,
        graph=graph,
        value=share,
        threshold=tolerance,
        outcome=_graded(legacy == graph, share <= tolerance),
    )


def _close(name: str, legacy: Any, graph: Any, tolerance: float) -> Metric:
    """Nested values equal, numbers within a relative tolerance."""
    if legacy == graph:
        return Metric(name=name, legacy=legacy, graph=graph, threshold=tolerance, outcome="identical")
    within = _numbers_close(legacy, graph, tolerance)
    return Metric(
        name=name,
        legacy=legacy,
        graph=graph,
        threshold=tolerance,
        outcome="equivalent" if within else "different",
    )


def _numbers_close(legacy: Any, graph: Any, tolerance: float) -> bool:
    if isinstance(legacy, bool) or isinstance(graph, bool):
        return legacy == graph
    if isinstance(legacy, int | float) and isinstance(graph, int | float):
        return math.isclose(legacy, graph, rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(legacy, dict) and isinstance(graph, dict):
        return legacy.keys() == graph.keys() and all(
            _numbers_close(legacy[key], graph[key], tolerance) for key in legacy
        )
    if isinstance(legacy, list) and isinstance(graph, list):
        return len(legacy) == len(graph) and all(
            _numbers_close(a, b, tolerance) for a, b in zip(legacy, graph, strict=True)
        )
    return bool(legacy == graph)


def _side(value: Any, source: str | None) -> str:
    if source is None:
        return "(module not run)"
    return f"{value} ({source})"
