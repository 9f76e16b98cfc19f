"""The embedded runtime's storage contract: atomic group commits, optimistic concurrency,
idempotency, case rows that wake at their clocks' deadlines, an outbox without the reporter,
replayable histories, migrations that match the tables. Real SQLite files (and a real PostgreSQL
where it matters).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy import inspect as sqlalchemy_inspect

from engine.domain.errors import LaporError
from engine.domain.events import Actor, Signal, instant, utc_text
from engine.domain.history import replay
from engine.domain.machine import decide, wake_at
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.contract import SignalCommand, StartCommand
from engine.runtime.errors import (
    ConcurrencyError,
    IntegrityViolationError,
    KeyReuseError,
    StoreError,
)
from engine.runtime.memory import MemoryRuntime
from engine.sql import store
from engine.sql.batch import WriteBatch, write_batch
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import alembic_config, current_revision, upgrade
from engine.sql.tables import cases, history, idempotency_keys, metadata, outbox

WORKFLOW = "sp4n-lapor"
T0 = instant("2026-03-02T10:00:00+07:00")  # a Monday; verification due Thu 5 Mar 23:59:59 WIB
LATER = instant("2026-07-01T00:00:00+07:00")  # past every ladder's last rung
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "Obat"}
ADMIN = Actor("admin", "nasional")
VERIFY = Signal("verify", ADMIN, {"agency": "kemenkes", "tier": "simple"})


class FixedClock:
    """A wall clock that reads a fixed instant (not a VirtualClock: fire_due decides at now)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
def runtime(engine: Engine, models: Mapping[str, Model]) -> EmbeddedRuntime:
    return EmbeddedRuntime(engine, models, VirtualClock(T0))


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: equal snapshots mean nothing was written."""
    with engine.connect() as conn:
        return {
            table.name: sorted(tuple(row) for row in conn.execute(select(table)))
            for table in metadata.sorted_tables
        }


def start_cases(runtime: EmbeddedRuntime, *ids: str, reporter: Mapping[str, Any] | None = None):
    commands = [StartCommand(WORKFLOW, case_id, INTAKE, dict(reporter or {})) for case_id in ids]
    outcomes = runtime.execute(commands, T0)
    assert all(o.decision.accepted for o in outcomes)


def stored_deadline(engine: Engine, case_id: str) -> int | None:
    """The case row's ``next_due_us``: what the timer loop wakes the case by."""
    with engine.connect() as conn:
        return conn.scalar(select(cases.c.next_due_us).where(cases.c.id == case_id))


def running_deadlines(runtime: EmbeddedRuntime, case_id: str) -> dict[str, datetime]:
    return {c.name: c.due_at for c in runtime.case(case_id).clocks if c.running and c.due_at}


def assert_wakes_at_earliest_deadline(runtime: EmbeddedRuntime, case_id: str) -> None:
    deadlines = running_deadlines(runtime, case_id)
    expected = store.epoch_us(min(deadlines.values())) if deadlines else None
    assert stored_deadline(runtime.engine, case_id) == expected


# --- migrations -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrated_schema_equals_the_table_definitions(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'm.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    upgrade(url)
    upgrade(url)  # idempotent
    eng = store.open_engine(url)
    try:
        assert current_revision(eng) == "0010"
        with eng.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        eng.dispose()


def test_migration_0003_moves_timers_into_case_rows_and_back(
    engine: Engine, models: Mapping[str, Model]
) -> None:
    """Down to 0001 (a timers table, rebuilt from the case bodies, with armed_seq) and up again:
    every running clock has its timer row below 0003, and the cases fire afterwards."""
    url = engine.url.render_as_string(hide_password=False)
    runtime = EmbeddedRuntime(engine, models, VirtualClock(T0))
    start_cases(runtime, "C1", "C2", "C3")
    runtime.signal("C2", VERIFY, at=T0 + timedelta(hours=1))  # two running clocks
    runtime.signal("C3", Signal("archive", ADMIN, {"reason": "spam"}), at=T0)  # none
    expected = sorted(
        (case_id, name, due.isoformat(), store.epoch_us(wake_at(due)))
        for case_id in ("C1", "C2", "C3")
        for name, due in running_deadlines(runtime, case_id).items()
    )
    query = "SELECT case_id, clock, due_at, wake_us FROM timers ORDER BY case_id, clock"

    command.downgrade(alembic_config(url), "0001")
    with engine.connect() as conn:
        assert conn.exec_driver_sql(query).all() == expected and len(expected) == 3
    upgrade(url)

    with engine.connect() as conn:
        assert "timers" not in sqlalchemy_inspect(conn).get_table_names()
    upgraded = EmbeddedRuntime(engine, models, VirtualClock(T0))
    upgraded.advance_to(LATER)
    assert upgraded.case("C1").outcome == "referred_to_ombudsman"
    assert upgraded.case("C2").escalation_level > 0


