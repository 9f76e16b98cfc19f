"""``lapor demo``, the README's main job: the synthetic national stream on a virtual clock.

The same small population runs on the in-memory runtime and on the embedded runtime in a session
(SQLite file); both must fold to the same statistics, and what the database holds must add up to
what the report says. The command itself runs as a user runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.apps.demo.driver import DEMO_END, DEMO_START, DemoStats, run_demo
from engine.apps.demo.population import Population
from engine.apps.demo.shards import run_sharded_demo
from engine.domain.history import replay
from engine.domain.model import Model
from engine.runtime.clock import VirtualClock
from engine.runtime.identity import KeyRing
from engine.runtime.memory import MemoryRuntime
from engine.sql import store
from engine.sql.bulk import BulkRuntime
from engine.sql.embedded import EmbeddedRuntime
from engine.sql.migrations import upgrade
from engine.sql.tables import cases, history

COMPLAINTS = 400
ROOT = Path(__file__).resolve().parents[2]

LAPOR = [sys.executable, "-m", "engine.faces.cli.main"]


def _folded(stats: DemoStats) -> dict[str, object]:
    counters = {
        name: dict(value) for name, value in vars(stats).items() if isinstance(value, Counter)
    }
    assert len(counters) == 10, "a Counter was added to DemoStats: add it to _COUNTERS too"
    return {
        **counters,
        "decisions": stats.decisions,
        "close_days": sorted(stats.close_days),  # observers hear batches in different orders
        "opened": list(stats.opened),
    }


def memory_fold(models: Mapping[str, Model]) -> DemoStats:
    """The reference: the population run on the in-memory runtime."""
    stats = DemoStats(COMPLAINTS)
    run_demo(
        MemoryRuntime(models, VirtualClock(DEMO_START), observer=stats.observe),
        Population(COMPLAINTS, DEMO_START, seed=7),
    )
    return stats


def test_the_demo_folds_to_the_same_report_in_memory_and_on_sqlite(
    models: Mapping[str, Model], tmp_path: Path
) -> None:
    in_memory = memory_fold(models)

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    engine = store.open_engine(url)
    on_disk = DemoStats(COMPLAINTS)
    runtime = BulkRuntime(engine, models, VirtualClock(DEMO_START), observer=on_disk.observe)
    with runtime.session(commit_every=500):  # several commits, and a tail on exit
        run_demo(runtime, Population(COMPLAINTS, DEMO_START, seed=7))

    assert _folded(on_disk) == _folded(in_memory)
    assert sum(in_memory.outcomes.values()) > COMPLAINTS // 2  # most cases end by 30 Sep
    assert in_memory.clocks_lapsed and in_memory.escalations  # the stream does miss deadlines
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(cases)) == COMPLAINTS
        assert conn.scalar(select(func.count()).select_from(history)) == on_disk.decisions
    first = "LAPOR-DEMO-00000001"
    assert replay(runtime.model_of(first), runtime.history(first)).ok
    engine.dispose()


def test_shard_processes_on_one_sqlite_file_fold_to_the_same_report(
    models: Mapping[str, Model], tmp_path: Path
) -> None:
    in_memory = memory_fold(models)
    url = f"sqlite:///{tmp_path / 'shards.db'}"
    upgrade(url)
    EmbeddedRuntime(store.open_engine(url), models, VirtualClock(DEMO_START)).engine.dispose()
    reported: list[int] = []

    run = run_sharded_demo(
        url,
        (ROOT / "workflows", ROOT / "policies"),
        Population(COMPLAINTS, DEMO_START, seed=7),
        2,
        progress=lambda moment, decisions: reported.append(decisions),
        keyring=KeyRing.generate(),
    )

    assert _folded(run.stats) == _folded(in_memory)
    assert len(run.peak_rss_mib) == 2 and reported
    engine = store.open_engine(url)
    reader = EmbeddedRuntime(engine, {}, VirtualClock(DEMO_START))
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(history)) == in_memory.decisions
    for number in range(1, COMPLAINTS + 1, 37):
        case_id = f"LAPOR-DEMO-{number:08d}"
        assert replay(reader.model_of(case_id), reader.history(case_id)).ok
    engine.dispose()


def test_a_population_is_reproducible_from_its_seed() -> None:
    def ids_and_scripts(seed: int) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        return [
            (c.case_id, tuple((s.name, s.at.isoformat()) for s in c.script))
            for c in Population(50, DEMO_START, seed=seed)
        ]

    assert ids_and_scripts(3) == ids_and_scripts(3)
    assert ids_and_scripts(3) != ids_and_scripts(4)
    assert all(c.at < DEMO_END for c in Population(50, DEMO_START))


@pytest.mark.parametrize("processes", [[], ["--processes", "1"]], ids=["one-per-core", "one"])
def test_lapor_demo_runs_and_reports(tmp_path: Path, processes: list[str]) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    result = subprocess.run(
        [*LAPOR, "demo", "--complaints", "300", "--db", db, *processes],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "300 complaints" in result.stdout
    cores = min(4, len(os.sched_getaffinity(0)))
    shards = f"{cores} shard processes" if not processes and cores > 1 else None
    assert (shards in result.stdout) if shards else ("shard processes" not in result.stdout)
    assert "On time per stage" in result.stdout
    assert "lapor status LAPOR-DEMO-00000001" in result.stdout
    status = subprocess.run(
        [*LAPOR, "status", "LAPOR-DEMO-00000001", "--db", db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0 and status.stdout.startswith("LAPOR-DEMO-00000001")


def test_missed_completion_counts_cases_not_lapses(models: Mapping[str, Model]) -> None:
    """A completion clock restarted for the same agency (a dispute) and lapsing again is one
    late case, so the report's share can never pass 100 %; a reroute starts afresh."""
    from dataclasses import replace

    from engine.apps.demo.driver import DemoStats
    from engine.domain.events import Lapsed, Routed
    from engine.domain.machine import Decision
    from engine.runtime.clock import VirtualClock as Clock
    from engine.runtime.memory import MemoryRuntime

    intake = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}
    started = MemoryRuntime(models, Clock(DEMO_START)).start(
        "sp4n-lapor", "LAPOR-DEMO-00000001", intake, at=DEMO_START
    )
    assert started.case is not None and started.record is not None
    stats = DemoStats(1)
    lapse = Lapsed("completion", DEMO_START, 0)

    def seen(agency: str, *effects: object) -> None:
        case = replace(started.case, agency=agency)  # type: ignore[type-var]
        record = replace(started.record, seq=2)  # type: ignore[type-var]
        stats.observe(Decision(case, effects, record))  # type: ignore[arg-type]

    seen("kemenkes", Routed("kemenkes", "signal"))
    seen("kemenkes", lapse)
    seen("kemenkes", lapse)  # restarted by a dispute, lapsed again: still one late case
    assert stats.agency_late == {"kemenkes": 1}
    assert stats.worst_agencies()[0][2] == 1.0
    seen("kemensos", Routed("kemensos", "signal"))
    seen("kemensos", lapse)
    assert stats.agency_late == {"kemenkes": 1, "kemensos": 1}
