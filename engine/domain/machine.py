"""The deterministic core: ``decide(model, case, event, now) -> Decision``.

Pure: no I/O, no clock, no randomness. Time comes in as ``now``; ids come in with the events.
Every runtime (in-memory simulator, SQLAlchemy, Temporal) calls this one function and stores what
it returns, which is why the runtimes cannot disagree about what a case does.

Two rules give "a lapse escalates exactly once" for free:

* a clock lapses only through its current deadline: a ``ClockLapsed`` whose ``due_at`` is not the
  clock's current one (a duplicate or stale timer) decides nothing;
* before any event is applied, every running clock whose deadline passed before ``now`` is
  settled first, oldest deadline first, so a late timer and an early signal still see the same
  sequence of lapses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from engine.domain.calendar import REGION_ZONES, Duration
from engine.domain.canonical import json_problem
from engine.domain.case import GENESIS, Case, ClockState
from engine.domain.events import (
    SYSTEM,
    ClockLapsed,
    ClockPaused,
    ClockRescheduled,
    ClockResumed,
    ClockStarted,
    ClockStopped,
    Closed,
    Effect,
    Entered,
    Escalated,
    Event,
    Lapsed,
    Migrated,
    Notify,
    Rejection,
    Routed,
    Signal,
    Started,
    effect_to_json,
    utc_text,
)
from engine.domain.guards import evaluate_guard
from engine.domain.model import Clock, Model, Transition
from engine.domain.records import HistoryRecord

__all__ = ["LAPSE_MARGIN", "Decision", "allowed_signals", "decide", "wake_at"]

LAPSE_MARGIN = timedelta(seconds=1)
"""A deadline such as 23:59:59 is still on time; the clock lapses at the first second after it."""


def wake_at(due_at: datetime) -> datetime:
    """When a runtime should deliver ``ClockLapsed`` for a deadline."""
    return due_at + LAPSE_MARGIN


_MAX_SETTLE_STEPS = 1000  # far above any real ladder; a loop this long is a model bug, not a case


@dataclass(frozen=True, slots=True)
class Decision:
    """What an event did. Exactly one of three shapes:

    * accepted: ``record`` is set, ``case`` is the new state, ``effects`` lists what happened;
    * rejected: ``rejection`` is set, ``case`` is the unchanged input, nothing to record;
    * nothing to do (a stale or early timer): no record, no rejection, no effects.
    """

    case: Case | None
    effects: tuple[Effect, ...] = ()
    record: HistoryRecord | None = None
    rejection: Rejection | None = None

    @property
    def accepted(self) -> bool:
        return self.record is not None


def decide(model: Model, case: Case | None, event: Event, now: datetime) -> Decision:
    """Decide what ``event`` does to ``case`` at ``now`` under ``model``."""
    # Runtimes report time in whatever offset their clock uses; the case keeps it in UTC so the
    # same instant is the same value everywhere (deadlines are still computed in region zones).
    now = now.astimezone(UTC)
    if isinstance(event, Started):
        if case is not None:
            return _reject(case, "already_started", f"case {case.id} already exists")
        return _start(model, event, now)
    if case is None:
        return Decision(None, rejection=Rejection("not_started", "no such case"))
    if isinstance(event, Migrated):
        return _migrate(model, case, event, now)
    if case.model_hash != model.hash:
        raise ValueError(
            f"case {case.id} is pinned to model {case.model_hash[:12]}, not {model.hash[:12]}"
        )
    if now < case.last_at:
        # A runtime bug, not a user mistake: each case's time must never run backwards, or its
        # history would record a decision before the one it follows.
        raise ValueError(
            f"case {case.id}: time {now.isoformat()} is before its last decision "
            f"({case.last_at.isoformat()}); runtimes must deliver a case's events in time order"
        )
    if isinstance(event, ClockLapsed) and not _is_due(case, event, now):
        return Decision(case)  # a stale, duplicate or early timer: nothing to decide
    effects: list[Effect] = []
    settled = _settle(model, case, now, effects)
    if isinstance(event, ClockLapsed):
        # Record the first clock that actually lapsed, not whichever timer woke the case: two
        # clocks due at the same instant then give one history whatever order timers arrive in.
        first = next(e for e in effects if isinstance(e, Lapsed))
        canonical = ClockLapsed(first.clock, first.due_at).to_json()
        return _accept(model, case, settled, {}, canonical, str(SYSTEM), effects, now)
    if settled.closed:
        return _reject(case, "closed", f"case is closed ({settled.status}); no further signals")
    transition, rejection = _check_signal(model, settled, event)
    if rejection is not None:
        return Decision(case, rejection=rejection)
    assert transition is not None
    agency, rejection = _route(model, settled, transition, event)
    if rejection is not None:
        return Decision(case, rejection=rejection)
    changes = _take(model, settled, transition, event.data, agency, now, effects)
    return _accept(model, case, settled, changes, event.to_json(), str(event.actor), effects, now)


def allowed_signals(model: Model, case: Case) -> list[str]:
    """Triggers a non-system party could send in the case's current state, sorted.

    Sorted rather than in file order: the model hash does not cover the order of transitions,
    so nothing a decision records may depend on it.
    """
    if case.closed:
        return []
    return sorted(
        t.trigger
        for t in model.transitions.values()
        if case.state in t.sources and t.roles != ("system",)
    )


# --- start ----------------------------------------------------------------------------------


def _start(model: Model, event: Started, now: datetime) -> Decision:
    data = dict(event.data)
    allowed = set(model.intake_requires) | set(model.intake_accepts)
    missing = [f for f in model.intake_requires if _blank(data.get(f))]
    if missing:
        return _reject(None, "missing_field", f"missing required field(s): {', '.join(missing)}")
    unexpected = sorted(set(data) - allowed)
    if unexpected:
        return _reject(
            None,
            "unexpected_field",
            f"unexpected field(s): {', '.join(unexpected)}; accepted: {', '.join(sorted(allowed))}",
        )
    problem = json_problem(data, "data")
    if problem is not None:
        return _reject(None, "invalid_data", problem)
    region = data.get("region")
    if not isinstance(region, str) or region not in REGION_ZONES:
        return _reject(
            None,
            "invalid_data",
            f"region {region!r} is not an ISO 3166-2:ID province code (e.g. ID-JK, ID-BA, ID-PA)",
        )
    bad = _check_clock_choices(model, data)
    if bad is not None:
        return _reject(None, "invalid_data", bad)
    state = model.states[model.initial]
    case = Case(
        id=event.case_id,
        workflow=model.name,
        model_hash=model.hash,
        state=state.name,
        status=state.status,
        data=MappingProxyType(data),
        region=region,
        opened_at=now,
        last_at=now,
        semantics=event.semantics,
        reporter=event.reporter,
    )
    effects: list[Effect] = [Entered(state.name, state.status)]
    effects.extend(Notify(n.to, n.template) for n in model.intake_notify)
    clocks = _next_clocks(model, case, state.name, case.data, None, (), now, effects)
    changes = {"clocks": clocks}
    return _accept(model, None, case, changes, event.to_json(), str(event.actor), effects, now)


# --- signals --------------------------------------------------------------------------------


def _check_signal(
    model: Model, case: Case, signal: Signal
) -> tuple[Transition | None, Rejection | None]:
    transition = model.transitions.get(signal.name)
    if transition is None:
        return None, Rejection(
            "unknown_signal",
            f"unknown signal {signal.name!r}; allowed now: {_allowed_text(model, case)}",
        )
    if signal.actor.role == SYSTEM.role:
        # The engine's own role acts through lapses (``_fire``), never as a signal: a caller
        # claiming it could otherwise refer any case to Ombudsman RI or close it.
        return None, Rejection(
            "wrong_role",
            f"role 'system' is the engine's own and sends no signals; {signal.name!r} "
            "happens only when a deadline lapses",
        )
    if case.state not in transition.sources:
        return None, Rejection(
            "wrong_state",
            f"{signal.name!r} is not allowed in state {case.state!r} ({case.status}); "
            f"allowed now: {_allowed_text(model, case)}",
        )
    actor = signal.actor
    if actor.role not in transition.roles:
        return None, Rejection(
            "wrong_role",
            f"role {actor.role!r} may not send {signal.name!r}; "
            f"allowed roles: {', '.join(transition.roles)}",
        )
    if actor.role == "agency":
        if not actor.id:
            return None, Rejection(
                "not_assigned", "an agency actor must name its agency, e.g. agency:kemenkes"
            )
        if case.agency is None:
            return None, Rejection(
                "not_assigned",
                "the case is not disposed to any agency yet; Admin Nasional acts first",
            )
        if actor.id != case.agency:
            return None, Rejection(
                "not_assigned",
                f"agency {actor.id!r} is not the agency this case is disposed to",
            )
    data = signal.data
    missing = [f for f in transition.requires if _blank(data.get(f))]
    if missing:
        return None, Rejection(
            "missing_field", f"{signal.name!r} requires field(s): {', '.join(missing)}"
        )
    accepted = set(transition.requires) | set(transition.accepts)
    unexpected = sorted(set(data) - accepted)
    if unexpected:
        return None, Rejection(
            "unexpected_field",
            f"{signal.name!r} does not take field(s) {', '.join(unexpected)}; "
            f"accepted: {', '.join(sorted(accepted)) or 'none'}",
        )
    problem = json_problem(data, "data")
    if problem is not None:
        return None, Rejection("invalid_data", problem)
    bad = _check_clock_choices(model, data)
    if bad is not None:
        return None, Rejection("invalid_data", bad)
    if transition.guard is not None:
        passed, detail = evaluate_guard(transition.guard, case, data, actor)
        if not passed:
            reason = transition.guard_message or f"guard failed: {transition.guard}"
            return None, Rejection("guard_failed", f"{reason}{detail}")
    return transition, None


def _allowed_text(model: Model, case: Case) -> str:
    return ", ".join(allowed_signals(model, case)) or "none"


def _route(
    model: Model, case: Case, transition: Transition, signal: Signal
) -> tuple[str | None, Rejection | None]:
    if not transition.route:
        return case.agency, None
    chosen = signal.data.get("agency")
    if _blank(chosen):
        chosen = model.routing.propose(case.data.get("category"), case.region)
        if chosen is None:
            return None, Rejection(
                "no_route",
                f"no routing rule for category {case.data.get('category')!r} in {case.region}; "
                "give the agency explicitly",
            )
    if not isinstance(chosen, str):
        return None, Rejection("invalid_data", "agency must be an agency code (a string)")
    agencies = model.routing.agencies
    if agencies and chosen not in agencies:
        return None, Rejection(
            "invalid_data",
            f"unknown agency {chosen!r}; known agencies: {', '.join(sorted(agencies))}",
        )
    return chosen, None


def _check_clock_choices(model: Model, data: Mapping[str, Any]) -> str | None:
    """A field that picks a clock's duration (the completion tier) must name a known value."""
    for clock in model.clocks:
        by = clock.duration.by
        if by is None or by not in data:
            continue
        choices = [v for v, _ in clock.duration.values]
        if data[by] not in choices:
            return f"{by} must be one of: {', '.join(choices)} (got {data[by]!r})"
    return None


