"""Crashes and concurrent workers: ``lapor run`` killed with SIGKILL at random moments and
restarted, and two workers on one PostgreSQL database, must still escalate every lapse exactly
once: every history replays, no (clock, deadline, level) lapse appears twice, none is missing
(the final cases equal the in-memory runtime's, chain heads included).

The workers run on a virtual clock (``run --until``), so weeks of deadlines pass in seconds and
each timer is decided at its own wake instant, as the in-memory runtime decides it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from engine.domain.events import Actor, Signal, instant
from engine.domain.history import replay
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.contract import SignalCommand, StartCommand
from engine.runtime.memory import MemoryRuntime
from engine.sql import store
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import upgrade
from engine.sql.tables import cases, history

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = "sp4n-lapor"
T0 = instant("2026-03-02T08:00:00+07:00")
UNTIL = instant("2026-06-30T00:00:00+07:00")  # every ladder has run out by then
REGIONS = ("ID-JK", "ID-BA", "ID-PA", "ID-JI", "ID-SN")
AGENCIES = ("kemenkes", "pemprov-bali", "pemprov-papua", "pemprov-sulsel")  # WIB, WITA, WIT
KILLS = 6


def cli_module() -> str:
    """The ``lapor`` command's module, run as ``python -m``."""
    return "engine.faces.cli.main"


def populate(runtime: EmbeddedRuntime | MemoryRuntime, count: int) -> list[str]:
    """``count`` complaints over the first morning; two in three verified (some as field
    exams, whose completion clock outlives the follow-up ladder), the rest left to lapse."""
    rng = random.Random(1708)
    ids = [f"LAPOR-CRASH-{i:05d}" for i in range(count)]
    slots: dict[int, list[str]] = {}
    for case_id in ids:
        slots.setdefault(rng.randrange(12), []).append(case_id)
    for slot, members in sorted(slots.items()):
        at = T0 + timedelta(minutes=20 * slot)
        starts = [
            StartCommand(
                WORKFLOW,
                case_id,
                {
                    "category": "infrastruktur",
                    "region": rng.choice(REGIONS),
                    "channel": "web",
                    "description": "Jalan rusak",
                },
                {"name": "Pelapor"},
            )
            for case_id in members
        ]
        assert all(d.accepted for d in runtime.execute(starts, at))
    signals = [
        (
            case_id,
            Signal(
                "verify",
                Actor("admin", "nasional"),
                {"agency": rng.choice(AGENCIES), "tier": rng.choice(["simple", "no_field_exam"])},
            ),
        )
        for case_id in ids
        if rng.random() < 2 / 3
    ]
    decisions = runtime.execute([SignalCommand(c, s) for c, s in signals], T0 + timedelta(days=1))
    assert all(d.accepted for d in decisions), [d.rejection for d in decisions][:1]
    return ids


def prepare(url: str, models: Mapping[str, Model], count: int) -> tuple[list[str], MemoryRuntime]:
    """The same population in the database (timers pending) and in a finished memory run."""
    upgrade(url)
    engine = store.open_engine(url)
    try:
        ids = populate(EmbeddedRuntime(engine, models, VirtualClock(T0)), count)
    finally:
        engine.dispose()
    memory = MemoryRuntime(models, VirtualClock(T0))
    populate(memory, count)
    memory.advance_to(UNTIL)
    return ids, memory


