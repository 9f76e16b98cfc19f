"""Fixtures of this folder: a throwaway PostgreSQL server (one per test process) and a fresh
database per test, from ``tests/runtime/postgres.py``."""

from tests.runtime.postgres import pg_server, pg_url

__all__ = ["pg_server", "pg_url"]
