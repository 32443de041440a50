"""Child-process job: read a STEP file into OCCT's XCAF; return its tree, a GLB or its bbox."""

from __future__ import annotations

import json
import math
import shutil
import struct
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from OCP.Bnd import Bnd_Box
from OCP.BRepBndLib import BRepBndLib
from OCP.BRepMesh import BRepMesh_IncrementalMesh
from OCP.IFSelect import IFSelect_RetDone
from OCP.IMeshTools import IMeshTools_Parameters
from OCP.Interface import Interface_Static
from OCP.Message import Message, Message_PrinterOStream, Message_ProgressRange
from OCP.Quantity import Quantity_Color, Quantity_TOC_sRGB
from OCP.RWGltf import RWGltf_CafWriter
from OCP.RWMesh import (
    RWMesh,
    RWMesh_CoordinateSystem_glTF,
    RWMesh_CoordinateSystem_Zup,
    RWMesh_NameFormat_Product,
    RWMesh_NameFormat_ProductOrInstance,
)
from OCP.Standard import Standard_Failure
from OCP.STEPCAFControl import STEPCAFControl_Reader
from OCP.StepShape import StepShape_ManifoldSolidBrep
from OCP.TCollection import TCollection_AsciiString, TCollection_ExtendedString
from OCP.TColStd import TColStd_IndexedDataMapOfStringString, TColStd_SequenceOfAsciiString
from OCP.TDF import TDF_Label, TDF_LabelSequence
from OCP.TDocStd import TDocStd_Document
from OCP.TopAbs import TopAbs_FACE, TopAbs_SOLID
from OCP.TopExp import TopExp, TopExp_Explorer
from OCP.TopLoc import TopLoc_Location
from OCP.TopoDS import TopoDS_Shape
from OCP.TopTools import TopTools_IndexedMapOfShape
from OCP.XCAFApp import XCAFApp_Application
from OCP.XCAFDoc import (
    XCAFDoc_ColorTool,
    XCAFDoc_ColorType,
    XCAFDoc_DocumentTool,
    XCAFDoc_LengthUnit,
    XCAFDoc_ShapeTool,
)

from activities.cad import ExportGlbParams, GlbJobRequest, StepJobRequest
from activities.jobs.protocol import run_job
from core.errors import CadFileNotFoundError, InvalidCadFileError

STEP_MAGIC = b"ISO-10303-21"
UTF8_BOM = b"\xef\xbb\xbf"
#: A coordinate beyond this (in mm, ~10 km) means OCCT built garbage geometry (seen: ±1e100).
ABSURD_COORDINATE_MM = 1e7
MIN_LINEAR_DEFLECTION_MM = 0.001

_UNIT_NAMES = {
    "millimetre": "mm",
    "millimeter": "mm",
    "mm": "mm",
    "centimetre": "cm",
    "centimeter": "cm",
    "cm": "cm",
    "metre": "m",
    "meter": "m",
    "m": "m",
    "kilometre": "km",
    "kilometer": "km",
    "km": "km",
    "micrometre": "um",
    "micrometer": "um",
    "micron": "um",
    "inch": "inch",
    "in": "inch",
    "foot": "ft",
    "feet": "ft",
    "ft": "ft",
    "mil": "mil",
}

_FILE_MAGICS = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive",
    b"PK\x03\x04": "a zip archive",
    b"%PDF": "a PDF document",
    b"glTF": "a binary glTF file",
}


@dataclass
class _Loaded:
    """A STEP file transferred into an XCAF document."""

    doc: TDocStd_Document
    roots: list[TDF_Label]
    unit_m: float
    source_unit: str


# --- reading -------------------------------------------------------------------------------


def _silence_occt() -> None:
    """Drop OCCT's console printers; errors reach the parent through the response file."""
    Message.DefaultMessenger_s().RemovePrinters(Message_PrinterOStream.get_type_descriptor_s())


