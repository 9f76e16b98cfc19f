"""SQLite shards: several processes on one database file, each deciding outside the write lock
and writing version-checked. What another process changed in between is decided again."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine

from engine.domain.errors import LaporError
from engine.domain.events import Actor, Signal, instant
from engine.domain.history import replay
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.contract import SignalCommand, StartCommand
from engine.sql import store
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import upgrade

T0 = instant("2026-03-02T10:00:00+07:00")
INTAKE = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
VERIFY = Signal("verify", Actor("admin", "nasional"), {"agency": "kemenkes"})


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'shards.db'}"
    upgrade(url)
    engine = store.open_engine(url)
    yield engine
    engine.dispose()


class InterruptedRuntime(EmbeddedRuntime):
    """Between reading its cases and writing its decisions, another process signals C1."""

    other: EmbeddedRuntime | None = None

    def _after_load(self, conn: Connection, tracked: Mapping[str, Any]) -> None:
        other, self.other = self.other, None
        if other is not None and "C1" in tracked:
            assert other.signal("C1", VERIFY, at=T0).accepted


def test_a_case_changed_between_read_and_write_is_decided_again(
    sqlite_engine: Engine, models: Mapping[str, Model]
) -> None:
    ours = InterruptedRuntime(sqlite_engine, models, VirtualClock(T0), shard=(0, 2))
    theirs = EmbeddedRuntime(sqlite_engine, models, VirtualClock(T0), shard=(1, 2))
    ours.execute([StartCommand("sp4n-lapor", c, INTAKE) for c in ("C1", "C2")], T0)
    ours.other = theirs

    # Both verify C1. We decided ours on the C1 we read, but their verification committed
    # before our write: the version check refuses our write, C1 is decided again as it now is
    # (already verified: ours is refused), and C2's decision in the same batch is kept.
    decisions = ours.execute([SignalCommand("C1", VERIFY), SignalCommand("C2", VERIFY)], T0)

    assert decisions[0].rejection is not None and decisions[0].rejection.code == "wrong_state"
    assert decisions[1].accepted
    for case_id in ("C1", "C2"):
        records = ours.history(case_id)
        assert [r.event.get("name") for r in records] == [None, "verify"], case_id
        assert replay(ours.model_of(case_id), records).ok


def test_shards_are_for_sqlite(pg_url: str, models: Mapping[str, Model]) -> None:
    upgrade(pg_url)
    engine = store.open_engine(pg_url)
    try:
        with pytest.raises(LaporError, match="shards are for SQLite"):
            EmbeddedRuntime(engine, models, VirtualClock(T0), shard=(0, 2))
    finally:
        engine.dispose()


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0)])
def test_a_shard_outside_its_count_is_refused(
    sqlite_engine: Engine, models: Mapping[str, Model], shard: tuple[int, int]
) -> None:
    with pytest.raises(LaporError, match="0 <= index < count"):
        EmbeddedRuntime(sqlite_engine, models, VirtualClock(T0), shard=shard)
