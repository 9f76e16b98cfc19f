"""Errors of the durable runtimes, mapped from the database driver's at the store boundary.

A user never sees a SQLAlchemy or psycopg traceback: ``engine.runtime.store`` turns driver errors
into these, each a ``LaporError`` with a message that says what happened and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import LaporError

__all__ = [
    "ConcurrencyError",
    "IntegrityViolationError",
    "SchemaMissingError",
    "StoreBusyError",
    "StoreError",
]


class StoreError(LaporError):
    """The database refused or failed an operation (the driver's error is the ``__cause__``)."""


class StoreBusyError(StoreError):
    """The database stayed locked by another writer longer than we were willing to wait."""


class SchemaMissingError(StoreError):
    """The database has no lapor tables (or old ones): it needs ``lapor db upgrade``."""


class IntegrityViolationError(StoreError):
    """A write broke a uniqueness or foreign-key rule: the whole transaction was rolled back.

    Usually a race another process won (the same case id or idempotency key written twice at
    once), which a retry resolves by reading what the winner wrote.
    """


class ConcurrencyError(StoreError):
    """A case changed between our read and our write (its version moved): retry the decision.

    ``case_ids`` names the cases whose optimistic version check failed; the runtime retries
    those alone so the rest of a group-committed batch is not lost.
    """

    def __init__(self, case_ids: Iterable[str]) -> None:
        self.case_ids = tuple(sorted(set(case_ids)))
        shown = ", ".join(self.case_ids[:5]) + (" ..." if len(self.case_ids) > 5 else "")
        super().__init__(f"case(s) changed concurrently, decision not written: {shown}")
