"""One order line through an output type in legacy rollout and in graph rollout: same deliverables,
same effective settings (from the recorded provenance), both real renders."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlmodel import Session

from activities.artifacts import sha256_of
from core import temporal as attributes
from imaging import colour_fractions
from legacy_adapter.mapping import map_legacy_settings
from output_profiles.dispatch import plan_dispatch
from output_profiles.dispatch_plan import OrderLine
from output_profiles.models import OutputTypeCreate
from persistence.engine import make_engine
from prodgraph.orders import start_order_line
from prodgraph.parity import find_report
from registry.catalog import default_catalog
from registry.starters import starter
from support.definitions import with_nodes

pytestmark = [pytest.mark.e2e, pytest.mark.occt, pytest.mark.blender]
STEEL_LOOK = {
    "renderer": "cycles",
    "resolution": "1600x1200",
    "samples": 96,
    "transparent_bg": "no",
    "material_override": "brushed_steel",
    "file_format": "png",
    "template": "studio_white",
}
SMALL = {"width": 160, "height": 120, "samples": 4}
DELIVERABLES = {"still", "turntable", "blend", "thumbnail"}


def steel_look(**fields) -> OutputTypeCreate:
    """The legacy 'Steel Look Still' output type, as imported."""
    mapping = map_legacy_settings(STEEL_LOOK)
    return OutputTypeCreate(
        slug="steel-look-still",
        name="Steel Look Still",
        family="order_line",
        artifact_kinds=[mapping.artifact_kind],
        overrides=mapping.overrides.model_dump(mode="json"),
        legacy_render_settings=STEEL_LOOK,
        **fields,
    )


async def test_legacy_and_graph_rollouts_deliver_the_same(session, step_fixture):
    catalog = default_catalog()
    order = OrderLine(
        order_line_id="ol-1001",
        invocation_params=SMALL,
        step_path=str(step_fixture("red_cube_blue_cylinder.step")),
    )
    legacy_plan = plan_dispatch(steel_look(), None, catalog, SMALL)
    graph_plan = plan_dispatch(
        steel_look(rollout="graph", workflow_id="order-still-v1"), starter("order-still-v1"), catalog, SMALL
    )
    # One order line id launches one run: the shadow of the same line is another line here.
    graph_order = order.model_copy(update={"order_line_id": "ol-1001-graph"})
    legacy = await (await start_order_line(session, legacy_plan, order, "steel-look-still")).result()
    graph = await (await start_order_line(session, graph_plan, graph_order, "steel-look-still")).result()

    assert (legacy.route, graph.route) == ("legacy", "graph")
    assert legacy.status == graph.status == "completed", (legacy.error, graph.error)
    roles = [{ref.role for ref in result.artifacts} & DELIVERABLES for result in (legacy, graph)]
    assert roles[0] == roles[1] == {"still"}
    for module in ("render.blender_still", "materials.resolve_map", "render.resolve_template"):
        assert legacy.effective[module] == graph.effective[module], module
    still = legacy.effective["render.blender_still"]
    assert still.params["width"] == 160 and still.param_sources["width"] == "invocation"
    assert legacy.effective["materials.resolve_map"].params["material_override"] == "brushed_steel"

    for result in (legacy, graph):
        png = next(Path(urlparse(ref.uri).path) for ref in result.artifacts if ref.role == "still")
        # the steel override turns the red cube grey; the blue cylinder is steel too
        assert colour_fractions(png)["foreground"] > 0.05
        assert colour_fractions(png)["red"] < 0.001


async def test_a_shadow_delivers_legacy_and_keeps_the_graph_apart(session, step_fixture, temporal_env):
    """Shadow: the customer gets legacy's still, published and notified once; the graph's still is
    made from the same inputs and kept in the store, unpublished; both sides show in Temporal."""
    order = OrderLine(
        order_line_id="ol-shadow-1",
        invocation_params=SMALL,
        step_path=str(step_fixture("red_cube_blue_cylinder.step")),
    )
    profile = steel_look(rollout="shadow", workflow_id="order-still-v1")
    plan = plan_dispatch(profile, starter("order-still-v1"), default_catalog(), SMALL)
    handle = await start_order_line(session, plan, order, "steel-look-still")
    result = await handle.result()

    assert result.route == "shadow" and result.status == "completed", result.error
    assert result.workflow_ids == [f"{handle.id}-legacy"]
    assert result.shadow is not None and result.shadow.status == "completed", result.shadow
    assert result.shadow.workflow_ids == [f"{handle.id}-shadow-intake", f"{handle.id}-shadow-render"]
    legacy_still = next(ref for ref in result.artifacts if ref.role == "still")
    graph_still = next(ref for ref in result.shadow.artifacts if ref.role == "still")
    for ref in (legacy_still, graph_still):
        assert colour_fractions(Path(urlparse(ref.uri).path))["foreground"] > 0.05
    assert result.shadow.effective["render.blender_still"].params["width"] == 160  # same invocation

    publish_root = session.settings.publish_root()
    published = [path for path in publish_root.rglob("*") if path.is_file() and path.suffix == ".png"]
    assert len(published) == 1 and sha256_of(published[0]) == legacy_still.sha256
    notifications = (publish_root / "outbox.jsonl").read_text().splitlines()
    assert len(notifications) == 1  # the shadow never notifies
    for child_id, route in ((f"{handle.id}-legacy", "legacy"), (f"{handle.id}-shadow-render", "shadow")):
        described = await temporal_env.client.get_workflow_handle(child_id).describe()
        assert described.typed_search_attributes.get(attributes.ROUTE) == route, child_id

    parity = result.shadow.parity
    assert parity is not None, result.shadow.parity_error
    assert parity.verdict in ("identical", "equivalent"), parity.differences
    assert parity.pictures and all(Path(urlparse(ref.uri).path).is_file() for ref in parity.pictures)
    with Session(make_engine(session.settings)) as db:
        assert find_report(db, parity.report_id).verdict == parity.verdict


async def test_a_shadow_that_differs_on_purpose_names_the_parameter_behind_it(session, step_fixture):
    """Legacy settings without a template render on the module's default backdrop; the graph's
    definition asks for white: the comparison is `different` and names the template."""
    plain = {key: value for key, value in STEEL_LOOK.items() if key != "template"}
    mapping = map_legacy_settings(plain)
    profile = steel_look(rollout="shadow", workflow_id="order-still-v1").model_copy(
        update={"overrides": mapping.overrides.model_dump(mode="json"), "legacy_render_settings": plain}
    )
    white = with_nodes(starter("order-still-v1"), template={"params": {"template": "studio_white"}})
    plan = plan_dispatch(profile, white, default_catalog(), SMALL)
    order = OrderLine(
        order_line_id="ol-shadow-2",
        invocation_params=SMALL,
        step_path=str(step_fixture("red_cube_blue_cylinder.step")),
    )
    result = await (await start_order_line(session, plan, order, "steel-look-still")).result()

    assert result.status == "completed" and result.shadow is not None
    parity = result.shadow.parity
    assert parity is not None, result.shadow.parity_error
    assert parity.verdict == "different", parity
    explained = [cause for difference in parity.differences for cause in difference.explained_by]
    assert any("template" in cause and "studio_white" in cause for cause in explained), parity.differences
