"""Outbox delivery against a real SQLite file and a real HTTP receiver on 127.0.0.1.

The receiver checks every signature itself, the way a subscriber of the webhook would, and follows
a per-test script of answers, so retries, backoff, dead letters and isolation between messages are
exercised over the wire rather than with mocks.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, insert, select
from sqlalchemy.dialects import postgresql

from engine.domain.errors import LaporError
from engine.runtime.delivery import DeliveryError, OutboxMessage
from engine.runtime.handlers import LogHandler, WebhookHandler, verify_signature
from engine.sql.outbox import (
    DEAD_US,
    OutboxDelivery,
    backlog,
    backoff_delay,
    dead_letters,
    requeue_dead,
)
from engine.sql.tables import metadata, outbox

SECRET = "s3cret-shared-with-the-receiver"
NOW = datetime(2026, 3, 13, 8, 0, tzinfo=UTC)
NOW_US = int(NOW.timestamp()) * 1_000_000
BASE = timedelta(seconds=5)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@dataclass
class Received:
    path: str
    key: str
    attempt: int
    body: bytes
    signed: bool


@dataclass
class Receiver:
    """A webhook subscriber: records each request; ``answer(key, attempt)`` picks the status."""

    url: str
    requests: list[Received] = field(default_factory=list)
    answer: Callable[[str, int], int] = lambda key, attempt: 200
    delay: float = 0.0

    def keys(self) -> list[str]:
        return [r.key for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handle(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            key = self.headers["X-Lapor-Idempotency-Key"]
            attempt = int(self.headers["X-Lapor-Delivery-Attempt"])
            signed = verify_signature(SECRET, body, self.headers["X-Lapor-Signature"])
            state.requests.append(Received(self.path, key, attempt, body, signed))
            time.sleep(state.delay)
            status = state.answer(key, attempt) if signed else 401
            self.send_response(status)
            if status in (301, 302, 307):
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/lapor"
    yield state
    server.shutdown()
    server.server_close()


def add(
    engine: Engine,
    case_id: str = "LAP-1",
    seq: int = 1,
    index: int = 0,
    *,
    kind: str = "notify",
    target: str = "reporter",
    due_us: int = NOW_US,
    payload: str | None = None,
) -> int:
    """Insert an outbox row as the runtime writes it; returns its id."""
    effect: dict[str, Any] = {"kind": kind, "to": target, "template": "report_verified"}
    body = {
        "case_id": case_id,
        "seq": seq,
        "effect": effect,
        "case": {
            "id": case_id,
            "workflow": "sp4n-lapor",
            "state": "disposed",
            "status": "Terdisposisi",
            "agency": "kemenkes",
            "region": "ID-JK",
            "escalation_level": 0,
            "data": {"category": "kesehatan", "description": "Obat tidak tersedia"},
        },
    }
    with engine.begin() as conn:
        result = conn.execute(
            insert(outbox).values(
                case_id=case_id,
                seq=seq,
                idempotency_key=f"{case_id}:{seq}:{index}",
                kind=kind,
                target=target,
                payload=json.dumps(body) if payload is None else payload,
                attempts=0,
                next_attempt_us=due_us,
            )
        )
        return int(result.inserted_primary_key[0])


def row(engine: Engine, row_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.id == row_id)).one()


def at_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def webhook(receiver: Receiver, **kwargs: Any) -> WebhookHandler:
    return WebhookHandler(receiver.url, SECRET, **kwargs)


def never(message: OutboxMessage) -> bool:
    return False


class Recording:
    """A Python handler: records messages, fails when ``fail`` says so."""

    def __init__(
        self,
        name: str = "recording",
        fail: Callable[[OutboxMessage], bool] | None = None,
        target: str | None = None,
    ) -> None:
        self.name = name
        self.fail = fail or never
        self.target = target
        self.seen: list[OutboxMessage] = []

    def accepts(self, message: OutboxMessage) -> bool:
        return self.target is None or message.target == self.target

    def deliver(self, message: OutboxMessage) -> None:
        self.seen.append(message)
        if self.fail(message):
            raise RuntimeError(f"cannot deliver {message.idempotency_key}")


# --- delivery over the wire --------------------------------------------------------------------


def test_webhook_posts_signed_payload_and_marks_row_delivered(
    db: Engine, receiver: Receiver
) -> None:
    row_id = add(db)

    report = OutboxDelivery(db, [webhook(receiver)]).deliver_due(NOW)

    assert (report.delivered, report.failed, report.dead, report.pending_after) == (1, 0, 0, 0)
    [request] = receiver.requests
    assert request.signed and request.path == "/hooks/lapor"
    assert (request.key, request.attempt) == ("LAP-1:1:0", 1)
    body = json.loads(request.body)
    assert body["idempotency_key"] == "LAP-1:1:0"
    assert body["effect"] == {"kind": "notify", "to": "reporter", "template": "report_verified"}
    assert body["case"]["agency"] == "kemenkes"
    stored = row(db, row_id)
    assert (stored.delivered_us, stored.attempts, stored.last_error) == (NOW_US, 1, None)


def test_failed_delivery_retries_with_backoff_and_a_stable_idempotency_key(
    db: Engine, receiver: Receiver
) -> None:
    row_id = add(db)
    receiver.answer = lambda key, attempt: 503 if attempt < 3 else 204
    delivery = OutboxDelivery(db, [webhook(receiver)], base_backoff=BASE)

    first = delivery.deliver_due(NOW)
    retry_at = row(db, row_id).next_attempt_us
    early = delivery.deliver_due(at_us(retry_at - 1))
    second = delivery.deliver_due(at_us(retry_at))
    retry_again_at = row(db, row_id).next_attempt_us
    third = delivery.deliver_due(at_us(retry_again_at))

    assert (first.failed, early.failed + early.delivered, second.failed, third.delivered) == (
        1,
        0,
        1,
        1,
    )
    assert retry_at == NOW_US + backoff_delay(row_id, 1, BASE) // timedelta(microseconds=1)
    assert retry_again_at - retry_at == backoff_delay(row_id, 2, BASE) // timedelta(microseconds=1)
    assert receiver.keys() == ["LAP-1:1:0"] * 3
    assert [r.attempt for r in receiver.requests] == [1, 2, 3]
    assert len({r.body for r in receiver.requests}) == 1  # same bytes, same signature each time
    assert row(db, row_id).delivered_us == retry_again_at
    assert "HTTP 503" in row(db, row_id).last_error


def test_failing_message_does_not_block_the_others(db: Engine, receiver: Receiver) -> None:
    broken = add(db, "LAP-1", target="agency")  # first in line, fails every time
    fine = [add(db, "LAP-2"), add(db, "LAP-3", target="agency_liaison")]
    receiver.answer = lambda key, attempt: 500 if key.startswith("LAP-1") else 200
    crashing = Recording("crashing", fail=lambda m: True, target="agency_liaison")

    report = OutboxDelivery(db, [crashing, webhook(receiver)]).deliver_due(NOW)

    assert (report.delivered, report.failed) == (1, 2)
    assert row(db, fine[0]).delivered_us == NOW_US
    assert row(db, broken).delivered_us is None and "HTTP 500" in row(db, broken).last_error
    assert row(db, fine[1]).last_error == "RuntimeError: cannot deliver LAP-3:1:0"


def test_no_row_is_marked_delivered_before_its_handler_returns(db: Engine) -> None:
    row_id = add(db)
    seen_while_delivering: list[Any] = []

    class Peeking(Recording):
        def deliver(self, message: OutboxMessage) -> None:
            seen_while_delivering.append(row(db, message.id).delivered_us)

    OutboxDelivery(db, [Peeking()]).deliver_due(NOW)

    assert seen_while_delivering == [None]
    assert row(db, row_id).delivered_us == NOW_US


@pytest.mark.parametrize(
    ("answer", "delay", "expected"),
    [
        (302, 0.0, "HTTP 302"),  # urllib would follow it as a GET without body: never "delivered"
        (404, 0.0, "HTTP 404"),
        (200, 1.0, "did not answer in 0.2 s"),
    ],
)
def test_redirect_error_status_and_timeout_are_failures(
    db: Engine, receiver: Receiver, answer: int, delay: float, expected: str
) -> None:
    row_id = add(db)
    receiver.answer = lambda key, attempt: answer
    receiver.delay = delay

    report = OutboxDelivery(db, [webhook(receiver, timeout=0.2)]).deliver_due(NOW)

    assert (report.delivered, report.failed) == (0, 1)
    assert row(db, row_id).delivered_us is None
    assert expected in row(db, row_id).last_error
    assert [r.path for r in receiver.requests] == ["/hooks/lapor"]


def test_unreachable_webhook_is_a_failure(db: Engine) -> None:
    row_id = add(db)
    handler = WebhookHandler("http://127.0.0.1:9/closed", SECRET, timeout=1)

    report = OutboxDelivery(db, [handler]).deliver_due(NOW)

    assert report.failed == 1
    assert "cannot reach http://127.0.0.1:9" in row(db, row_id).last_error


# --- dead letters, unhandled, leases -----------------------------------------------------------


def test_message_is_dead_lettered_after_max_attempts_and_can_be_requeued(
    db: Engine, receiver: Receiver
) -> None:
    row_id = add(db)
    receiver.answer = lambda key, attempt: 500
    delivery = OutboxDelivery(db, [webhook(receiver)], max_attempts=3)

    reports = []
    for _ in range(3):
        reports.append(delivery.deliver_due(at_us(row(db, row_id).next_attempt_us)))
    later = delivery.deliver_due(NOW + timedelta(days=365))

    assert [(r.failed, r.dead) for r in reports] == [(1, 0), (1, 0), (0, 1)]
    assert later == type(later)(0, 0, 0, 0)
    dead = row(db, row_id)
    assert (dead.next_attempt_us, dead.attempts, dead.delivered_us) == (DEAD_US, 3, None)
    assert dead.last_error.startswith("dead: after 3 attempt(s): DeliveryError:")
    assert (backlog(db), dead_letters(db)) == (0, 1)
    assert len(receiver.requests) == 3

    receiver.answer = lambda key, attempt: 200
    assert requeue_dead(db, NOW) == 1
    assert delivery.deliver_due(NOW).delivered == 1
    assert receiver.requests[-1].attempt == 1
    assert (backlog(db), dead_letters(db)) == (0, 0)


def test_permanent_errors_and_malformed_payloads_are_dead_at_once(db: Engine) -> None:
    refused = add(db, "LAP-1")
    malformed = add(db, "LAP-2", payload="{not json")

    class Refusing(Recording):
        def deliver(self, message: OutboxMessage) -> None:
            raise DeliveryError("no such template", permanent=True)

    report = OutboxDelivery(db, [Refusing()]).deliver_due(NOW)

    assert (report.dead, report.failed, report.pending_after) == (2, 0, 0)
    assert "no such template" in row(db, refused).last_error
    assert "payload is not JSON" in row(db, malformed).last_error


def test_message_without_a_handler_stays_pending_without_spending_attempts(db: Engine) -> None:
    row_id = add(db, kind="notify")
    only_escalations = LogHandler(accepts_kinds={"escalated"})

    report = OutboxDelivery(db, [only_escalations], base_backoff=BASE).deliver_due(NOW)

    assert (report.unhandled, report.delivered, report.failed, report.pending_after) == (1, 0, 0, 1)
    stored = row(db, row_id)
    assert stored.attempts == 0 and stored.delivered_us is None
    assert stored.next_attempt_us == NOW_US + 5_000_000
    assert stored.last_error == "no handler for kind='notify' target='reporter'"


def test_rows_of_a_crashed_deliverer_fall_due_again_when_the_lease_ends(db: Engine) -> None:
    row_id = add(db)

    class Crashing(Recording):
        def deliver(self, message: OutboxMessage) -> None:
            raise KeyboardInterrupt  # the process dies mid-delivery

    lease = timedelta(minutes=10)
    with pytest.raises(KeyboardInterrupt):
        OutboxDelivery(db, [Crashing()], lease=lease).deliver_due(NOW)
    survivor = Recording()
    delivery = OutboxDelivery(db, [survivor], lease=lease)
    still_leased = delivery.deliver_due(NOW + lease - timedelta(seconds=1))
    after_lease = delivery.deliver_due(NOW + lease)

    assert (still_leased.delivered, after_lease.delivered) == (0, 1)
    assert [m.attempts for m in survivor.seen] == [2]  # the crashed attempt counted
    assert row(db, row_id).delivered_us is not None


def test_batch_that_outlives_half_its_lease_hands_back_the_rest(db: Engine) -> None:
    ids = [add(db, f"LAP-{n}") for n in range(4)]

    class Slow(Recording):
        def deliver(self, message: OutboxMessage) -> None:
            super().deliver(message)
            time.sleep(0.15)

    slow = Slow()
    report = OutboxDelivery(db, [slow], lease=timedelta(seconds=0.2)).deliver_due(NOW)

    assert report.delivered == 1 and report.pending_after == 3
    handed_back = [row(db, i) for i in ids[1:]]
    assert {(r.attempts, r.next_attempt_us) for r in handed_back} == {(0, NOW_US)}


def test_two_deliverers_deliver_each_message_exactly_once(db: Engine) -> None:
    keys = [f"LAP-{n}:1:0" for n in range(60)]
    for n in range(60):
        add(db, f"LAP-{n}")
    seen: list[str] = []
    lock = threading.Lock()

    class Counting(Recording):
        def deliver(self, message: OutboxMessage) -> None:
            with lock:
                seen.append(message.idempotency_key)
            time.sleep(0.002)

    def work() -> None:
        delivery = OutboxDelivery(db, [Counting()], batch=7)
        while delivery.deliver_due(NOW).pending_after:
            pass

    workers = [threading.Thread(target=work) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)

    assert sorted(seen) == sorted(keys)
    assert backlog(db) == 0


def test_claim_skips_rows_locked_by_another_deliverer_on_postgresql(db: Engine) -> None:
    statements: list[Any] = []

    def capture(_conn: Any, clause: Any, *_args: Any) -> None:
        statements.append(clause)

    event.listen(db, "before_execute", capture)
    try:
        OutboxDelivery(db, [Recording()]).deliver_due(NOW)
    finally:
        event.remove(db, "before_execute", capture)

    claim = str(statements[0].compile(dialect=postgresql.dialect()))
    assert claim.startswith("UPDATE outbox SET attempts=")
    assert "FOR UPDATE SKIP LOCKED" in claim and "RETURNING" in claim


# --- backoff -----------------------------------------------------------------------------------


def test_backoff_doubles_with_deterministic_jitter_up_to_the_cap() -> None:
    cap = timedelta(hours=1)
    delays = [backoff_delay(42, attempt, BASE, cap) for attempt in range(1, 21)]

    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(cap, BASE * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert delays == [backoff_delay(42, a, BASE, cap) for a in range(1, 21)]
    assert delays[-1] <= cap and delays[-1] >= cap / 2
    spread = {backoff_delay(row_id, 6, BASE, cap) for row_id in range(50)}
    assert len(spread) > 40  # rows that failed together come back apart
    assert backoff_delay(1, 10_000, timedelta(days=1), cap) <= cap


# --- configuration errors ----------------------------------------------------------------------


def test_naive_time_and_bad_settings_are_errors_not_tracebacks(db: Engine) -> None:
    with pytest.raises(LaporError, match="no UTC offset"):
        OutboxDelivery(db, [Recording()]).deliver_due(datetime(2026, 3, 13, 8))
    with pytest.raises(LaporError, match="no delivery handlers"):
        OutboxDelivery(db, [])
    with pytest.raises(LaporError, match="must be >= 1"):
        OutboxDelivery(db, [Recording()], max_attempts=0)


# --- PostgreSQL --------------------------------------------------------------------------------


def test_four_deliverers_on_postgresql_deliver_each_message_exactly_once(pg_url: str) -> None:
    # A fresh database of the PostgreSQL server the suite starts (tests/runtime/postgres.py).
    url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engines = [create_engine(url) for _ in range(4)]
    metadata.drop_all(engines[0], tables=[outbox])
    metadata.create_all(engines[0], tables=[outbox])
    with engines[0].begin() as conn:
        conn.execute(
            insert(outbox),
            [
                {
                    "case_id": f"LAP-{n}",
                    "seq": 1,
                    "idempotency_key": f"LAP-{n}:1:0",
                    "kind": "notify",
                    "target": "reporter",
                    "payload": json.dumps({"case_id": f"LAP-{n}"}),
                    "attempts": 0,
                    "next_attempt_us": NOW_US,
                }
                for n in range(400)
            ],
        )
    seen: list[str] = []
    lock = threading.Lock()

    class Counting(Recording):
        def deliver(self, message: OutboxMessage) -> None:
            with lock:
                seen.append(message.idempotency_key)

    def work(engine: Engine) -> None:
        delivery = OutboxDelivery(engine, [Counting()], batch=25)
        while delivery.deliver_due(NOW).pending_after:
            pass

    workers = [threading.Thread(target=work, args=(engine,)) for engine in engines]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    try:
        assert sorted(seen) == sorted(f"LAP-{n}:1:0" for n in range(400))
    finally:
        metadata.drop_all(engines[0], tables=[outbox])
        for engine in engines:
            engine.dispose()