def _preflight(path: Path) -> bool:
    """Reject missing, empty and non-STEP files before OCCT sees them; True if it has a BOM."""
    if not path.is_file():
        raise CadFileNotFoundError(f"STEP file not found: {path}")
    if path.stat().st_size == 0:
        raise InvalidCadFileError(f"{path.name}: file is empty")
    with path.open("rb") as handle:
        head = handle.read(4096)
    body = head.removeprefix(UTF8_BOM).lstrip()
    if not body.startswith(STEP_MAGIC):
        kind = next((name for magic, name in _FILE_MAGICS.items() if head.startswith(magic)), None)
        hint = f"; it looks like {kind}" if kind else ""
        raise InvalidCadFileError(f"{path.name}: not a STEP file (no ISO-10303-21 header){hint}")
    return head.startswith(UTF8_BOM)


def _without_bom(path: Path, folder: Path) -> Path:
    """A copy of the file without its UTF-8 BOM, which OCCT's parser rejects."""
    copy = folder / path.name
    with path.open("rb") as source, copy.open("wb") as target:
        source.seek(len(UTF8_BOM))
        shutil.copyfileobj(source, target)
    return copy


def _looks_truncated(path: Path) -> bool:
    """Whether the file lacks its END-ISO-10303-21 trailer."""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 512))
        return b"END-ISO-10303-21" not in handle.read()


def _source_unit(reader: STEPCAFControl_Reader) -> str:
    """The first length unit the file declares, normalised (mm, inch, m, ...)."""
    lengths, angles, solid_angles = (TColStd_SequenceOfAsciiString() for _ in range(3))
    reader.Reader().FileUnits(lengths, angles, solid_angles)
    if lengths.Length() == 0:
        return "mm"  # no unit declared: OCCT reads the lengths as millimetres
    raw = lengths.Value(1).ToCString().strip().lower()
    return _UNIT_NAMES.get(raw, raw or "mm")


def _document_unit_m(doc: TDocStd_Document) -> float:
    """Metres per document length unit (OCCT converts STEP lengths to mm on import)."""
    root, unit = doc.Main().Root(), XCAFDoc_LengthUnit()
    # Ask first: OCP's FindAttribute crashes when the attribute is missing (seen on names).
    if (
        root.IsAttribute(XCAFDoc_LengthUnit.GetID_s())
        and root.FindAttribute(XCAFDoc_LengthUnit.GetID_s(), unit)
        and not unit.IsEmpty()
    ):
        return unit.GetUnitValue()
    return 0.001


def _load_fails(reader: STEPCAFControl_Reader) -> list[str]:
    """Syntax errors and unresolved references the STEP parser reported."""
    check = reader.Reader().Model().GlobalCheck()
    return [str(check.CFail(i, True)) for i in range(1, check.NbFails() + 1)]


def _with_first(fails: list[str]) -> str:
    """A message suffix quoting the parser's first complaint."""
    if not fails:
        return ""
    more = f" and {len(fails) - 1} more" if len(fails) > 1 else ""
    return f" (first error: {fails[0]}{more})"


def _declared_solids(reader: STEPCAFControl_Reader) -> int:
    """B-rep solid entities in the file (manifold, faceted and with voids)."""
    model = reader.Reader().Model()
    kind = StepShape_ManifoldSolidBrep.get_type_descriptor_s()
    return sum(1 for i in range(1, model.NbEntities() + 1) if model.Value(i).IsKind(kind))


def _built_solids(roots: list[TDF_Label]) -> int:
    """Distinct solids OCCT built (instances of one solid count once)."""
    distinct = TopTools_IndexedMapOfShape()
    for label in roots:
        explorer = TopExp_Explorer(XCAFDoc_ShapeTool.GetShape_s(label), TopAbs_SOLID)
        while explorer.More():
            distinct.Add(explorer.Current().Located(TopLoc_Location()))
            explorer.Next()
    return distinct.Extent()


def _load(path_text: str) -> _Loaded:
    """Read and transfer a STEP file into a fresh XCAF document, or raise a typed error."""
    path = Path(path_text)
    has_bom = _preflight(path)
    _silence_occt()
    with tempfile.TemporaryDirectory(prefix="step_job_") as scratch:
        source = _without_bom(path, Path(scratch)) if has_bom else path
        return _load_source(source, path.name)