# --- applying a transition ------------------------------------------------------------------


def _take(
    model: Model,
    case: Case,
    transition: Transition,
    fields: Mapping[str, Any],
    agency: str | None,
    now: datetime,
    effects: list[Effect],
) -> dict[str, Any]:
    """The changes ``transition`` makes to ``case`` (applied by the caller in one step)."""
    data: Mapping[str, Any] = case.data
    if fields:
        data = MappingProxyType({**case.data, **fields})
    if transition.route and agency is not None:
        effects.append(Routed(agency, "signal" if "agency" in fields else "routing"))
    target = model.states[transition.target]
    effects.append(Entered(target.name, target.status))
    clocks = _next_clocks(model, case, target.name, data, agency, transition.restart, now, effects)
    effects.extend(Notify(n.to, n.template) for n in transition.notify)
    changes: dict[str, Any] = {
        "state": target.name,
        "status": target.status,
        "data": data,
        "agency": agency,
        "clocks": clocks,
    }
    if target.final:
        outcome = target.outcome or target.name
        effects.append(Closed(outcome))
        changes["outcome"] = outcome
        changes["closed_at"] = now
    return changes


def _clock_region(model: Model, agency_code: str | None, case_region: str, clock: Clock) -> str:
    if clock.region == "national":
        return model.national_region
    if clock.region == "agency" and agency_code is not None:
        agency = model.routing.agencies.get(agency_code)
        if agency is not None:
            return agency.region
    return case_region


