"""An in-memory runtime on a virtual clock: what ``lapor simulate`` and ``lapor test`` run on.

It keeps cases, their histories and a timer heap in dictionaries; it is the reference shell the
durable runtimes must agree with, decision for decision.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.case import Case
from engine.core import Decision, decide
from engine.errors import LaporError
from engine.events import SYSTEM, Actor, ClockLapsed, Signal, Started
from engine.model import Model
from engine.records import HistoryRecord
from engine.runtime.clock import VirtualClock, wake_at

if TYPE_CHECKING:
    from engine.demo import StartRequest

__all__ = ["MemoryRuntime"]


class MemoryRuntime:
    def __init__(
        self,
        models: Mapping[str, Model],
        clock: VirtualClock,
        *,
        observer: Callable[[Decision], None] | None = None,
    ) -> None:
        self.models = dict(models)
        self.clock = clock
        self.observer = observer
        self._cases: dict[str, Case] = {}
        self._history: dict[str, list[HistoryRecord]] = {}
        self._models_by_case: dict[str, Model] = {}
        self._timers: list[tuple[datetime, int, str, str, datetime]] = []
        self._tiebreak = 0

    def start(
        self,
        workflow: str,
        case_id: str,
        data: Mapping[str, Any],
        *,
        reporter: Mapping[str, Any] | None = None,
        actor: Actor = SYSTEM,
        at: datetime | None = None,
    ) -> Decision:
        model = self.models.get(workflow)
        if model is None:
            raise LaporError(
                f"unknown workflow {workflow!r}; known: {', '.join(sorted(self.models))}"
            )
        if at is not None:
            self.advance_to(at)
        event = Started(case_id, dict(data), actor, reporter or {})
        decision = decide(model, self._cases.get(case_id), event, self.clock.now())
        if decision.accepted:
            self._models_by_case[case_id] = model
        return self._store(case_id, decision)

    def signal(self, case_id: str, signal: Signal, *, at: datetime | None = None) -> Decision:
        if at is not None:
            self.advance_to(at)
        model = self._models_by_case.get(case_id)
        if model is None:
            raise LaporError(f"unknown case {case_id!r}")
        decision = decide(model, self._cases[case_id], signal, self.clock.now())
        return self._store(case_id, decision)

    def start_many(self, requests: Sequence[StartRequest], now: datetime) -> list[Decision]:
        return [
            self.start(r.workflow, r.case_id, r.data, reporter=r.reporter, at=now) for r in requests
        ]

    def signal_many(self, items: Sequence[tuple[str, Signal]], now: datetime) -> list[Decision]:
        return [self.signal(case_id, signal, at=now) for case_id, signal in items]

    def start_and_signal(
        self,
        requests: Sequence[StartRequest],
        items: Sequence[tuple[str, Signal]],
        now: datetime,
    ) -> list[Decision]:
        return self.start_many(requests, now) + self.signal_many(items, now)

    def advance_to(self, moment: datetime) -> None:
        """Move the virtual clock to ``moment``, firing every timer due on the way, in order."""
        while self._timers and self._timers[0][0] <= moment:
            wake, _, case_id, clock, due_at = heapq.heappop(self._timers)
            self.clock.advance_to(wake)  # never backwards: a late timer fires at the clock's now
            model = self._models_by_case[case_id]
            event = ClockLapsed(clock, due_at)
            decision = decide(model, self._cases[case_id], event, self.clock.now())
            self._store(case_id, decision)
        self.clock.advance_to(moment)

    def case(self, case_id: str) -> Case:
        try:
            return self._cases[case_id]
        except KeyError:
            raise LaporError(f"unknown case {case_id!r}") from None

    def history(self, case_id: str) -> list[HistoryRecord]:
        return list(self._history.get(case_id, []))

    def model_of(self, case_id: str) -> Model:
        return self._models_by_case[case_id]

    def _store(self, case_id: str, decision: Decision) -> Decision:
        if self.observer is not None and (decision.record or decision.rejection):
            self.observer(decision)
        if decision.record is None or decision.case is None:
            return decision
        self._cases[case_id] = decision.case
        self._history.setdefault(case_id, []).append(decision.record)
        for clock in decision.case.clocks:
            if clock.running and clock.due_at is not None:
                self._tiebreak += 1
                entry = (wake_at(clock.due_at), self._tiebreak, case_id, clock.name, clock.due_at)
                heapq.heappush(self._timers, entry)
        return decision