def _load_source(source: Path, name: str) -> _Loaded:
    """Read a checked file, falling back to tessellated geometry when there is no B-rep."""
    # AP242 files may hold a part twice, as B-rep and as tessellation (OCCT's "only without
    # B-rep" mode still loads both, seen on the One Hole file), which would z-fight in renders:
    # read B-rep only, and read tessellation only when that leaves no faces at all.
    loaded = _read(source, name, with_tessellation=False)
    if _face_total(loaded.roots) == 0:
        tessellated = _read(source, name, with_tessellation=True)
        if _face_total(tessellated.roots) > 0:
            return tessellated
    return loaded


def _face_total(roots: list[TDF_Label]) -> int:
    """Faces of all top-level shapes, instances counted separately."""
    return sum(_count(XCAFDoc_ShapeTool.GetShape_s(label), TopAbs_FACE) for label in roots)


def _read(source: Path, name: str, with_tessellation: bool) -> _Loaded:
    """One parse and transfer of a STEP file into a fresh XCAF document."""
    doc = TDocStd_Document(TCollection_ExtendedString("XmlXCAF"))
    XCAFApp_Application.GetApplication_s().InitDocument(doc)
    reader = STEPCAFControl_Reader()
    # After the reader: its first construction registers the defaults, overwriting ours.
    Interface_Static.SetIVal_s("read.step.tessellated", 1 if with_tessellation else 0)
    reader.SetNameMode(True)
    reader.SetColorMode(True)
    reader.SetLayerMode(False)
    reader.SetPropsMode(False)
    try:
        status = reader.ReadFile(str(source))
    except Standard_Failure as exc:
        raise InvalidCadFileError(f"{name}: STEP file could not be parsed: {exc}") from exc
    fails = _load_fails(reader)
    if status != IFSelect_RetDone:
        truncated = _looks_truncated(source)
        hint = "; the file looks truncated (no END-ISO-10303-21)" if truncated else ""
        raise InvalidCadFileError(
            f"{name}: STEP syntax error, the file could not be parsed "
            f"(reader status {status.name}){hint}{_with_first(fails)}"
        )
    try:
        reader.Transfer(doc)
    except Standard_Failure as exc:
        raise InvalidCadFileError(f"{name}: STEP transfer failed: {exc}") from exc
    roots = _free_shapes(doc)
    if not roots:
        raise InvalidCadFileError(
            f"{name}: STEP file contains no geometry (no solids or faces) "
            f"and no product structure{_with_first(fails)}"
        )
    if fails:
        # A damaged file can transfer "successfully" with parts missing (OCCT 7.9 builds 2 of
        # 29 faces of a solid whose point is gone); only judge files the parser complained about.
        declared, built = _declared_solids(reader), _built_solids(roots)
        if built < declared:
            raise InvalidCadFileError(
                f"{name}: STEP file is damaged, only {built} of {declared} "
                f"solids could be built{_with_first(fails)}"
            )
    return _Loaded(doc, roots, _document_unit_m(doc), _source_unit(reader))


def _shape_tool(doc: TDocStd_Document) -> XCAFDoc_ShapeTool:
    """The document's shape tool."""
    return XCAFDoc_DocumentTool.ShapeTool_s(doc.Main())


def _free_shapes(doc: TDocStd_Document) -> list[TDF_Label]:
    """Top-level labels of the product tree."""
    labels = TDF_LabelSequence()
    _shape_tool(doc).GetFreeShapes(labels)
    return [labels.Value(i) for i in range(1, labels.Length() + 1)]


def _children(label: TDF_Label) -> list[TDF_Label]:
    """Component (instance) labels of an assembly label."""
    labels = TDF_LabelSequence()
    XCAFDoc_ShapeTool.GetComponents_s(label, labels, False)
    return [labels.Value(i) for i in range(1, labels.Length() + 1)]


def _referred(label: TDF_Label) -> TDF_Label:
    """The product label an instance refers to (the label itself if it is no instance)."""
    target = TDF_Label()
    if XCAFDoc_ShapeTool.IsReference_s(label):
        XCAFDoc_ShapeTool.GetReferredShape_s(label, target)
    return target if not target.IsNull() else label


# --- geometry checks -----------------------------------------------------------------------


def _count(shape: TopoDS_Shape, kind: Any) -> int:
    """Number of distinct sub-shapes of one type (instances count separately)."""
    found = TopTools_IndexedMapOfShape()
    TopExp.MapShapes_s(shape, kind, found)
    return found.Extent()


