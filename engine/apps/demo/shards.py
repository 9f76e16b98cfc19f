"""``lapor demo --processes N``: the demo on N cores, one SQLite file, one shard of cases each.

Each process drives the complaints of shard ``k`` of ``N`` (``store.shard_of``) through
its own runtime with ``shard=(k, N)``: it fires only those cases' timers and decides outside
the write lock (see ``EmbeddedRuntime``). Cases never interact, so every case's history is the
one a single process records; the statistics are folded per process and merged, and the report
is the single-process report.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.apps.demo.driver import DEMO_START, DemoStats, run_demo
from engine.apps.demo.population import Complaint, Population
from engine.runtime.identity import KeyRing

__all__ = ["ShardedRun", "run_sharded_demo"]

_POLL_S = 0.2
# Decisions a shard holds between writes. 200,000 complaints: 5,000 took 110 s at 250 MiB a shard,
# 20,000 took 108 s at 356 MiB (within noise), so the smaller one.
_COMMIT_EVERY = 5_000


@dataclass(frozen=True)
class ShardedRun:
    stats: DemoStats
    peak_rss_mib: list[float]  # per shard process


def run_sharded_demo(
    url: str,
    sources: tuple[Path, Path],
    population: Population,
    processes: int,
    progress: Callable[[datetime, int], None] | None = None,
    *,
    keyring: KeyRing,
) -> ShardedRun:
    """Run ``population`` in ``processes`` shards against the migrated database ``url``, each
    loading its models from ``sources`` (workflows folder, policies folder).

    The shards are spawned, not forked: a forked child shares this heap copy-on-write, and
    every reference count it touches copies a page (a forked timer-storm shard took 19 s, a
    spawned one 14). ``progress(moment, decisions)`` is called here while they run: the virtual
    time every shard has reached, and the decisions made so far.
    """
    context = multiprocessing.get_context("spawn")
    reached = context.Array("d", [DEMO_START.timestamp()] * processes)
    decided = context.Array("q", [0] * processes)
    results = context.Queue()
    shards = [
        context.Process(
            target=_shard,
            args=(url, sources, population, (k, processes), keyring, reached, decided, results),
            name=f"lapor-demo-shard-{k}",
        )
        for k in range(processes)
    ]
    for shard in shards:
        shard.start()
    collected: dict[int, tuple[DemoStats, float]] = {}
    while len(collected) < processes:
        while not results.empty():
            index, stats, peak = results.get()
            collected[index] = (stats, peak)
        if any(s.exitcode not in (None, 0) for s in shards):
            for shard in shards:
                shard.kill()
            raise RuntimeError("a demo shard process failed; see its error above")
        if progress is not None:
            moment = datetime.fromtimestamp(min(reached[:]), tz=UTC)
            progress(moment, sum(decided[:]))
        time.sleep(_POLL_S)
    for shard in shards:
        shard.join()
    merged = DemoStats.merged([collected[k][0] for k in range(processes)])
    return ShardedRun(merged, [collected[k][1] for k in range(processes)])


def _shard(
    url: str,
    sources: tuple[Path, Path],
    population: Population,
    shard: tuple[int, int],
    keyring: KeyRing,
    reached: Any,
    decided: Any,
    results: Any,
) -> None:
    from engine.definitions.loader import load_models
    from engine.runtime.clock import VirtualClock
    from engine.runtime.collector import tune_for_long_runs
    from engine.sql.bulk import BulkRuntime
    from engine.sql.store import open_engine

    models = load_models(*sources)
    tune_for_long_runs(holding=True)  # its session holds thousands of decisions at a time
    index, count = shard
    stats = DemoStats(population.count)
    engine = open_engine(url, durable=False)  # a simulation: see open_engine
    runtime = BulkRuntime(
        engine,
        models,
        VirtualClock(DEMO_START),
        observer=stats.observe,
        shard=shard,
        keyring=keyring,
    )

    def show(moment: datetime) -> None:
        reached[index] = moment.timestamp()
        decided[index] = stats.decisions

    # A shard owns its cases, so it holds its decisions instead of committing each slot to see
    # them again, and the other shards decide while it writes.
    with runtime.session(commit_every=_COMMIT_EVERY):
        run_demo(runtime, _every(population, index, count), progress=show)
    engine.dispose()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.put((index, stats, peak_mib))


def _every(population: Population, index: int, count: int) -> Iterator[Complaint]:
    """The complaints of shard ``index`` (``shard_of``: whose timers this process fires). Each
    process generates the whole seeded stream, so a complaint is the same wherever it runs."""
    from engine.sql.store import shard_of

    for complaint in population:
        if shard_of(complaint.case_id, count) == index:
            yield complaint
