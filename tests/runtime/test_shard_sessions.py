"""A shard's session: decisions held in memory across calls, written at each commit.

The demo's shard processes run in one. It must record exactly the histories a plain runtime
records, find due cases both among the rows it has not read and among the cases it holds (whose
rows are stale until it commits), and refuse to commit over a case another process changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import Engine, func, select

from engine.domain.errors import LaporError
from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.contract import SignalCommand, StartCommand
from engine.runtime.errors import ConcurrencyError
from engine.sql import store
from engine.sql.bulk import BulkRuntime
from engine.sql.migrations import upgrade
from engine.sql.tables import history

WORKFLOW = "sp4n-lapor"
T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
VERIFY = Signal("verify", Actor("admin", "nasional"), {"agency": "kemenkes"})
# Shard (0, 2): ids whose last character has an even code point.
EARLY = [f"C{n}" for n in range(0, 20, 2)]
LATE = [f"D{n}" for n in range(0, 20, 2)]


def _engine(tmp_path: Path, name: str) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / name}"
    upgrade(url)
    engine = store.open_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from _engine(tmp_path, "shards.db")


@pytest.fixture
def reference_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from _engine(tmp_path, "reference.db")


def start(runtime: BulkRuntime, ids: list[str]) -> None:
    outcomes = runtime.execute([StartCommand(WORKFLOW, i, INTAKE) for i in ids], T0)
    assert all(o.decision.accepted for o in outcomes)


def committed_records(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(history)).scalar_one())


def hashes(runtime: BulkRuntime, ids: list[str]) -> dict[str, list[str]]:
    return {case_id: [r.hash for r in runtime.history(case_id)] for case_id in ids}


def test_a_shard_session_records_the_histories_a_plain_runtime_records(
    sqlite_engine: Engine, reference_engine: Engine, models: Mapping[str, Model]
) -> None:
    """EARLY cases start (and are committed) before the session, LATE ones inside it. Half of
    each are verified before their verification deadline, which every case shares: their rows
    then name a deadline that has passed by the time the clock gets there, and must not fire.
    Batches of two make the scan stop inside a run of equal deadlines again and again."""

    def run(runtime: BulkRuntime, inside: BulkRuntime | None) -> None:
        start(runtime, EARLY)
        session = runtime.session(commit_every=25) if inside is not None else None
        if session is not None:
            session.__enter__()
        start(runtime, LATE)
        verified = [(c, VERIFY) for c in EARLY[::2] + LATE[::2]]
        runtime.execute([SignalCommand(c, s) for c, s in verified], T0 + timedelta(hours=2))
        for day in range(1, 90):
            runtime.advance_to(T0 + timedelta(days=day))
        if session is not None:
            session.__exit__(None, None, None)

    reference = BulkRuntime(reference_engine, models, VirtualClock(T0), batch_size=2)
    run(reference, None)
    sharded = BulkRuntime(sqlite_engine, models, VirtualClock(T0), batch_size=2, shard=(0, 2))
    with structlog.testing.capture_logs() as logs:
        run(sharded, sharded)
    # A stale row was never taken for the case: only hand-edited rows are reported as stale.
    assert [e for e in logs if e["event"] == "runtime.stale_deadline"] == []

    expected = hashes(reference, EARLY + LATE)
    assert hashes(sharded, EARLY + LATE) == expected
    # Every case lapsed at least once; the verified ones lapsed at their agency's deadlines.
    assert all(len(h) >= 3 for h in expected.values())
    assert all(len(expected[c]) > 3 for c in EARLY[::2] + LATE[::2])
    assert committed_records(sqlite_engine) == committed_records(reference_engine)


def test_more_cases_due_at_one_instant_than_a_batch_all_fire_in_one_advance(
    sqlite_engine: Engine, models: Mapping[str, Model]
) -> None:
    runtime = BulkRuntime(sqlite_engine, models, VirtualClock(T0), batch_size=2, shard=(0, 2))
    start(runtime, EARLY)  # one verification deadline for all ten
    due = runtime.case(EARLY[0]).next_due
    assert due is not None
    with runtime.session(commit_every=1_000):
        runtime.advance_to(due + timedelta(minutes=1))
        lapsed = [c for c in EARLY if runtime.case(c).escalation_level > 0]
    assert lapsed == EARLY


def test_a_shard_session_writes_at_commit_and_its_reads_commit_first(
    sqlite_engine: Engine, models: Mapping[str, Model]
) -> None:
    seen = []
    runtime = BulkRuntime(
        sqlite_engine, models, VirtualClock(T0), shard=(0, 2), observer=seen.append
    )
    with runtime.session(commit_every=100):
        start(runtime, ["C0", "C2"])
        runtime.execute([SignalCommand("C2", VERIFY)], T0)
        assert committed_records(sqlite_engine) == 0
        assert seen == []
        assert runtime.case("C2").state == "disposed"  # written first, then read
        assert committed_records(sqlite_engine) == 3
        assert len(seen) == 3
        start(runtime, ["C4"])
        assert committed_records(sqlite_engine) == 3
    assert committed_records(sqlite_engine) == 4


@pytest.mark.parametrize("used", ["inside", "before"])
def test_a_used_key_replays_inside_a_shard_session(
    sqlite_engine: Engine, models: Mapping[str, Model], used: str
) -> None:
    """Used inside the session (held, not yet written) or before it (read from the database)."""
    runtime = BulkRuntime(sqlite_engine, models, VirtualClock(T0), shard=(0, 2))
    command = SignalCommand("C0", Signal("verify", VERIFY.actor, VERIFY.data, key="verify-C0"))
    start(runtime, ["C0"])
    first = runtime.execute([command], T0)[0] if used == "before" else None
    with runtime.session(commit_every=100):
        if first is None:
            first = runtime.execute([command], T0)[0]
        again = runtime.execute([command], T0)[0]
        assert committed_records(sqlite_engine) == (2 if used == "before" else 1)
    assert not first.replayed and again.replayed
    assert again.decision.record == first.decision.record
    assert committed_records(sqlite_engine) == 2


def test_a_case_changed_by_another_process_fails_the_shard_sessions_commit(
    sqlite_engine: Engine, models: Mapping[str, Model]
) -> None:
    ours = BulkRuntime(sqlite_engine, models, VirtualClock(T0), shard=(0, 2))
    theirs = BulkRuntime(sqlite_engine, models, VirtualClock(T0))
    start(ours, ["C0", "C2"])
    with ours.session(commit_every=100):
        ours.execute([SignalCommand("C0", VERIFY), SignalCommand("C2", VERIFY)], T0)
        later = T0 + timedelta(minutes=5)  # not the very decision ours holds
        assert theirs.signal("C0", VERIFY, at=later).accepted  # committed while ours is held
        with pytest.raises(ConcurrencyError) as raised:
            ours.case("C2")  # a read commits first, and the commit finds C0 moved
        assert raised.value.case_ids == ("C0",)
        with pytest.raises(LaporError, match="rolled back"):
            ours.execute([SignalCommand("C2", VERIFY)], T0)  # the session is over
    # Theirs stands; none of the session's decisions were written.
    assert len(ours.history("C0")) == 2
    assert ours.case("C2").state == "submitted"
