"""Schema migrations with Alembic, driven from code: upgrade any database to this release's head.

The migration environment lives in `persistence/migrations/` (how to add a revision: its README).
A database made before migrations existed (`SQLModel.metadata.create_all`: tables, no
`alembic_version`) is adopted: the baseline creates only the tables it lacks, then the later
revisions run as on any other database.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The first revision: every table as `create_all` made them before migrations.
BASELINE = "0001"
VERSION_TABLE = "alembic_version"
#: Largest value of an integer column on every supported database (PostgreSQL's `integer`; SQLite's
#: are 64-bit): check a client's number against it, or PostgreSQL answers it with an error.
MAX_INTEGER = 2**31 - 1

log = logging.getLogger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, with no alembic.ini: the scripts here, this connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The revision this release's schema is at."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migration revisions under {MIGRATIONS}"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at; None for an empty or pre-migration one."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(connection: Connection) -> None:
    """Create the schema on an empty database, adopt a pre-migration one, upgrade an older one."""
    tables = set(inspect(connection).get_table_names())
    if tables and VERSION_TABLE not in tables:
        log.info("database: adopting tables made before migrations (%s)", ", ".join(sorted(tables)))
    before = current_revision(connection)
    command.upgrade(alembic_config(connection), "head")
    after = current_revision(connection)
    if before != after:
        log.info("database: schema migrated from %s to %s", before or "nothing", after)
