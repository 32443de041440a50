"""CAD modules: resolve a STEP file, read its product tree, export GLB, measure its bounding box."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from activities.artifacts import ArtifactRef, LocalArtifactStore, local_path, parse_store_reference
from activities.child_process import ChildJobRunner
from activities.module import CONTRACT, production_module
from core.errors import (
    ArtifactMissingError,
    CadFileNotAllowedError,
    CadFileNotFoundError,
    InvalidCadFileError,
    JobCrashedError,
)
from core.vocabulary import RetryPolicy

STEP_MAGIC = b"ISO-10303-21"
#: How much of a file's start the STEP check reads.
STEP_HEAD_BYTES = 1024


def is_step_header(head: bytes) -> bool:
    """Whether a file's first bytes (STEP_HEAD_BYTES of them suffice) open an ISO 10303-21 file;
    a UTF-8 byte order mark and leading whitespace are allowed."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(STEP_MAGIC)


class BBox(BaseModel):
    """Axis-aligned bounding box in the CAD file's frame (Z-up), in metres."""

    model_config = CONTRACT

    min: list[float] = Field(min_length=3, max_length=3)
    """Lower corner [x, y, z]."""
    max: list[float] = Field(min_length=3, max_length=3)
    """Upper corner [x, y, z]."""
    unit: str = "m"
    """Always metres."""

    @model_validator(mode="after")
    def _ordered(self) -> BBox:
        if any(low > high for low, high in zip(self.min, self.max, strict=True)):
            raise ValueError(f"min {self.min} must not exceed max {self.max}")
        return self


class CadObject(BaseModel):
    """One node of the STEP product tree: an assembly or a part instance."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    name: str
    """Part or assembly name (from the referred product)."""
    path: str
    """Slash-joined names from the root."""
    kind: str
    """assembly or part."""
    color: str | None = None
    """sRGB hex colour, if the file gives one."""


# --- cad.resolve_step_path ---------------------------------------------------------------


class ResolveStepPathParams(BaseModel):
    """Limits applied when accepting a customer's STEP file."""

    model_config = CONTRACT

    max_size_mb: int = Field(512, ge=1, le=4096)
    """Files larger than this are refused before any parsing."""


class ResolveStepPathInput(BaseModel):
    """A path to a customer's STEP file, as given with the order."""

    model_config = CONTRACT

    step_path: str
    """Absolute path of the STEP file under an input root all workers can reach, or the store
    reference of an uploaded one (`store:<sha256>.step`)."""
    params: ResolveStepPathParams = ResolveStepPathParams()
    """Module parameters."""


class ResolveStepPathOutput(BaseModel):
    """The STEP file, stored content-addressed."""

    model_config = CONTRACT

    step_file: ArtifactRef
    """The stored STEP file."""
    source_name: str
    """File name as the customer gave it."""


# --- cad.extract_objects -----------------------------------------------------------------


class ExtractObjectsParams(BaseModel):
    """Options for reading the product tree."""

    model_config = CONTRACT

    include_assemblies: bool = True
    """List assembly nodes as well as parts."""


class ExtractObjectsInput(BaseModel):
    """A stored STEP file to read."""

    model_config = CONTRACT

    step_file: ArtifactRef
    """The STEP file."""
    params: ExtractObjectsParams = ExtractObjectsParams()
    """Module parameters."""


class ExtractObjectsOutput(BaseModel):
    """The product tree: names, colours, hierarchy, transforms, units."""

    model_config = CONTRACT

    objects: list[CadObject]
    """Every assembly and part instance, depth first."""
    source_unit: str
    """Length unit the file was authored in."""


# --- cad.export_glb ----------------------------------------------------------------------


