"""Write the next migration revision: `python -m persistence.migrations "what changed"`.

It upgrades a scratch SQLite database to the current head, compares it with the models in
persistence/tables.py and writes what differs as versions/r<NNNN>_<slug>.py (formatted with
ruff), to read and edit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from persistence.schema import alembic_config, upgrade_to_head


def next_revision_id(config_revisions: list[str]) -> str:
    """The next four-digit revision id after every existing numeric one."""
    numbers = [int(revision) for revision in config_revisions if revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def main() -> None:
    """Autogenerate one revision from the difference between head and the models."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("message", help="what the revision changes, e.g. 'cad files keep a media type'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prodgraph-migrations-") as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        with engine.begin() as connection:
            upgrade_to_head(connection)
            config = alembic_config(connection)
            config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
            revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
            script = command.revision(
                config, message=args.message, autogenerate=True, rev_id=next_revision_id(revisions)
            )
        engine.dispose()
    path = getattr(script, "path", None)
    if path:
        # The house format (line length, quotes); without ruff installed the file stays as written.
        subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", path], check=False)
    print(path)


if __name__ == "__main__":
    main()
