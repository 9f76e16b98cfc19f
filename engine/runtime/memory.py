"""An in-memory runtime on a virtual clock: what ``lapor simulate`` and ``lapor test`` run on.

It keeps cases, their histories, used idempotency keys, a timer heap and an outbox in
dictionaries and lists; it is the reference shell the durable runtimes must agree with, decision
for decision (``tests/contract/``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from engine.domain.case import Case
from engine.domain.events import ClockLapsed, Started
from engine.domain.machine import Decision, decide, wake_at
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.runtime.clock import VirtualClock
from engine.runtime.contract import (
    Command,
    MigrateCommand,
    Outcome,
    Runtime,
    SignalCommand,
    StartCommand,
    check_key_reuse,
    model_for_workflow,
    reporter_refusal,
    request_fingerprint,
    with_reporter_token,
)
from engine.runtime.delivery import (
    DeliveryHandler,
    DeliveryReport,
    OutboxMessage,
    handler_for,
    messages_for,
)
from engine.runtime.errors import IdentityErasedError, UnknownCaseError
from engine.runtime.identity import KeyRing

__all__ = ["MemoryRuntime"]


@dataclass(frozen=True, slots=True)
class _UsedKey:
    case_id: str
    fingerprint: str
    outcome: Outcome


class MemoryRuntime(Runtime):
    """``handlers`` receive every world-facing effect when ``deliver`` is called; a handler that
    raises keeps its message for the next call (no backoff: this is a simulation). Reporter
    tokens come from ``keyring`` (by default a fresh one: a simulation's tokens die with it)."""

    def __init__(
        self,
        models: Mapping[str, Model],
        clock: VirtualClock,
        *,
        observer: Callable[[Decision], None] | None = None,
        handlers: Sequence[DeliveryHandler] = (),
        keyring: KeyRing | None = None,
    ) -> None:
        self.models = dict(models)
        self.keyring = keyring or KeyRing.generate()
        self.clock = clock
        self.observer = observer
        self.handlers = list(handlers)
        self._cases: dict[str, Case] = {}
        self._history: dict[str, list[HistoryRecord]] = {}
        self._models_by_case: dict[str, Model] = {}
        self._seen: dict[str, Model] = {}
        self._reporters: dict[str, Mapping[str, Any]] = {}
        self._erased: dict[str, datetime] = {}
        self._keys: dict[str, _UsedKey] = {}
        self._outbox: list[OutboxMessage] = []
        self._timers: list[tuple[datetime, int, str, str, datetime]] = []
        self._tiebreak = 0

    def execute(self, commands: Sequence[Command], at: datetime | None = None) -> list[Outcome]:
        if at is not None:
            self.advance_to(at)
        return [self._execute_one(command) for command in commands]

    def _execute_one(self, command: Command) -> Outcome:
        if isinstance(command, StartCommand):
            return with_reporter_token(self.keyring, self._decide(command))
        case = self.case(command.case_id)
        refusal = (
            reporter_refusal(self.keyring, command) if isinstance(command, SignalCommand) else None
        )
        if refusal is not None:
            return Outcome(
                command.case_id, self._store(command.case_id, Decision(case, rejection=refusal))
            )
        return self._decide(command)

    def _decide(self, command: Command) -> Outcome:
        key = command.key
        if key is not None and key in self._keys:
            used = self._keys[key]
            check_key_reuse(key, used.fingerprint, command, used.case_id)
            return Outcome(used.outcome.case_id, used.outcome.decision, replayed=True)
        now = self.clock.now()
        if isinstance(command, StartCommand):
            model = model_for_workflow(self.models, command.workflow)
            event = Started(command.case_id, dict(command.data), command.actor, command.reporter)
            decision = decide(model, self._cases.get(command.case_id), event, now)
            if decision.accepted:
                self._seen[model.hash] = model
                self._models_by_case[command.case_id] = model
                if command.reporter:
                    self._reporters[command.case_id] = dict(command.reporter)
        elif isinstance(command, MigrateCommand):
            case = self._cases[command.case_id]
            migrated = command.event(self._model(command.case_id), case)
            decision = decide(command.model, case, migrated, now)
            if decision.accepted:
                self._seen[command.model.hash] = command.model
                self._models_by_case[command.case_id] = command.model
        else:
            model = self._model(command.case_id)
            decision = decide(model, self._cases[command.case_id], command.signal, now)
        outcome = Outcome(command.case_id, self._store(command.case_id, decision))
        if key is not None and decision.accepted:
            self._keys[key] = _UsedKey(command.case_id, request_fingerprint(command), outcome)
        return outcome

    def register(self, models: Mapping[str, Model]) -> None:
        self.models.update(models)

    def advance_to(self, moment: datetime) -> None:
        """Move the virtual clock to ``moment``, firing every timer due on the way, in order."""
        while self._timers and self._timers[0][0] <= moment:
            self._fire_next()
        self.clock.advance_to(moment)

    def fire_due(self, now: datetime, limit: int = 1000) -> int:
        """Fire the timers waking by ``now`` (the clock moves with them), at most ``limit``."""
        fired = 0
        while self._timers and self._timers[0][0] <= now and fired < limit:
            fired += self._fire_next()
        return fired

    def _fire_next(self) -> int:
        """Decide the earliest timer at its wake instant: 1 if it lapsed a clock, 0 if stale."""
        wake, _, case_id, clock, due_at = heapq.heappop(self._timers)
        self.clock.advance_to(wake)  # never backwards: a late timer fires at the clock's now
        event = ClockLapsed(clock, due_at)
        decision = decide(self._model(case_id), self._cases[case_id], event, self.clock.now())
        return 1 if self._store(case_id, decision).accepted else 0

    def deliver(self, now: datetime | None = None) -> DeliveryReport:
        delivered = failed = unhandled = 0
        kept: list[OutboxMessage] = []
        for message in self._outbox:
            handler = handler_for(self.handlers, message)
            if handler is None:
                unhandled += 1
                kept.append(message)
                continue
            try:
                handler.deliver(message)
            except Exception:  # a failed delivery is the message's, never the batch's
                failed += 1
                kept.append(_next_attempt(message))
                continue
            delivered += 1
        self._outbox = kept
        return DeliveryReport(delivered, failed, 0, len(kept), unhandled)

    def case(self, case_id: str) -> Case:
        try:
            return self._cases[case_id]
        except KeyError:
            raise UnknownCaseError(case_id) from None

    def history(self, case_id: str) -> list[HistoryRecord]:
        if case_id not in self._cases:
            raise UnknownCaseError(case_id)
        return list(self._history.get(case_id, []))

    def model_of(self, case_id: str) -> Model:
        return self._model(case_id)

    def reporter(self, case_id: str) -> Mapping[str, Any] | None:
        if case_id not in self._cases:
            raise UnknownCaseError(case_id)
        if case_id in self._erased:
            raise IdentityErasedError(case_id, self._erased[case_id])
        return self._reporters.get(case_id)

    def erase_reporter(self, case_id: str, at: datetime | None = None) -> bool:
        self.case(case_id)
        if case_id in self._erased or case_id not in self._reporters:
            return False
        del self._reporters[case_id]
        self._erased[case_id] = at or self.clock.now()
        return True

    def close(self) -> None:
        """Nothing to release."""

    def model_by_hash(self, model_hash: str) -> Model | None:
        """Any model a case was pinned to here (a migrated case's earlier ones too)."""
        return self._seen.get(model_hash)

    def _model(self, case_id: str) -> Model:
        model = self._models_by_case.get(case_id)
        if model is None:
            raise UnknownCaseError(case_id)
        return model

    def _store(self, case_id: str, decision: Decision) -> Decision:
        if self.observer is not None and (decision.record or decision.rejection):
            self.observer(decision)
        if decision.record is None or decision.case is None:
            return decision
        self._cases[case_id] = decision.case
        self._history.setdefault(case_id, []).append(decision.record)
        if self.handlers:
            self._outbox.extend(messages_for(decision.case, decision.record))
        for clock in decision.case.clocks:
            if clock.running and clock.due_at is not None:
                self._tiebreak += 1
                entry = (wake_at(clock.due_at), self._tiebreak, case_id, clock.name, clock.due_at)
                heapq.heappush(self._timers, entry)
        return decision


def _next_attempt(message: OutboxMessage) -> OutboxMessage:
    return replace(message, attempts=message.attempts + 1)
