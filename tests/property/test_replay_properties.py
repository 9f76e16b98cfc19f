"""Properties of random sp4n-lapor cases: replay, exactly-once escalation, timer-lag independence.

A generated *plan* starts one case at a random instant of 2026 in a region of WIB, WITA or WIT,
then takes up to 12 steps, each some minutes to 30 days after the last: a signal (any trigger of
the model, sent by Admin Nasional, the reporter, the system, the case's agency or another one,
with plausible, missing or unexpected fields) or just a move of the clock. Times stay before
``LIMIT`` (2026 plus two months) so every deadline falls inside the shipped 2025-2027 calendars.

Each plan runs twice on the in-memory runtime:

* *on time*: the clock is advanced before every signal, so each lapse is delivered by its timer;
* *late timers*: the clock is moved without delivering timers, so lapses are settled inside the
  next signal's decision.

Both runs end with the same move of the clock to the same final instant.

Hypothesis is steered (``target``) towards plans that get far into the workflow and that send
acceptable signals after missed deadlines; ``pytest --hypothesis-show-statistics`` shows what
the examples reached. ``LAPOR_PROPERTY_EXAMPLES=2000`` runs more examples than the default 100.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from engine.domain.case import Case
from engine.domain.events import Actor, Signal, instant
from engine.domain.history import replay
from engine.domain.machine import Decision, allowed_signals
from engine.domain.model import Model, Transition
from engine.domain.records import HistoryRecord
from engine.runtime.memory import MemoryRuntime

CASE_ID = "LAPOR-PROP-1"
LIMIT = datetime(2027, 3, 1, tzinfo=timezone(timedelta(hours=7)))
OFFSETS = tuple(timezone(timedelta(hours=h)) for h in (0, 7, 8, 9))
REGIONS = ("ID-JK", "ID-JI", "ID-BA", "ID-SN", "ID-PA", "ID-MA")  # WIB, WIB, WITA x2, WIT x2
CATEGORIES = (
    "kesehatan",
    "bantuan_sosial",
    "infrastruktur",
    "administrasi_kependudukan",
    "lainnya",
)
CHANNELS = ("web", "app", "sms_1708", "social")
FORWARD = ("verify", "supply_info", "follow_up", "complete", "confirm")  # pick 0: the on-time path
ACTORS = ("admin:nasional", "reporter", "system", "agency:own", "agency:other")
ROLE_ACTORS = {
    "admin": "admin:nasional",
    "reporter": "reporter",
    "system": "system",
    "agency": "agency:own",
}
TEXTS = (
    "Mohon segera ditindaklanjuti",
    "Sudah dicek ke lokasi",
    "Terlampir",
    "Baik",
    "Oke",
    " ",
    "",
)
AGENCIES = ("kemenkes", "kemensos", "pemprov-dki", "pemprov-bali", "pemprov-papua", "no-such", "")
EXTRA_FIELDS = ("nik", "priority", "rating", "agency", "info")
SETTINGS = settings(
    max_examples=int(os.environ.get("LAPOR_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

MakeRuntime = Callable[[datetime], MemoryRuntime]


# --- plans ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalStep:
    """A signal ``delay`` after the previous step.

    ``name`` is any trigger of the model, or ``None`` for one of the triggers allowed in the
    case's state when the step runs (the ``pick``-th); ``actor`` is one of ``ACTORS``, or
    ``None`` for a role the trigger allows (the ``pick``-th). ``values`` has a value for every
    field any trigger takes: the chosen trigger sends its required fields except ``dropped``
    ones, its optional fields that are in ``optional``, and ``extra`` (fields nobody expects).
    """

    delay: timedelta
    name: str | None
    actor: str | None
    pick: int
    values: Mapping[str, Any]
    dropped: frozenset[str]
    optional: frozenset[str]
    extra: Mapping[str, Any]

    def data_for(self, transition: Transition) -> dict[str, Any]:
        data = {f: self.values[f] for f in transition.requires if f not in self.dropped}
        data.update({f: self.values[f] for f in transition.accepts if f in self.optional})
        data.update(self.extra)
        return data


@dataclass(frozen=True)
class AdvanceStep:
    delay: timedelta


@dataclass(frozen=True)
class Plan:
    start: datetime
    data: Mapping[str, Any]
    steps: tuple[SignalStep | AdvanceStep, ...]
    tail: timedelta


def value_for(name: str) -> st.SearchStrategy[Any]:
    if name == "agency":
        return st.sampled_from(AGENCIES)
    if name == "tier":
        return st.sampled_from(("simple", "no_field_exam", "field_exam", "urgent"))
    if name == "rating":
        return st.one_of(st.integers(0, 6), st.sampled_from(("5", None)))
    if name in ("anonymous", "confidential"):
        return st.booleans()
    return st.sampled_from(TEXTS)


_DELAYS = (
    st.integers(60, 4 * 3600),  # minutes to hours
    st.integers(4 * 3600, 2 * 24 * 3600),  # up to two days: around one deadline
    st.integers(3 * 24 * 3600, 30 * 24 * 3600),  # long silences: whole ladders lapse
)
delays = st.sampled_from((0, 0, 0, 1, 1, 1, 1, 2)).flatmap(
    lambda branch: _DELAYS[branch].map(lambda seconds: timedelta(seconds=seconds))
)


silences = st.integers(3600, 30 * 24 * 3600).map(lambda seconds: timedelta(seconds=seconds))
"""Nobody acts for an hour to 30 days: the clock just moves."""


def sometimes(values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    """``None`` (resolve against the case when the step runs) three times in four."""
    return st.sampled_from(range(4)).flatmap(lambda i: values if i == 0 else st.none())


@st.composite
def steps(draw: st.DrawFn, model: Model) -> SignalStep | AdvanceStep:
    if draw(st.sampled_from(range(5))) == 0:
        return AdvanceStep(draw(silences))
    delay = draw(delays)
    name = draw(sometimes(st.sampled_from(sorted(model.transitions))))
    actor = draw(sometimes(st.sampled_from(ACTORS)))
    fields = sorted({f for t in model.transitions.values() for f in (*t.requires, *t.accepts)})
    return SignalStep(
        delay,
        name,
        actor,
        pick=draw(
            st.sampled_from((0, 1)).flatmap(lambda i: st.integers(0, 99) if i else st.just(0))
        ),
        values=draw(st.fixed_dictionaries({f: value_for(f) for f in fields})),
        dropped=draw(
            st.sampled_from(range(8)).flatmap(
                lambda i: (
                    st.frozensets(st.sampled_from(fields), min_size=1, max_size=2)
                    if i == 0
                    else st.just(frozenset())
                )
            )
        ),
        optional=draw(st.frozensets(st.sampled_from(fields))),
        extra=draw(
            st.sampled_from(range(6)).flatmap(
                lambda i: (
                    st.dictionaries(
                        st.sampled_from(EXTRA_FIELDS),
                        st.sampled_from(TEXTS),
                        min_size=1,
                        max_size=1,
                    )
                    if i == 0
                    else st.just({})
                )
            )
        ),
    )


@st.composite
def plans(draw: st.DrawFn, model: Model) -> Plan:
    local = draw(st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31, 23, 59, 59)))
    start = local.replace(microsecond=0, tzinfo=draw(st.sampled_from(OFFSETS)))
    data: dict[str, Any] = {
        "category": draw(st.sampled_from(CATEGORIES)),
        "region": draw(st.sampled_from(REGIONS)),
        "channel": draw(st.sampled_from(CHANNELS)),
        "description": "Laporan uji properti",
    }
    if draw(st.booleans()):
        data["tier"] = draw(st.sampled_from(("simple", "no_field_exam", "field_exam")))
    if draw(st.booleans()):
        data["anonymous"] = draw(st.booleans())
    taken = tuple(draw(st.lists(steps(model), max_size=12)))
    # Most plans end with a silence, so the clocks still open run their course.
    tail = draw(st.one_of(delays, silences, silences.map(lambda d: 2 * d)))
    return Plan(start, data, taken, tail)


# --- running a plan ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """One signal as sent: the case and history length just before it and just after it."""

    before: Case
    decision: Decision
    after: Case
    records_before: int
    records_after: int


@dataclass
class Run:
    runtime: MemoryRuntime
    sent: list[tuple[datetime, Signal]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    end: datetime | None = None

    @property
    def case(self) -> Case:
        return self.runtime.case(CASE_ID)

    @property
    def history(self) -> list[HistoryRecord]:
        return self.runtime.history(CASE_ID)


def concrete(model: Model, step: SignalStep, case: Case) -> Signal:
    """The step's signal against ``case``: its trigger, actor and agency resolved."""
    name = step.name
    if name is None:
        allowed = allowed_signals(model, case) or sorted(model.transitions)
        forward = [n for n in allowed if n in FORWARD]
        name = forward[0] if step.pick == 0 and forward else allowed[step.pick % len(allowed)]
    actor = step.actor
    if actor is None:
        roles = model.transitions[name].roles
        actor = ROLE_ACTORS[roles[step.pick % len(roles)]]
    own = case.agency or model.routing.propose(case.data.get("category"), case.region) or "kemenkes"
    if actor == "agency:own":
        actor = f"agency:{own}"
    elif actor == "agency:other":
        actor = f"agency:{next(a for a in sorted(model.routing.agencies) if a != own)}"
    return Signal(name, Actor.parse(actor), step.data_for(model.transitions[name]))


