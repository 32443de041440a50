"""Record workflow histories for the replay tests: real runs on the embedded server.

Run after an intentional interpreter change (behind `workflow.patched`) to add new histories;
never to paper over a replay failure.  Usage: .venv/bin/python scripts/record_histories.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from output_profiles.dispatch import OrderLine, plan_dispatch  # noqa: E402
from output_profiles.models import OutputTypeCreate  # noqa: E402
from prodgraph.runs import run_plan, temporal_session  # noqa: E402
from prodgraph.settings import Settings  # noqa: E402
from registry.catalog import default_catalog  # noqa: E402
from registry.compiler import compile_plan  # noqa: E402
from registry.starters import starter  # noqa: E402
from workflows.legacy import LegacyPipelineInput, LegacyPipelineWorkflow  # noqa: E402

EXAMPLE = REPO / "examples" / "red_cube_blue_cylinder.step"
OUT = REPO / "tests" / "workflows" / "histories"
SMALL = {"width": 96, "height": 72, "samples": 2}


async def record() -> None:
    """Run one of each workflow shape and write its history as JSON."""
    catalog = default_catalog()
    with tempfile.TemporaryDirectory() as state:
        async with temporal_session(Settings(state_dir=Path(state))) as session:
            intake_id, intake = await run_plan(session, compile_plan(starter("cad-intake-v1"),
                                                                     catalog),
                                               {"step_path": str(EXAMPLE)})
            await save(session, intake_id, "graph_intake_completed")
            bad = tempfile.NamedTemporaryFile(suffix=".step", delete=False)
            bad.write(b"not a step file")
            bad.close()
            failed_id, _ = await run_plan(session, compile_plan(starter("cad-intake-v1"), catalog),
                                          {"step_path": bad.name})
            await save(session, failed_id, "graph_intake_failed")
            os.unlink(bad.name)
            outputs = intake.outputs
            entry = {"order_line_id": "replay-1", "step_file": outputs["resolve"]["step_file"],
                     "glb": outputs["glb"]["glb"], "bbox": outputs["bbox"]["bbox"],
                     "objects": outputs["extract"]["objects"]}
            still_plan = compile_plan(starter("order-still-v1"), catalog, invocation_params=SMALL)
            still_id, _ = await run_plan(session, still_plan, entry)
            await save(session, still_id, "graph_order_still_completed")
            profile = OutputTypeCreate(slug="still", name="Still", artifact_kinds=["still_image"])
            plan = plan_dispatch(profile, None, catalog, SMALL)
            order = OrderLine(order_line_id="replay-2", step_path=str(EXAMPLE))
            legacy_id = "legacy-replay-2"
            await session.client.execute_workflow(
                LegacyPipelineWorkflow.run,
                LegacyPipelineInput(plan=plan.legacy_plan, step_path=order.step_path,
                                    order_line_id=order.order_line_id,
                                    task_queues=session.task_queues()),
                id=legacy_id, task_queue=session.settings.default_queue)
            await save(session, legacy_id, "legacy_still_completed")


async def save(session, workflow_id: str, name: str) -> None:
    """Fetch one history and write it beside the replay test."""
    history = await session.client.get_workflow_handle(workflow_id).fetch_history()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}")


if __name__ == "__main__":
    asyncio.run(record())
    os._exit(0)
