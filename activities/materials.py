"""Material modules: assign materials to parts from CAD colours, a library and overrides."""

from __future__ import annotations

from pydantic import BaseModel, Field

from activities.cad import CadObject
from activities.module import CONTRACT, production_module
from core.errors import UnknownMaterialError

MATERIALS_UI = {"palette_group": "Materials", "icon": "palette", "color": "#49a86b"}


class Material(BaseModel):
    """A physically based material as Blender's Principled BSDF reads it."""

    model_config = CONTRACT

    key: str
    """Library key, or `cad:<hex>` for a colour taken from the CAD file."""
    base_color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    """sRGB hex colour."""
    metallic: float = Field(0.0, ge=0, le=1)
    """0 dielectric, 1 metal."""
    roughness: float = Field(0.5, ge=0, le=1)
    """0 mirror, 1 matte."""


LIBRARY: dict[str, Material] = {
    material.key: material
    for material in (
        Material(key="brushed_steel", base_color="#b4b7ba", metallic=1.0, roughness=0.35),
        Material(key="polished_steel", base_color="#c8cacc", metallic=1.0, roughness=0.12),
        Material(key="anodized_aluminium", base_color="#a9adb3", metallic=1.0, roughness=0.3),
        Material(key="brass", base_color="#c9a24a", metallic=1.0, roughness=0.25),
        Material(key="matte_plastic_black", base_color="#1c1c1e", roughness=0.7),
        Material(key="matte_plastic_white", base_color="#e8e8e6", roughness=0.6),
        Material(key="rubber", base_color="#222222", roughness=0.9),
        Material(key="neutral_grey", base_color="#9a9a9a", roughness=0.5),
    )
}


# --- materials.auto_populate -------------------------------------------------------------


class AutoPopulateParams(BaseModel):
    """How parts without a colour get a material."""

    model_config = CONTRACT

    use_cad_colors: bool = True
    """Make a material from each part's CAD colour."""
    fallback_material: str = "neutral_grey"
    """Library key for parts with no colour."""


class AutoPopulateInput(BaseModel):
    """The product tree to dress."""

    model_config = CONTRACT

    objects: list[CadObject]
    """Parts and assemblies from cad.extract_objects."""
    params: AutoPopulateParams = AutoPopulateParams()
    """Module parameters."""


class AutoPopulateOutput(BaseModel):
    """A first material per part name."""

    model_config = CONTRACT

    material_assignments: dict[str, Material]
    """Part name → material."""


# --- materials.resolve_map ---------------------------------------------------------------


class ResolveMapParams(BaseModel):
    """Overrides applied on top of the automatic assignment."""

    model_config = CONTRACT

    material_override: str | None = None
    """Library key applied to every part (sold as e.g. a 'steel look')."""
    part_materials: dict[str, str] = {}
    """Part name → library key, for specific parts."""


class ResolveMapInput(BaseModel):
    """Parts and, optionally, an automatic first assignment."""

    model_config = CONTRACT

    objects: list[CadObject]
    """Parts and assemblies from cad.extract_objects."""
    material_assignments: dict[str, Material] | None = None
    """From materials.auto_populate, when the graph has it."""
    params: ResolveMapParams = ResolveMapParams()
    """Module parameters."""


class ResolveMapOutput(BaseModel):
    """The material every part renders with."""

    model_config = CONTRACT

    material_map: dict[str, Material]
    """Part name → material."""


class MaterialActivities:
    """The material modules (light: they run on the default queue)."""

    @production_module(
        "materials.auto_populate",
        families=("order_line",),
        label="Auto-populate materials",
        category="materials",
        timeout_s=60,
        legacy_source="legacy.auto_materials",
        ui=MATERIALS_UI,
        local=True,
    )
    async def auto_populate(self, input: AutoPopulateInput) -> AutoPopulateOutput:
        """Give every part a material from its CAD colour, or the fallback."""
        fallback = _library_material(input.params.fallback_material, "fallback_material")
        assignments = {}
        for part in _parts(input.objects):
            if input.params.use_cad_colors and part.color:
                assignments[part.name] = Material(
                    key=f"cad:{part.color.lower()}", base_color=part.color, roughness=0.45
                )
            else:
                assignments[part.name] = fallback
        return AutoPopulateOutput(material_assignments=assignments)

    @production_module(
        "materials.resolve_map",
        families=("order_line",),
        label="Resolve material map",
        category="materials",
        timeout_s=60,
        legacy_source="legacy.material_mapping",
        ui=MATERIALS_UI,
        local=True,
    )
    async def resolve_map(self, input: ResolveMapInput) -> ResolveMapOutput:
        """Apply the override and per-part choices on top of the automatic assignment."""
        params = input.params
        resolved = dict(input.material_assignments or {})
        for part in _parts(input.objects):
            if params.material_override:
                resolved[part.name] = _library_material(params.material_override, "material_override")
            elif part.name in params.part_materials:
                resolved[part.name] = _library_material(
                    params.part_materials[part.name], f"part_materials.{part.name}"
                )
        return ResolveMapOutput(material_map=resolved)


def _parts(objects: list[CadObject]) -> list[CadObject]:
    return [item for item in objects if item.kind == "part"]


def _library_material(key: str, field: str) -> Material:
    try:
        return LIBRARY[key]
    except KeyError:
        raise UnknownMaterialError(
            f"{field}: unknown material {key!r}; known: {', '.join(sorted(LIBRARY))}", field=field
        ) from None