def _root_shapes(loaded: _Loaded) -> list[TopoDS_Shape]:
    """The located shapes of all top-level labels."""
    return [XCAFDoc_ShapeTool.GetShape_s(label) for label in loaded.roots]


def _faces_box(shapes: list[TopoDS_Shape]) -> tuple[Bnd_Box, int]:
    """Tight box (document units) over all faces, and the face count."""
    box, faces = Bnd_Box(), 0
    for shape in shapes:
        explorer = TopExp_Explorer(shape, TopAbs_FACE)
        while explorer.More():
            # Faces only: PMI and supplemental curves/points must not widen the box. Imported
            # B-rep faces carry no triangulation yet, so this only uses tessellated faces' own.
            BRepBndLib.AddOptimal_s(explorer.Current(), box, True, False)
            faces += 1
            explorer.Next()
    return box, faces


def _corners(box: Bnd_Box) -> tuple[list[float], list[float]]:
    """(min, max) corners of a box."""
    xmin, ymin, zmin, xmax, ymax, zmax = box.Get()
    return [xmin, ymin, zmin], [xmax, ymax, zmax]


def _require_geometry(loaded: _Loaded, name: str) -> Bnd_Box:
    """The faces' box, or a typed error when there is nothing sane to show."""
    try:
        box, faces = _faces_box(_root_shapes(loaded))
    except Standard_Failure as exc:
        raise InvalidCadFileError(f"{name}: geometry is corrupt (bounding box failed: {exc})") from exc
    if faces == 0:
        raise InvalidCadFileError(f"{name}: STEP file contains no geometry (no solids or faces)")
    if box.IsVoid():
        raise InvalidCadFileError(f"{name}: geometry is corrupt (empty bounding box)")
    limit = ABSURD_COORDINATE_MM * 0.001 / loaded.unit_m
    low, high = _corners(box)
    if any(not math.isfinite(v) or abs(v) > limit for v in low + high):
        raise InvalidCadFileError(
            f"{name}: geometry is corrupt (coordinates beyond {ABSURD_COORDINATE_MM:g} mm)"
        )
    return box


# --- extract -------------------------------------------------------------------------------


def _name_of(label: TDF_Label) -> str | None:
    """The TDataStd_Name of a label, or None when it has none."""
    text = RWMesh.ReadNameAttribute_s(label).ToCString().strip()
    return text or None


def _is_id_name(name: str | None) -> bool:
    """Whether an instance name is only an OCAF id such as '=>[0:1:1:2]'."""
    return name is None or name.startswith("=>[")


def _hex(color: Quantity_Color) -> str:
    """OCCT's linear RGB as sRGB #rrggbb."""
    channels = color.Values(Quantity_TOC_sRGB)
    return "#" + "".join(f"{round(min(1.0, max(0.0, c)) * 255):02x}" for c in channels)


def _own_color(label: TDF_Label) -> str | None:
    """The surface (or generic) colour set on one label."""
    color = Quantity_Color()
    for kind in (XCAFDoc_ColorType.XCAFDoc_ColorSurf, XCAFDoc_ColorType.XCAFDoc_ColorGen):
        if XCAFDoc_ColorTool.GetColor_s(label, kind, color):
            return _hex(color)
    return None


def _subshape_color(label: TDF_Label) -> str | None:
    """The most common colour among a product's coloured sub-shapes (faces, shells, solids)."""
    subs = TDF_LabelSequence()
    XCAFDoc_ShapeTool.GetSubShapes_s(label, subs)
    colors = [_own_color(subs.Value(i)) for i in range(1, subs.Length() + 1)]
    counted = Counter(c for c in colors if c)
    return counted.most_common(1)[0][0] if counted else None


def _color(instance: TDF_Label | None, product: TDF_Label) -> str | None:
    """Instance colour overrides product colour, which overrides sub-shape colours."""
    found = _own_color(instance) if instance is not None else None
    return found or _own_color(product) or _subshape_color(product)


