"""The long-run collector setting makes collections rare, not absent: cycles are still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from engine.runtime.collector import LONG_RUN_THRESHOLDS, tune_for_long_runs


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def long_run_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    tune_for_long_runs()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("long_run_collector")
def test_cyclic_garbage_is_still_collected_without_an_explicit_collect() -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # a cycle: reference counting alone never frees it
    held = [[] for _ in range(LONG_RUN_THRESHOLDS[0] + 1)]  # enough allocations for a collection
    assert gone() is None
    del held


@pytest.mark.usefixtures("long_run_collector")
def test_what_setup_built_is_frozen_out_of_collections() -> None:
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == LONG_RUN_THRESHOLDS