class ExportGlbParams(BaseModel):
    """Tessellation quality of the exported mesh."""

    model_config = CONTRACT

    relative_deflection: float = Field(0.001, gt=0, le=0.1)
    """Linear deflection as a fraction of the part's bounding-box diagonal."""
    angular_deflection_rad: float = Field(0.5, gt=0, le=1.5)
    """Maximum angle between adjacent facet normals."""
    linear_deflection_mm: float | None = Field(None, gt=0, le=100)
    """Absolute chordal deflection in millimetres; when set it replaces relative_deflection."""


class ExportGlbInput(BaseModel):
    """A stored STEP file to tessellate."""

    model_config = CONTRACT

    step_file: ArtifactRef
    """The STEP file."""
    params: ExportGlbParams = ExportGlbParams()
    """Module parameters."""


class ExportGlbOutput(BaseModel):
    """A binary glTF: Y-up, metres, one named node per part, colours as materials."""

    model_config = CONTRACT

    glb: ArtifactRef
    """The GLB file."""
    node_names: list[str]
    """Names of the glTF nodes, as written."""


# --- cad.compute_bbox --------------------------------------------------------------------


class ComputeBboxParams(BaseModel):
    """Bounding-box options."""

    model_config = CONTRACT


class ComputeBboxInput(BaseModel):
    """A stored STEP file to measure."""

    model_config = CONTRACT

    step_file: ArtifactRef
    """The STEP file."""
    params: ComputeBboxParams = ComputeBboxParams()
    """Module parameters."""


class ComputeBboxOutput(BaseModel):
    """The exact bounding box of all geometry."""

    model_config = CONTRACT

    bbox: BBox
    """Bounding box in metres."""


# --- what an OCP child job reads ----------------------------------------------------------


class StepJobRequest(BaseModel):
    """A STEP file for an OCP child job to read."""

    model_config = CONTRACT

    step_path: str
    """Local path of the stored STEP file."""


class GlbJobRequest(StepJobRequest):
    """A STEP file to tessellate, where to write the GLB, and how finely."""

    glb_path: str
    """Where the job writes the GLB."""
    tessellation: ExportGlbParams
    """The module's validated parameters."""


CAD_RETRY = RetryPolicy(max_attempts=2)


def _not_allowed() -> CadFileNotAllowedError:
    return CadFileNotAllowedError(
        "the STEP file path is outside the input folders this worker reads; send the file by "
        "upload or place it in a configured input root"
    )