_SPAWNED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _reap_workers() -> Iterator[None]:
    """A failing test must not leave a worker running: kill whatever it started."""
    yield
    while _SPAWNED:
        process = _SPAWNED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def worker(
    url: str, log: Path | None, batch: int = 50, shard: str | None = None
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        cli_module(),
        "run",
        "--db",
        url,
        "--until",
        UNTIL.isoformat(),
        "--batch",
        str(batch),
        "--no-deliver",
        "--log-json",
        *(["--shard", shard] if shard else []),
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if log is None else log.open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    _SPAWNED.append(process)
    return process


def _decided(url: str) -> int:
    engine = store.open_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM history").scalar() or 0)
    finally:
        engine.dispose()


def fired_by(log: Path) -> int:
    """How many cases the worker that wrote ``log`` handled, from its last run.stopped line."""
    stopped = [json.loads(line) for line in log.read_text().splitlines() if '"run.stopped"' in line]
    return int(stopped[-1]["fired"])


def assert_same_as_memory(url: str, ids: list[str], memory: MemoryRuntime) -> None:
    engine = store.open_engine(url)
    try:
        _assert_same_as_memory(engine, ids, memory)
    finally:
        engine.dispose()


def _assert_same_as_memory(engine: Engine, ids: list[str], memory: MemoryRuntime) -> None:
    reader = EmbeddedRuntime(engine, {}, VirtualClock(T0))
    for case_id in ids:
        records = reader.history(case_id)
        report = replay(reader.model_of(case_id), records)
        assert report.ok, (case_id, report.problems)
        lapses = [
            (e["clock"], e["due_at"], e["level"])
            for record in records
            for e in record.effects
            if e["kind"] == "lapsed"
        ]
        assert len(lapses) == len(set(lapses)), f"{case_id}: a lapse was decided twice"
        assert records == memory.history(case_id), f"{case_id}: history differs from memory's"
        assert reader.case(case_id) == memory.case(case_id)
    assert reader.next_wake() is None


def run_with_kills(url: str, tmp_path: Path) -> None:
    """Workers killed with SIGKILL at random moments, then one that runs to the end."""
    rng = random.Random()
    kills = 0
    for _ in range(KILLS):
        process = worker(url, None)
        assert process.stderr is not None
        # Kill only once it is committing batches, at a random moment within the next ones.
        for line in process.stderr:
            if b'"run.batch"' in line:
                break
        time.sleep(rng.uniform(0.0, 0.25))
        if process.poll() is not None:
            break  # it finished everything before we got to kill it
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        print(f"kill {kills}: {_decided(url)} decisions recorded")
    assert kills >= 3, "the worker finished too fast to be killed; give it more cases"

    log = tmp_path / "final.log"
    final = worker(url, log)
    assert final.wait(timeout=120) == 0, log.read_text()[-2000:]


def test_sla_lapses_escalate_once_across_repeated_sigkills(
    tmp_path: Path, models: Mapping[str, Model]
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    ids, memory = prepare(url, models, 2000)

    run_with_kills(url, tmp_path)

    assert_same_as_memory(url, ids, memory)


def test_a_poisoned_case_is_set_aside_and_every_other_fires_once_across_sigkills(
    tmp_path: Path, models: Mapping[str, Model]
) -> None:
    url = f"sqlite:///{tmp_path / 'poisoned.db'}"
    ids, memory = prepare(url, models, 2000)
    poisoned = ids[777]
    engine = store.open_engine(url)
    try:
        with engine.begin() as conn:  # a torn row: it cannot be decoded, so never decided
            conn.execute(cases.update().where(cases.c.id == poisoned).values(body="{torn"))
            recorded = conn.execute(
                select(func.count()).select_from(history).where(history.c.case_id == poisoned)
            ).scalar_one()
    finally:
        engine.dispose()

    run_with_kills(url, tmp_path)

    assert_same_as_memory(url, [c for c in ids if c != poisoned], memory)
    engine = store.open_engine(url)
    try:
        with engine.connect() as conn:
            aside = {q.case_id: q.reason for q in store.list_quarantined(conn)}
            after = conn.execute(
                select(func.count()).select_from(history).where(history.c.case_id == poisoned)
            ).scalar_one()
    finally:
        engine.dispose()
    assert list(aside) == [poisoned] and "CorruptCaseError" in aside[poisoned]
    assert after == recorded  # set aside whole: nothing half-decided, nothing lost


def test_two_workers_never_double_fire(
    pg_url: str, models: Mapping[str, Model], tmp_path: Path
) -> None:
    ids, memory = prepare(pg_url, models, 2000)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [worker(pg_url, log, batch=25) for log in logs]
    for process, log in zip(workers, logs, strict=True):
        assert process.wait(timeout=180) == 0, log.read_text()[-2000:]

    fired = [fired_by(log) for log in logs]
    print(f"cases handled per worker: {fired}")
    assert all(n > 0 for n in fired), f"one worker did nothing ({fired}); no concurrency tested"

    assert_same_as_memory(pg_url, ids, memory)


def test_sqlite_shards_fire_in_parallel_and_survive_a_sigkill(
    tmp_path: Path, models: Mapping[str, Model]
) -> None:
    """Two ``lapor run --shard K/2`` on one SQLite file, one killed mid-run and restarted."""
    url = f"sqlite:///{tmp_path / 'shards.db'}"
    ids, memory = prepare(url, models, 2000)
    logs = [tmp_path / "shard-0.log", tmp_path / "shard-1.log"]
    first = worker(url, None, batch=25, shard="0/2")
    second = worker(url, logs[1], batch=25, shard="1/2")
    assert first.stderr is not None
    for line in first.stderr:
        if b'"run.batch"' in line:
            break
    first.send_signal(signal.SIGKILL)
    first.wait()
    restarted = worker(url, logs[0], batch=25, shard="0/2")
    for process, log in zip((restarted, second), logs, strict=True):
        assert process.wait(timeout=180) == 0, log.read_text()[-2000:]

    fired = [fired_by(log) for log in logs]
    print(f"cases handled per shard: {fired}")
    assert all(n > 0 for n in fired), f"a shard did nothing ({fired})"

    assert_same_as_memory(url, ids, memory)


def test_run_on_the_wall_clock_serves_metrics_and_stops_cleanly_on_sigterm(
    tmp_path: Path, models: Mapping[str, Model]
) -> None:
    url = f"sqlite:///{tmp_path / 'wall.db'}"
    upgrade(url)
    engine = store.open_engine(url)
    try:
        # Opened in March 2026: by the wall clock, both admin rungs have long lapsed.
        ids = [f"LAPOR-WALL-{i}" for i in range(5)]
        intake = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
        EmbeddedRuntime(engine, models, VirtualClock(T0)).execute(
            [StartCommand(WORKFLOW, case_id, intake) for case_id in ids], T0
        )
        log = tmp_path / "run.log"
        command = [
            sys.executable,
            "-m",
            cli_module(),
            "run",
            "--db",
            url,
            "--interval",
            "0.2",
            "--metrics-port",
            "0",
            "--handler",
            "log",
            "--log-json",
        ]
        process = subprocess.Popen(command, cwd=ROOT, stderr=log.open("wb"))
        _SPAWNED.append(process)
        reader = EmbeddedRuntime(engine, {}, VirtualClock(T0))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(reader.case(case_id).outcome for case_id in ids) and '"run.batch"' in (
                log.read_text()
            ):
                break
            time.sleep(0.2)
        port = next(
            json.loads(line)["port"]
            for line in log.read_text().splitlines()
            if '"run.metrics"' in line
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            exported = reply.read().decode()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, log.read_text()[-2000:]
    finally:
        engine.dispose()

    assert all(reader.case(case_id).outcome == "referred_to_ombudsman" for case_id in ids)
    assert 'lapor_decisions_total{kind="accepted",workflow="sp4n-lapor"} 5.0' in exported
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert "run.stopping" in events and events[-1] == "run.stopped"
