"""Record workflow histories for the replay tests: real runs on the embedded server.

Run after an intentional interpreter change (behind `workflow.patched`) to add new histories;
never to paper over a replay failure. Name the histories to write, so the ones recorded before the
change stay as they are:  .venv/bin/python scripts/record_histories.py [NAME ...]  (all by default)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.settings import Settings  # noqa: E402
from output_profiles.dispatch import plan_dispatch  # noqa: E402
from output_profiles.dispatch_plan import OrderLine  # noqa: E402
from output_profiles.models import OutputTypeCreate  # noqa: E402
from prodgraph.embedded import stop_dev_server  # noqa: E402
from prodgraph.orders import start_order_line  # noqa: E402
from prodgraph.runs import run_plan, temporal_session  # noqa: E402
from registry.catalog import default_catalog  # noqa: E402
from registry.compiler import compile_plan  # noqa: E402
from registry.families import order_line_entry  # noqa: E402
from registry.starters import starter  # noqa: E402

EXAMPLE = REPO / "examples" / "red_cube_blue_cylinder.step"
OUT = REPO / "tests" / "workflows" / "histories"
SMALL = {"width": 96, "height": 72, "samples": 2}
#: The histories to write (every one when empty).
ONLY = set(sys.argv[1:])


async def record() -> None:
    """Run one of each workflow shape and write its history as JSON."""
    catalog = default_catalog()
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(state_dir=Path(state), input_roots=[EXAMPLE.parent, Path(tempfile.gettempdir())])
        async with temporal_session(settings) as session:
            await record_runs(session, catalog)
        stop_dev_server(Path(state))


async def record_runs(session, catalog) -> None:
    """One run of each workflow shape, histories saved."""
    intake_id, intake = await run_plan(
        session, compile_plan(starter("cad-intake-v1"), catalog), {"step_path": str(EXAMPLE)}
    )
    await save(session, intake_id, "graph_intake_completed")
    bad = tempfile.NamedTemporaryFile(suffix=".step", delete=False)
    bad.write(b"not a step file")
    bad.close()
    failed_id, _ = await run_plan(
        session, compile_plan(starter("cad-intake-v1"), catalog), {"step_path": bad.name}
    )
    await save(session, failed_id, "graph_intake_failed")
    os.unlink(bad.name)
    entry = order_line_entry(intake.outputs, "replay-1")
    still_plan = compile_plan(starter("order-still-v1"), catalog, invocation_params=SMALL)
    still_id, _ = await run_plan(session, still_plan, entry)
    await save(session, still_id, "graph_order_still_completed")
    profile = OutputTypeCreate(slug="still", name="Still", artifact_kinds=["still_image"])
    plan = plan_dispatch(profile, None, catalog, SMALL)
    order = OrderLine(order_line_id="replay-2", step_path=str(EXAMPLE))
    handle = await start_order_line(session, plan, order, "still")
    await handle.result()
    await save(session, handle.id, "order_line_legacy_completed")
    await save(session, f"{handle.id}-legacy", "legacy_still_completed")
    graph = plan_dispatch(
        profile.model_copy(update={"rollout": "graph", "workflow_id": "order-still-v1"}),
        starter("order-still-v1"),
        catalog,
        SMALL,
    )
    graph_order = order.model_copy(update={"order_line_id": "replay-3"})
    handle = await start_order_line(session, graph, graph_order, "still")
    await handle.result()
    await save(session, handle.id, "order_line_graph_completed")
    # The same shape after OWNER_PATCH: its child runs are labelled with their owner.
    await save(session, handle.id, "order_line_graph_owned")


async def save(session, workflow_id: str, name: str) -> None:
    """Fetch one history and write it beside the replay test (if it is one asked for)."""
    if ONLY and name not in ONLY:
        return
    history = await session.client.get_workflow_handle(workflow_id).fetch_history()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(history.to_json())
    # Child workflow ids derive from the parent's id, so replay needs the original id.
    index_path = OUT / "workflow_ids.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[name] = workflow_id
    index_path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    print(f"recorded {name}")


if __name__ == "__main__":
    asyncio.run(record())
    os._exit(0)
