"""What one group commit writes: the rows of a batch of decisions, and writing them.

``GroupCommit`` collects accepted decisions one by one (a case decided twice in a batch is
written once, with its final state) and turns them into a ``WriteBatch``: plain dicts, one list
per statement, which ``write_batch`` sends with one ``executemany`` each, inside the caller's
transaction. Status changes of cases whose agency subscribed to webhooks become outbox rows at
that point too (``engine.sql.status_feed``). The reading half of the store is ``engine.sql.store``.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from engine.domain.canonical import canonical_json, compact_json
from engine.domain.case import Case, agency_view
from engine.domain.events import world_effects
from engine.domain.machine import Decision, wake_at
from engine.domain.records import HistoryRecord
from engine.runtime.delivery import delivery_key
from engine.runtime.errors import ConcurrencyError
from engine.runtime.identity import SealedIdentity
from engine.sql.status_feed import StatusFeed
from engine.sql.store import SCAN_START, ScanPosition, chunks, epoch_us
from engine.sql.tables import (
    cases,
    history,
    idempotency_keys,
    outbox,
    quarantine,
    reporters,
)

__all__ = [
    "GroupCommit",
    "HeldCommit",
    "PendingCase",
    "WriteBatch",
    "case_values",
    "history_values",
    "outbox_values",
    "write_batch",
]

_dumps = compact_json


def case_values(case: Case, version: int) -> dict[str, Any]:
    """The ``cases`` row of ``case`` (its body never includes the reporter)."""
    due = case.next_due
    return {
        "id": case.id,
        "workflow": case.workflow,
        "model_hash": case.model_hash,
        "state": case.state,
        "status": case.status,
        "agency": case.agency,
        "region": case.region,
        "escalation_level": case.escalation_level,
        "outcome": case.outcome,
        "next_due_us": None if due is None else epoch_us(due),
        "opened_us": epoch_us(case.opened_at),
        "closed_us": None if case.closed_at is None else epoch_us(case.closed_at),
        "seq": case.seq,
        "head": case.head,
        "version": version,
        "body": _dumps(case.to_json()),
    }


def history_values(case_id: str, record: HistoryRecord) -> dict[str, Any]:
    # The core already serialised event and effects canonically while hashing; reuse that text.
    event_text = getattr(record, "event_text", "") or canonical_json(record.event)
    effects_text = getattr(record, "effects_text", "") or canonical_json(list(record.effects))
    return {
        "case_id": case_id,
        "seq": record.seq,
        "format": record.format,
        "at": record.at,
        "actor": record.actor,
        "model_hash": record.model_hash,
        "event": event_text,
        "effects": effects_text,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def outbox_values(case: Case, record: HistoryRecord, now_us: int) -> list[dict[str, Any]]:
    """One row per effect that touches the world (notify, routed, escalated) of ``record``.

    The payload is ``{"case_id", "seq", "effect", "case": agency_view}``; the view is encoded
    once per decision and spliced into each of its messages.
    """
    rows: list[dict[str, Any]] = []
    head = ""
    view = ""
    for index, effect, target in world_effects(record.effects):
        if not view:
            view = _dumps(agency_view(case))
            head = f'{{"case_id":{_dumps(case.id)},"seq":{record.seq},"effect":'
        rows.append(
            {
                "case_id": case.id,
                "seq": record.seq,
                "idempotency_key": delivery_key(case.id, record.seq, index),
                "kind": effect["kind"],
                "target": target,
                "payload": f'{head}{_dumps(effect)},"case":{view}}}',
                "attempts": 0,
                "next_attempt_us": now_us,
            }
        )
    return rows


@dataclass
class WriteBatch:
    """Every row one group commit writes; applied by ``write_batch`` in a single transaction."""

    new_cases: list[dict[str, Any]] = field(default_factory=list)
    case_updates: list[dict[str, Any]] = field(default_factory=list)  # + w_id, w_version
    reporters: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    quarantines: list[dict[str, Any]] = field(default_factory=list)  # + w_id, w_version

    def update_case(self, case: Case, version: int, new_version: int) -> None:
        row = case_values(case, new_version)
        for column in _FIXED_AT_START:
            del row[column]
        row["w_id"] = case.id
        row["w_version"] = version
        self.case_updates.append(row)


# Columns an update leaves alone: the WHERE clause names the row, and a case keeps its workflow,
# pinned model, region and opening time for life. Not setting them is ~10 % of an update's cost
# in SQLite (measured on a 200,000-case file): the pinned model's foreign key is checked on
# every update that names it.
_FIXED_AT_START = ("id", "workflow", "model_hash", "region", "opened_us")


# Every statement a group commit runs, by name: the name (not the object) keys the compiled SQL.
_STATEMENTS: dict[str, Any] = {
    "insert_case": cases.insert(),
    "update_case": cases.update().where(
        cases.c.id == bindparam("w_id"), cases.c.version == bindparam("w_version")
    ),
    "insert_reporter": reporters.insert(),
    "insert_history": history.insert(),
    "insert_outbox": outbox.insert(),
    "insert_key": idempotency_keys.insert(),
}
_COMPILED: dict[tuple[str, str, tuple[str, ...]], str] = {}
_SET_ASIDE = (
    cases.update()
    .where(cases.c.id == bindparam("w_id"), cases.c.version == bindparam("w_version"))
    .values(next_due_us=None)
)
_QUARANTINE_COLUMNS = ("case_id", "reason", "quarantined_us")


def _executemany(conn: Connection, name: str, rows: Sequence[Mapping[str, Any]]) -> int:
    """``executemany`` of statement ``name`` over ``rows`` (dicts with the same keys).

    The statement is compiled once per dialect and key set and handed to the driver as text:
    SQLAlchemy's per-row parameter processing would otherwise cost more than the database's
    own insert (our column types need no bind conversion on either driver). Returns the number
    of rows the driver reports affected.
    """
    keys = tuple(rows[0])
    cache_key = (name, conn.dialect.name, keys)
    sql = _COMPILED.get(cache_key)
    if sql is None:
        compiled = _STATEMENTS[name].compile(dialect=conn.dialect, column_keys=list(keys))
        sql = _COMPILED[cache_key] = str(compiled)
    return int(conn.exec_driver_sql(sql, list(rows)).rowcount)


def write_batch(conn: Connection, batch: WriteBatch) -> None:
    """Apply ``batch`` inside the caller's transaction; raise ``ConcurrencyError`` on a conflict.

    A case update matches only the version it was decided from (optimistic concurrency); if any
    did not, the conflicting case ids are named and the caller's transaction must roll back.
    Statement order respects the foreign keys: cases before the rows that point at them.
    """
    if batch.new_cases:
        _executemany(conn, "insert_case", batch.new_cases)
    if batch.case_updates:
        updated = _executemany(conn, "update_case", batch.case_updates)
        if updated != len(batch.case_updates):
            raise ConcurrencyError(_conflicts(conn, batch.case_updates))
    if batch.reporters:
        _executemany(conn, "insert_reporter", batch.reporters)
    if batch.history:
        _executemany(conn, "insert_history", batch.history)
    if batch.outbox:
        _executemany(conn, "insert_outbox", batch.outbox)
    if batch.keys:
        _executemany(conn, "insert_key", batch.keys)
    for row in batch.quarantines:  # rare: one statement pair each
        # Out of the due index, if the case is still as it was read; then the reason.
        moved = conn.execute(_SET_ASIDE, {"w_id": row["case_id"], "w_version": row["version"]})
        if moved.rowcount:
            conn.execute(quarantine.delete().where(quarantine.c.case_id == row["case_id"]))
            conn.execute(quarantine.insert(), {k: row[k] for k in _QUARANTINE_COLUMNS})


def _conflicts(conn: Connection, updates: Sequence[Mapping[str, Any]]) -> list[str]:
    """Which of ``updates`` did not apply: their row is not at the (version, head) we wrote.

    The head (the new last history hash) tells a decision apart from a different one that
    happens to have bumped the row to the same version number.
    """
    wanted = {u["w_id"]: (u["version"], u["head"]) for u in updates}
    found: dict[str, tuple[int, str]] = {}
    for chunk in chunks(sorted(wanted)):
        query = select(cases.c.id, cases.c.version, cases.c.head).where(cases.c.id.in_(chunk))
        found.update((row.id, (row.version, row.head)) for row in conn.execute(query))
    conflicting = [case_id for case_id, mark in wanted.items() if found.get(case_id) != mark]
    return conflicting or sorted(wanted)  # the rowcount said something failed; blame them all


@dataclass(slots=True)
class PendingCase:
    """A case as the current transaction sees it, and what the transaction changed."""

    case: Case
    version: int | None  # None: started in this transaction
    dirty: bool = False


class GroupCommit:
    """The rows of one transaction, accumulated decision by decision, written at the end."""

    def __init__(self) -> None:
        self.tracked: dict[str, PendingCase] = {}
        self.rows = WriteBatch()
        # Idempotency keys this batch used, and the decision each produced (not yet stored).
        self.keyed: dict[str, tuple[Decision, str | None]] = {}  # key: (decision, fingerprint)
        # (case id, version written, case): what a decoded-case cache may adopt after commit.
        self.written: list[tuple[str, int, Case]] = []
        self.quarantined: set[str] = set()  # set aside by this batch (``set_aside``)
        self.status_feed = StatusFeed()  # subscribed agencies' status changes, rows at flush

    def apply(
        self,
        decision: Decision,
        now: datetime,
        *,
        key: str | None = None,
        fingerprint: str | None = None,
        reporter: SealedIdentity | None = None,
    ) -> None:
        """Record an accepted decision's rows; later decisions of the case see its result.
        ``key`` is stored with the request's ``fingerprint``."""
        case, record = decision.case, decision.record
        assert case is not None and record is not None
        tracked = self.tracked.get(case.id)
        before = None if tracked is None else tracked.case
        if tracked is None:
            tracked = self.tracked[case.id] = PendingCase(case, None)
            if reporter is not None:
                self.rows.reporters.append(
                    {
                        "case_id": case.id,
                        "key_id": reporter.key_id,
                        "wrapped_key": reporter.wrapped_key,
                        "sealed": reporter.ciphertext,
                    }
                )
        tracked.case = case
        self.mark_dirty(case.id)
        now_us = epoch_us(now)
        self.rows.history.append(history_values(case.id, record))
        self.rows.outbox.extend(outbox_values(case, record, now_us))
        self.status_feed.note(before, case, record, now_us)
        if key is not None:
            self.keyed[key] = (decision, fingerprint)
            self.rows.keys.append(
                {
                    "key": key,
                    "case_id": case.id,
                    "seq": record.seq,
                    "created_us": now_us,
                    "fingerprint": fingerprint,
                }
            )

    def mark_dirty(self, case_id: str) -> None:
        """The tracked case's row must be written (changed, or its columns re-derived)."""
        self.tracked[case_id].dirty = True

    def set_aside(self, case_id: str, version: int, reason: str, now_us: int) -> None:
        """Quarantine a case the timer loop cannot decide: out of the due index, with why."""
        self.quarantined.add(case_id)
        self.rows.quarantines.append(
            {"case_id": case_id, "version": version, "reason": reason, "quarantined_us": now_us}
        )

    def flush(self, conn: Connection) -> None:
        """Write everything in the caller's transaction. Safe to call again if that transaction
        was rolled back and is retried: the case rows are rebuilt, never appended twice."""
        new_cases: list[dict[str, Any]] = []
        written: list[tuple[str, int, Case]] = []
        rows = replace(self.rows, new_cases=new_cases, case_updates=[])
        # After the effects' rows: a case's status rows keep their decisions' order (the outbox
        # delivers them by id), and a new list, so a retried flush does not add them twice.
        status_rows = self.status_feed.rows(conn)
        if status_rows:
            rows.outbox = [*self.rows.outbox, *status_rows]
        for case_id, tracked in self.tracked.items():
            if not tracked.dirty:
                continue
            if tracked.version is None:
                new_cases.append(case_values(tracked.case, 1))
                written.append((case_id, 1, tracked.case))
            else:
                rows.update_case(tracked.case, tracked.version, tracked.version + 1)
                written.append((case_id, tracked.version + 1, tracked.case))
        write_batch(conn, rows)
        self.written = written


