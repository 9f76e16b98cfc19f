"""The demo's database: recreated on every run, and only if it is the demo's own.

``lapor demo --db URL`` used to delete whatever SQLite file it was given, with its write-ahead
log, unchecked; the other commands' default database is ``sqlite:///lapor.db``, one typo away. The
demo marks the databases it creates (SQLite: ``PRAGMA application_id``; PostgreSQL: a table of its
own) and recreates only a database that carries the mark, is empty, or does not exist; anything
else is refused unless ``force``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, inspect, text

from engine.domain.errors import LaporError
from engine.sql import store
from engine.sql.migrations import upgrade
from engine.sql.tables import metadata

__all__ = ["DEMO_APPLICATION_ID", "DEMO_MARK_TABLE", "is_demo_database", "prepare_demo_database"]

DEMO_APPLICATION_ID = 0x4C504D44  # "LPMD" in the SQLite header: made by lapor demo
DEMO_MARK_TABLE = "lapor_demo_database"
_SQLITE = "sqlite:///"


def prepare_demo_database(url: str, *, force: bool = False) -> None:
    """Make ``url`` a fresh, migrated, marked demo database (see the module docstring)."""
    if url.startswith(_SQLITE):
        _clear_sqlite(Path(url.removeprefix(_SQLITE)), url, force)
        upgrade(url)
        with sqlite3.connect(url.removeprefix(_SQLITE)) as conn:
            conn.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
        return
    engine = store.open_engine(url)
    try:
        _clear_server(engine, url, force)
        upgrade(url, engine=engine)
        with store.map_errors("mark the demo database"), engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE {DEMO_MARK_TABLE} (made_by TEXT NOT NULL)"))
            conn.execute(text(f"INSERT INTO {DEMO_MARK_TABLE} VALUES ('lapor demo')"))
    finally:
        engine.dispose()


def is_demo_database(url: str) -> bool:
    """Whether ``url`` is a database ``lapor demo`` made: a simulation, not a live one."""
    if url.startswith(_SQLITE):
        path = Path(url.removeprefix(_SQLITE))
        if not path.exists() or path.stat().st_size == 0:
            return False
        try:
            return _sqlite_contents(path)[0] == DEMO_APPLICATION_ID
        except LaporError:
            return False
    engine = store.open_engine(url)
    try:
        with store.map_errors("inspect the database"):
            return DEMO_MARK_TABLE in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _clear_sqlite(path: Path, url: str, force: bool) -> None:
    if path.exists() and path.stat().st_size > 0 and not force:
        mark, tables = _sqlite_contents(path)
        if mark != DEMO_APPLICATION_ID and tables:
            _refuse(url, f"its tables: {', '.join(tables[:5])}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _sqlite_contents(path: Path) -> tuple[int, list[str]]:
    """(application id, table names) of an SQLite file, opened read-only."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            mark = int(conn.execute("PRAGMA application_id").fetchone()[0])
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as exc:
        raise LaporError(
            f"{path} is not an SQLite database lapor demo can recreate ({exc}); "
            "choose another --db, or pass --force to replace the file"
        ) from None
    return mark, sorted(str(name) for (name,) in rows)


def _clear_server(engine: Engine, url: str, force: bool) -> None:
    with store.map_errors("inspect the demo database"):
        tables = sorted(inspect(engine).get_table_names())
    if not tables:
        return
    if DEMO_MARK_TABLE not in tables and not force:
        _refuse(url, f"its tables: {', '.join(tables[:5])}")
    with store.map_errors("clear the demo database"), engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        conn.execute(text(f"DROP TABLE IF EXISTS {DEMO_MARK_TABLE}"))


def _refuse(url: str, what: str) -> None:
    raise LaporError(
        f"--db {store.safe_url(url)} holds a database lapor demo did not create ({what}); the "
        "demo recreates only its own: choose another --db, or pass --force to replace it"
    )