def test_unmigrated_database_says_how_to_fix_it(
    tmp_path: Path, models: Mapping[str, Model]
) -> None:
    eng = store.open_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(StoreError, match="lapor db upgrade"):
        EmbeddedRuntime(eng, models, VirtualClock(T0))


def test_sqlite_is_durable_and_checks_foreign_keys(tmp_path: Path) -> None:
    eng = store.open_engine(f"sqlite:///{tmp_path / 'lapor.db'}")
    try:
        with eng.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        eng.dispose()


# --- atomicity --------------------------------------------------------------------------------


def test_a_failure_mid_batch_leaves_nothing_of_the_batch_visible(
    runtime: EmbeddedRuntime, engine: Engine
) -> None:
    start_cases(runtime, "C1", "C2", "C3")
    # C2's verify will write history record C2:2: make that slot taken, so the batch fails on
    # its second case's history insert, after every case update and C1's record were sent.
    with engine.begin() as conn:
        conn.execute(
            history.insert(),
            {
                "case_id": "C2",
                "seq": 2,
                "format": 1,
                "at": "2026-03-02T03:00:00+00:00",
                "actor": "system",
                "model_hash": "0" * 64,
                "event": "{}",
                "effects": "[]",
                "prev_hash": "0" * 64,
                "hash": "f" * 64,
            },
        )
    before = snapshot(engine)

    with pytest.raises(IntegrityViolationError, match="history"):
        runtime.execute(
            [SignalCommand("C1", VERIFY), SignalCommand("C2", VERIFY), SignalCommand("C3", VERIFY)],
            T0,
        )

    assert snapshot(engine) == before
    assert [runtime.case(c).state for c in ("C1", "C2", "C3")] == ["submitted"] * 3


def test_a_rejection_writes_nothing(runtime: EmbeddedRuntime, engine: Engine) -> None:
    start_cases(runtime, "C1")
    before = snapshot(engine)
    wrong_role = Signal("verify", Actor("agency", "kemenkes"), {"agency": "kemenkes"}, "key-1")
    decision = runtime.signal("C1", wrong_role)
    assert decision.rejection is not None and decision.rejection.code == "wrong_role"
    assert snapshot(engine) == before


def test_a_second_start_of_the_same_case_is_refused(
    runtime: EmbeddedRuntime, engine: Engine
) -> None:
    start_cases(runtime, "C1")
    before = snapshot(engine)
    decisions = runtime.execute([StartCommand(WORKFLOW, "C1", INTAKE)], T0)
    assert decisions[0].rejection is not None
    assert decisions[0].rejection.code == "already_started"
    assert snapshot(engine) == before


def test_one_batch_applies_a_cases_signals_in_order(runtime: EmbeddedRuntime) -> None:
    outcomes = runtime.execute(
        [
            StartCommand(WORKFLOW, "C1", INTAKE),
            SignalCommand("C1", VERIFY),
            SignalCommand(
                "C1", Signal("follow_up", Actor("agency", "kemenkes"), {"response": "ok"})
            ),
        ],
        T0,
    )
    assert [o.decision.record.seq for o in outcomes if o.decision.record] == [1, 2, 3]
    assert runtime.case("C1").state == "in_progress"
    assert_wakes_at_earliest_deadline(runtime, "C1")
    assert replay(runtime.model_of("C1"), runtime.history("C1")).ok


# --- optimistic concurrency -------------------------------------------------------------------