def send(run: Run, signal: Signal) -> None:
    before, count = run.case, len(run.history)
    decision = run.runtime.signal(CASE_ID, signal)
    run.outcomes.append(Outcome(before, decision, run.case, count, len(run.history)))


def start(make_runtime: MakeRuntime, plan: Plan) -> Run:
    runtime = make_runtime(plan.start)
    started = runtime.start("sp4n-lapor", CASE_ID, plan.data, at=plan.start)
    assert started.accepted, started.rejection
    return Run(runtime)


def run_on_time(make_runtime: MakeRuntime, model: Model, plan: Plan) -> Run:
    """Every timer is delivered when due: the clock advances before each step."""
    run = start(make_runtime, plan)
    now = plan.start
    for step in plan.steps:
        if now + step.delay > LIMIT:
            break
        now += step.delay
        run.runtime.advance_to(now)
        if isinstance(step, SignalStep):
            signal = concrete(model, step, run.case)
            run.sent.append((now, signal))
            send(run, signal)
    run.end = min(now + plan.tail, LIMIT)
    run.runtime.advance_to(run.end)
    return run


def run_with_late_timers(make_runtime: MakeRuntime, plan: Plan, on_time: Run) -> Run:
    """The same signals at the same instants, but no timer is delivered until the very end."""
    run = start(make_runtime, plan)
    for when, signal in on_time.sent:
        run.runtime.clock.advance_to(when)  # time passes; no timer fires
        send(run, signal)
    assert on_time.end is not None
    run.end = on_time.end
    run.runtime.advance_to(run.end)
    return run