def _transform(location: TopLoc_Location, unit_m: float) -> list[float]:
    """Row-major 4x4 of a placement, translation in metres."""
    trsf = location.Transformation()
    rows: list[float] = []
    for r in range(1, 4):
        rows += [trsf.Value(r, c) for c in range(1, 4)] + [trsf.Value(r, 4) * unit_m]
    return rows + [0.0, 0.0, 0.0, 1.0]


def _segment(name: str, used: Counter[str]) -> str:
    """A path segment: '/' escaped, and siblings with one name told apart as name[2], name[3]."""
    base = name.replace("/", "_")
    used[base] += 1
    return base if used[base] == 1 else f"{base}[{used[base]}]"


@dataclass
class _Walk:
    """State of one product-tree walk."""

    unit_m: float
    objects: list[dict[str, Any]]
    unnamed: int = 0


def _visit(walk: _Walk, label: TDF_Label, parent_path: str | None, used: Counter[str]) -> None:
    """Append one node (instance or root) and its subtree to the walk."""
    is_instance = XCAFDoc_ShapeTool.IsReference_s(label)
    product = _referred(label)
    instance_name = _name_of(label) if is_instance else None
    name = _name_of(product) or (None if _is_id_name(instance_name) else instance_name)
    if name is None:
        walk.unnamed += 1
        name = f"part-{walk.unnamed}"
    path = _segment(name, used) if parent_path is None else f"{parent_path}/{_segment(name, used)}"
    shape = XCAFDoc_ShapeTool.GetShape_s(label)
    is_assembly = XCAFDoc_ShapeTool.IsAssembly_s(product)
    # An instance's label holds its placement; a root's placement sits on its shape.
    location = XCAFDoc_ShapeTool.GetLocation_s(label) if is_instance else shape.Location()
    walk.objects.append(
        {
            "name": name,
            "instance_name": instance_name,
            "path": path,
            "parent_path": parent_path,
            "kind": "assembly" if is_assembly else "part",
            "color": _color(label if is_instance else None, product),
            "transform": _transform(location, walk.unit_m),
            "solid_count": _count(shape, TopAbs_SOLID),
            "face_count": _count(shape, TopAbs_FACE),
        }
    )
    if is_assembly:
        child_names: Counter[str] = Counter()
        for child in _children(product):
            _visit(walk, child, path, child_names)


def extract(request: StepJobRequest) -> dict[str, Any]:
    """Product tree (names, kinds, colours, placements, counts) and the file's length unit."""
    loaded = _load(request.step_path)
    if _face_total(loaded.roots):
        _require_geometry(loaded, Path(request.step_path).name)
    # No faces at all (e.g. an assembly of external references) is not an error here: the
    # product tree is still worth showing. glb and bbox reject such files.
    walk = _Walk(loaded.unit_m, [])
    root_names: Counter[str] = Counter()
    for root in loaded.roots:
        _visit(walk, root, None, root_names)
    return {"source_unit": loaded.source_unit, "objects": walk.objects}


# --- bbox ----------------------------------------------------------------------------------


def compute_bbox(request: StepJobRequest) -> dict[str, Any]:
    """Tight bounding box of all faces, in metres, in the file's own (usually Z-up) frame."""
    loaded = _load(request.step_path)
    box = _require_geometry(loaded, Path(request.step_path).name)
    low, high = _corners(box)
    return {
        "min": [_metres(v, loaded.unit_m) for v in low],
        "max": [_metres(v, loaded.unit_m) for v in high],
        "unit": "m",
    }


def _metres(value: float, unit_m: float) -> float:
    """Document units to metres, rounded to a nanometre, without -0.0."""
    return round(value * unit_m, 9) + 0.0


# --- glb -----------------------------------------------------------------------------------


def _deflection(tessellation: ExportGlbParams, part_box: Bnd_Box, unit_m: float) -> float:
    """Chordal deflection: linear_deflection_mm, else relative_deflection x part diagonal."""
    mm_per_unit = unit_m * 1000.0
    if tessellation.linear_deflection_mm is not None:
        return max(tessellation.linear_deflection_mm, MIN_LINEAR_DEFLECTION_MM) / mm_per_unit
    low, high = _corners(part_box)
    return max(
        math.dist(low, high) * tessellation.relative_deflection, MIN_LINEAR_DEFLECTION_MM / mm_per_unit
    )