class CadActivities:
    """The CAD modules, bound to an artifact store and a child-job runner."""

    def __init__(self, store: LocalArtifactStore, jobs: ChildJobRunner, input_roots: tuple[Path, ...] = ()):
        self.store = store
        self.jobs = jobs
        self.input_roots = tuple(root.resolve() for root in input_roots)
        """Folders STEP files may be read from; a worker running as root reads nothing else."""

    @production_module(
        "cad.resolve_step_path",
        families=("cad_file",),
        label="Resolve STEP file",
        category="cad",
        legacy_source="legacy.resolve_step_path",
        timeout_s=60,
        ui={"palette_group": "CAD intake", "icon": "file", "color": "#5b8def"},
    )
    async def resolve_step_path(self, input: ResolveStepPathInput) -> ResolveStepPathOutput:
        """Check that the STEP file exists, is a STEP file and is within limits; store it."""
        stored = self._stored(input.step_path)
        path = local_path(stored) if stored else self._allowed(input.step_path)
        if not path.is_file():
            raise CadFileNotFoundError(f"no such STEP file: {path.name}")
        size = path.stat().st_size
        if size == 0:
            raise InvalidCadFileError(f"{path.name}: file is empty")
        if size > input.params.max_size_mb * 1024 * 1024:
            raise InvalidCadFileError(
                f"{path.name}: {size} bytes is over the {input.params.max_size_mb} MB limit"
            )
        with path.open("rb") as handle:
            head = handle.read(STEP_HEAD_BYTES)
        if not is_step_header(head):
            raise InvalidCadFileError(f"{path.name}: not a STEP file (no ISO-10303-21 header)")
        ref = stored or self.store.put_file(path, role="step_file", media_type="model/step")
        return ResolveStepPathOutput(step_file=ref, source_name=path.name)

    @production_module(
        "cad.extract_objects",
        families=("cad_file",),
        label="Extract objects",
        category="cad",
        task_queue="cad",
        timeout_s=300,
        retry=CAD_RETRY,
        legacy_source="legacy.extract_cad_objects",
        ui={"palette_group": "CAD intake", "icon": "tree", "color": "#5b8def"},
    )
    async def extract_objects(self, input: ExtractObjectsInput) -> ExtractObjectsOutput:
        """Read part names, colours, hierarchy, transforms and units from the STEP file."""
        result = await self._step_job("extract", self._read_request(input.step_file))
        objects = [
            CadObject(**item)
            for item in result["objects"]
            if input.params.include_assemblies or item.get("kind") != "assembly"
        ]
        return ExtractObjectsOutput(objects=objects, source_unit=result["source_unit"])

    @production_module(
        "cad.export_glb",
        families=("cad_file",),
        label="Export GLB",
        category="cad",
        task_queue="cad",
        timeout_s=600,
        retry=CAD_RETRY,
        legacy_source="legacy.export_gltf",
        ui={"palette_group": "CAD intake", "icon": "cube", "color": "#5b8def"},
    )
    async def export_glb(self, input: ExportGlbInput) -> ExportGlbOutput:
        """Tessellate the STEP file and write a GLB (Y-up, metres, named parts, colours)."""
        with self.store.scratch_file("model.glb") as glb_path:
            request = GlbJobRequest(
                step_path=str(self.store.path_of(input.step_file)),
                glb_path=str(glb_path),
                tessellation=input.params,
            )
            result = await self._step_job("glb", request)
            ref = self.store.put_file(glb_path, role="glb", media_type="model/gltf-binary")
        return ExportGlbOutput(glb=ref, node_names=result["node_names"])

    @production_module(
        "cad.compute_bbox",
        families=("cad_file",),
        label="Compute bounding box",
        category="cad",
        task_queue="cad",
        timeout_s=300,
        retry=CAD_RETRY,
        legacy_source="legacy.compute_bbox",
        ui={"palette_group": "CAD intake", "icon": "box", "color": "#5b8def"},
    )
    async def compute_bbox(self, input: ComputeBboxInput) -> ComputeBboxOutput:
        """Measure the exact bounding box of all geometry, in metres."""
        result = await self._step_job("bbox", self._read_request(input.step_file))
        return ComputeBboxOutput(bbox=BBox(min=result["min"], max=result["max"]))

    def _allowed(self, step_path: str) -> Path:
        """The path, resolved, if it lies in an input root; else refused without a hint of
        whether anything exists there."""
        path = Path(step_path).resolve()
        if not any(path.is_relative_to(root) for root in self.input_roots):
            raise _not_allowed()
        return path

    def _stored(self, step_path: str) -> ArtifactRef | None:
        """The verified blob a store reference names (None when step_path is no reference).

        A reference names content, never a place: the store looks only where that hash belongs
        and reads only a plain file there (no link), hashing it before use.
        """
        if not step_path.startswith("store:"):
            return None
        named = parse_store_reference(step_path)
        if named is None:
            raise _not_allowed()
        sha256, suffix = named
        try:
            return self.store.find(sha256, suffix, role="step_file", media_type="model/step")
        except ArtifactMissingError:
            raise CadFileNotFoundError(f"no uploaded STEP file {sha256[:12]} in the artifact store") from None

    def _read_request(self, step_file: ArtifactRef) -> StepJobRequest:
        return StepJobRequest(step_path=str(self.store.path_of(step_file)))

    async def _step_job(self, op: str, request: StepJobRequest) -> dict:
        try:
            return await self.jobs.run("step_job", op, request)
        except JobCrashedError as crash:
            # OCCT segfaults on some damaged files: that is the file's fault, not transient.
            raise InvalidCadFileError(f"the CAD kernel crashed reading this file: {crash.message}") from None