def test_store_refuses_a_write_decided_from_a_stale_version(
    runtime: EmbeddedRuntime, engine: Engine
) -> None:
    start_cases(runtime, "C1", "C2")
    before = snapshot(engine)
    with engine.connect() as conn:
        loaded = store.load_cases(conn, ["C1", "C2"])
    model = runtime.model_of("C1")
    batch = WriteBatch()
    for case_id, read_version in (("C1", loaded["C1"].version), ("C2", loaded["C2"].version - 1)):
        decided = decide(model, loaded[case_id].case, VERIFY, T0).case
        assert decided is not None
        batch.update_case(decided, read_version, read_version + 1)  # C2: decided from v0

    with pytest.raises(ConcurrencyError) as caught, engine.begin() as conn:
        write_batch(conn, batch)

    assert caught.value.case_ids == ("C2",)
    assert snapshot(engine) == before


class ContendedRuntime(EmbeddedRuntime):
    """Another writer bumps C2's version between our read and our write, once."""

    bumped = 0

    def _after_load(self, conn: Connection, tracked: Mapping[str, Any]) -> None:
        if not self.bumped and "C2" in tracked:
            conn.execute(
                cases.update().where(cases.c.id == "C2").values(version=cases.c.version + 1)
            )
            self.bumped += 1


def test_a_version_conflict_retries_that_case_without_losing_the_rest(
    engine: Engine, models: Mapping[str, Model]
) -> None:
    runtime = ContendedRuntime(engine, models, VirtualClock(T0))
    start_cases(runtime, "C1", "C2", "C3")

    decisions = runtime.execute(
        [SignalCommand("C1", VERIFY), SignalCommand("C2", VERIFY), SignalCommand("C3", VERIFY)], T0
    )

    assert runtime.bumped == 1
    assert [d.accepted for d in decisions] == [True, True, True]
    assert [d.case.id for d in decisions if d.case] == ["C1", "C2", "C3"]
    for case_id in ("C1", "C2", "C3"):
        assert [r.seq for r in runtime.history(case_id)] == [1, 2]
        assert runtime.case(case_id).state == "disposed"


# --- idempotency ------------------------------------------------------------------------------


def test_a_start_retried_with_its_key_returns_the_first_case(
    runtime: EmbeddedRuntime, engine: Engine
) -> None:
    first = runtime.execute([StartCommand(WORKFLOW, "A", INTAKE, key="k-start")], T0)[0]
    before = snapshot(engine)
    again = runtime.execute([StartCommand(WORKFLOW, "A", INTAKE, key="k-start")], T0)[0]

    assert again.replayed and not first.replayed
    assert again.decision.case is not None and again.decision.case.id == "A"
    assert again.decision.record == first.decision.record
    assert snapshot(engine) == before
    # The same key for another case (or another complaint) is another request: refused, and
    # nothing of it is stored.
    with pytest.raises(KeyReuseError, match="different request"):
        runtime.execute([StartCommand(WORKFLOW, "B", INTAKE, key="k-start")], T0)
    assert snapshot(engine) == before
    with pytest.raises(LaporError, match="unknown case"):
        runtime.case("B")


def test_a_key_used_twice_in_one_batch_decides_once(runtime: EmbeddedRuntime) -> None:
    outcomes = runtime.execute(
        [
            StartCommand(WORKFLOW, "A", INTAKE, key="k"),
            StartCommand(WORKFLOW, "A", INTAKE, key="k"),
        ],
        T0,
    )
    assert [o.replayed for o in outcomes] == [False, True]
    assert outcomes[1].decision.record == outcomes[0].decision.record
    with pytest.raises(KeyReuseError):
        runtime.execute(
            [
                StartCommand(WORKFLOW, "C", INTAKE, key="k2"),
                StartCommand(WORKFLOW, "D", INTAKE, key="k2"),
            ],
            T0,
        )


def test_a_signal_retried_with_its_key_is_not_applied_twice(
    runtime: EmbeddedRuntime, engine: Engine
) -> None:
    start_cases(runtime, "C1", "C2")
    keyed = dataclasses.replace(VERIFY, key="sig-1")
    first = runtime.execute([SignalCommand("C1", keyed)], T0)[0]
    before = snapshot(engine)
    again = runtime.execute([SignalCommand("C1", keyed)], T0 + timedelta(hours=1))[0]

    assert again.replayed and again.decision.accepted
    assert again.decision.record == first.decision.record
    assert again.decision.effects == first.decision.effects
    assert snapshot(engine) == before
    with pytest.raises(KeyReuseError, match=r"different request \(case C1\)"):
        runtime.execute([SignalCommand("C2", keyed)], T0)