def _next_clocks(
    model: Model,
    case: Case,
    state: str,
    data: Mapping[str, Any],
    agency: str | None,
    restart: tuple[str, ...],
    now: datetime,
    effects: list[Effect],
) -> tuple[ClockState, ...]:
    """Start, resume, pause or stop every clock for ``state``, which the case is entering."""
    final = model.states[state].final
    clocks: list[ClockState] = []
    for clock in model.clocks:
        current = case.clock(clock.name)
        if not final and state in clock.runs_in:
            if current is not None and clock.name not in restart:
                if not current.running:
                    assert current.remaining is not None
                    due = model.calendar.due(now, current.remaining, current.region)
                    effects.append(ClockResumed(clock.name, due))
                    current = ClockState(
                        clock.name, True, due, None, current.unit, current.level, current.region
                    )
                clocks.append(current)
                continue
            duration = clock.duration.for_data(data)
            if duration is None:
                continue
            if current is not None:
                effects.append(ClockStopped(clock.name))
            region = _clock_region(model, agency, case.region, clock)
            due = model.calendar.due(now, duration, region)
            effects.append(ClockStarted(clock.name, due))
            clocks.append(ClockState(clock.name, True, due, None, duration.unit, 0, region))
        elif current is not None and not final and state in clock.pauses_in:
            if current.running:
                assert current.due_at is not None
                left = model.calendar.remaining(now, current.due_at, current.unit, current.region)
                effects.append(ClockPaused(clock.name, left))
                current = ClockState(
                    clock.name, False, None, left, current.unit, current.level, current.region
                )
            clocks.append(current)
        elif current is not None:
            effects.append(ClockStopped(clock.name))
    return tuple(clocks)


