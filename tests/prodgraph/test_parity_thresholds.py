"""Which thresholds a shadow compares with: calibrated, else the deployment's, else the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from activities.parity import ParityThresholds
from core.settings import Settings
from output_profiles.dispatch import plan_dispatch
from output_profiles.models import OutputTypeCreate
from persistence.engine import make_engine, prepare_database
from persistence.tables import ParityCalibration
from prodgraph.parity import configured_thresholds, with_calibration
from registry.catalog import default_catalog
from registry.starters import starter


def test_the_deployment_sets_thresholds_over_the_defaults_and_a_typo_stops_it():
    configured = configured_thresholds(Settings(parity_thresholds={"ssim_min": 0.95}))
    assert configured.ssim_min == 0.95 and configured.psnr_min_db == ParityThresholds().psnr_min_db
    with pytest.raises(ValueError, match="PRODGRAPH_PARITY_THRESHOLDS: ssim"):
        configured_thresholds(Settings(parity_thresholds={"ssim": 0.95}))


def test_a_calibrated_output_type_compares_with_its_own_thresholds(tmp_path: Path):
    engine = make_engine(Settings(state_dir=tmp_path))
    prepare_database(engine, default_catalog())
    profile = OutputTypeCreate(
        slug="s", name="S", artifact_kinds=["still_image"], rollout="shadow", workflow_id="order-still-v1"
    )
    plan = plan_dispatch(profile, starter("order-still-v1"), default_catalog())
    with Session(engine) as db:
        assert with_calibration(db, plan, "s").parity_thresholds == ParityThresholds()
        db.add(ParityCalibration(output_type="s", thresholds={"psnr_min_db": 41.5}, step_sha256="a" * 64))
        db.commit()
        assert with_calibration(db, plan, "s").parity_thresholds == ParityThresholds(psnr_min_db=41.5)
    engine.dispose()
