"""The rollout gate on a real database: no move to the graph before N comparisons show parity."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlmodel import Session, select

from core.errors import InvalidOutputTypeError, RolloutGateClosedError
from core.settings import Settings
from output_profiles.models import Rollout
from persistence.engine import make_engine, prepare_database
from persistence.tables import OutputType, ParityReportRecord, RolloutChange
from prodgraph.rollout import parity_gate, set_rollout
from registry.catalog import default_catalog

N = 3
DIFFERENCE = {"metric": "ssim"}


@pytest.fixture
def db(tmp_path: Path):
    engine = make_engine(Settings(state_dir=tmp_path))
    prepare_database(engine, default_catalog())
    with Session(engine) as session:
        session.add(OutputType(slug="old-still", name="Old Still", artifact_kinds=["still_image"]))
        session.commit()
        yield session
    engine.dispose()


def compared(db: Session, *verdicts: str, calibration: bool = False) -> None:
    """Record comparisons of old-still, oldest first."""
    for index, verdict in enumerate(verdicts):
        db.add(
            ParityReportRecord(
                id=f"par_{uuid.uuid4().hex[:12]}",
                output_type="old-still",
                order_line_workflow_id=f"order-x-{index}",
                verdict=verdict,
                calibration=calibration,
                report={"verdict": verdict, "differences": [DIFFERENCE] if verdict == "different" else []},
            )
        )
    db.commit()


def move(db: Session, rollout: Rollout, **kwargs) -> OutputType:
    return set_rollout(db, default_catalog(), "old-still", rollout, actor="tests", required=N, **kwargs)[0]


def test_a_legacy_type_moved_to_shadow_gets_its_kinds_starter(db: Session):
    row = move(db, Rollout.shadow)
    assert (row.rollout, row.workflow_id) == (Rollout.shadow, "order-still-v1")
    change = db.exec(select(RolloutChange)).one()
    assert (change.from_rollout, change.to_rollout, change.actor, change.forced) == (
        "legacy",
        "shadow",
        "tests",
        False,
    )


def test_graph_is_refused_until_the_last_n_comparisons_show_parity(db: Session):
    move(db, Rollout.shadow)
    compared(db, "identical", "equivalent")
    with pytest.raises(RolloutGateClosedError) as closed:
        move(db, Rollout.graph)
    assert (
        closed.value.field == "rollout"
        and "2 shadow comparison(s) on record, 3 needed" in closed.value.message
    )

    compared(db, "different", "identical", calibration=False)
    gate = parity_gate(db, "old-still", N)
    assert not gate.open and gate.compared == 4 and gate.last[1].verdict == "different"
    assert gate.last[1].differences == [DIFFERENCE]
    with pytest.raises(RolloutGateClosedError):
        move(db, Rollout.graph)

    compared(db, "shadow_failed", "identical", calibration=True)  # calibration runs never count
    compared(db, "equivalent", "identical", "equivalent")
    gate = parity_gate(db, "old-still", N)
    assert gate.open and gate.compared == 7 and gate.equivalent_share == pytest.approx(6 / 7)
    assert move(db, Rollout.graph).rollout == Rollout.graph


def test_forcing_the_gate_needs_a_reason_and_is_recorded(db: Session):
    move(db, Rollout.shadow)
    with pytest.raises(InvalidOutputTypeError) as no_reason:
        move(db, Rollout.graph, force=True)
    assert no_reason.value.field == "reason"
    assert move(db, Rollout.graph, force=True, reason="customer signed off the look").rollout == Rollout.graph
    forced = db.exec(select(RolloutChange).where(RolloutChange.to_rollout == "graph")).one()
    assert forced.forced and forced.reason == "customer signed off the look"
    assert forced.gate["open"] is False


def test_a_named_workflow_of_the_wrong_family_is_refused_naming_the_field(db: Session):
    with pytest.raises(InvalidOutputTypeError) as refused:
        move(db, Rollout.shadow, workflow_id="cad-intake-v1")
    assert refused.value.field
    assert db.exec(select(OutputType).where(OutputType.slug == "old-still")).one().rollout == Rollout.legacy


def test_a_type_selling_a_thumbnail_gets_the_starter_that_makes_one(db: Session):
    db.add(OutputType(slug="web", name="Web", artifact_kinds=["still_image", "preview_thumbnail"]))
    db.commit()
    row, _ = set_rollout(db, default_catalog(), "web", Rollout.shadow, actor="tests", required=N)
    assert row.workflow_id == "order-still-thumbnail-v1"


def test_a_legacy_type_with_a_thumbnail_override_gets_the_thumbnail_starter(db: Session):
    db.add(
        OutputType(
            slug="old-web",
            name="Old Web",
            artifact_kinds=["still_image"],
            overrides={"preview_thumbnail": True},
        )
    )
    db.commit()
    row, _ = set_rollout(db, default_catalog(), "old-web", Rollout.shadow, actor="tests", required=N)
    assert row.workflow_id == "order-still-thumbnail-v1"
