"""The database engine, its tables, and preparing a database for a process's first use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, event, make_url, text
from sqlmodel import Session, create_engine

import persistence.tables  # noqa: F401  (registers every table on the metadata)
from core.settings import Settings
from persistence.catalog_history import record_snapshot
from persistence.schema import upgrade_to_head
from persistence.seed import seed
from registry.catalog import Catalog

#: Any constant: the key of the PostgreSQL advisory lock that lets one process prepare at a time.
PREPARE_LOCK_KEY = 0x70726F64  # "prod"


def make_engine(settings: Settings) -> Engine:
    """An engine on the settings' database; SQLite under STATE_DIR unless DATABASE_URL is set.

    The pool holds db_pool_size connections and opens up to db_max_overflow more under load; a
    request that finds none free waits db_pool_timeout_s. SQLite runs in WAL mode (readers never
    wait for the writer) with a busy timeout, so concurrent writers queue instead of failing.
    """
    url = settings.database()
    if settings.database_url is None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    sqlite = url.startswith("sqlite")
    connect_args: dict[str, Any] = {}
    if sqlite:
        # FastAPI runs sync routes in a thread pool, so SQLite must accept other threads.
        connect_args = {"check_same_thread": False, "timeout": settings.sqlite_busy_timeout_s}
    pool: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_s,
        "pool_pre_ping": not sqlite,  # a restarted PostgreSQL leaves dead connections in the pool
    }
    if sqlite and make_url(url).database in (None, "", ":memory:"):
        pool = {}  # an in-memory database lives in one connection: SQLAlchemy pools it per thread
    engine = create_engine(url, connect_args=connect_args, **pool)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def prepare_database(engine: Engine, catalog: Catalog) -> None:
    """Migrate the schema to head, remember this catalogue version, seed empty tables.

    On PostgreSQL an advisory lock serialises processes starting together (the API and a CLI
    command), so the schema is migrated and seeded once.
    """
    with engine.begin() as connection:
        _lock(connection)
        upgrade_to_head(connection)
        # The session joins the connection's transaction: its commits land when the block ends.
        with Session(bind=connection) as session:
            record_snapshot(session, catalog)
            seed(session, catalog)


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PREPARE_LOCK_KEY})
