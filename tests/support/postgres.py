"""A throwaway PostgreSQL server from Debian's packages: initdb into a temporary folder, listening
on a unix socket in that folder only (no port to collide on), a fresh database per test."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

#: Debian installs the server here, one folder per major version, off the PATH.
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
#: The superuser initdb creates; also the OS account Debian's package makes, which runs the server
#: when the tests run as root (PostgreSQL refuses to run as root).
SUPERUSER = "postgres"
MISSING = (
    "PostgreSQL's server programs (initdb, pg_ctl) are not installed: run `make install`, which "
    "installs the Debian package `postgresql` (scripts/install-system-packages.sh)"
)


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (the newest Debian version, else the PATH's), or None."""
    versions = sorted(
        (path for path in DEBIAN_BINARIES.glob("*/bin") if (path / "initdb").is_file()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresServer:
    """One PostgreSQL cluster in its own temporary folder; start, create databases, stop."""

    def __init__(self, binaries: Path):
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="prodgraph-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            account = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, account.pw_uid, account.pw_gid)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", SUPERUSER, "--"] if self._as_root else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.is_file() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        """initdb, then start the server on a socket in the folder; returns once it accepts."""
        self._run(
            str(self.binaries / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        # A test server: durability off for speed, no TCP listener, room for many pools.
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.root}' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.root}"

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(host=str(self.root), user=SUPERUSER, dbname="postgres", autocommit=True)

    def create_database(self) -> str:
        """A new empty database's name."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with self._admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing whatever connections a test left open on it."""
        with self._admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