def test_a_rejected_keyed_signal_can_be_retried_corrected(runtime: EmbeddedRuntime) -> None:
    start_cases(runtime, "C1")
    bad = Signal("hold", ADMIN, {}, "k-hold")  # missing missing_info
    assert runtime.signal("C1", bad).rejection is not None
    fixed = Signal("hold", ADMIN, {"missing_info": "lokasi"}, "k-hold")
    assert runtime.signal("C1", fixed).accepted


# --- timers -----------------------------------------------------------------------------------


def test_case_row_wakes_at_its_earliest_running_deadline(
    runtime: EmbeddedRuntime, engine: Engine
) -> None:
    start_cases(runtime, "C1", "C2")
    assert set(running_deadlines(runtime, "C1")) == {"verification"}
    assert_wakes_at_earliest_deadline(runtime, "C1")

    runtime.signal(
        "C1", Signal("hold", ADMIN, {"missing_info": "lokasi"}), at=T0 + timedelta(hours=1)
    )
    assert stored_deadline(engine, "C1") is None  # paused: nothing to wake

    assert runtime.keyring is not None
    runtime.signal(
        "C1",
        Signal("supply_info", Actor("reporter"), {"info": "Jl. Sudirman"}),
        at=T0 + timedelta(days=2),
        reporter_token=runtime.keyring.reporter_token("C1"),
    )
    assert_wakes_at_earliest_deadline(runtime, "C1")  # re-armed: the resumed deadline

    runtime.signal("C1", VERIFY, at=T0 + timedelta(days=2, hours=1))
    assert set(running_deadlines(runtime, "C1")) == {"first_follow_up", "completion"}
    assert_wakes_at_earliest_deadline(runtime, "C1")

    runtime.signal("C2", Signal("archive", ADMIN, {"reason": "spam"}), at=T0 + timedelta(days=3))
    assert stored_deadline(engine, "C2") is None


def test_a_deadline_column_that_disagrees_with_its_case_is_rederived_not_fired(
    runtime: EmbeddedRuntime, engine: Engine
) -> None:
    """A hand-edited ``next_due_us`` wakes the case early: nothing is decided, the column is
    rewritten from the case, and the case still lapses at its real deadline."""
    start_cases(runtime, "C1")
    real = stored_deadline(engine, "C1")
    with engine.begin() as conn:
        conn.execute(cases.update().where(cases.c.id == "C1").values(next_due_us=0))

    assert runtime.fire_due(T0, 10) == 1
    assert stored_deadline(engine, "C1") == real
    assert len(runtime.history("C1")) == 1
    assert runtime.fire_due(T0, 10) == 0
    runtime.advance_to(LATER)
    assert runtime.case("C1").escalation_level > 0


def test_a_due_clock_the_core_will_not_lapse_sets_its_case_aside(
    runtime: EmbeddedRuntime, engine: Engine
) -> None:
    """A case body edited to be closed with a clock still running cannot be decided: the timer
    loop sets it aside with the reason, instead of claiming it again forever or stopping."""
    start_cases(runtime, "C1")
    with engine.begin() as conn:
        body = json.loads(conn.scalar(select(cases.c.body).where(cases.c.id == "C1")))
        body["outcome"] = "resolved"
        edited = {"body": json.dumps(body), "version": cases.c.version + 1}
        conn.execute(cases.update().where(cases.c.id == "C1").values(edited))

    runtime.advance_to(LATER)

    with engine.connect() as conn:
        [aside] = store.list_quarantined(conn)
    assert aside.case_id == "C1" and "clock 'verification'" in aside.reason
    assert "is past but does not lapse" in aside.reason


def test_lapses_follow_the_memory_runtime_and_leave_no_timers(
    runtime: EmbeddedRuntime, engine: Engine, models: Mapping[str, Model]
) -> None:
    memory = MemoryRuntime(models, VirtualClock(T0))
    for rt in (runtime, memory):
        rt.execute([StartCommand(WORKFLOW, c, INTAKE) for c in ("C1", "C2")], T0)
        rt.execute([SignalCommand("C2", VERIFY)], T0 + timedelta(hours=2))
        rt.advance_to(LATER)
    for case_id in ("C1", "C2"):
        assert runtime.history(case_id) == memory.history(case_id)
        assert runtime.case(case_id) == memory.case(case_id)
        assert runtime.case(case_id).outcome == "referred_to_ombudsman"
        assert stored_deadline(engine, case_id) is None


