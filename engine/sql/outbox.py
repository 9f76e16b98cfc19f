"""Delivery of outbox rows: at least once, with retries, backoff and dead letters.

The runtime writes one outbox row per world-facing effect in the same transaction as the decision
(see ``tables.outbox``), so nothing decided is ever lost; this module delivers them afterwards.

Claiming is a lease (a visibility timeout, as in a message queue) kept in ``next_attempt_us``: one
short statement picks due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two delivery processes
never pick the same row), adds one to ``attempts`` and pushes ``next_attempt_us`` to the end of the
lease. The rows are then delivered with no transaction open, and each outcome is committed on its
own. A process that dies mid-batch leaves its rows leased; they fall due again when the lease ends,
and the attempt it spent still counts, so a message that crashes its deliverer is dead-lettered in
the end instead of crashing every deliverer forever. The attempt count is also a fencing token: an
outcome is written only while ``attempts`` still equals the value the claim set.

**Dead letters**: after ``max_attempts`` failed attempts (or a permanent ``DeliveryError``) a row
gets ``next_attempt_us = DEAD_US`` (the largest BIGINT, so it is never due again) and a
``last_error`` starting ``dead:``; ``requeue_dead`` puts such rows back in the queue. No schema
column is added for either.

Delivery order is not guaranteed (a retry overtakes nothing and nothing waits for it); receivers
order by ``seq`` and deduplicate by the idempotency key, which is stable across retries. Except
for status changes (``ORDERED_KINDS``): those of one case to one agency go out one after another.
Before one is attempted, an earlier one still pending holds it back (**held**: put back, no
attempt spent, due again when the earlier one is, or within ``HOLD_POLL`` should another
process hold that one leased); an earlier one that is a dead letter makes it one too, so
``lapor outbox retry`` sends them again, in order.

**Undeliverable**: a message with nobody to reach (a reporter who left no contact, see
``engine.runtime.delivery.Undeliverable``) is settled at once, not retried nor dead-lettered:
``delivered_us`` is set and ``last_error`` starts ``undeliverable:`` with the reason (which never
quotes an identity); ``lapor outbox list --state undeliverable`` shows them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, Row, func, literal_column, select, update
from sqlalchemy.exc import SQLAlchemyError

from engine.domain.errors import LaporError
from engine.runtime import metrics
from engine.runtime.delivery import (
    DeliveryError,
    DeliveryHandler,
    DeliveryReport,
    OutboxMessage,
    Undeliverable,
    handler_for,
)
from engine.runtime.errors import StoreError
from engine.runtime.status_events import STATUS_CHANGED
from engine.sql.store import epoch_us
from engine.sql.tables import outbox

__all__ = [
    "DEAD_US",
    "HOLD_POLL",
    "ORDERED_KINDS",
    "UNDELIVERABLE",
    "OutboxDelivery",
    "OutboxEntry",
    "OutboxError",
    "backlog",
    "backoff_delay",
    "dead_letters",
    "get_message",
    "list_messages",
    "requeue_dead",
]

DEAD_US = 2**63 - 1
"""``next_attempt_us`` of a dead-lettered row: the largest BIGINT, never due."""

_MICROSECOND = timedelta(microseconds=1)
_MAX_ERROR = 1000  # characters of an error kept in last_error; a handler may say a lot
UNDELIVERABLE = "undeliverable:"  # last_error of a settled row nobody could be reached for

ORDERED_KINDS = frozenset({STATUS_CHANGED})
"""Kinds delivered in order per (case, target): a receiver applies a status change over the
previous one, so a retried older one must not arrive after a newer one."""

HOLD_POLL = timedelta(minutes=1)
"""The longest a held row waits before it looks again whether the row holding it back is done
(that row may be leased by another process, whose lease ends much later)."""

# Literal, not bound: the query planners use the partial index ``ix_outbox_ordered_pending``
# only when the query's condition visibly implies the index's.
_ORDERED_PENDING = (outbox.c.kind == literal_column(f"'{STATUS_CHANGED}'")) & (
    outbox.c.delivered_us.is_(None)
)

log = structlog.get_logger("lapor.outbox")


class OutboxError(StoreError):
    """The outbox database could not be read or written (the driver's error is the cause)."""


def backoff_delay(
    row_id: int, attempt: int, base: timedelta, cap: timedelta = timedelta(hours=1)
) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1-based) of row ``row_id``.

    Exponential (``base * 2**(attempt-1)``, at most ``cap``) with "equal jitter": the upper half
    of the interval is spread by a hash of (row, attempt), so rows that failed together (an
    endpoint was down) come back spread out, not as a stampede, and a run is reproducible.
    """
    # In integer microseconds: timedelta arithmetic would overflow long before the cap matters.
    exponent = min(max(attempt - 1, 0), 62)
    ceiling = min(cap // _MICROSECOND, (base // _MICROSECOND) << exponent)
    digest = hashlib.blake2b(f"{row_id}:{attempt}".encode(), digest_size=8).digest()
    spread = int.from_bytes(digest, "big") * (ceiling - ceiling // 2) >> 64
    return timedelta(microseconds=ceiling // 2 + spread)


@contextmanager
def _database(action: str) -> Iterator[None]:
    """Map driver errors to ``OutboxError`` at this adapter's boundary."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise OutboxError(f"outbox: cannot {action}: {exc.__class__.__name__}: {exc}") from exc


