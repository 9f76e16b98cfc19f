"""Python's cyclic garbage collector, set for a long run of decisions.

A decision allocates a few hundred short-lived containers (dicts, tuples, frozen dataclasses).
Reference counting frees them: they are not cycles. Yet CPython's default thresholds (700, 10, 10)
start a young collection every 700 net allocations, and as survivors pile up (the decoded-case
cache, the demo's scripts) ever more full collections walk the whole heap. Sampled with ``perf``,
a 200,000-complaint ``lapor demo`` spent 27 % of its CPU in the collector, finding nothing.

The long-running commands (``lapor demo``, ``lapor run``, ``lapor worker``) and the benchmarks
call ``tune_for_long_runs`` once their setup is done. A library embedding the runtime decides for
its own process: this is never done behind its back.
"""

from __future__ import annotations

import gc

__all__ = ["HOLDING_RUN_THRESHOLDS", "LONG_RUN_THRESHOLDS", "tune_for_long_runs"]

# A young collection every 100,000 net allocations (a few hundred decisions), an older one every
# 50 of those; the oldest when 10 older ones passed and the long-lived objects grew by a quarter
# (CPython's own rule). Cycles are still found, just not thousands of times a second.
LONG_RUN_THRESHOLDS = (100_000, 50, 10)

# A run that holds thousands of decisions in memory between commits (a demo shard's session):
# they all survive each young collection, which walks them again and again. At 100,000 the
# collector took 7 % of a 200,000-complaint shard's CPU (109 collections, 6.5 s) and freed
# nothing (the peak RSS was the same with it disabled). Every 5,000,000 net allocations it
# still runs a few times in a national run.
HOLDING_RUN_THRESHOLDS = (5_000_000, 50, 10)


def tune_for_long_runs(*, holding: bool = False) -> None:
    """Collect once, freeze what setup built, and raise the collection thresholds
    (``holding``: a run that holds many decisions in memory; see ``HOLDING_RUN_THRESHOLDS``).

    Frozen objects (models, calendars, imported modules) live as long as the process and are
    never scanned again. The collect first keeps setup's own garbage from being frozen with them.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*(HOLDING_RUN_THRESHOLDS if holding else LONG_RUN_THRESHOLDS))
