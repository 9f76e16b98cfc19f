"""The commit queue (``engine.runtime.commit_queue``): callers waiting together are decided by
one ``execute`` and committed together, each gets exactly its own outcomes, and one caller's
failure is never another's. A real embedded runtime on an SQLite file (and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime

import pytest
from sqlalchemy import Engine, func, select

from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.commit_queue import CommitQueue, QueuedRuntime
from engine.runtime.contract import Command, Outcome, SignalCommand, StartCommand
from engine.runtime.identity import KEY_ENV, KEY_FILE_ENV, IdentityError
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.tables import cases

WORKFLOW = "sp4n-lapor"
T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "Obat"}
VERIFY = Signal("verify", Actor("admin", "nasional"), {"agency": "kemenkes", "tier": "simple"})


class HeldRuntime(EmbeddedRuntime):
    """The embedded runtime, its first ``execute`` held until released (so the callers that
    come meanwhile queue up), every ``execute``'s command count written down."""

    def __init__(self, engine: Engine, models: Mapping[str, Model]) -> None:
        super().__init__(engine, models, VirtualClock(T0))  # no key ring: no identities
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[int] = []

    def execute(self, commands: Sequence[Command], at: datetime | None = None) -> list[Outcome]:
        self.batches.append(len(commands))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(30)
        return super().execute(commands, at)


def _queued(engine: Engine, models: Mapping[str, Model]) -> tuple[CommitQueue, HeldRuntime]:
    held = HeldRuntime(engine, models)
    return CommitQueue(lambda: held), held


def _start(case_id: str, reporter: Mapping[str, str] | None = None) -> StartCommand:
    return StartCommand(WORKFLOW, case_id, INTAKE, dict(reporter or {}))


def test_callers_waiting_together_share_one_execute_and_each_gets_its_own_outcome(
    engine: Engine, models: Mapping[str, Model]
) -> None:
    queue, held = _queued(engine, models)
    try:
        first = queue.submit([_start("LAPOR-Q-0")])
        assert held.entered.wait(30)
        waiting = [queue.submit([_start(f"LAPOR-Q-{i}")]) for i in range(1, 6)]
        waiting.append(queue.submit([SignalCommand("LAPOR-Q-1", VERIFY)]))
        held.release.set()
        outcomes = [f.result(30) for f in [first, *waiting]]
    finally:
        queue.close()
    assert held.batches == [1, 6]  # the five starts and the signal behind them: one execute
    assert [o[0].case_id for o in outcomes] == [f"LAPOR-Q-{i}" for i in range(6)] + ["LAPOR-Q-1"]
    assert all(len(o) == 1 and o[0].accepted for o in outcomes)
    assert outcomes[-1][0].state == "disposed"  # decided after its case's start, in order
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(cases)) == 6


def test_a_caller_whose_command_fails_does_not_fail_the_others_in_its_batch(
    engine: Engine, models: Mapping[str, Model], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    queue, held = _queued(engine, models)
    try:
        first = queue.submit([_start("LAPOR-Q-0")])
        assert held.entered.wait(30)
        # An identity with no key ring to seal it: execute refuses the whole list it is in.
        failing = queue.submit([_start("LAPOR-Q-1", {"name": "Siti"})])
        fine: list[Future[list[Outcome]]] = [queue.submit([_start("LAPOR-Q-2")])]
        held.release.set()
        assert first.result(30)[0].accepted
        with pytest.raises(IdentityError, match="no key ring"):
            failing.result(30)
        assert fine[0].result(30)[0].accepted
    finally:
        queue.close()
    assert held.batches == [1, 2, 1, 1]  # the batch refused, then each caller alone
    assert QueuedRuntime(held, queue).case("LAPOR-Q-2").state == "submitted"


def test_closing_the_queue_decides_what_waits_in_it_first(
    engine: Engine, models: Mapping[str, Model]
) -> None:
    queue, held = _queued(engine, models)
    first = queue.submit([_start("LAPOR-Q-0")])
    assert held.entered.wait(30)
    later = queue.submit([_start("LAPOR-Q-1")])
    closing = threading.Thread(target=queue.close)
    closing.start()
    held.release.set()
    closing.join(30)
    assert first.result(0)[0].accepted and later.result(0)[0].accepted
    with pytest.raises(RuntimeError, match="closed"):
        queue.submit([_start("LAPOR-Q-2")])


def test_a_caller_that_gave_up_before_its_turn_is_not_decided_and_the_queue_goes_on(
    engine: Engine, models: Mapping[str, Model]
) -> None:
    queue, held = _queued(engine, models)
    try:
        first = queue.submit([_start("LAPOR-Q-0")])
        assert held.entered.wait(30)
        abandoned = queue.submit([_start("LAPOR-Q-1")])
        assert abandoned.cancel()  # as asyncio.wait_for's timeout does to the awaited future
        kept = queue.submit([_start("LAPOR-Q-2")])
        held.release.set()
        assert first.result(30)[0].accepted and kept.result(30)[0].accepted
        assert queue.execute([_start("LAPOR-Q-3")])[0].accepted  # the writer is still there
    finally:
        queue.close()
    with engine.connect() as conn:
        stored = set(conn.scalars(select(cases.c.id)))
    assert stored == {"LAPOR-Q-0", "LAPOR-Q-2", "LAPOR-Q-3"}


def test_a_writer_that_cannot_make_its_runtime_fails_the_waiting_callers_and_the_next_retries(
    engine: Engine, models: Mapping[str, Model]
) -> None:
    from engine.runtime.errors import StoreError

    attempts: list[int] = []

    def runtime() -> EmbeddedRuntime:
        attempts.append(1)
        if len(attempts) == 1:
            raise StoreError("cannot open database: the server is down")
        return EmbeddedRuntime(engine, models, VirtualClock(T0))

    queue = CommitQueue(runtime)
    try:
        with pytest.raises(StoreError, match="server is down"):
            queue.execute([_start("LAPOR-Q-0")])
        assert queue.execute([_start("LAPOR-Q-1")])[0].accepted
    finally:
        queue.close()
    assert len(attempts) == 2
