"""The database engine, its tables, and preparing a database for a process's first use."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, create_engine

import persistence.tables  # noqa: F401  (registers every table on the metadata)
from core.settings import Settings
from persistence.catalog_history import record_snapshot
from persistence.seed import seed
from registry.catalog import Catalog


def make_engine(settings: Settings) -> Engine:
    """An engine on the settings' database; SQLite under STATE_DIR unless DATABASE_URL is set."""
    url = settings.database()
    if settings.database_url is None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    # FastAPI runs sync routes in a thread pool, so SQLite must accept other threads.
    connect_args = {"check_same_thread": False} if url.startswith("sqlite") else {}
    return create_engine(url, connect_args=connect_args)


def create_tables(engine: Engine) -> None:
    """Create every table that does not exist yet."""
    SQLModel.metadata.create_all(engine)


def prepare_database(engine: Engine, catalog: Catalog) -> None:
    """Create tables, remember this catalogue version, seed empty tables (first start)."""
    create_tables(engine)
    with Session(engine) as session:
        record_snapshot(session, catalog)
        seed(session, catalog)