def test_on_the_wall_clock_a_late_timer_decides_every_lapse_once(
    engine: Engine, models: Mapping[str, Model]
) -> None:
    EmbeddedRuntime(engine, models, VirtualClock(T0)).start("sp4n-lapor", "C1", INTAKE, at=T0)
    late = instant("2026-03-20T12:00:00+07:00")  # both admin rungs passed while we were down
    wall = EmbeddedRuntime(engine, {}, FixedClock(late))

    assert wall.fire_due(late) == 1
    assert wall.fire_due(late) == 0

    records = wall.history("C1")
    assert len(records) == 2 and records[1].at == utc_text(late)
    lapses = [(e["clock"], e["level"]) for e in records[1].effects if e["kind"] == "lapsed"]
    assert lapses == [("verification", 0), ("verification", 1)]
    assert wall.case("C1").outcome == "referred_to_ombudsman"
    assert replay(wall.model_of("C1"), records).ok


def test_a_signal_from_a_clock_behind_the_case_is_decided_at_its_last_decision(
    engine: Engine, models: Mapping[str, Model]
) -> None:
    """Two clients a few seconds apart (or lapses recorded ahead of the wall clock by a catch-up
    run): the later call is decided at the case's last decision, never a crash for every later
    call to the case."""
    ahead = EmbeddedRuntime(engine, models, FixedClock(T0 + timedelta(seconds=5)))
    behind = EmbeddedRuntime(engine, models, FixedClock(T0))
    ahead.start("sp4n-lapor", "C1", INTAKE)

    verified = behind.signal("C1", VERIFY)

    assert verified.accepted
    assert [r.at for r in behind.history("C1")] == [utc_text(T0 + timedelta(seconds=5))] * 2
    assert replay(behind.model_of("C1"), behind.history("C1")).ok
    late = instant("2026-03-20T12:00:00+07:00")
    EmbeddedRuntime(engine, {}, FixedClock(late)).fire_due(late)  # follow-up lapses up to now
    assert behind.fire_due(T0) == 0  # a runtime behind the case finds nothing due, and no error
    answered = behind.signal(
        "C1", Signal("follow_up", Actor.parse("agency:kemenkes"), {"response": "x"})
    )
    assert answered.accepted and answered.record is not None
    assert answered.record.at == behind.history("C1")[-2].at


# --- the outbox and the reporter --------------------------------------------------------------


def test_outbox_rows_carry_the_agency_view_never_the_reporter(
    runtime: EmbeddedRuntime, engine: Engine
) -> None:
    reporter = {"name": "Budi Santoso", "email": "budi@example.org", "phone": "081234567890"}
    start_cases(runtime, "C1", reporter=reporter)
    runtime.signal("C1", VERIFY, at=T0 + timedelta(hours=1))
    runtime.advance_to(LATER)

    with engine.connect() as conn:
        rows = list(conn.execute(select(outbox).order_by(outbox.c.id)))
        stored = [
            json.dumps([list(r) for r in conn.execute(select(t))])
            for t in (cases, history, outbox, idempotency_keys)
        ]
    assert {r.kind for r in rows} == {"notify", "routed", "escalated"}
    for row in rows:
        payload = json.loads(row.payload)
        assert set(payload) == {"case_id", "seq", "effect", "case"}
        assert set(payload["case"]) == {
            "id",
            "workflow",
            "state",
            "status",
            "agency",
            "region",
            "escalation_level",
            "data",
        }
        index = int(row.idempotency_key.rsplit(":", 1)[1])
        assert row.idempotency_key == f"C1:{row.seq}:{index}"
        assert payload["effect"] == runtime.history("C1")[row.seq - 1].effects[index]
    for text_ in stored:
        for secret in ("Budi", "budi@example.org", "081234567890"):
            assert secret not in text_
    assert runtime.reporter("C1") == reporter


# --- replay and models ------------------------------------------------------------------------


def test_stored_histories_replay_to_the_stored_cases(runtime: EmbeddedRuntime) -> None:
    start_cases(runtime, "C1", "C2", "C3")
    runtime.execute(
        [
            SignalCommand("C1", VERIFY),
            SignalCommand("C2", Signal("hold", ADMIN, {"missing_info": "x"})),
        ],
        T0,
    )
    runtime.advance_to(LATER)
    for case_id in ("C1", "C2", "C3"):
        report = replay(runtime.model_of(case_id), runtime.history(case_id))
        assert report.ok, report.problems
        assert report.case == runtime.case(case_id)