class HeldCommit(GroupCommit):
    """A group commit held open across many calls by a shard's buffered session.

    Its cases' rows in the database stay as they were until it is written, so it answers for
    them itself: which of them are due (a heap of their wake instants, checked against the case
    when popped) and how far the scan of the database's due rows has got.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scanned: ScanPosition = SCAN_START
        # Every row due by this instant was read: its rows do not change until it is written,
        # so a later call for the same instant (the demo asks again after every batch of
        # lapses, and before each slot's commands) need not scan again.
        self.swept_us = SCAN_START[0]
        self._wakes: list[tuple[int, str]] = []  # (wake_us, case id), superseded ones too

    def mark_dirty(self, case_id: str) -> None:
        super().mark_dirty(case_id)
        wake = _wake_us(self.tracked[case_id].case)
        if wake is not None:
            heapq.heappush(self._wakes, (wake, case_id))

    def due(self, now_us: int, limit: int) -> list[tuple[str, int]]:
        """Up to ``limit`` held cases that should wake at or before ``now_us``, as (case id,
        wake instant), earliest first, each once."""
        found: dict[str, int] = {}
        heap = self._wakes
        while heap and heap[0][0] <= now_us and len(found) < limit:
            wake, case_id = heapq.heappop(heap)
            if case_id in self.quarantined:
                continue
            if _wake_us(self.tracked[case_id].case) == wake:  # else a superseded entry
                found[case_id] = wake
        return list(found.items())


def _wake_us(case: Case) -> int | None:
    due = case.next_due
    return None if due is None else epoch_us(wake_at(due))