# --- lapses ---------------------------------------------------------------------------------


def _is_due(case: Case, event: ClockLapsed, now: datetime) -> bool:
    """Only the timer of a running clock's current deadline, once that deadline passed, acts."""
    clock = case.clock(event.clock)
    return (
        clock is not None
        and clock.running
        and clock.due_at == event.due_at
        and clock.due_at < now
        and not case.closed
    )


def _settle(model: Model, case: Case, now: datetime, effects: list[Effect]) -> Case:
    """Apply every lapse whose deadline passed before ``now``, oldest first."""
    order = {clock.name: index for index, clock in enumerate(model.clocks)}
    for _ in range(_MAX_SETTLE_STEPS):
        overdue = [c for c in case.clocks if c.running and c.due_at is not None and c.due_at < now]
        if not overdue or case.closed:
            return case
        first = min(overdue, key=lambda c: (c.due_at, order[c.name]))
        case = _lapse(model, case, first, now, effects)
    raise RuntimeError(f"case {case.id}: clocks keep lapsing; the model loops")


def _lapse(
    model: Model, case: Case, state: ClockState, now: datetime, effects: list[Effect]
) -> Case:
    clock = model.clock(state.name)
    assert state.due_at is not None
    effects.append(Lapsed(clock.name, state.due_at, state.level))
    remaining = tuple(c for c in case.clocks if c.name != clock.name)
    if clock.fire is not None:
        return _fire(model, case.evolve(clocks=remaining), clock.fire, state.due_at, effects)
    assert clock.escalate is not None
    ladder = model.ladders[clock.escalate]
    number = min(state.level + 1, len(ladder.levels))
    rung = ladder.level(number)
    level = max(case.escalation_level, number)
    escalated_to = rung.to if number >= case.escalation_level else case.escalated_to
    if rung.final or rung.deadline is None:
        _escalate(case, Escalated(clock.name, number, rung.to, None), state, rung.notify, effects)
        case = case.evolve(escalation_level=level, escalated_to=escalated_to, clocks=remaining)
        if rung.fire is not None:
            case = _fire(model, case, rung.fire, state.due_at, effects)
        return case
    due = model.calendar.due(state.due_at, rung.deadline, state.region)
    _escalate(case, Escalated(clock.name, number, rung.to, due), state, rung.notify, effects)
    climbed = ClockState(clock.name, True, due, None, rung.deadline.unit, number, state.region)
    clocks = tuple(climbed if c.name == clock.name else c for c in case.clocks)
    return case.evolve(escalation_level=level, escalated_to=escalated_to, clocks=clocks)