def _part_shapes(doc: TDocStd_Document) -> list[TopoDS_Shape]:
    """Each product's own (unplaced) shape, assemblies left out."""
    labels = TDF_LabelSequence()
    _shape_tool(doc).GetShapes(labels)
    return [
        XCAFDoc_ShapeTool.GetShape_s(labels.Value(i))
        for i in range(1, labels.Length() + 1)
        if not XCAFDoc_ShapeTool.IsAssembly_s(labels.Value(i))
    ]


def _mesh(loaded: _Loaded, tessellation: ExportGlbParams) -> None:
    """Triangulate every part in place, once per product, at a quality relative to its size."""
    params = IMeshTools_Parameters()
    params.Angle = tessellation.angular_deflection_rad
    params.Relative = False
    params.InParallel = True
    for shape in _part_shapes(loaded.doc):
        box, faces = _faces_box([shape])
        if faces == 0 or box.IsVoid():
            continue
        params.Deflection = _deflection(tessellation, box, loaded.unit_m)
        BRepMesh_IncrementalMesh(shape, params)  # the constructor meshes


def _write_glb(loaded: _Loaded, glb_path: Path) -> None:
    """Write the whole document as binary glTF: Y-up, metres, product-named nodes."""
    writer = RWGltf_CafWriter(TCollection_AsciiString(str(glb_path)), True)
    converter = writer.ChangeCoordinateSystemConverter()
    converter.SetInputLengthUnit(loaded.unit_m)
    converter.SetInputCoordinateSystem(RWMesh_CoordinateSystem_Zup)
    converter.SetOutputLengthUnit(1.0)
    converter.SetOutputCoordinateSystem(RWMesh_CoordinateSystem_glTF)
    writer.SetNodeNameFormat(RWMesh_NameFormat_ProductOrInstance)
    writer.SetMeshNameFormat(RWMesh_NameFormat_Product)
    writer.SetMergeFaces(True)
    writer.SetParallel(True)
    file_info = TColStd_IndexedDataMapOfStringString()
    if not writer.Perform(loaded.doc, file_info, Message_ProgressRange()):
        raise RuntimeError(f"RWGltf_CafWriter failed to write {glb_path}")


def _glb_json(glb_path: Path) -> dict[str, Any]:
    """The JSON chunk of a binary glTF file."""
    data = glb_path.read_bytes()
    magic, _version, _length = struct.unpack_from("<4sII", data, 0)
    chunk_length, chunk_type = struct.unpack_from("<II", data, 12)
    if magic != b"glTF" or chunk_type != 0x4E4F534A:
        raise RuntimeError(f"{glb_path} is not a binary glTF file")
    return json.loads(data[20 : 20 + chunk_length])


def _triangle_count(gltf: dict[str, Any]) -> int:
    """Triangles drawn, counting each node that instances a mesh."""
    accessors, meshes = gltf.get("accessors", []), gltf.get("meshes", [])
    total = 0
    for node in gltf.get("nodes", []):
        if "mesh" not in node:
            continue
        for primitive in meshes[node["mesh"]]["primitives"]:
            if primitive.get("mode", 4) != 4:
                continue
            source = primitive.get("indices", primitive["attributes"]["POSITION"])
            total += accessors[source]["count"] // 3
    return total


def export_glb(request: GlbJobRequest) -> dict[str, Any]:
    """Tessellate and write a GLB (Y-up, metres, named part nodes, colours as materials)."""
    loaded = _load(request.step_path)
    _require_geometry(loaded, Path(request.step_path).name)
    _mesh(loaded, request.tessellation)
    glb_path = Path(request.glb_path)
    glb_path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a crash never leaves a half-written GLB there.
    partial = glb_path.with_name(f".{glb_path.name}.partial")
    _write_glb(loaded, partial)
    gltf = _glb_json(partial)
    partial.replace(glb_path)
    return {
        "glb_path": str(glb_path),
        "node_names": [node.get("name", "") for node in gltf.get("nodes", [])],
        "triangle_count": _triangle_count(gltf),
    }


if __name__ == "__main__":
    run_job(
        {
            "extract": (extract, StepJobRequest),
            "glb": (export_glb, GlbJobRequest),
            "bbox": (compute_bbox, StepJobRequest),
        }
    )