def _pending() -> Any:
    return (outbox.c.delivered_us.is_(None)) & (outbox.c.next_attempt_us < DEAD_US)


def backlog(engine: Engine) -> int:
    """Messages not yet delivered and not dead-lettered (due now or waiting for a retry)."""
    with _database("count the backlog"), engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(outbox).where(_pending())) or 0)


def dead_letters(engine: Engine) -> int:
    """Messages given up on: ``max_attempts`` failures, or a permanent error."""
    query = select(func.count()).select_from(outbox).where(outbox.c.next_attempt_us == DEAD_US)
    with _database("count dead letters"), engine.connect() as conn:
        return int(conn.scalar(query.where(outbox.c.delivered_us.is_(None))) or 0)


def requeue_dead(engine: Engine, now: datetime, *, ids: Sequence[int] | None = None) -> int:
    """Put dead letters (all, or those with ``ids``) back in the queue with a fresh attempt count.

    For after the cause is fixed (an endpoint restored, a handler installed). ``last_error`` is
    kept until the next attempt, as a record of why they died. Returns how many were requeued.
    """
    stmt = (
        update(outbox)
        .where(outbox.c.next_attempt_us == DEAD_US, outbox.c.delivered_us.is_(None))
        .values(attempts=0, next_attempt_us=epoch_us(now))
    )
    if ids is not None:
        stmt = stmt.where(outbox.c.id.in_(list(ids)))
    with _database("requeue dead letters"), engine.begin() as conn:
        return conn.execute(stmt).rowcount


@dataclass(frozen=True)
class OutboxEntry:
    """One outbox row as an operator sees it (``lapor outbox``): where it stands and why."""

    id: int
    case_id: str
    seq: int
    idempotency_key: str
    kind: str
    target: str
    attempts: int
    state: str  # pending | dead | delivered | undeliverable
    next_attempt_us: int | None  # when pending
    delivered_us: int | None
    last_error: str | None
    payload: Mapping[str, Any]


_UNDELIVERABLE = outbox.c.last_error.startswith(UNDELIVERABLE)
_STATES = {
    "pending": _pending(),
    "dead": (outbox.c.delivered_us.is_(None)) & (outbox.c.next_attempt_us == DEAD_US),
    "delivered": outbox.c.delivered_us.is_not(None)
    & (outbox.c.last_error.is_(None) | ~_UNDELIVERABLE),
    "undeliverable": outbox.c.delivered_us.is_not(None) & _UNDELIVERABLE,
}


def list_messages(
    engine: Engine, *, state: str = "pending", case_id: str | None = None, limit: int = 50
) -> list[OutboxEntry]:
    """Outbox rows in ``state`` (``pending``, ``dead``, ``delivered``, ``undeliverable`` or
    ``all``), oldest first."""
    if state != "all" and state not in _STATES:
        raise LaporError(f"unknown outbox state {state!r}; one of: all, {', '.join(_STATES)}")
    query = select(outbox).order_by(outbox.c.id).limit(limit)
    if state != "all":
        query = query.where(_STATES[state])
    if case_id is not None:
        query = query.where(outbox.c.case_id == case_id)
    with _database("list messages"), engine.connect() as conn:
        return [_entry(row) for row in conn.execute(query)]


