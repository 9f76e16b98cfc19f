"""lapor-sla benchmarks: every figure beside a baseline measured in the same run, as a ratio.

    .venv/bin/python bench/run.py                 # quick: throughput, SpiffWorkflow, timer storm
    .venv/bin/python bench/run.py --postgres URL  # also PostgreSQL end to end (a scratch database)
    .venv/bin/python bench/run.py --postgres auto # ... on a throwaway server with durable defaults
    .venv/bin/python bench/run.py --national      # also `lapor demo --complaints 1000000`

Machines here are shared and noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue as queue_module
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine.definitions.loader import load_models  # noqa: E402
from engine.domain.events import Actor, Lapsed, Signal  # noqa: E402
from engine.domain.model import Model  # noqa: E402
from engine.runtime.clock import VirtualClock  # noqa: E402
from engine.runtime.collector import tune_for_long_runs  # noqa: E402
from engine.runtime.contract import SignalCommand, StartCommand  # noqa: E402
from engine.sql import store, tables  # noqa: E402
from engine.sql.embedded import EmbeddedRuntime  # noqa: E402
from engine.sql.migrations import upgrade  # noqa: E402

WIB_MORNING = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Mon 2 Mar 2026, 09:00 WIB
LIFECYCLE = (
    ("verify", "admin:nasional", {"agency": "kemenkes"}),
    ("follow_up", "agency:kemenkes", {"response": "Sedang ditindaklanjuti"}),
    ("complete", "agency:kemenkes", {"response": "Sudah diselesaikan"}),
    ("confirm", "reporter", {"rating": 5}),
)
COMPLAINT = {"category": "kesehatan", "region": "ID-JK", "channel": "web", "description": "x"}


def models() -> dict[str, Model]:
    return load_models(ROOT / "workflows", ROOT / "policies")


def fresh_engine(url: str | None, folder: Path, name: str) -> tuple[Engine, str]:
    if url is None:
        url = f"sqlite:///{folder / name}"
    else:  # a scratch PostgreSQL database: start from empty tables
        engine = store.open_engine(url)
        tables.metadata.drop_all(engine)
        with engine.begin() as conn:  # or the migration believes the tables are still there
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        engine.dispose()
    upgrade(url)
    return store.open_engine(url), url


def _run_lifecycles(runtime: EmbeddedRuntime, ids: list[str], batch: int) -> None:
    """Start ``ids``, then take each through the four signals, ``batch`` cases a call."""
    now = WIB_MORNING
    for chunk in range(0, len(ids), batch):
        part = ids[chunk : chunk + batch]
        runtime.execute([StartCommand("sp4n-lapor", c, COMPLAINT) for c in part], now)
    for step, (name, actor, data) in enumerate(LIFECYCLE, start=1):
        now = WIB_MORNING + timedelta(hours=step)
        signal = Signal(name, Actor.parse(actor), data)
        for chunk in range(0, len(ids), batch):
            decisions = runtime.execute(
                [SignalCommand(c, signal) for c in ids[chunk : chunk + batch]], now
            )
            assert all(d.accepted for d in decisions), decisions[0].rejection


def lifecycle_throughput(url: str | None, folder: Path, cases: int, batch: int) -> dict[str, Any]:
    """Five decisions per case (start + four signals), group-committed ``batch`` at a time."""
    engine, _ = fresh_engine(url, folder, "throughput.db")
    runtime = EmbeddedRuntime(engine, models(), VirtualClock(WIB_MORNING), batch_size=batch)
    ids = [f"BENCH-{i:08d}" for i in range(cases)]
    began = time.perf_counter()
    _run_lifecycles(runtime, ids, batch)
    seconds = time.perf_counter() - began
    written = _written_rows(engine)
    engine.dispose()
    return {
        "decisions": cases * 5,
        "seconds": seconds,
        "rows": {name: len(rows) for name, rows in written.items()},
        "written": written,
    }


def _written_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every cases, history and outbox row a run left, as insertable dicts."""
    with engine.connect() as conn:
        return {
            table.name: [
                {k: v for k, v in row._mapping.items() if k != "id" or table is not tables.outbox}
                for row in conn.execute(select(table))
            ]
            for table in (tables.cases, tables.history, tables.outbox)
        }


