"""Determinism guard: stored histories of real runs replay against today's workflow code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.graph import GraphWorkflow
from workflows.legacy import LegacyPipelineWorkflow
from workflows.order_line import OrderLineWorkflow

HISTORY_DIR = Path(__file__).parent / "histories"
WORKFLOW_IDS = json.loads((HISTORY_DIR / "workflow_ids.json").read_text())
HISTORIES = sorted(HISTORY_DIR / f"{name}.json" for name in WORKFLOW_IDS)


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_stored_history_replays(path: Path):
    replayer = Replayer(
        workflows=[GraphWorkflow, LegacyPipelineWorkflow, OrderLineWorkflow],
        data_converter=pydantic_data_converter,
    )
    history = WorkflowHistory.from_json(WORKFLOW_IDS[path.stem], path.read_text())
    await replayer.replay_workflow(history)


def test_there_are_histories_of_both_workflows():
    names = {path.stem for path in HISTORIES}
    assert any(name.startswith("graph_") for name in names)
    assert any(name.startswith("legacy_") for name in names)
    assert any(name.startswith("order_line_") for name in names)
