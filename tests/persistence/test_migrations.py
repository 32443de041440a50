"""Schema migrations: a fresh database gets head, a pre-migration one is adopted, and head is
exactly the models' schema, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Engine, MetaData, String, inspect
from sqlmodel import Session, SQLModel, select

from core.settings import Settings
from persistence.engine import make_engine, prepare_database
from persistence.schema import BASELINE, alembic_config, current_revision, head_revision
from persistence.tables import CatalogSnapshot, OutputType, WorkflowDefinitionRecord
from registry.catalog import default_catalog

#: The tables of the baseline revision (later revisions add the parity ones).
TABLES = {
    "output_types",
    "workflow_definitions",
    "catalog_snapshots",
    "api_keys",
    "cad_files",
    "artifact_grants",
}
#: The tables create_all made before API keys, CAD files and artifact grants existed.
FIRST_TABLES = [OutputType.__table__, WorkflowDefinitionRecord.__table__, CatalogSnapshot.__table__]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path: Path) -> Engine:
    """An engine on an empty database of each kind."""
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(Settings(state_dir=tmp_path, database_url=url))
    yield engine
    engine.dispose()


def differences(engine: Engine, metadata: MetaData = SQLModel.metadata) -> list:
    """What Alembic's autogenerate would write to bring the database to these models."""
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), metadata)


def test_a_fresh_database_is_created_at_head_and_seeded(engine):
    prepare_database(engine, default_catalog())

    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    assert TABLES <= set(inspect(engine).get_table_names())
    with Session(engine) as session:
        assert session.exec(select(OutputType).where(OutputType.slug == "studio-still")).first()
    prepare_database(engine, default_catalog())  # a later start changes nothing
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()


def test_head_is_exactly_the_models_schema(engine):
    prepare_database(engine, default_catalog())

    assert differences(engine) == []


def test_the_comparison_catches_a_model_change_without_its_revision(engine):
    prepare_database(engine, default_catalog())
    changed = MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["cad_files"].append_column(Column("media_type", String(128), nullable=True))

    found = differences(engine, changed)

    assert [(change[0], change[2], change[3].name) for change in found] == [
        ("add_column", "cad_files", "media_type")
    ]


@pytest.mark.parametrize("made_before", ["the six baseline tables", "the first three tables"])
def test_a_database_made_by_create_all_is_adopted_and_keeps_its_rows(engine, made_before):
    baseline = [SQLModel.metadata.tables[name] for name in sorted(TABLES)]
    tables = baseline if made_before == "the six baseline tables" else FIRST_TABLES
    SQLModel.metadata.create_all(engine, tables=tables)
    with Session(engine) as session:
        session.add(OutputType(slug="kept-type", name="Made before migrations"))
        session.commit()

    prepare_database(engine, default_catalog())

    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    assert differences(engine) == []
    with Session(engine) as session:
        slugs = set(session.exec(select(OutputType.slug)))
    # The old rows stay, and the seed leaves a table that had rows alone.
    assert slugs == {"kept-type"}


def test_downgrade_to_nothing_then_upgrade_again(engine):
    prepare_database(engine, default_catalog())
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert not TABLES & set(inspect(engine).get_table_names())

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), BASELINE)
        assert current_revision(connection) == BASELINE
    prepare_database(engine, default_catalog())
    assert differences(engine) == []