def bare_insert_limit(
    url: str | None, folder: Path, batch: int, written: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The storage limit: the very rows the engine wrote (case rows, history, outbox), written
    again by bare SQLAlchemy Core executemany in the engine's order and batching (a case row
    inserted by its first decision, updated in full by each later one), with no engine logic."""
    engine, _ = fresh_engine(url, folder, "bare.db")
    with engine.begin() as conn:  # the definitions the case rows point at
        conn.execute(
            insert(tables.definitions),
            [
                {"model_hash": h, "name": "x", "version": "1", "body": "{}", "created_us": 0}
                for h in {row["model_hash"] for row in written["cases"]}
            ],
        )
    case_rows = sorted(written["cases"], key=lambda row: row["id"])
    steps = max(row["seq"] for row in case_rows)
    by_key: dict[str, dict[tuple[str, int], list[dict[str, Any]]]] = {}
    for name in ("history", "outbox"):
        grouped = by_key[name] = {}
        for row in written[name]:
            grouped.setdefault((row["case_id"], row["seq"]), []).append(row)
    update = (
        tables.cases.update()
        .where(tables.cases.c.id == bindparam("b_id"))
        .values({c.name: bindparam(c.name) for c in tables.cases.c if c.name != "id"})
    )
    began = time.perf_counter()
    for seq in range(1, steps + 1):
        for start in range(0, len(case_rows), batch):
            part = [row for row in case_rows[start : start + batch] if row["seq"] >= seq]
            if not part:
                continue
            keys = [(row["id"], seq) for row in part]
            with engine.begin() as conn:
                if seq == 1:
                    conn.execute(insert(tables.cases), part)
                else:
                    conn.execute(update, [{**row, "b_id": row["id"]} for row in part])
                conn.execute(
                    insert(tables.history), [r for key in keys for r in by_key["history"][key]]
                )
                messages = [r for key in keys for r in by_key["outbox"].get(key, ())]
                if messages:
                    conn.execute(insert(tables.outbox), messages)
    seconds = time.perf_counter() - began
    engine.dispose()
    return {"decisions_equivalent": len(written["history"]), "seconds": seconds}


def _storm_cases(runtime: EmbeddedRuntime, clocks: int) -> datetime:
    """Start ``clocks`` cases at one instant; the deadline they all share."""
    ids = [f"STORM-{i:08d}" for i in range(clocks)]
    for chunk in range(0, clocks, 2000):
        runtime.execute(
            [StartCommand("sp4n-lapor", c, COMPLAINT) for c in ids[chunk : chunk + 2000]],
            WIB_MORNING,
        )
    due = runtime.case(ids[0]).next_due
    assert due is not None
    return due


def timer_storm(folder: Path, clocks: int) -> dict[str, Any]:
    """``clocks`` verification deadlines ending at the same 23:59:59; all must fire, once each."""
    engine, _ = fresh_engine(None, folder, "storm.db")
    lapses = 0

    def count(decision: Any) -> None:
        nonlocal lapses
        lapses += sum(isinstance(e, Lapsed) for e in decision.effects)

    clock = VirtualClock(WIB_MORNING)
    runtime = EmbeddedRuntime(engine, models(), clock, observer=count, batch_size=2000)
    due = _storm_cases(runtime, clocks)
    began = time.perf_counter()
    runtime.advance_to(due + timedelta(seconds=1))
    seconds = time.perf_counter() - began
    fired = lapses
    runtime.advance_to(due + timedelta(seconds=2))  # a second pass must find nothing to fire
    engine.dispose()
    return {"clocks": clocks, "fired": fired, "fired_again": lapses - fired, "seconds": seconds}


def _shard_lifecycles(
    url: str, ids: list[str], batch: int, shard: tuple[int, int], barrier: Any, out: Any
) -> None:
    tune_for_long_runs()
    engine = store.open_engine(url)
    runtime = EmbeddedRuntime(
        engine, models(), VirtualClock(WIB_MORNING), batch_size=batch, shard=shard
    )
    mine = [c for c in ids if store.shard_of(c, shard[1]) == shard[0]]
    barrier.wait()
    _run_lifecycles(runtime, mine, batch)
    engine.dispose()
    out.put(len(mine) * 5)


class _StartLine:
    """A barrier the parent can wait at with a timeout without breaking it for the others."""

    def __init__(self, context: Any, count: int) -> None:
        self.ready = context.Semaphore(0)
        self.go = context.Event()
        self.count = count
        self.seen = 0

    def wait(self) -> None:  # in a child
        self.ready.release()
        self.go.wait()

    def all_ready(self, timeout: float) -> bool:  # in the parent
        while self.seen < self.count:
            if not self.ready.acquire(timeout=timeout):
                return False
            self.seen += 1
        return True


def _in_processes(target: Callable[..., None], count: int, *args: Any) -> tuple[float, list[Any]]:
    """Run ``target(*args, (k, count), start, queue)`` in ``count`` fresh processes; the
    seconds from when all are ready until all are done, and what each put on the queue.

    Each process calls ``start.wait()`` once it is ready, and puts its result on ``queue``. A
    process that dies stops the run with its exit code instead of leaving us waiting.

    Spawned, not forked: a forked child shares the parent's heap copy-on-write, and every
    reference count it touches copies a page (a forked one-shard storm took 19 s, 16 in-process).
    """
    context = multiprocessing.get_context("spawn")
    start = _StartLine(context, count)
    queue = context.Queue()
    processes = [
        context.Process(target=target, args=(*args, (k, count), start, queue)) for k in range(count)
    ]
    for process in processes:
        process.start()

    def check_alive() -> None:  # a shard that died would leave us waiting forever
        for process in processes:
            if process.exitcode not in (None, 0):
                raise SystemExit(f"a shard process failed (exit {process.exitcode})")

    while not start.all_ready(timeout=1):
        check_alive()
    start.go.set()
    began = time.perf_counter()
    results: list[Any] = []
    while len(results) < count:
        check_alive()
        try:
            results.append(queue.get(timeout=1))
        except queue_module.Empty:
            continue
    seconds = time.perf_counter() - began
    for process in processes:
        process.join()
    check_alive()
    return seconds, results


def lifecycle_throughput_sharded(
    folder: Path, cases: int, batch: int, processes: int
) -> dict[str, Any]:
    """The same lifecycles, cases split over ``processes`` SQLite shards of one file."""
    engine, url = fresh_engine(None, folder, "throughput-shards.db")
    engine.dispose()
    ids = [f"BENCH-{i:08d}" for i in range(cases)]
    seconds, decided = _in_processes(_shard_lifecycles, processes, url, ids, batch)
    return {"decisions": sum(decided), "seconds": seconds, "processes": processes}


def _fire_shard(url: str, moment: datetime, shard: tuple[int, int], barrier: Any, out: Any) -> None:
    lapses = 0

    def count(decision: Any) -> None:
        nonlocal lapses
        lapses += sum(isinstance(e, Lapsed) for e in decision.effects)

    tune_for_long_runs()
    engine = store.open_engine(url)
    runtime = EmbeddedRuntime(
        engine, models(), VirtualClock(WIB_MORNING), observer=count, batch_size=2000, shard=shard
    )
    barrier.wait()
    runtime.advance_to(moment)
    engine.dispose()
    out.put(lapses)


def timer_storm_sharded(folder: Path, clocks: int, processes: int) -> dict[str, Any]:
    """The timer storm fired by ``processes`` SQLite shards (``lapor run --shard K/N``)."""
    engine, url = fresh_engine(None, folder, "storm-shards.db")
    due = _storm_cases(EmbeddedRuntime(engine, models(), VirtualClock(WIB_MORNING)), clocks)
    engine.dispose()
    seconds, lapses = _in_processes(_fire_shard, processes, url, due + timedelta(seconds=1))
    again: list[int] = []
    engine = store.open_engine(url)
    checker = EmbeddedRuntime(
        engine,
        models(),
        VirtualClock(due + timedelta(seconds=1)),
        observer=lambda d: again.append(sum(isinstance(e, Lapsed) for e in d.effects)),
    )
    checker.advance_to(due + timedelta(seconds=2))  # nothing may be left to fire
    engine.dispose()
    return {
        "clocks": clocks,
        "processes": processes,
        "fired": sum(lapses),
        "fired_again": sum(again),
        "seconds": seconds,
    }


def national_year(complaints: int, processes: int) -> dict[str, Any]:
    """``lapor demo --complaints N --processes P`` in a subprocess: wall time, and the peak RSS
    of each shard process and of the demo's own as it reports them (this benchmark's own
    children's peak would include every earlier step's, such as PostgreSQL's)."""
    with tempfile.TemporaryDirectory() as folder:
        db = f"sqlite:///{Path(folder) / 'national.db'}"
        began = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine.faces.cli.main",
                "demo",
                "--complaints",
                str(complaints),
                "--db",
                db,
                "--processes",
                str(processes),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"demo failed:\n{result.stderr[-2000:]}")
    shards = [line for line in result.stdout.splitlines() if "shard processes, peak RSS" in line]
    return {
        "complaints": complaints,
        "processes": processes,
        "seconds": seconds,
        "shards": shards[0] if shards else None,
    }


