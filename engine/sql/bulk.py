"""Bulk sessions: the embedded runtime for one long run that owns its database (the demo).

A plain ``EmbeddedRuntime`` commits every call, which is what a service wants: a decision is
durable when the call returns. A simulation that advances a virtual clock in 15-minute slots
would pay a commit per slot for a handful of decisions, so ``BulkRuntime.session()`` shares
commits among many calls:

- one process (no shard): one open write transaction, committed every ``commit_every``
  decisions;
- a shard process (``shard=``): its decisions held in memory (``HeldCommit``) and written in one
  transaction at each commit, while the other shards go on deciding. Until then the session
  answers for the cases it holds: reads of them come from memory, they wake from a heap of their
  own deadlines, and the database's due rows are scanned once per instant, skipping held cases.

Outside a session a ``BulkRuntime`` is an ``EmbeddedRuntime``. Every history hash is the same
either way (``tests/runtime/test_sessions.py``, ``test_shard_sessions.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, RootTransaction

from engine.domain.errors import LaporError
from engine.domain.machine import Decision
from engine.runtime.contract import Command, Outcome
from engine.sql import store
from engine.sql.batch import HeldCommit, PendingCase
from engine.sql.embedded import EmbeddedRuntime

__all__ = ["BulkRuntime"]

T = TypeVar("T")


@dataclass
class _Session:
    """What every call of a ``session()`` shares until it commits: one open write transaction,
    or (a shard's session) the decisions held in memory, ``held``."""

    conn: Connection | None
    transaction: RootTransaction | None
    commit_every: int
    held: HeldCommit | None = None
    pending: int = 0
    reports: list[tuple[str, Decision]] = field(default_factory=list)
    broken: bool = False


class BulkRuntime(EmbeddedRuntime):
    """An ``EmbeddedRuntime`` that can share commits among many calls (``session``)."""

    _session: _Session | None = None  # the open session, if any

    @contextmanager
    def session(self, commit_every: int = 20_000) -> Iterator[BulkRuntime]:
        """Share one write transaction among many calls, committed every ``commit_every``
        decisions and on exit: for a single writer's long run (the demo, a bulk import).

        Outside a session each call is its own transaction, and a simulation that advances a
        virtual clock in 15-minute slots pays a commit (an fsync) per slot for a handful of
        decisions. Inside one, decisions are durable once their commit happens, as with group
        commit; the observer hears of them then. On SQLite the session holds the write lock for
        its whole length. An error rolls back everything since the last commit at once and
        ends the session: nothing is retried (an earlier call's decisions would go with it),
        and later calls in it are refused.

        A shard's session (``shard=``) holds no lock between commits: it keeps its decisions in
        memory (``HeldCommit``) and writes them in one transaction at each commit, while the
        other shards go on. It owns its shard's cases: a case another process changed since
        the session read it fails the commit (``ConcurrencyError``) and ends the session.
        Reads of a case, a history or the next wake-up commit first, so they see every decision.
        """
        if commit_every < 1:
            raise LaporError(f"commit_every must be >= 1, got {commit_every}")
        if self._session is not None:
            raise LaporError("a session is already open on this runtime")
        conn: Connection | None = None
        if self.shard is not None:
            self._session = _Session(None, None, commit_every, held=HeldCommit())
        else:
            with store.map_errors("open a session"):
                conn = self.engine.connect()
                conn.execution_options(lapor_write=True)
                self._session = _Session(conn, conn.begin(), commit_every)
        try:
            yield self
            if not self._session.broken:
                self._commit_session()
        except BaseException:
            self._abandon_session()
            raise
        finally:
            if conn is not None:
                conn.close()
            self._session = None

    def _commit_session(self) -> None:
        session = self._session
        assert session is not None
        if session.held is not None:
            held = session.held
            try:
                store.transact(
                    self.engine, lambda conn: self._flush(conn, held), action="commit a session"
                )
            except BaseException:
                self._abandon_session()
                raise
            self._adopt_committed()
            session.held = HeldCommit()
        else:
            assert session.conn is not None and session.transaction is not None
            with store.map_errors("commit a session"):
                session.transaction.commit()
                session.transaction = session.conn.begin()
        reports, session.reports, session.pending = session.reports, [], 0
        self._publish(reports)

    def _abandon_session(self) -> None:
        session = self._session
        if session is None or session.broken:
            return
        session.broken = True
        session.reports = []
        # Entries adopted since the last commit name states that no longer exist.
        self._decoded.clear()
        self._uncommitted = []
        if session.transaction is None:
            session.held = None
            return
        with store.map_errors("roll back a session"):
            session.transaction.rollback()

    def _after_call(self, decided: int) -> None:
        session = self._session
        if session is not None:
            session.pending += decided
            if session.pending >= session.commit_every:
                self._commit_session()

    def _write(self, work: Callable[[Connection], T], *, action: str) -> T:
        """``work`` in a transaction of its own, or in the session's open one."""
        session = self._session
        if session is not None and session.broken:
            raise LaporError("this session was rolled back after an error; open a new one")
        if session is None or session.conn is None:
            return super()._write(work, action=action)
        try:
            with store.map_errors(action):
                result = work(session.conn)
        except BaseException:
            self._abandon_session()
            raise
        self._adopt_committed()
        return result

    def _read(
        self, work: Callable[[Connection], T], *, action: str, one_statement: bool = False
    ) -> T:
        """Reads inside a session see its own decisions: through its connection, or after
        writing what a shard's session held."""
        session = self._session
        if session is not None and session.broken:
            raise LaporError("this session was rolled back after an error; open a new one")
        if session is not None and session.conn is not None:
            with store.map_errors(action):
                return work(session.conn)
        if session is not None and session.held is not None and session.held.tracked:
            self._commit_session()
        return super()._read(work, action=action, one_statement=one_statement)

    def _held(self) -> HeldCommit | None:
        """The decisions a shard's session holds, if this call is in one."""
        session = self._session
        if session is None:
            return None
        if session.broken:
            raise LaporError("this session was rolled back after an error; open a new one")
        return session.held

    def _report(self, decided: list[tuple[str, Decision]]) -> None:
        if self._session is not None:  # told at the session's next commit
            self._session.reports.extend(decided)
        else:
            self._publish(decided)

    def _execute(self, commands: list[Command], now: datetime, depth: int) -> list[Outcome]:
        if self._session is not None:
            return self._transact_commands(commands, now)  # no retries: see ``session``
        return super()._execute(commands, now, depth)

    def _decides_outside_lock(self) -> bool:
        # A session's transaction holds the lock anyway (and must see its own writes).
        return super()._decides_outside_lock() and self._session is None

    def _transact_commands(self, commands: list[Command], now: datetime) -> list[Outcome]:
        held = self._held()
        if held is not None:  # decided now, written when the session commits
            return self._decide_between_reads(commands, now, held)
        return super()._transact_commands(commands, now)

    def _probe_before_firing(self) -> bool:
        return self._held() is None  # a held session's scan finds nothing cheaply

    def _fire(self, now: datetime, limit: int) -> tuple[int, list[tuple[str, Decision]]]:
        held = self._held()
        if held is None:
            return super()._fire(now, limit)
        # Read, then decide with no transaction open (as commands): held cases wake from the
        # session's own heap, the others from one scan of the due rows per instant.
        now_us = store.epoch_us(now)
        due = held.due(now_us, limit)
        if held.swept_us < now_us:
            due += store.read(
                self.engine,
                lambda conn: self._scan_held(conn, now_us, limit, held),
                action="claim due timers",
            )
        return len(due), self._decide_lapses(None, due, held, now)

    def _scan_held(
        self, conn: Connection, now_us: int, limit: int, held: HeldCommit
    ) -> list[tuple[str, int]]:
        """The due rows a shard's session has not read before, as (case id, wake instant),
        without those of cases it holds: their rows are older than what it holds, and its own
        deadlines wake them (``HeldCommit.due``)."""
        assert self.shard is not None
        due: list[tuple[str, int]] = []
        rows, held.scanned = store.scan_due(
            conn, now_us, limit, shard=self.shard, after=held.scanned
        )
        if len(rows) < limit:
            held.swept_us = now_us
        for row in rows:
            if row.case_id in held.quarantined:
                continue
            tracked = held.tracked.get(row.case_id)
            if tracked is None:
                try:
                    case = self._decode(row.case_id, row.version, row.body)
                    self._model_for(conn, case.model_hash)
                except LaporError as exc:
                    self._set_aside(held, row.case_id, row.version, exc, now_us)
                    continue
                held.tracked[row.case_id] = PendingCase(case, row.version)
            elif tracked.dirty:
                continue
            due.append((row.case_id, row.wake_us))
        return due