def both_runs(make_runtime: MakeRuntime, model: Model, plan: Plan) -> tuple[Run, Run]:
    on_time = run_on_time(make_runtime, model, plan)
    late = run_with_late_timers(make_runtime, plan, on_time)
    explore(on_time, late)
    return on_time, late


# --- what the properties look at --------------------------------------------------------------


def effects(history: Sequence[HistoryRecord]) -> list[Mapping[str, Any]]:
    return [effect for record in history for effect in record.effects]


def escalations(history: Sequence[HistoryRecord]) -> Counter[tuple[Any, ...]]:
    """Each clock's climbs, whether it has a notice of its own or joined another's."""
    return Counter(
        (clock, e["level"], e["to"], None if e["due_at"] is None else instant(e["due_at"]))
        for e in effects(history)
        if e["kind"] == "escalated"
        for clock in (e["clock"], *e.get("joined", ()))
    )


def lapses(history: Sequence[HistoryRecord]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (e["clock"], instant(e["due_at"]), e["level"])
        for e in effects(history)
        if e["kind"] == "lapsed"
    )


def observable(case: Case) -> dict[str, Any]:
    """What a case is, apart from its history's length, hashes and when its last record was made."""
    out = case.to_json()
    del out["seq"], out["head"], out["last_at"]
    return out


def lapse_problems(model: Model, history: Sequence[HistoryRecord]) -> list[str]:
    """Every way the lapses of ``history`` break "each deadline lapses once, and climbs once"."""
    problems: list[str] = []
    seen: set[tuple[Any, ...]] = set()
    levels: dict[str, int] = {}
    for record in history:
        marks = [i for i, e in enumerate(record.effects) if e["kind"] == "lapsed"]
        for n, i in enumerate(marks):
            lapse = record.effects[i]
            key = (lapse["clock"], instant(lapse["due_at"]), lapse["level"])
            if key in seen:
                problems.append(f"record {record.seq}: {key} lapsed twice")
            seen.add(key)
            segment = record.effects[i + 1 : marks[n + 1] if n + 1 < len(marks) else None]
            earlier = record.effects[:i]
            problems.extend(_resolution_problems(model, record.seq, lapse, segment, earlier))
        joining: dict[str, int] = {}  # clocks named by a notice before their own lapse comes
        for effect in record.effects:
            kind = effect.get("kind")
            if kind == "clock_started":
                levels[effect["clock"]] = 0
            elif kind == "lapsed":
                if effect["level"] != levels.get(effect["clock"], 0):
                    problems.append(
                        f"record {record.seq}: lapse at level {effect['level']}, "
                        f"clock is at {levels.get(effect['clock'], 0)}"
                    )
                if effect["clock"] in joining:
                    levels[effect["clock"]] = joining.pop(effect["clock"])
            elif kind == "escalated":
                expected = levels.get(effect["clock"], 0) + 1
                if effect["level"] != expected:
                    problems.append(
                        f"record {record.seq}: {effect['clock']} escalated to level "
                        f"{effect['level']}, expected {expected}"
                    )
                levels[effect["clock"]] = effect["level"]
                joining.update((clock, effect["level"]) for clock in effect.get("joined", ()))
        if joining:
            problems.append(f"record {record.seq}: {sorted(joining)} joined without a lapse")
    return problems


