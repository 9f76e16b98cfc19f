"""Fixtures of this folder: a throwaway PostgreSQL server (one per test process), a fresh
database per test (``tests/runtime/postgres.py``), and ``engine``: the same runtime contract on
both databases."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.sql import store
from engine.sql.migrations import upgrade
from tests.runtime.postgres import pg_server, pg_url

__all__ = ["engine", "pg_server", "pg_url"]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lapor.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    upgrade(url)
    eng = store.open_engine(url)
    yield eng
    eng.dispose()
