"""The embedded durable runtime: the in-memory runtime's behaviour, stored with SQLAlchemy.

Every call decides with ``engine.domain.machine.decide`` and writes what it decided in one
transaction: the history row, the case row (optimistic version check; it carries the case's next
deadline, so it is the case's timer too), one outbox row per world-facing effect, the reporter's
identity on start and the idempotency key with its request's fingerprint. A batch of calls is
one transaction too (group commit), so a crash leaves every decision of it either fully written
or not at all, and a committed timer is never lost.

On a ``VirtualClock`` each timer is decided at its own wake instant, exactly as the in-memory
runtime does, so both produce byte-identical histories (the scenario suite holds them to it). On
the wall clock a timer is decided when it is fired (``now``), and the core's settling makes a
late timer decide the same lapses an on-time one would have.

Concurrency: reads happen inside the write transaction, under a lock. On SQLite that is the one
write lock (``BEGIN IMMEDIATE``): writers, even in different processes, take turns. On PostgreSQL
batches lock their case rows (``FOR UPDATE``, in id order) and the timer loop claims cases with
``FOR UPDATE SKIP LOCKED``, so two ``lapor run`` workers never decide the same case. The version
check on every case update is the last line of defence; a conflict it finds is retried alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine

from engine.domain.case import Case
from engine.domain.errors import LaporError
from engine.domain.events import Actor, ClockLapsed, Migrated, Started, effect_from_json
from engine.domain.machine import Decision, decide, wake_at
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.runtime import metrics
from engine.runtime.clock import Clock, VirtualClock
from engine.runtime.contract import (
    Command,
    MigrateCommand,
    Outcome,
    Runtime,
    SignalCommand,
    StartCommand,
    check_key_reuse,
    decision_instant,
    model_for_workflow,
    reporter_refusal,
    request_fingerprint,
    with_reporter_token,
)
from engine.runtime.delivery import DeliveryHandler, DeliveryReport
from engine.runtime.errors import (
    ConcurrencyError,
    IdentityErasedError,
    IntegrityViolationError,
    SchemaMissingError,
    StoreBusyError,
    StoreError,
    UnknownCaseError,
)
from engine.runtime.identity import KEY_ENV, KEY_FILE_ENV, IdentityError, KeyRing, SealedIdentity
from engine.sql import store
from engine.sql.batch import GroupCommit, PendingCase
from engine.sql.outbox import OutboxDelivery

__all__ = ["EmbeddedRuntime"]

_MAX_CONFLICT_RETRIES = 5
_DECODED_CACHE = 20_000  # cases kept decoded: ~50 MiB, enough for a batch's working set

log = structlog.get_logger("lapor.runtime")

T = TypeVar("T")


class EmbeddedRuntime(Runtime):
    """A durable runtime over a SQLAlchemy ``engine`` (migrated with ``engine.sql.migrations``).

    ``models`` are the workflows new cases start under (by workflow name); each is stored by
    hash, and existing cases are always decided with the model they pinned, loaded from the
    database when it is not among ``models``. ``observer`` sees every committed decision (and
    rejection) once, as the in-memory runtime's does. ``batch_size`` bounds ``advance_to``'s
    timer batches.

    ``shard=(index, count)`` (SQLite) lets ``count`` processes share one database file, one
    core each: this one fires only the timers of its shard's cases (``store.shard_of``), and it
    reads and decides outside the write lock, taking the lock only to write what it decided
    (version-checked, so a case another process changed meanwhile is decided again). Without a
    shard a SQLite runtime decides inside its write transaction, and processes take turns.
    """

    def __init__(
        self,
        engine: Engine,
        models: Mapping[str, Model],
        clock: Clock,
        *,
        observer: Callable[[Decision], None] | None = None,
        batch_size: int = 1000,
        shard: tuple[int, int] | None = None,
        handlers: Sequence[DeliveryHandler] = (),
        keyring: KeyRing | None = None,
    ) -> None:
        if batch_size < 1:
            raise LaporError(f"batch_size must be >= 1, got {batch_size}")
        if shard is not None:
            index, count = shard
            if not 0 <= index < count:
                raise LaporError(f"shard must be (index, count) with 0 <= index < count: {shard}")
            if store.is_postgres(engine):
                raise LaporError(
                    "shards are for SQLite; PostgreSQL workers already split the due timers "
                    "(SKIP LOCKED)"
                )
        self.shard = shard
        self.engine = engine
        # Seals reporters' identities and signs reporter tokens; from the environment unless
        # given (``engine.runtime.identity``). Without one, a start carries no identity.
        self.keyring = keyring if keyring is not None else KeyRing.from_env()
        self.handlers = list(handlers)
        self._delivery: OutboxDelivery | None = None
        self.models: dict[str, Model] = {}
        self.clock = clock
        self.observer = observer
        self.batch_size = batch_size
        self.virtual = isinstance(clock, VirtualClock)
        self._postgres = store.is_postgres(engine)
        self._by_hash: dict[str, Model] = {}
        # Decoded cases by (id, version). A version names exactly one committed state, so a hit
        # is always current for that row; entries are adopted only after their commit.
        self._decoded: OrderedDict[tuple[str, int], Case] = OrderedDict()
        self._uncommitted: list[tuple[str, int, Case]] = []
        self.register(models)

    # --- what a bulk session (``engine.sql.bulk``) changes -------------------------------------

    def _write(self, work: Callable[[Connection], T], *, action: str) -> T:
        """``work`` in a transaction of its own."""
        result = store.transact(self.engine, work, action=action)
        self._adopt_committed()
        return result

    def _read(
        self, work: Callable[[Connection], T], *, action: str, one_statement: bool = False
    ) -> T:
        return store.read(self.engine, work, action=action, one_statement=one_statement)

    def _after_call(self, decided: int) -> None:
        """After each call that decided ``decided`` times (a session counts towards a commit)."""

    def _report(self, decided: list[tuple[str, Decision]]) -> None:
        """After commit: tell the observer and the metrics about each new decision, once."""
        self._publish(decided)

    def _probe_before_firing(self) -> bool:
        """Whether ``advance_to`` asks if anything is due before claiming (cheaper than an
        empty claim, except in a session that scans its due rows once anyway)."""
        return True

    def _fire(self, now: datetime, limit: int) -> tuple[int, list[tuple[str, Decision]]]:
        """Claim the cases due by ``now`` and decide their lapses: how many cases were handled,
        and the (workflow, decision) of each lapse, committed."""
        if self._decides_outside_lock():
            return self._fire_sharded(now, limit)
        return self._write(lambda conn: self._fire_once(conn, now, limit), action="fire due timers")

    def migrate(
        self,
        case_id: str,
        model: Model,
        actor: Actor,
        states: Mapping[str, str] | None = None,
        at: datetime | None = None,
    ) -> Outcome:
        """``Runtime.migrate``; the new model is stored first (content-addressed, so storing it
        again is harmless), as every case row's model must be."""
        now_us = store.epoch_us(self.clock.now())
        self._write(lambda conn: store.save_models(conn, [model], now_us), action="store a model")
        self._by_hash[model.hash] = model
        return self.execute([MigrateCommand(case_id, model, actor, dict(states or {}))], at)[0]

    def model_by_hash(self, model_hash: str) -> Model:
        """A model any case was ever pinned to (audits of migrated cases read the old ones)."""
        return self._model_for(None, model_hash)

    def register(self, models: Mapping[str, Model]) -> None:
        """Make ``models`` the ones new cases of their workflows start under, storing each by
        hash (cases already started keep the model they pinned)."""
        if not models:
            return
        now_us = store.epoch_us(self.clock.now())
        self._write(
            lambda conn: store.save_models(conn, models.values(), now_us),
            action="store the workflow definitions",
        )
        self.models.update(models)
        self._by_hash.update((m.hash, m) for m in models.values())

    # --- the runtime contract ----------------------------------------------------------------

    def advance_to(self, moment: datetime) -> None:
        """Virtual clock: fire every timer waking at or before ``moment``, then move the clock."""
        if not isinstance(self.clock, VirtualClock):
            raise LaporError("advance_to needs a virtual clock; the wall clock moves by itself")
        probe = self._probe_before_firing()
        while (not probe or self._has_due(moment)) and self.fire_due(moment, self.batch_size):
            pass
        self.clock.advance_to(moment)

    def case(self, case_id: str) -> Case:
        found = self._read(
            lambda conn: store.load_cases(conn, [case_id]), action="read a case", one_statement=True
        )
        if case_id not in found:
            raise UnknownCaseError(case_id)
        return found[case_id].case

    def history(self, case_id: str) -> list[HistoryRecord]:
        records = self._read(
            lambda conn: store.load_history(conn, case_id), action="read a history"
        )
        if not records:
            self.case(case_id)  # an unknown case is an error, not an empty history
        return records

    def execute(self, commands: Sequence[Command], at: datetime | None = None) -> list[Outcome]:
        """Decide ``commands`` in order at ``at`` and commit them together (group commit).

        On a virtual clock, timers due up to ``at`` fire first (as in the in-memory runtime).
        A version conflict retries the conflicting cases alone, so the others are not lost.
        """
        now = self.clock.now() if at is None else at
        if isinstance(self.clock, VirtualClock):
            self.advance_to(now)
            now = self.clock.now()
        if not commands:
            return []
        self._check_sealable(commands)
        outcomes = self._execute(list(commands), now, 0)
        self._report(
            [
                (outcome.case.workflow if outcome.case else "unknown", outcome.decision)
                for command, outcome in zip(commands, outcomes, strict=True)
                if not outcome.replayed
            ]
        )
        self._after_call(len(outcomes))
        return outcomes

    def fire_due(self, now: datetime, limit: int = 1000) -> int:
        """Claim up to ``limit`` timers waking at or before ``now``, decide, commit.

        Returns how many cases it handled (0: nothing was due). A case whose timers are due
        is decided once per call, at its earliest timer: later ones are picked up by the next
        call, after that decision's changes are visible.
        """
        with metrics.time_batch("timers"):
            handled, decided = self._fire(now, limit)
        self._report(decided)
        self._after_call(len(decided))
        return handled

    def next_wake(self) -> datetime | None:
        """The earliest pending timer's wake instant, if any (for a loop deciding how long to
        sleep)."""
        value = self._read(store.next_wake_us, action="read the next timer")
        return None if value is None else store.from_epoch_us(value)

    def open_case_models(self) -> list[Model]:
        """The models open cases are pinned to: what the timer loop will count deadlines with."""
        hashes = self._read(store.open_case_models, action="read the open cases' models")
        return [self._model_for(None, model_hash) for model_hash in hashes]

    def reporter(self, case_id: str) -> Mapping[str, Any] | None:
        """The reporter's identity, opened for reporter-facing work; never in agency output."""
        stored = self._read(
            lambda conn: store.load_reporter(conn, case_id), action="read a reporter"
        )
        if stored is None:
            self.case(case_id)
            return None
        if stored.erased_at is not None:
            raise IdentityErasedError(case_id, stored.erased_at)
        assert stored.sealed is not None
        return self._require_keyring().open(case_id, stored.sealed)

    def erase_reporter(self, case_id: str, at: datetime | None = None) -> bool:
        """Delete the wrapped data key and the sealed identity (SQLite zeroes the freed bytes);
        the row stays, saying when. Nothing left can be opened, with any key."""
        self.case(case_id)
        moment_us = store.epoch_us(self.clock.now() if at is None else at)
        erased = self._write(
            lambda conn: store.erase_reporter(conn, case_id, moment_us),
            action="erase a reporter's identity",
        )
        if erased:
            log.info("identity.erased", case_id=case_id)
            if not self._postgres:
                # The write-ahead log still holds the page images from before the erasure
                # until a checkpoint empties it; empty it now (best effort: a long reader
                # elsewhere can hold it, and the next checkpoint finishes the job).
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return erased

    def rewrap_identities(self) -> int:
        """Wrap every stored data key under the key ring's active key (after a rotation); how
        many were rewrapped. The identities themselves are not re-encrypted."""
        ring = self._require_keyring()
        return self._write(
            lambda conn: store.rewrap_reporters(conn, ring), action="rewrap identities"
        )

    def _require_keyring(self) -> KeyRing:
        if self.keyring is None:
            raise IdentityError(
                f"no key ring for reporters' identities: set ${KEY_FILE_ENV} to a key file "
                f"(`lapor identity init FILE` makes one) or ${KEY_ENV}"
            )
        return self.keyring

    def _check_sealable(self, commands: Sequence[Command]) -> None:
        """Before any transaction: a start with an identity needs a key ring to seal it."""
        if any(isinstance(c, StartCommand) and c.reporter for c in commands):
            self._require_keyring()

    def deliver(self, now: datetime | None = None) -> DeliveryReport:
        """Deliver the due outbox rows through ``handlers`` (``engine.sql.outbox``)."""
        if self._delivery is None:
            self._delivery = OutboxDelivery(self.engine, self.handlers)
        return self._delivery.deliver_due(self.clock.now() if now is None else now)

    def close(self) -> None:
        """Close the engine's pooled connections (the engine reconnects if used again)."""
        self.engine.dispose()

    def model_of(self, case_id: str) -> Model:
        return self._model_for(None, self.case(case_id).model_hash)  # read once, then kept

    # --- internals ------------------------------------------------------------------------

    def others_hold_due(self, moment: datetime) -> bool:
        """After a ``fire_due`` that found nothing: whether cases due by ``moment`` remain that
        another worker holds (PostgreSQL's SKIP LOCKED passed them over). On SQLite a claim
        takes every due case of its shard, so none remain."""
        return self._postgres and self._has_due(moment)

    def _has_due(self, moment: datetime) -> bool:
        moment_us = store.epoch_us(moment)
        return self._read(lambda conn: store.any_due(conn, moment_us), action="check timers")

    def _model_for(self, conn: Connection | None, model_hash: str) -> Model:
        """The model a case pinned, read (on ``conn``, or a connection of its own) once."""
        model = self._by_hash.get(model_hash)
        if model is not None:
            return model
        if conn is None:
            return store.read(
                self.engine,
                lambda own: self._model_for(own, model_hash),
                action="load a definition",
            )
        data = store.load_model_data(conn, model_hash)
        if data is None:
            raise StoreError(f"definition {model_hash[:12]} is missing from the database")
        model = Model.from_data(data)
        if model.hash != model_hash:
            raise StoreError(
                f"definition {model_hash[:12]} does not hash to its key (got {model.hash[:12]}); "
                "the definitions table was altered"
            )
        self._by_hash[model_hash] = model
        return model

    def _execute(self, commands: list[Command], now: datetime, depth: int) -> list[Outcome]:
        try:
            return self._transact_commands(commands, now)
        except IntegrityViolationError as exc:
            # Most likely a race another process won (the same new case id or idempotency key
            # committed first); in a fresh transaction we read what it wrote and decide again
            # (an already_started rejection, a replayed key). A second violation is real.
            log.warning("runtime.integrity_retry", commands=len(commands), error=exc.message)
            return self._transact_commands(commands, now)
        except ConcurrencyError as exc:
            if depth >= _MAX_CONFLICT_RETRIES:
                raise
            log.warning("runtime.conflict_retry", case_ids=list(exc.case_ids[:20]), depth=depth)
            # Retry the untouched rest as a batch, then each conflicting case on its own, so
            # one contended case never costs the others their decisions.
            conflicted = set(exc.case_ids)
            results: list[Outcome | None] = [None] * len(commands)
            groups = [[i for i, c in enumerate(commands) if c.case_id not in conflicted]]
            groups += [
                [i for i, c in enumerate(commands) if c.case_id == case_id]
                for case_id in sorted(conflicted)
            ]
            for group in groups:
                if group:
                    redone = self._execute([commands[i] for i in group], now, depth + 1)
                    for index, outcome in zip(group, redone, strict=True):
                        results[index] = outcome
            return [outcome for outcome in results if outcome is not None]

    def _decides_outside_lock(self) -> bool:
        return self.shard is not None

    def _transact_commands(self, commands: list[Command], now: datetime) -> list[Outcome]:
        if not self._decides_outside_lock():
            return self._write(
                lambda conn: self._execute_once(conn, commands, now), action="record decisions"
            )
        # A ConcurrencyError or IntegrityViolationError from the write goes to ``_execute``,
        # which decides the cases concerned again from what is committed now.
        self._uncommitted = []
        batch = GroupCommit()
        outcomes = self._decide_between_reads(commands, now, batch)
        self._write(lambda conn: self._flush(conn, batch), action="record decisions")
        return outcomes

    def _decide_between_reads(
        self, commands: list[Command], now: datetime, batch: GroupCommit
    ) -> list[Outcome]:
        """A shard's way: read in a short transaction, then decide with none open. A reader left
        open keeps the other shards' checkpoints from finishing, and the write-ahead log grows
        (to 1.8 GB in a 1M-complaint demo whose shards decided inside their reads)."""
        # store.read, not self._read: a shard's session must not commit to read its own cases.
        known = store.read(
            self.engine,
            lambda conn: self._load_commands(conn, commands, batch),
            action="read cases",
        )
        if known:  # a used key's outcome is read back from its history record
            return store.read(
                self.engine,
                lambda conn: self._decide_loaded(conn, commands, now, batch, known),
                action="decide",
            )
        return self._decide_loaded(None, commands, now, batch, known)

    def _flush(self, conn: Connection, batch: GroupCommit) -> None:
        batch.flush(conn)
        self._uncommitted = batch.written  # a retried transaction replaces, never appends

    def _decode(self, case_id: str, version: int, body: str) -> Case:
        cached = self._decoded.get((case_id, version))
        return store.decode_case(body, case_id) if cached is None else cached

    def _adopt_committed(self) -> None:
        """The transaction committed (or, in a session, wrote them on the session's connection,
        which is the only one reading them until it commits; a rollback clears the cache): its
        cases may now serve later reads without decoding."""
        for case_id, version, case in self._uncommitted:
            self._decoded[(case_id, version)] = case
            self._decoded.move_to_end((case_id, version))
        self._uncommitted = []
        while len(self._decoded) > _DECODED_CACHE:
            self._decoded.popitem(last=False)

    def _execute_once(
        self, conn: Connection, commands: list[Command], now: datetime
    ) -> list[Outcome]:
        outcomes, batch = self._decide_commands(conn, commands, now)
        self._flush(conn, batch)
        return outcomes

    def _decide_commands(
        self, conn: Connection, commands: list[Command], now: datetime
    ) -> tuple[list[Outcome], GroupCommit]:
        """Read and decide ``commands`` on ``conn``, into a new group commit."""
        self._uncommitted = []
        batch = GroupCommit()
        known = self._load_commands(conn, commands, batch)
        return self._decide_loaded(conn, commands, now, batch, known), batch

    def _load_commands(
        self, conn: Connection, commands: list[Command], batch: GroupCommit
    ) -> dict[str, store.KeyRow]:
        """Read what deciding ``commands`` needs into ``batch``: their cases (those it does not
        hold already) and models; returns the keys among theirs that were used before."""
        keys = [c.key for c in commands if c.key is not None and c.key not in batch.keyed]
        known = store.load_keys(conn, keys) if keys else {}
        loaded = store.load_cases(
            conn,
            {c.case_id for c in commands if c.case_id not in batch.tracked},
            lock=self._postgres,
            decode=self._decode,
        )
        for case_id, stored in loaded.items():
            batch.tracked[case_id] = PendingCase(stored.case, stored.version)
            self._model_for(conn, stored.case.model_hash)
        self._after_load(conn, batch.tracked)
        return known

    def _decide_loaded(
        self,
        conn: Connection | None,
        commands: list[Command],
        now: datetime,
        batch: GroupCommit,
        known: Mapping[str, store.KeyRow],
    ) -> list[Outcome]:
        """Decide ``commands`` on what ``_load_commands`` read (``conn`` is None: no reads left
        to do, for no key was used before)."""
        outcomes: list[Outcome] = []
        # Every replayed request's first outcome, read together (one round trip, not one each).
        records = (
            store.load_records(
                conn, [(k.case_id, k.seq) for k in known.values() if k.seq is not None]
            )
            if conn is not None and known
            else {}
        )
        for command in commands:
            if isinstance(command, SignalCommand):
                refusal = reporter_refusal(self.keyring, command)
                if refusal is not None:
                    tracked = batch.tracked.get(command.case_id)
                    if tracked is None:
                        raise UnknownCaseError(command.case_id)
                    outcomes.append(
                        Outcome(command.case_id, Decision(tracked.case, rejection=refusal))
                    )
                    continue
            key = command.key
            if key is not None and key in batch.keyed:
                decision, fingerprint = batch.keyed[key]
                assert decision.case is not None
                check_key_reuse(key, fingerprint, command, decision.case.id)
                outcomes.append(Outcome(decision.case.id, decision, replayed=True))
                continue
            if key is not None and key in known:
                assert conn is not None
                outcomes.append(self._replay(conn, known[key], command, batch, records))
                continue
            outcomes.append(Outcome(command.case_id, self._decide(conn, command, batch, now)))
        return [
            with_reporter_token(self.keyring, outcome)
            if isinstance(command, StartCommand)
            else outcome
            for command, outcome in zip(commands, outcomes, strict=True)
        ]

    def _after_load(self, conn: Connection, tracked: Mapping[str, PendingCase]) -> None:
        """A seam for tests: runs after a batch read its cases, before it decides and writes."""

    def _decide(
        self, conn: Connection | None, command: Command, batch: GroupCommit, now: datetime
    ) -> Decision:
        tracked = batch.tracked.get(command.case_id)
        if isinstance(command, StartCommand):
            model = model_for_workflow(self.models, command.workflow)
            event = Started(command.case_id, command.data, command.actor, command.reporter)
            decision = decide(model, tracked.case if tracked else None, event, now)
            if decision.accepted:
                batch.apply(
                    decision,
                    now,
                    key=command.key,
                    fingerprint=_fingerprint(command),
                    reporter=self._seal(command),
                )
            return decision
        if tracked is None:
            raise UnknownCaseError(command.case_id)
        model = self._model_for(conn, tracked.case.model_hash)
        if isinstance(command, MigrateCommand):
            migrated: Migrated = command.event(model, tracked.case)
            decision = decide(command.model, tracked.case, migrated, now)
            if decision.accepted:
                batch.apply(decision, now)
            return decision
        decision = decide(model, tracked.case, command.signal, decision_instant(tracked.case, now))
        if decision.accepted:
            batch.apply(decision, now, key=command.key, fingerprint=_fingerprint(command))
        return decision

    def _seal(self, command: StartCommand) -> SealedIdentity | None:
        if not command.reporter:
            return None
        return self._require_keyring().seal(command.case_id, command.reporter)

    def _replay(
        self,
        conn: Connection,
        used: store.KeyRow,
        command: Command,
        batch: GroupCommit,
        records: Mapping[tuple[str, int], HistoryRecord],
    ) -> Outcome:
        """The outcome a used idempotency key produced (its record among ``records``),
        returned again (the same request only: ``check_key_reuse``)."""
        check_key_reuse(used.key, used.fingerprint, command, used.case_id)
        record = None if used.seq is None else records.get((used.case_id, used.seq))
        if used.case_id not in batch.tracked:
            batch.tracked.update(
                (k, PendingCase(v.case, v.version))
                for k, v in store.load_cases(conn, [used.case_id]).items()
            )
        tracked = batch.tracked.get(used.case_id)
        if record is None or tracked is None:
            raise StoreError(f"idempotency key {used.key!r} points at a missing history record")
        effects = tuple(effect_from_json(e) for e in record.effects)
        return Outcome(used.case_id, Decision(tracked.case, effects, record), replayed=True)

    def _fire_once(
        self, conn: Connection, now: datetime, limit: int
    ) -> tuple[int, list[tuple[str, Decision]]]:
        batch = GroupCommit()
        handled, decided = self._decide_due(conn, now, limit, batch)
        self._flush(conn, batch)
        return handled, decided

    def _fire_sharded(self, now: datetime, limit: int) -> tuple[int, list[tuple[str, Decision]]]:
        # Claimed in a short read and decided with no transaction open, as commands are.
        batch = GroupCommit()
        now_us = store.epoch_us(now)
        due = store.read(
            self.engine, lambda conn: self._claim(conn, now_us, limit, batch), action="claim"
        )
        if not due:
            return 0, []
        handled, decided = len(due), self._decide_lapses(None, due, batch, now)
        try:
            self._write(lambda conn: self._flush(conn, batch), action="fire due timers")
        except ConcurrencyError as exc:
            # Another process changed one of these cases after we read it (a signal): decide
            # this batch again inside the write lock, where nothing can change under us.
            log.warning("runtime.conflict_retry", case_ids=list(exc.case_ids[:20]), timers=True)
            return self._write(
                lambda conn: self._fire_once(conn, now, limit), action="fire due timers"
            )
        return handled, decided

    def _decide_due(
        self, conn: Connection, now: datetime, limit: int, batch: GroupCommit
    ) -> tuple[int, list[tuple[str, Decision]]]:
        """Claim the cases due by ``now`` and decide their lapses into ``batch``: how many
        cases were handled, and the (workflow, decision) of each lapse."""
        due = self._claim(conn, store.epoch_us(now), limit, batch)
        return len(due), self._decide_lapses(conn, due, batch, now)

    def _claim(
        self, conn: Connection, now_us: int, limit: int, batch: GroupCommit
    ) -> list[tuple[str, int]]:
        """Claim up to ``limit`` cases due by ``now_us`` into ``batch``, with their models:
        (case id, wake instant) each."""
        self._uncommitted = []
        claimed = store.claim_due(conn, now_us, limit, lock=self._postgres, shard=self.shard)
        due: list[tuple[str, int]] = []
        for row in claimed:
            try:
                case = self._decode(row.case_id, row.version, row.body)
                self._model_for(conn, case.model_hash)
            except LaporError as exc:
                self._set_aside(batch, row.case_id, row.version, exc, now_us)
                continue
            batch.tracked[row.case_id] = PendingCase(case, row.version)
            due.append((row.case_id, row.wake_us))
        return due

    def _decide_lapses(
        self,
        conn: Connection | None,
        due: list[tuple[str, int]],
        batch: GroupCommit,
        now: datetime,
    ) -> list[tuple[str, Decision]]:
        """Decide the lapse of each due (case id, wake instant), its case tracked in ``batch``."""
        if not self.virtual:  # how late the most overdue timer fires (0 when none is due)
            lag_us = store.epoch_us(now) - min(wake for _, wake in due) if due else 0
            metrics.timer_lag_seconds.set(max(0, lag_us) / 1e6)
        decided: list[tuple[str, Decision]] = []
        # Each case once per call, at its earliest running deadline. Which of several clocks due
        # together does not matter: the core settles every clock due by then and records the
        # canonical first lapse. Later deadlines wake the case again with the next call.
        for case_id, wake_us in due:
            case = batch.tracked[case_id].case
            lapse = _earliest_deadline(case)
            if lapse is None or store.epoch_us(wake_at(lapse.due_at)) != wake_us:
                # Only a hand-edited row can disagree with its own body: re-derive the column.
                log.warning("runtime.stale_deadline", case_id=case_id)
                batch.mark_dirty(case_id)
                continue
            at = wake_at(lapse.due_at) if self.virtual else decision_instant(case, now)
            try:
                decision = decide(self._model_for(conn, case.model_hash), case, lapse, at)
                if not decision.accepted:
                    raise StoreError(
                        f"clock {lapse.clock!r} due {lapse.due_at.isoformat()} is past but "
                        "does not lapse; the stored case is inconsistent"
                    )
            except (LaporError, ValueError) as exc:  # a deadline past the calendars, and kin
                version = batch.tracked[case_id].version or 0
                self._set_aside(batch, case_id, version, exc, store.epoch_us(now))
                continue
            batch.apply(decision, at)
            decided.append((case.workflow, decision))
        return decided

    def _set_aside(
        self, batch: GroupCommit, case_id: str, version: int, error: Exception, now_us: int
    ) -> None:
        """Quarantine a case the timer loop cannot decide, so that every other case goes on
        (``lapor quarantine`` lists them; ``retry`` brings one back once the cause is fixed).
        A database that is busy or changed under us is not the case's fault: that is raised."""
        if isinstance(error, _TRANSIENT):
            raise error
        reason = f"{type(error).__name__}: {error}"
        log.error("runtime.quarantined", case_id=case_id, reason=reason[:300])
        metrics.quarantined_total.inc()
        batch.set_aside(case_id, version, reason, now_us)

    def _publish(self, decided: list[tuple[str, Decision]]) -> None:
        by_workflow: dict[str, list[Decision]] = {}
        for workflow, decision in decided:
            if self.observer is not None and (decision.record or decision.rejection):
                self.observer(decision)
            by_workflow.setdefault(workflow, []).append(decision)
        for workflow, decisions in by_workflow.items():
            metrics.record_decisions(workflow, decisions)


_TRANSIENT = (StoreBusyError, ConcurrencyError, IntegrityViolationError, SchemaMissingError)


def _earliest_deadline(case: Case) -> ClockLapsed | None:
    """The lapse of the running clock whose deadline is the case's ``next_due`` (on a tie, the
    first of the case's clocks; the core records the canonical first lapse either way)."""
    due = case.next_due
    for clock in case.clocks:
        if clock.running and clock.due_at is not None and clock.due_at == due:
            return ClockLapsed(clock.name, clock.due_at)
    return None


def _fingerprint(command: Command) -> str | None:
    return None if command.key is None else request_fingerprint(command)