def _escalate(
    case: Case, escalated: Escalated, lapsed: ClockState, notify: str, effects: list[Effect]
) -> None:
    """Record the climb and tell the rung; from semantics 2 a clock that lapsed to a rung some
    other clock reached at the same instant joins that notice instead of sending its own."""
    if case.semantics >= 2:
        index = _same_rung_notice(escalated, lapsed.due_at, effects)
        if index is not None:
            first = effects[index]
            assert isinstance(first, Escalated)
            effects[index] = Escalated(
                first.clock, first.level, first.to, first.due_at, (*first.joined, escalated.clock)
            )
            return
    effects.append(escalated)
    effects.append(Notify(escalated.to, notify))


def _same_rung_notice(
    escalated: Escalated, lapsed_at: datetime | None, effects: list[Effect]
) -> int | None:
    """Where in ``effects`` an escalation to the same rung and deadline, after a lapse at the
    same instant, already stands."""
    lapse: datetime | None = None
    for index, effect in enumerate(effects):
        if isinstance(effect, Lapsed):
            lapse = effect.due_at
        elif (
            isinstance(effect, Escalated)
            and lapse == lapsed_at
            and (effect.level, effect.to, effect.due_at)
            == (escalated.level, escalated.to, escalated.due_at)
        ):
            return index
    return None


def _fire(model: Model, case: Case, trigger: str, at: datetime, effects: list[Effect]) -> Case:
    """The system takes ``trigger`` because a clock said so (auto-close, Ombudsman referral).

    It happens ``at`` the deadline that lapsed, not when a runtime noticed: a late timer must not
    move a closing date or the deadlines of clocks the transition starts.
    """
    transition = model.transitions[trigger]
    if case.closed or case.state not in transition.sources:
        return case  # validation guarantees this cannot happen for a checked model
    changes = _take(model, case, transition, {}, case.agency, at.astimezone(UTC), effects)
    return case.evolve(**changes)


# --- migration ------------------------------------------------------------------------------


def _migrate(target: Model, case: Case, event: Migrated, now: datetime) -> Decision:
    """Move ``case`` onto ``target`` (see ``Migrated``); refused, naming why, when it cannot.

    Overdue clocks lapse under the old rules first. Then each open clock keeps the part of its
    deadline already used: what is left grows or shrinks by the difference between the new and
    the old duration of its period (the original deadline, or the rung it climbed to). A
    deadline the new rule puts in the past is due at once: it lapses (and escalates) right
    after the migration, from the instant the rule took effect, never backdated.
    """
    source = event.source
    if not isinstance(source, Model) or source.hash != case.model_hash:
        raise ValueError(f"case {case.id}: a migration needs the model the case is pinned to")
    if event.from_model != case.model_hash or event.to_model != target.hash:
        return _reject(case, "cannot_migrate", "the migration names other models than the case's")
    if target.name != source.name:
        return _reject(
            case, "cannot_migrate", f"{target.name!r} is another workflow than {source.name!r}"
        )
    if now < case.last_at:
        now = case.last_at
    effects: list[Effect] = []
    settled = _settle(source, case, now, effects)
    if settled.closed:
        return _reject(case, "cannot_migrate", f"case is closed ({settled.status})")
    state = event.states.get(settled.state, settled.state)
    if state not in target.states:
        return _reject(
            case,
            "cannot_migrate",
            f"state {settled.state!r} is not in the new model; map it (--map "
            f"{settled.state}=NEW_STATE) to one of: {', '.join(sorted(target.states))}",
        )
    if settled.agency is not None and settled.agency not in target.routing.agencies:
        return _reject(case, "cannot_migrate", f"agency {settled.agency!r} is not in the new model")
    entered = target.states[state]
    if state != settled.state or entered.status != settled.status:
        effects.append(Entered(entered.name, entered.status))
    clocks, problem = _migrate_clocks(source, target, settled, state, now, effects)
    if problem is not None:
        return _reject(case, "cannot_migrate", problem)
    changes = {"model_hash": target.hash, "state": state, "status": entered.status,
               "clocks": clocks}  # fmt: skip
    return _accept(target, case, settled, changes, event.to_json(), str(event.actor), effects, now)


