"""A throwaway PostgreSQL server for the tests: initdb into a temporary folder, start it on a
free port on 127.0.0.1, give each test its own database, stop and delete it all at the end.

It uses the Debian server binaries (``/usr/lib/postgresql/*/bin``); ``scripts/ensure-postgres.sh``
installs them. Without them the PostgreSQL tests skip, unless the script has run (it leaves a
stamp) or ``LAPOR_REQUIRE_POSTGRES=1`` is set, in which case they fail: CI must not silently skip.
As root, the server runs as the unprivileged ``postgres`` user (PostgreSQL refuses root).

The ``conftest.py`` of ``tests/runtime`` and ``tests/scenarios`` register the fixtures.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

__all__ = ["PostgresServer", "find_binaries", "pg_server", "pg_url", "shared_server"]

STAMP = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lapor-sla/postgres-ensured"
)


def find_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    for initdb in reversed(candidates):
        if (initdb.parent / "pg_ctl").exists():
            return initdb.parent
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One server process; ``url(database)`` names a database on it."""

    def __init__(self, binaries: Path, *, durable: bool = False) -> None:
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="lapor-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
        options += "-c max_connections=100"
        if not durable:  # a throwaway test server; benchmarks ask for PostgreSQL's defaults
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.binaries / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.folder / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stderr or done.stdout}\n{tail}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def restart(self) -> None:
        """Stop the server (its connections with it) and start it again, as an operator does."""
        log = str(self.folder / "log")  # else the new server keeps pg_ctl's output pipe open
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # already gone; the folder goes anyway
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


_SERVER: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """The one server of this test process (started on first use, stopped at exit)."""
    global _SERVER
    if _SERVER is None:
        binaries = find_binaries()
        if binaries is None:
            if STAMP.exists() or os.environ.get("LAPOR_REQUIRE_POSTGRES") == "1":
                pytest.fail("PostgreSQL binaries missing although scripts/ensure-postgres.sh ran")
            pytest.skip("PostgreSQL not installed; run scripts/ensure-postgres.sh")
        _SERVER = PostgresServer(binaries)
        atexit.register(_SERVER.stop)
    return _SERVER


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    yield shared_server()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A URL of a fresh, empty (unmigrated) PostgreSQL database for this test."""
    return pg_server.create_database()