def _resolution_problems(
    model: Model,
    seq: int,
    lapse: Mapping[str, Any],
    segment: Sequence[Mapping[str, Any]],
    earlier: Sequence[Mapping[str, Any]],
) -> list[str]:
    """A lapse climbs once: an escalation of its own right after it, or (semantics 2) it joined
    the notice of a clock that lapsed to the same rung at the same instant just before."""
    clock = model.clock(lapse["clock"])
    climbed = [e for e in segment if e["kind"] == "escalated"]
    if clock.escalate is not None:
        joined = [
            e for e in earlier if e["kind"] == "escalated" and clock.name in e.get("joined", ())
        ]
        # A late timer climbs several rungs in one decision: the notice this lapse joined is
        # the latest naming it, one rung above the lapse.
        if not climbed and joined and joined[-1]["level"] == lapse["level"] + 1:
            return []
        if len(climbed) != 1 or climbed[0]["clock"] != clock.name:
            return [f"record {seq}: lapse of {clock.name} followed by escalations {climbed}"]
        return []
    assert clock.fire is not None
    target = model.states[model.transitions[clock.fire].target]
    fired = {"kind": "entered", "state": target.name, "status": target.status}
    if climbed or not segment or dict(segment[0]) != fired:
        return [f"record {seq}: lapse of {clock.name} did not fire {clock.fire}"]
    return []


def explore(on_time: Run, late: Run) -> None:
    """Steer generation towards long cases and late lapses, and report what was reached.

    ``target`` makes Hypothesis favour plans with many recorded decisions, and with lapses that
    an accepted signal settles in the late-timer run (a random plan rarely gets past
    verification, and rarely sends an acceptable signal after a missed deadline). ``event``
    shows what was reached with ``pytest --hypothesis-show-statistics``.
    """
    target(float(len(on_time.history)), label="recorded decisions")
    settled = [
        e
        for r in late.history
        if r.event["kind"] == "signal"
        for e in r.effects
        if e["kind"] == "lapsed"
    ]
    target(float(len(settled)), label="lapses settled by a signal")
    for effect in effects(on_time.history):
        if effect["kind"] == "entered":
            event(f"entered {effect['state']}")
        elif effect["kind"] == "lapsed":
            event(f"lapsed {effect['clock']}")
    if settled:
        event("a signal settled a lapse")


# --- properties -------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_replay_rederives_every_generated_history(
    model: Model, make_runtime: MakeRuntime, data: st.DataObject
) -> None:
    for run in both_runs(make_runtime, model, data.draw(plans(model), label="plan")):
        report = replay(model, run.history)

        assert report.ok, report.problems
        assert report.case == run.case


@SETTINGS
@given(data=st.data())
def test_every_deadline_lapses_once_and_climbs_one_rung(
    model: Model, make_runtime: MakeRuntime, data: st.DataObject
) -> None:
    for run in both_runs(make_runtime, model, data.draw(plans(model), label="plan")):
        assert lapse_problems(model, run.history) == []


@SETTINGS
@given(data=st.data())
def test_late_timers_give_the_same_escalations_and_final_state(
    model: Model, make_runtime: MakeRuntime, data: st.DataObject
) -> None:
    on_time, late = both_runs(make_runtime, model, data.draw(plans(model), label="plan"))
    assert late.runtime.clock.now() == on_time.runtime.clock.now()

    assert escalations(late.history) == escalations(on_time.history)
    assert lapses(late.history) == lapses(on_time.history)
    assert observable(late.case) == observable(on_time.case)
    assert [o.decision.rejection for o in late.outcomes] == [
        o.decision.rejection for o in on_time.outcomes
    ]


@SETTINGS
@given(data=st.data())
def test_rejected_signal_never_changes_the_case_or_its_history(
    model: Model, make_runtime: MakeRuntime, data: st.DataObject
) -> None:
    for run in both_runs(make_runtime, model, data.draw(plans(model), label="plan")):
        for outcome in run.outcomes:
            if outcome.decision.rejection is None:
                assert outcome.decision.accepted
                assert outcome.records_after == outcome.records_before + 1
                continue
            assert outcome.decision.record is None and outcome.decision.effects == ()
            assert outcome.decision.case is outcome.before
            assert outcome.after is outcome.before
            assert outcome.after.to_json() == outcome.before.to_json()
            assert outcome.records_after == outcome.records_before