def get_message(engine: Engine, message_id: int) -> OutboxEntry:
    """One outbox row by id, or ``LaporError``."""
    with _database("read a message"), engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.id == message_id)).first()
    if row is None:
        raise LaporError(f"no outbox message {message_id}")
    return _entry(row)


def _entry(row: Row[Any]) -> OutboxEntry:
    if row.delivered_us is not None:
        undeliverable = (row.last_error or "").startswith(UNDELIVERABLE)
        state = "undeliverable" if undeliverable else "delivered"
    elif row.next_attempt_us == DEAD_US:
        state = "dead"
    else:
        state = "pending"
    return OutboxEntry(
        id=int(row.id),
        case_id=row.case_id,
        seq=int(row.seq),
        idempotency_key=row.idempotency_key,
        kind=row.kind,
        target=row.target,
        attempts=int(row.attempts),
        state=state,
        next_attempt_us=None if state != "pending" else int(row.next_attempt_us),
        delivered_us=row.delivered_us,
        last_error=row.last_error,
        payload=json.loads(row.payload),
    )


class OutboxDelivery:
    """Delivers due outbox rows through the first handler that accepts each.

    ``lease``: how long a claimed batch is reserved for this process. It should exceed the time
    a batch takes (``batch`` x a handler's timeout, in the worst case); as a safeguard, once half
    of it has passed the rest of the batch is handed back unattempted rather than risk a second
    process delivering the same rows concurrently.
    """

    def __init__(
        self,
        engine: Engine,
        handlers: Sequence[DeliveryHandler],
        *,
        batch: int = 200,
        max_attempts: int = 12,
        base_backoff: timedelta = timedelta(seconds=5),
        max_backoff: timedelta = timedelta(hours=1),
        lease: timedelta = timedelta(minutes=10),
    ) -> None:
        if not handlers:
            raise LaporError("no delivery handlers given; use at least one, e.g. 'log'")
        if batch < 1 or max_attempts < 1:
            raise LaporError(f"batch ({batch}) and max_attempts ({max_attempts}) must be >= 1")
        if base_backoff <= timedelta(0) or max_backoff < base_backoff or lease <= timedelta(0):
            raise LaporError("backoffs and lease must be positive, with max_backoff >= base")
        self.engine = engine
        self.handlers = tuple(handlers)
        self.batch = batch
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.lease = lease

    def deliver_due(self, now: datetime) -> DeliveryReport:
        """Claim up to ``batch`` rows due at ``now``, deliver each, record each outcome.

        ``now`` stamps ``delivered_us`` and schedules retries (a virtual clock may drive it).
        Raises ``OutboxError`` when the database fails; rows claimed but not yet settled then stay
        leased and are delivered again after the lease, which at-least-once allows.
        """
        now_us = epoch_us(now)
        started = time.monotonic()
        budget = self.lease.total_seconds() / 2
        counts = dict.fromkeys(
            ("delivered", "failed", "dead", "unhandled", "undeliverable", "held"), 0
        )
        with metrics.time_batch("outbox"):
            claimed = self._claim(now_us)
            for index, row in enumerate(claimed):
                if time.monotonic() - started > budget:
                    self._release(claimed[index:], now_us)
                    break
                outcome, handler = self._attempt(row, now_us)
                counts[outcome] += 1
                metrics.outbox_deliveries_total.labels(handler=handler, outcome=outcome).inc()
            pending = backlog(self.engine)
        metrics.outbox_backlog.set(pending)
        return DeliveryReport(
            counts["delivered"],
            counts["failed"],
            counts["dead"],
            pending,
            counts["unhandled"],
            counts["undeliverable"],
            counts["held"],
        )

    def _claim(self, now_us: int) -> list[Row[Any]]:
        due = (
            select(outbox.c.id)
            .where(outbox.c.delivered_us.is_(None), outbox.c.next_attempt_us <= now_us)
            .order_by(outbox.c.next_attempt_us, outbox.c.id)
            .limit(self.batch)
            # PostgreSQL: a concurrent claimer skips these rows instead of waiting for them, and
            # re-checks the due condition on rows committed meanwhile. SQLite ignores the clause;
            # there the single UPDATE statement is atomic anyway.
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(
                attempts=outbox.c.attempts + 1,
                next_attempt_us=now_us + self.lease // _MICROSECOND,
            )
            .returning(
                outbox.c.id,
                outbox.c.case_id,
                outbox.c.seq,
                outbox.c.idempotency_key,
                outbox.c.kind,
                outbox.c.target,
                outbox.c.payload,
                outbox.c.attempts,
            )
        )
        with _database("claim due messages"), self.engine.begin() as conn:
            rows = list(conn.execute(claim))
        return sorted(rows, key=lambda row: int(row.id))  # RETURNING order is unspecified

    def _attempt(self, row: Row[Any], now_us: int) -> tuple[str, str]:
        """Deliver one claimed row and record the outcome; returns (outcome, handler name)."""
        try:
            message = _message(row)
        except DeliveryError as exc:
            self._fail(row, now_us, exc, "none")
            return "dead", "none"
        if message.kind in ORDERED_KINDS:
            held = self._hold_behind_earlier(message, now_us)
            if held is not None:
                return held, "none"
        try:
            handler = handler_for(self.handlers, message)
        except Exception as exc:  # a broken ``accepts`` fails this message, not the batch
            return self._fail(row, now_us, exc, "none"), "none"
        if handler is None:
            self._unhandled(message, now_us)
            return "unhandled", "none"
        try:
            handler.deliver(message)
        except Undeliverable as exc:
            self._settle_undeliverable(message, now_us, exc, handler.name)
            return "undeliverable", handler.name
        except Exception as exc:  # any handler failure is this message's, never the batch's
            return self._fail(row, now_us, exc, handler.name), handler.name
        self._write(
            update(outbox)
            .where(outbox.c.id == message.id, outbox.c.delivered_us.is_(None))
            .values(delivered_us=now_us)
        )
        log.debug(
            "outbox.delivered",
            message_id=message.id,
            idempotency_key=message.idempotency_key,
            handler=handler.name,
            attempt=message.attempts,
        )
        return "delivered", handler.name

    def _fail(self, row: Row[Any], now_us: int, exc: BaseException, handler: str) -> str:
        attempt = int(row.attempts)
        error = f"{exc.__class__.__name__}: {exc}"[:_MAX_ERROR]
        permanent = isinstance(exc, DeliveryError) and exc.permanent
        if permanent or attempt >= self.max_attempts:
            outcome = "dead"
            values: dict[str, Any] = {
                "next_attempt_us": DEAD_US,
                "last_error": f"dead: after {attempt} attempt(s): {error}"[:_MAX_ERROR],
            }
        else:
            outcome = "failed"
            delay = backoff_delay(int(row.id), attempt, self.base_backoff, self.max_backoff)
            values = {
                "next_attempt_us": now_us + delay // _MICROSECOND,
                "last_error": error,
            }
        self._write(self._mine(row).values(**values))
        emit = log.error if outcome == "dead" else log.warning
        emit(
            f"outbox.{outcome}",
            message_id=int(row.id),
            idempotency_key=row.idempotency_key,
            kind=row.kind,
            target=row.target,
            handler=handler,
            attempt=attempt,
            error=error[:200],
        )
        return outcome

    def _settle_undeliverable(
        self, message: OutboxMessage, now_us: int, exc: Undeliverable, handler: str
    ) -> None:
        # Settled, not retried: nothing will give this reporter a contact later.
        reason = f"{UNDELIVERABLE} {exc.message}"[:_MAX_ERROR]
        self._write(
            self._mine_id(message.id, message.attempts).values(
                delivered_us=now_us, last_error=reason
            )
        )
        log.info(
            "outbox.undeliverable",
            message_id=message.id,
            idempotency_key=message.idempotency_key,
            kind=message.kind,
            target=message.target,
            handler=handler,
            reason=exc.message,
        )

    def _hold_behind_earlier(self, message: OutboxMessage, now_us: int) -> str | None:
        """If an earlier message of the same kind, case and target is still pending, hold this
        one back (``"held"``), or dead-letter it behind a dead one (``"dead"``); ``None``: it
        may go. Rows are claimed and attempted in id order, so an earlier one delivered in this
        same batch no longer holds anything."""
        earlier_query = (
            select(outbox.c.id, outbox.c.next_attempt_us)
            .where(
                _ORDERED_PENDING,
                outbox.c.case_id == message.case_id,
                outbox.c.target == message.target,
                outbox.c.id < message.id,
            )
            .order_by(outbox.c.id)
            .limit(1)
        )
        with _database("look for an earlier message"), self.engine.connect() as conn:
            earlier = conn.execute(earlier_query).first()
        if earlier is None:
            return None
        mine = self._mine_id(message.id, message.attempts)
        if int(earlier.next_attempt_us) == DEAD_US:
            error = (
                f"dead: message {earlier.id}, an earlier {message.kind} of case "
                f"{message.case_id} to {message.target}, is a dead letter; retry both and they "
                "go in order"
            )
            self._write(mine.values(next_attempt_us=DEAD_US, last_error=error[:_MAX_ERROR]))
            log.error(
                "outbox.dead",
                message_id=message.id,
                idempotency_key=message.idempotency_key,
                kind=message.kind,
                target=message.target,
                behind=int(earlier.id),
            )
            return "dead"
        # Not this message's fault: the attempt is given back. Due with the earlier one (it
        # sorts first: same instant, lower id), or within HOLD_POLL if that one is leased.
        again = min(max(int(earlier.next_attempt_us), now_us), now_us + HOLD_POLL // _MICROSECOND)
        self._write(
            mine.values(
                attempts=message.attempts - 1,
                next_attempt_us=again,
                last_error=f"held: behind message {earlier.id} of the same case and target",
            )
        )
        log.info(
            "outbox.held",
            message_id=message.id,
            idempotency_key=message.idempotency_key,
            behind=int(earlier.id),
        )
        return "held"

    def _unhandled(self, message: OutboxMessage, now_us: int) -> None:
        # Not the message's fault: give the attempt back, look again after the base backoff
        # (another process may have the handler; this one may be reconfigured).
        error = f"no handler for kind={message.kind!r} target={message.target!r}"
        self._write(
            self._mine_id(message.id, message.attempts).values(
                attempts=message.attempts - 1,
                next_attempt_us=now_us + self.base_backoff // _MICROSECOND,
                last_error=error,
            )
        )
        log.warning("outbox.unhandled", message_id=message.id, kind=message.kind)

    def _release(self, rows: Sequence[Row[Any]], now_us: int) -> None:
        for row in rows:
            self._write(
                self._mine(row).values(attempts=int(row.attempts) - 1, next_attempt_us=now_us)
            )
        log.warning("outbox.lease_budget_spent", released=len(rows))

    def _mine(self, row: Row[Any]) -> Any:
        return self._mine_id(int(row.id), int(row.attempts))

    @staticmethod
    def _mine_id(row_id: int, attempts: int) -> Any:
        # Still ours only while no later claim has bumped the attempt count.
        return update(outbox).where(
            outbox.c.id == row_id, outbox.c.attempts == attempts, outbox.c.delivered_us.is_(None)
        )

    def _write(self, stmt: Any) -> None:
        with _database("record a delivery outcome"), self.engine.begin() as conn:
            conn.execute(stmt)


def _message(row: Row[Any]) -> OutboxMessage:
    try:
        payload = json.loads(row.payload)
    except ValueError as exc:
        raise DeliveryError(f"payload is not JSON: {exc}", permanent=True) from None
    if not isinstance(payload, dict):
        raise DeliveryError("payload is not a JSON object", permanent=True)
    return OutboxMessage(
        id=int(row.id),
        case_id=row.case_id,
        seq=int(row.seq),
        idempotency_key=row.idempotency_key,
        kind=row.kind,
        target=row.target,
        payload=payload,
        attempts=int(row.attempts),
    )