def test_cases_keep_the_model_they_pinned(engine: Engine, model: Model) -> None:
    revised = dataclasses.replace(model, title="SP4N-LAPOR! (revisi)")
    assert revised.hash != model.hash
    EmbeddedRuntime(engine, {WORKFLOW: model}, VirtualClock(T0)).start(
        WORKFLOW, "OLD", INTAKE, at=T0
    )
    EmbeddedRuntime(engine, {WORKFLOW: revised}, VirtualClock(T0)).start(
        WORKFLOW, "NEW", INTAKE, at=T0
    )

    bare = EmbeddedRuntime(engine, {}, VirtualClock(T0))  # knows no model: loads them by hash
    for case_id, pinned in (("OLD", model), ("NEW", revised)):
        decision = bare.signal(case_id, VERIFY, at=T0 + timedelta(hours=1))
        assert decision.record is not None and decision.record.model_hash == pinned.hash
        assert bare.model_of(case_id).hash == pinned.hash
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM definitions")).scalar() == 2


# --- concurrency between writers --------------------------------------------------------------


def test_two_sqlite_writers_take_turns_and_fire_each_lapse_once(
    tmp_path: Path, models: Mapping[str, Model]
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    upgrade(url)
    setup = store.open_engine(url)
    ids = [f"C{i:03d}" for i in range(300)]
    EmbeddedRuntime(setup, models, VirtualClock(T0)).execute(
        [StartCommand(WORKFLOW, c, INTAKE) for c in ids], T0
    )
    errors: list[BaseException] = []

    def worker() -> None:  # its own engine: separate connections lock like separate processes
        eng = store.open_engine(url)
        try:
            rt = EmbeddedRuntime(eng, {}, VirtualClock(T0))
            while rt.fire_due(LATER, 20):
                pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    reader = EmbeddedRuntime(setup, {}, VirtualClock(T0))
    for case_id in ids:
        lapses = [
            (e["clock"], e["due_at"], e["level"])
            for r in reader.history(case_id)
            for e in r.effects
            if e["kind"] == "lapsed"
        ]
        assert len(lapses) == len(set(lapses)) == 2
        assert reader.case(case_id).outcome == "referred_to_ombudsman"
    setup.dispose()


def test_postgres_claims_skip_cases_another_worker_holds(
    pg_url: str, models: Mapping[str, Model]
) -> None:
    upgrade(pg_url)
    eng = store.open_engine(pg_url)
    try:
        ids = [f"C{i:02d}" for i in range(10)]
        EmbeddedRuntime(eng, models, VirtualClock(T0)).execute(
            [StartCommand(WORKFLOW, c, INTAKE) for c in ids], T0
        )
        now_us = store.epoch_us(LATER)
        with eng.connect() as first, eng.connect() as second:
            with first.begin():
                held = store.claim_due(first, now_us, 4, lock=True)
                assert len({t.case_id for t in held}) == 4
                with second.begin():
                    # would raise instead of waiting if SKIP LOCKED were not honoured
                    second.execute(text("SET LOCAL lock_timeout = '2s'"))
                    rest = store.claim_due(second, now_us, 100, lock=True)
                assert {t.case_id for t in rest} == set(ids) - {t.case_id for t in held}
            with second.begin():
                assert {t.case_id for t in store.claim_due(second, now_us, 100, lock=True)} == set(
                    ids
                )
    finally:
        eng.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://lapor:hunter2@db.example:notaport/lapor",
        "postgresql+psycopg://lapor@db.example:notaport/lapor?password=hunter2",
        "postgres://lapor:hunter2@db.example:notaport/lapor",
    ],
)
def test_a_database_url_with_a_password_never_appears_in_an_error(url: str) -> None:
    with pytest.raises(StoreError) as refused:
        store.open_engine(url)
    assert "hunter2" not in str(refused.value) and "***" in str(refused.value)
    assert refused.value.__cause__ is None  # the driver's text, which quotes the URL, is dropped
    assert store.safe_url("sqlite:///lapor.db") == "sqlite:///lapor.db"
