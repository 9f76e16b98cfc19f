"""The long-run collector setting makes collections rare, not absent: cycles are still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from engine.runtime.collector import (
    HOLDING_RUN_THRESHOLDS,
    LONG_RUN_THRESHOLDS,
    tune_for_long_runs,
)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(params=[False, True], ids=["long", "holding"])
def long_run_collector(request: pytest.FixtureRequest) -> Iterator[bool]:
    thresholds = gc.get_threshold()
    tune_for_long_runs(holding=request.param)
    try:
        yield request.param
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_cyclic_garbage_is_still_collected_without_an_explicit_collect(
    long_run_collector: bool,
) -> None:
    young = (HOLDING_RUN_THRESHOLDS if long_run_collector else LONG_RUN_THRESHOLDS)[0]
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # a cycle: reference counting alone never frees it
    held = [[] for _ in range(young + 1)]  # enough allocations for a young collection
    assert gone() is None
    del held


def test_what_setup_built_is_frozen_out_of_collections(long_run_collector: bool) -> None:
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (
        HOLDING_RUN_THRESHOLDS if long_run_collector else LONG_RUN_THRESHOLDS
    )
