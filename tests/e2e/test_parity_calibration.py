"""Calibration: an output type's legacy route rendered twice with two seeds, compared, and the
measured noise kept as the thresholds its shadow comparisons use; real OCP and Blender."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from activities.parity import ParityThresholds
from output_profiles.dispatch import plan_dispatch
from output_profiles.models import Rollout
from persistence.engine import make_engine, prepare_database
from persistence.repositories import require_output_type, workflow_for
from persistence.tables import ParityCalibration
from prodgraph.parity import calibration_input, find_report, start_calibration, with_calibration
from prodgraph.rollout import parity_gate
from registry.catalog import default_catalog

pytestmark = [pytest.mark.e2e, pytest.mark.occt, pytest.mark.blender]
SMALL = {"width": 96, "height": 72, "samples": 4}


async def test_calibration_measures_noise_and_the_shadow_uses_it(session, step_fixture):
    engine = make_engine(session.settings)
    prepare_database(engine, default_catalog())
    step = str(step_fixture("red_cube_blue_cylinder.step"))
    with Session(engine) as db:
        calibration = calibration_input(
            db, default_catalog(), "studio-still", step, session.task_queues(), SMALL
        )
    handle = await start_calibration(session, calibration)
    result = await handle.result()

    noise = result.compared.report
    assert noise.verdict in ("identical", "equivalent", "different")
    stills = [c for c in noise.comparisons if c.artifact == "still"]
    assert stills and stills[0].legacy is not None and stills[0].graph is not None
    assert stills[0].legacy.sha256 != stills[0].graph.sha256  # two seeds: two different renders
    with Session(engine) as db:
        stored = db.get(ParityCalibration, "studio-still")
        assert stored is not None and ParityThresholds.model_validate(stored.thresholds) == result.thresholds
        report = find_report(db, result.report_id)
        assert report.calibration and parity_gate(db, "studio-still", 1).compared == 0  # never counted
        shadow = require_output_type(db, "studio-still").model_copy(update={"rollout": Rollout.shadow})
        planned = plan_dispatch(shadow, workflow_for(db, shadow), default_catalog(), SMALL)
        assert with_calibration(db, planned, "studio-still").parity_thresholds == result.thresholds
    publish_root = session.settings.publish_root()
    assert not publish_root.exists() or not any(publish_root.rglob("*.png"))  # nothing delivered