def spiff_baseline(cases: int) -> dict[str, Any]:
    """SpiffWorkflow in a fresh interpreter, with Python's default collector settings: neither
    the heap our runs leave behind nor our collector setting weighs on the baseline."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "spiff_baseline.py"), "--cases", str(cases)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def _durable_postgres() -> Any:
    """A throwaway server from the Debian binaries (``scripts/ensure-postgres.sh``), with
    PostgreSQL's durable defaults (fsync, synchronous commit), stopped at exit."""
    import atexit

    from tests.runtime.postgres import PostgresServer, find_binaries

    binaries = find_binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL binaries missing: run scripts/ensure-postgres.sh")
    server = PostgresServer(binaries, durable=True)
    atexit.register(server.stop)
    return server


def timed(label: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    print(f"… {label}", file=sys.stderr, flush=True)
    return work()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=20_000, help="lifecycles for throughput")
    parser.add_argument("--batch", type=int, default=1000, help="decisions per transaction")
    parser.add_argument("--storm", type=int, default=100_000, help="clocks due at one instant")
    parser.add_argument("--spiff-cases", type=int, default=300)
    parser.add_argument(
        "--processes", type=int, default=2, help="SQLite shards for the parallel figures"
    )
    parser.add_argument(
        "--postgres", metavar="URL", help="a scratch PostgreSQL database URL, or 'auto'"
    )
    parser.add_argument("--national", action="store_true", help="also the 1M-complaint demo")
    args = parser.parse_args()
    # As `lapor demo` and `lapor run` do; every figure and its baseline run under the same setting.
    tune_for_long_runs()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours = timed(
            "SQLite end to end", lambda: lifecycle_throughput(None, folder, args.cases, args.batch)
        )
        bare = timed(
            "SQLite bare Core inserts",
            lambda: bare_insert_limit(None, folder, args.batch, ours.pop("written")),
        )
        sharded = timed(
            f"SQLite end to end, {args.processes} shard processes",
            lambda: lifecycle_throughput_sharded(folder, args.cases, args.batch, args.processes),
        )
        results["sqlite"] = {
            "decisions_per_s": ours["decisions"] / ours["seconds"],
            "bare_decision_rows_per_s": bare["decisions_equivalent"] / bare["seconds"],
            "ratio_to_bare": bare["seconds"] / ours["seconds"],
            "rows": ours["rows"],
            "sharded": {
                "processes": args.processes,
                "decisions_per_s": sharded["decisions"] / sharded["seconds"],
                "ratio_to_bare": (sharded["decisions"] / sharded["seconds"])
                / (bare["decisions_equivalent"] / bare["seconds"]),
            },
        }
        if args.postgres == "auto":
            server = _durable_postgres()
            args.postgres = server.create_database()
        if args.postgres:
            pg = timed(
                "PostgreSQL end to end",
                lambda: lifecycle_throughput(args.postgres, folder, args.cases, args.batch),
            )
            pg_bare = timed(
                "PostgreSQL bare Core inserts",
                lambda: bare_insert_limit(args.postgres, folder, args.batch, pg.pop("written")),
            )
            results["postgresql"] = {
                "decisions_per_s": pg["decisions"] / pg["seconds"],
                "bare_decision_rows_per_s": pg_bare["decisions_equivalent"] / pg_bare["seconds"],
                "ratio_to_bare": pg_bare["seconds"] / pg["seconds"],
            }
        spiff = timed(
            "SpiffWorkflow, state loaded and saved per step",
            lambda: spiff_baseline(args.spiff_cases),
        )
        results["spiffworkflow"] = {
            "steps_per_s": spiff["steps_per_s"],
            "ours_ratio": results["sqlite"]["decisions_per_s"] / spiff["steps_per_s"],
            "ours_sharded_ratio": results["sqlite"]["sharded"]["decisions_per_s"]
            / spiff["steps_per_s"],
        }
        results["timer_storm"] = timed("timer storm", lambda: timer_storm(folder, args.storm))
        results["timer_storm_sharded"] = timed(
            f"timer storm, {args.processes} shard processes",
            lambda: timer_storm_sharded(folder, args.storm, args.processes),
        )
    if args.national:
        results["national_year"] = timed(
            "1M-complaint demo", lambda: national_year(1_000_000, args.processes)
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
