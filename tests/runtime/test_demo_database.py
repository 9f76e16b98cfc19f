"""``lapor demo --db`` recreates only a database the demo made itself (or an empty one): anything
else is refused with one line, and not a byte of it changes, unless ``--force``."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from engine.apps.demo.database import DEMO_MARK_TABLE, prepare_demo_database
from engine.domain.errors import LaporError
from engine.sql import store
from engine.sql.migrations import upgrade
from engine.sql.tables import cases

ROOT = Path(__file__).resolve().parents[2]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def a_users_database(path: Path) -> str:
    """What `lapor db upgrade` and a start leave: the runtime's tables with a case in them."""
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = store.open_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO alembic_version VALUES ('keep-me')"))  # any real content
    engine.dispose()
    return url


def test_the_demo_refuses_a_database_it_did_not_create_and_leaves_it_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lapor.db"
    url = a_users_database(path)
    before = digest(path)

    result = subprocess.run(
        [sys.executable, "-m", "engine.faces.cli.main", "demo", "--complaints", "5", "--db", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "lapor demo did not create" in line and "--force" in line
    assert "Traceback" not in result.stderr
    assert digest(path) == before


def test_the_demo_recreates_its_own_database_and_an_empty_one(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    url = f"sqlite:///{path}"
    prepare_demo_database(url)  # none there: made and marked
    engine = store.open_engine(url)
    with engine.begin() as conn:
        conn.execute(cases.delete())  # touch it, as a run would
    engine.dispose()
    prepare_demo_database(url)  # its own: recreated
    empty = tmp_path / "empty.db"
    empty.touch()
    prepare_demo_database(f"sqlite:///{empty}")
    assert "cases" in inspect(store.open_engine(f"sqlite:///{empty}")).get_table_names()


def test_force_replaces_a_database_the_demo_did_not_create(tmp_path: Path) -> None:
    path = tmp_path / "lapor.db"
    url = a_users_database(path)
    prepare_demo_database(url, force=True)
    engine = store.open_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() != "keep-me"
    engine.dispose()


def test_a_file_that_is_no_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my notes, not a database\n" * 100)
    with pytest.raises(LaporError, match="--force"):
        prepare_demo_database(f"sqlite:///{path}")
    assert path.read_text().startswith("my notes")


def test_on_postgresql_only_a_marked_or_empty_database_is_recreated(pg_url: str) -> None:
    upgrade(pg_url)  # a user's database: the runtime's tables, no demo mark
    with pytest.raises(LaporError, match="did not create"):
        prepare_demo_database(pg_url)

    prepare_demo_database(pg_url, force=True)
    prepare_demo_database(pg_url)  # now it is the demo's own
    engine = store.open_engine(pg_url)
    assert DEMO_MARK_TABLE in inspect(engine).get_table_names()
    engine.dispose()


def test_only_a_demo_database_counts_as_a_simulation(tmp_path: Path) -> None:
    """What lets `lapor run --until` pass the wall clock without --beyond-now."""
    from engine.apps.demo.database import is_demo_database

    demo = f"sqlite:///{tmp_path / 'demo.db'}"
    prepare_demo_database(demo)
    assert is_demo_database(demo)
    assert not is_demo_database(a_users_database(tmp_path / "lapor.db"))
    assert not is_demo_database(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()  # asking created nothing
