"""Alembic environment: migrates with the runtime's own engine settings (WAL, foreign keys)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine

from engine.sql.store import open_engine
from engine.sql.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    # SQLite: the write lock from the migration's first statement (BEGIN IMMEDIATE), so two
    # `lapor db upgrade` on one fresh file take turns: the second waits, then finds the schema
    # at head, instead of both creating the tables and one failing. PostgreSQL runs its DDL in
    # one transaction, and a concurrent second one fails on the version row, not half-way.
    connection = connection.execution_options(lapor_write=True)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite: rebuild tables for ALTERs it cannot do in place.
        render_as_batch=connection.dialect.name == "sqlite",
        # Our SQLite connections issue BEGIN themselves, so DDL is transactional there too: a
        # migration that fails half-way leaves the previous schema, never a mix.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("engine")
    if isinstance(given, Engine):
        with given.connect() as connection:
            _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no sqlalchemy.url in the Alembic config")
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
