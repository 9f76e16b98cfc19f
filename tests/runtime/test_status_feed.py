"""Status changes of a subscribed agency's cases: written to the outbox in the decision's
transaction, only for agencies that subscribed, and delivered in order per case and agency
(held behind an earlier pending one, dead behind a dead one, in order again once retried).

A real migrated database (SQLite file and PostgreSQL), the embedded runtime, the outbox delivery.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.delivery import DeliveryError, OutboxMessage
from engine.runtime.identity import KeyRing
from engine.runtime.status_events import STATUS_CHANGED
from engine.sql.bulk import BulkRuntime
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.outbox import OutboxDelivery, list_messages, requeue_dead
from engine.sql.subscriptions import SubscriptionStore
from engine.sql.tables import outbox

WORKFLOW = "sp4n-lapor"
T0 = instant("2026-03-02T10:00:00+07:00")  # a Monday
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "Obat"}
ADMIN = Actor("admin", "nasional")
KEMENKES = Actor("agency", "kemenkes")


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
def runtime(engine: Engine, models: Mapping[str, Model], ring: KeyRing) -> EmbeddedRuntime:
    return EmbeddedRuntime(engine, models, VirtualClock(T0), keyring=ring)


def subscribe(runtime: EmbeddedRuntime, ring: KeyRing, agency: str) -> None:
    SubscriptionStore(runtime.engine, ring).create(agency, "http://127.0.0.1:9/hook", T0)


def answered(runtime: EmbeddedRuntime, case_id: str, agency: str = "kemenkes") -> str:
    """A case started, disposed to ``agency``, followed up and answered: its reporter token."""
    started = runtime.start(WORKFLOW, case_id, INTAKE)
    assert started.reporter_token
    steps = [
        Signal("verify", ADMIN, {"agency": agency}),
        Signal("follow_up", Actor("agency", agency), {"response": "Sedang diperiksa."}),
        Signal("complete", Actor("agency", agency), {"response": "Sudah dibuka kembali."}),
    ]
    for step in steps:
        assert runtime.signal(case_id, step).accepted
    return started.reporter_token


def status_rows(engine: Engine, case_id: str) -> list[dict[str, Any]]:
    query = (
        select(outbox)
        .where(outbox.c.case_id == case_id, outbox.c.kind == STATUS_CHANGED)
        .order_by(outbox.c.id)
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def test_each_status_change_of_a_subscribed_agencys_case_is_a_row_in_decision_order(
    runtime: EmbeddedRuntime, ring: KeyRing
) -> None:
    subscribe(runtime, ring, "kemenkes")
    token = answered(runtime, "C1")
    confirm = Signal("confirm", Actor("reporter"), {"rating": 5})
    assert runtime.signal("C1", confirm, reporter_token=token).accepted

    rows = status_rows(runtime.engine, "C1")

    assert [r["idempotency_key"] for r in rows] == [
        f"C1:{seq}:status:kemenkes" for seq in (2, 3, 4, 5)
    ]
    assert {r["target"] for r in rows} == {"kemenkes"}
    payloads = [json.loads(r["payload"]) for r in rows]
    assert [(p["from"]["status"], p["to"]["status"]) for p in payloads] == [
        ("Belum Terverifikasi", "Terdisposisi"),
        ("Terdisposisi", "Ditindaklanjuti"),
        ("Ditindaklanjuti", "Menunggu Tanggapan Pelapor"),
        ("Menunggu Tanggapan Pelapor", "Selesai"),
    ]
    assert [p["cause"] for p in payloads] == [
        {"event": "signal", "signal": "verify", "by": "admin"},
        {"event": "signal", "signal": "follow_up", "by": "agency"},
        {"event": "signal", "signal": "complete", "by": "agency"},
        {"event": "signal", "signal": "confirm", "by": "reporter"},
    ]
    assert payloads[-1]["to"]["outcome"] == "resolved"
    assert all(p["case"]["agency"] == "kemenkes" for p in payloads)
    # The history is what the core decided, whatever was subscribed: no effect was added.
    effects = [e["kind"] for record in runtime.history("C1") for e in record.effects]
    assert STATUS_CHANGED not in effects


def test_no_row_is_written_for_an_agency_without_a_subscription(
    runtime: EmbeddedRuntime, ring: KeyRing
) -> None:
    subscribe(runtime, ring, "kemensos")
    answered(runtime, "C1", agency="kemenkes")

    assert status_rows(runtime.engine, "C1") == []


def test_the_agency_a_case_leaves_is_told_without_the_case(
    runtime: EmbeddedRuntime, ring: KeyRing
) -> None:
    subscribe(runtime, ring, "kemenkes")
    subscribe(runtime, ring, "kemensos")
    runtime.start(WORKFLOW, "C1", INTAKE)
    runtime.signal("C1", Signal("verify", ADMIN, {"agency": "kemenkes"}))
    moved = Signal("not_authority", KEMENKES, {"agency": "kemensos", "reason": "Bukan kami."})
    assert runtime.signal("C1", moved).accepted

    rows = [r for r in status_rows(runtime.engine, "C1") if r["seq"] == 3]

    by_target = {r["target"]: json.loads(r["payload"]) for r in rows}
    assert set(by_target) == {"kemenkes", "kemensos"}
    assert by_target["kemensos"]["case"]["agency"] == "kemensos"
    assert by_target["kemenkes"]["case"] is None  # it may not see the case any more
    assert by_target["kemenkes"]["from"]["agency"] == "kemenkes"
    assert by_target["kemenkes"]["to"]["agency"] == "kemensos"


def test_a_bulk_session_writes_each_change_once_with_its_commit(
    engine: Engine, models: Mapping[str, Model], ring: KeyRing
) -> None:
    bulk = BulkRuntime(engine, models, VirtualClock(T0), keyring=ring)
    subscribe(bulk, ring, "kemenkes")
    with bulk.session(commit_every=2):
        answered(bulk, "C1")
        answered(bulk, "C2")

    for case_id in ("C1", "C2"):
        keys = [r["idempotency_key"] for r in status_rows(engine, case_id)]
        assert keys == [f"{case_id}:{seq}:status:kemenkes" for seq in (2, 3, 4)]


class Recorder:
    """A delivery handler for status changes: records the keys it is given, in order, and
    fails those in ``failing``."""

    name = "recorder"

    def __init__(self) -> None:
        self.attempted: list[str] = []
        self.failing: set[str] = set()

    def accepts(self, message: OutboxMessage) -> bool:
        return message.kind == STATUS_CHANGED

    def deliver(self, message: OutboxMessage) -> None:
        self.attempted.append(message.idempotency_key)
        if message.idempotency_key in self.failing:
            raise DeliveryError("the agency's endpoint answered HTTP 503")

    def delivered(self) -> list[str]:
        return [k for k in self.attempted if k not in self.failing]


class Quiet:
    """Takes every other message (notices to the reporter...), so they are settled."""

    name = "quiet"

    def accepts(self, message: OutboxMessage) -> bool:
        return True

    def deliver(self, message: OutboxMessage) -> None:
        pass


def test_a_later_change_is_held_until_the_earlier_one_is_delivered(
    runtime: EmbeddedRuntime, ring: KeyRing
) -> None:
    subscribe(runtime, ring, "kemenkes")
    answered(runtime, "C1")
    recorder = Recorder()
    recorder.failing = {"C1:2:status:kemenkes"}
    delivery = OutboxDelivery(
        runtime.engine, [recorder, Quiet()], base_backoff=timedelta(seconds=5)
    )

    first = delivery.deliver_due(T0 + timedelta(minutes=1))

    assert recorder.attempted == ["C1:2:status:kemenkes"]  # 3 and 4 never overtook it
    assert first.held == 2 and first.failed == 1
    held = [m for m in list_messages(runtime.engine, case_id="C1") if m.kind == STATUS_CHANGED]
    assert [m.attempts for m in held] == [1, 0, 0]  # holding spends no attempt
    assert all((m.last_error or "").startswith("held:") for m in held[1:])

    recorder.failing = set()
    delivery.deliver_due(T0 + timedelta(minutes=2))

    assert recorder.attempted == [
        "C1:2:status:kemenkes",
        *[f"C1:{s}:status:kemenkes" for s in (2, 3, 4)],
    ]


def test_changes_behind_a_dead_letter_die_with_it_and_go_in_order_when_retried(
    runtime: EmbeddedRuntime, ring: KeyRing
) -> None:
    subscribe(runtime, ring, "kemenkes")
    answered(runtime, "C1")
    answered(runtime, "C2")
    recorder = Recorder()
    recorder.failing = {"C1:3:status:kemenkes"}
    delivery = OutboxDelivery(runtime.engine, [recorder, Quiet()], max_attempts=1)

    report = delivery.deliver_due(T0 + timedelta(minutes=1))

    assert report.dead == 2  # C1's 3rd record, and its 4th behind it
    assert recorder.delivered() == [
        "C1:2:status:kemenkes",
        *[f"C2:{s}:status:kemenkes" for s in (2, 3, 4)],  # another case is not held back
    ]
    dead = list_messages(runtime.engine, state="dead")
    assert [m.idempotency_key for m in dead] == ["C1:3:status:kemenkes", "C1:4:status:kemenkes"]
    assert "is a dead letter" in (dead[1].last_error or "")

    recorder.failing = set()
    recorder.attempted = []
    assert requeue_dead(runtime.engine, T0 + timedelta(minutes=2)) == 2
    delivery.deliver_due(T0 + timedelta(minutes=2))

    assert recorder.attempted == ["C1:3:status:kemenkes", "C1:4:status:kemenkes"]
