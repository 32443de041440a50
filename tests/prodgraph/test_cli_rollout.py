"""`prodgraph output-types` and `prodgraph parity`: rollouts through the gate, comparisons shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlmodel import Session

from core.settings import Settings
from persistence.engine import make_engine
from persistence.tables import ParityReportRecord


def prodgraph(state: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `prodgraph ARGS` on the database under this state folder, as a user would."""
    env = {**os.environ, "PRODGRAPH_STATE_DIR": str(state), "PRODGRAPH_PARITY_GATE_RUNS": "2"}
    env.pop("PRODGRAPH_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "prodgraph.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def compared(state: Path, verdict: str, index: int) -> None:
    """A shadow comparison of studio-still on record, as an order line's parity.record writes it."""
    engine = make_engine(Settings(state_dir=state))
    with Session(engine) as db:
        db.add(
            ParityReportRecord(
                id=f"par_{index}",
                output_type="studio-still",
                order_line_workflow_id=f"order-acme:studio-still:ol-{index}",
                verdict=verdict,
                report={"verdict": verdict, "reason": "compared", "differences": []},
            )
        )
        db.commit()
    engine.dispose()


def test_set_rollout_passes_the_gate_and_parity_shows_the_evidence(tmp_path: Path):
    listed = prodgraph(tmp_path, "output-types", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"slug": "studio-still", "rollout": "graph", "workflow_id": "order-still-v1", "active": True} in (
        json.loads(listed.stdout)
    )
    assert prodgraph(tmp_path, "output-types", "set-rollout", "studio-still", "shadow").returncode == 0

    closed = prodgraph(tmp_path, "output-types", "set-rollout", "studio-still", "graph", "--json")
    assert closed.returncode == 1
    assert "rollout_gate_closed" in closed.stdout + closed.stderr

    compared(tmp_path, "identical", 1)
    compared(tmp_path, "equivalent", 2)
    summary = prodgraph(tmp_path, "parity", "summary", "--output-type", "studio-still", "--json")
    assert summary.returncode == 0, summary.stderr
    (gate,) = json.loads(summary.stdout)
    assert (gate["compared"], gate["open"], gate["equivalent_share"]) == (2, True, 1.0)
    shown = prodgraph(tmp_path, "parity", "show", "order-acme:studio-still:ol-2")
    assert shown.returncode == 0 and "par_2: equivalent" in shown.stdout

    moved = prodgraph(tmp_path, "output-types", "set-rollout", "studio-still", "graph", "--json")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert json.loads(moved.stdout)["rollout"] == "graph"
    wrong = prodgraph(
        tmp_path, "output-types", "set-rollout", "studio-still", "shadow", "--workflow", "x@one"
    )
    assert wrong.returncode == 1 and "workflow" in wrong.stdout + wrong.stderr