def _migrate_clocks(
    source: Model,
    target: Model,
    case: Case,
    state: str,
    now: datetime,
    effects: list[Effect],
) -> tuple[tuple[ClockState, ...], str | None]:
    clocks: list[ClockState] = []
    for current in case.clocks:
        spec = _clock_named(target, current.name)
        if spec is None or (state not in spec.runs_in and state not in spec.pauses_in):
            effects.append(ClockStopped(current.name))
            continue
        old = _period(source, current, case.data)
        new = _period(target, current, case.data)
        if old is None or new is None:
            return (), f"clock {current.name!r} at level {current.level} has no new deadline"
        if old.unit != new.unit:
            return (), (
                f"clock {current.name!r} counts {old.unit} and the new model {new.unit}; "
                "a running clock cannot change its unit"
            )
        shift = new.amount - old.amount
        if shift == 0 and source.calendar == target.calendar:
            clocks.append(_follow_state(target, spec, current, state, now, effects))
            continue
        if current.running:
            assert current.due_at is not None
            left = source.calendar.remaining(now, current.due_at, current.unit, current.region)
            amount = left.amount + shift
            due = (
                target.calendar.due(now, Duration(amount, left.unit), current.region)
                if amount > 0
                else now
            )
            effects.append(ClockRescheduled(current.name, due, None))
            moved = ClockState(current.name, True, due, None, current.unit,
                               current.level, current.region)  # fmt: skip
            clocks.append(_follow_state(target, spec, moved, state, now, effects))
        else:
            assert current.remaining is not None
            remaining = Duration(max(current.remaining.amount + shift, 0), current.remaining.unit)
            effects.append(ClockRescheduled(current.name, None, remaining))
            paused = ClockState(current.name, False, None, remaining, current.unit,
                                current.level, current.region)  # fmt: skip
            clocks.append(_follow_state(target, spec, paused, state, now, effects))
    running = {c.name for c in clocks}
    for spec in target.clocks:
        if spec.name in running or state not in spec.runs_in:
            continue
        duration = spec.duration.for_data(case.data)
        if duration is None:
            continue
        region = _clock_region(target, case.agency, case.region, spec)
        due = target.calendar.due(now, duration, region)
        effects.append(ClockStarted(spec.name, due))
        clocks.append(ClockState(spec.name, True, due, None, duration.unit, 0, region))
    return tuple(clocks), None


def _follow_state(
    model: Model, spec: Clock, clock: ClockState, state: str, now: datetime, effects: list[Effect]
) -> ClockState:
    """A migrated clock in the state the case is mapped to: paused there, or running."""
    if clock.running and state in spec.pauses_in:
        assert clock.due_at is not None
        left = model.calendar.remaining(now, clock.due_at, clock.unit, clock.region)
        effects.append(ClockPaused(clock.name, left))
        return ClockState(clock.name, False, None, left, clock.unit, clock.level, clock.region)
    if not clock.running and state in spec.runs_in:
        assert clock.remaining is not None
        due = model.calendar.due(now, clock.remaining, clock.region)
        effects.append(ClockResumed(clock.name, due))
        return ClockState(clock.name, True, due, None, clock.unit, clock.level, clock.region)
    return clock


def _clock_named(model: Model, name: str) -> Clock | None:
    return next((c for c in model.clocks if c.name == name), None)


def _period(model: Model, clock: ClockState, data: Mapping[str, Any]) -> Duration | None:
    """The duration of the period ``clock`` is in under ``model``: its own, or its rung's."""
    spec = _clock_named(model, clock.name)
    if spec is None:
        return None
    if clock.level == 0:
        return spec.duration.for_data(data)
    if spec.escalate is None:
        return None
    ladder = model.ladders[spec.escalate]
    if clock.level > len(ladder.levels):
        return None
    return ladder.level(clock.level).deadline


# --- helpers --------------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _reject(case: Case | None, code: Any, reason: str) -> Decision:
    return Decision(case, rejection=Rejection(code, reason))


def _accept(
    model: Model,
    before: Case | None,
    base: Case,
    changes: dict[str, Any],
    event: Mapping[str, Any],
    actor: str,
    effects: list[Effect],
    now: datetime,
) -> Decision:
    seq = 1 if before is None else before.seq + 1
    prev = GENESIS if before is None else before.head
    record = HistoryRecord.seal(
        seq=seq,
        at=utc_text(now),
        actor=actor,
        model_hash=model.hash,
        event=event,
        effects=[effect_to_json(e) for e in effects],
        prev_hash=prev,
    )
    after = base.evolve(**changes, seq=seq, head=record.hash, last_at=now)
    return Decision(after, tuple(effects), record)
