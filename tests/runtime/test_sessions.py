"""``BulkRuntime.session()``: one writer's long run shares its transactions.

Decisions made in a session become visible to other connections (and to the observer) only when
the session commits: every ``commit_every`` decisions and on exit. An error rolls back to the last
commit and ends the session. Both databases.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from engine.domain.errors import LaporError
from engine.domain.events import Actor, Signal, instant
from engine.domain.machine import Decision
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.contract import SignalCommand, StartCommand
from engine.runtime.errors import IntegrityViolationError
from engine.sql import store
from engine.sql.bulk import BulkRuntime
from engine.sql.migrations import upgrade
from engine.sql.tables import history, outbox

WORKFLOW = "sp4n-lapor"
T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "Obat"}
VERIFY = Signal("verify", Actor("admin", "nasional"), {"agency": "kemenkes", "tier": "simple"})


@pytest.fixture
def observed() -> list[Decision]:
    return []


@pytest.fixture
def runtime(engine: Engine, models: Mapping[str, Model], observed: list[Decision]) -> BulkRuntime:
    return BulkRuntime(engine, models, VirtualClock(T0), observer=observed.append)


def committed_records(engine: Engine) -> int:
    """History rows as another connection sees them: only what was committed."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(history)).scalar_one())


def start(runtime: BulkRuntime, *ids: str) -> None:
    outcomes = runtime.execute([StartCommand(WORKFLOW, i, INTAKE) for i in ids], T0)
    assert all(o.decision.accepted for o in outcomes)


def test_a_session_commits_every_n_decisions_and_on_exit(
    runtime: BulkRuntime, engine: Engine, observed: list[Decision]
) -> None:
    with runtime.session(commit_every=3):
        start(runtime, "C1", "C2")
        assert committed_records(engine) == 0
        assert observed == []
        assert runtime.case("C2").state == "submitted"  # the session reads its own writes
        start(runtime, "C3")
        assert committed_records(engine) == 3
        assert len(observed) == 3
        start(runtime, "C4")
        assert committed_records(engine) == 3
    assert committed_records(engine) == 4
    assert [d.case.id for d in observed if d.case] == ["C1", "C2", "C3", "C4"]


def test_timers_fire_inside_a_session_as_they_do_outside(
    runtime: BulkRuntime, models: Mapping[str, Model], tmp_path: Path
) -> None:
    later = instant("2026-07-01T00:00:00+07:00")  # past every rung of the verification ladder
    with runtime.session(commit_every=1_000):
        start(runtime, "C1")
        runtime.advance_to(later)
        inside = [r.hash for r in runtime.history("C1")]
    reference = BulkRuntime(store.open_engine(_fresh_sqlite(tmp_path)), models, VirtualClock(T0))
    start(reference, "C1")
    reference.advance_to(later)
    assert inside == [r.hash for r in reference.history("C1")]
    assert [r.hash for r in runtime.history("C1")] == inside
    assert len(inside) > 2  # the verification lapse escalated


def test_an_error_rolls_the_session_back_to_its_last_commit_and_ends_it(
    runtime: BulkRuntime, engine: Engine, observed: list[Decision]
) -> None:
    # C3's verify writes outbox key C3:2:0 (its routed effect): taking that key, under a unique
    # index only this test adds, makes that write fail.
    with engine.begin() as conn:
        conn.execute(text("CREATE UNIQUE INDEX test_only_uq ON outbox (idempotency_key)"))
        conn.execute(
            outbox.insert(),
            {
                "case_id": "C3",
                "seq": 2,
                "idempotency_key": "C3:2:0",
                "kind": "notify",
                "target": "x",
                "payload": "{}",
                "attempts": 0,
                "next_attempt_us": 0,
            },
        )
    with runtime.session(commit_every=2):
        start(runtime, "C1", "C2")  # committed
        start(runtime, "C3")  # not yet
        with pytest.raises(IntegrityViolationError, match=r"(?i)unique"):
            runtime.execute([SignalCommand("C3", VERIFY)], T0)
        with pytest.raises(LaporError, match="rolled back"):
            start(runtime, "C4")
    assert committed_records(engine) == 2
    assert [d.case.id for d in observed if d.case] == ["C1", "C2"]
    with pytest.raises(LaporError, match="unknown case"):
        runtime.case("C3")
    start(runtime, "C3")  # outside the session, a fresh transaction: the case starts anew
    assert runtime.case("C3").seq == 1


def test_an_exception_from_the_caller_rolls_back_what_was_not_committed(
    runtime: BulkRuntime, engine: Engine
) -> None:
    with pytest.raises(RuntimeError, match="caller"), runtime.session(commit_every=10):
        start(runtime, "C1")
        raise RuntimeError("caller gave up")
    assert committed_records(engine) == 0


def test_sessions_do_not_nest(runtime: BulkRuntime) -> None:
    outer = runtime.session()
    with outer, pytest.raises(LaporError, match="already open"), runtime.session():
        pass


def _fresh_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    upgrade(url)
    return url
