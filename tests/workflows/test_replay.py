"""Determinism guard: stored histories of real runs replay against today's workflow code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.graph import GraphWorkflow
from workflows.legacy import LegacyPipelineWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_stored_history_replays(path: Path):
    replayer = Replayer(workflows=[GraphWorkflow, LegacyPipelineWorkflow],
                        data_converter=pydantic_data_converter)
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await replayer.replay_workflow(history)


def test_there_are_histories_of_both_workflows():
    names = {path.stem for path in HISTORIES}
    assert any(name.startswith("graph_") for name in names)
    assert any(name.startswith("legacy_") for name in names)
