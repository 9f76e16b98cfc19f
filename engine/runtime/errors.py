"""Errors of the runtimes: the caller's mistakes every runtime reports alike, and the storage
errors the adapters map their drivers' into.

A user never sees a SQLAlchemy, psycopg or Temporal RPC traceback: ``engine.sql.store`` and the
Temporal adapter (``workers.runtime``) turn driver errors into these, each a ``LaporError`` with a
message that says what happened and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from engine.domain.errors import LaporError
from engine.domain.events import Actor

__all__ = [
    "ConcurrencyError",
    "IdentityAccessError",
    "IdentityErasedError",
    "IntegrityViolationError",
    "KeyReuseError",
    "RuntimeUnavailableError",
    "SchemaMissingError",
    "StoreBusyError",
    "StoreError",
    "UnknownCaseError",
    "UnknownWorkflowError",
]


class UnknownCaseError(LaporError):
    """No case has this id (or its start was refused, which records nothing)."""

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        super().__init__(f"unknown case {case_id!r}")


class UnknownWorkflowError(LaporError):
    """A start named a workflow the runtime has no definition of."""

    def __init__(self, workflow: str, known: Iterable[str]) -> None:
        self.workflow = workflow
        shown = ", ".join(known) or "none loaded"
        super().__init__(f"unknown workflow {workflow!r}; known: {shown}")


class KeyReuseError(LaporError):
    """An idempotency key came back with a different request than the one it was first used
    for: answering the first outcome would lose this request silently."""

    def __init__(self, key: str, case_id: str) -> None:
        self.key = key
        self.case_id = case_id
        super().__init__(
            f"idempotency key {key!r} was already used for a different request (case "
            f"{case_id}); a retry must repeat the request exactly, a new request needs a new key"
        )


class IdentityAccessError(LaporError):
    """A caller in a role that may not read reporters' identities asked for one (refused by
    policy, like a rejection)."""

    def __init__(self, case_id: str, actor: Actor, readers: Iterable[str]) -> None:
        self.case_id = case_id
        super().__init__(
            f"case {case_id}: the role {actor.role!r} may not read the reporter's identity; "
            f"only {', '.join(readers)} may"
        )


class IdentityErasedError(LaporError):
    """The reporter's identity was erased; nobody can read it any more."""

    def __init__(self, case_id: str, erased_at: datetime) -> None:
        self.case_id = case_id
        self.erased_at = erased_at
        super().__init__(
            f"case {case_id}: the reporter's identity was erased on {erased_at.isoformat()}"
        )


class RuntimeUnavailableError(LaporError):
    """The runtime's server could not be reached or did not answer (Temporal RPC errors)."""


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


class CorruptCaseError(StoreError):
    """A stored case row holds no case this engine can read (a hand edit, a broken disk)."""

    def __init__(self, case_id: str, problem: str) -> None:
        self.case_id = case_id
        super().__init__(
            f"case {case_id}: its stored row cannot be read ({problem}); the case's history "
            "is kept apart and is not affected"
        )
