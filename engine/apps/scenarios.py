"""Scenario files: one case, a list of timed signals, and what the policy author expects.

A scenario runs on any runtime that implements ``ScenarioRuntime`` (the in-memory one here; the
durable runtimes reuse the same files), always on a virtual clock, so a 60-day SLA takes
milliseconds and the deadlines hit the real holidays of the dates written in the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.definitions.loader import load_models
from engine.definitions.project import find_project_root
from engine.definitions.schema import Source
from engine.definitions.schema_errors import schema_errors
from engine.definitions.yamlio import MarkedDict, load_yaml_file
from engine.domain.case import Case
from engine.domain.errors import DefinitionError, LaporError, Location, ScenarioError
from engine.domain.events import Actor, Signal, instant
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.runtime.clock import VirtualClock
from engine.runtime.contract import Outcome, Runtime, model_for_workflow
from engine.runtime.errors import UnknownWorkflowError
from engine.runtime.memory import MemoryRuntime

__all__ = [
    "RuntimeFactory",
    "Scenario",
    "ScenarioResult",
    "load_scenario",
    "run_scenario",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RejectionExpectation(_Strict):
    code: str = Field(description="Stable rejection code, e.g. wrong_state, wrong_role.")
    reason_contains: str | None = Field(
        default=None, description="A fragment the human-readable reason must contain."
    )


class ClockExpectation(_Strict):
    running: bool | None = None
    due_at: str | None = Field(default=None, description="ISO 8601 instant with offset.")
    remaining: str | None = Field(default=None, description="e.g. '2 working days'.")
    level: int | None = None


class EscalationExpectation(_Strict):
    clock: str
    level: int
    to: str
    at: str | None = Field(default=None, description="When the escalation was decided.")
    due_at: str | None = Field(default=None, description="The new rung's deadline.")
    joined: list[str] | None = Field(
        default=None, description="The other clocks that share this notice (same rung, instant)."
    )


class LapseExpectation(_Strict):
    clock: str
    due_at: str | None = None
    level: int | None = None


class NotificationExpectation(_Strict):
    to: str
    template: str


class Expectation(_Strict):
    """What must hold after a step (or at the end). Every key is optional."""

    state: str | None = None
    status: str | None = None
    agency: str | None = None
    outcome: str | None = None
    escalation_level: int | None = None
    escalated_to: str | None = None
    rejected: str | RejectionExpectation | None = Field(
        default=None, description="The step's signal must be rejected with this code."
    )
    open_clocks: list[str] | None = Field(
        default=None, description="Exactly these clocks are open (running or paused)."
    )
    clocks: dict[str, ClockExpectation | None] | None = Field(
        default=None, description="Per clock; null means the clock must not be open."
    )
    escalations: list[EscalationExpectation] | None = Field(
        default=None, description="Exactly these escalations so far, in order."
    )
    lapses: list[LapseExpectation] | None = Field(
        default=None, description="Exactly these lapses so far, in order."
    )
    notifications_include: list[NotificationExpectation] | None = None
    decisions: int | None = Field(default=None, description="Recorded decisions so far.")
    data: dict[str, Any] | None = Field(default=None, description="A subset of the case data.")


class Step(_Strict):
    at: str | None = Field(default=None, description="When the signal is sent (ISO 8601).")
    until: str | None = Field(default=None, description="Only advance the clock to this instant.")
    signal: str | None = None
    actor: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    key: str | None = None
    expect: Expectation | None = None


class StartSpec(_Strict):
    at: str
    id: str = "LAPOR-SCENARIO-0001"
    actor: str = "system"
    data: dict[str, Any]
    reporter: dict[str, Any] = Field(default_factory=dict)


class Scenario(_Strict):
    scenario: str = Field(description="A sentence saying what the scenario shows.")
    description: str = ""
    workflow: str
    start: StartSpec
    steps: list[Step] = Field(default_factory=list)
    expect: Expectation | None = None

    @field_validator("steps")
    @classmethod
    def _each_step_does_one_thing(cls, steps: list[Step]) -> list[Step]:
        for number, step in enumerate(steps, start=1):
            if (step.signal is None) == (step.until is None):
                raise ValueError(f"step {number}: give either 'signal' (with 'at') or 'until'")
            if step.signal is not None and (step.at is None or step.actor is None):
                raise ValueError(f"step {number}: a signal step needs 'at' and 'actor'")
        return steps


@dataclass
class ScenarioResult:
    path: Path
    name: str
    failures: list[str] = field(default_factory=list)
    case: Case | None = None
    history: list[HistoryRecord] = field(default_factory=list)
    has_expectations: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures


def load_scenario(path: Path) -> Scenario:
    raw = load_yaml_file(path)
    if not isinstance(raw, MarkedDict) or "scenario" not in raw:
        raise DefinitionError(
            "not a scenario file: expected a mapping with a 'scenario' key",
            location=Location(str(path)),
        )
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        # The same messages as workflow and policy files: "unknown key 'colour' in start;
        # allowed keys: ...", at the key's line and column, not pydantic's own wording.
        source = Source(str(path), path.read_text(encoding="utf-8"), raw)
        raise schema_errors(source, Scenario, exc.errors())[0] from None


def check_scenario(path: Path, models: Mapping[str, Model]) -> list[DefinitionError]:
    """What would make scenario ``path`` fail before it runs, each at its place in the file: an
    unknown workflow, signal or state, a time without offset, a year no calendar covers."""
    scenario = load_scenario(path)
    raw = load_yaml_file(path)
    assert isinstance(raw, MarkedDict)
    source = Source(str(path), path.read_text(encoding="utf-8"), raw)
    problems: list[DefinitionError] = []

    def problem(message: str, *where: str | int) -> None:
        problems.append(DefinitionError(message, location=source.where(where)))

    model = models.get(scenario.workflow)
    if model is None:
        problem(UnknownWorkflowError(scenario.workflow, sorted(models)).message, "workflow")
        return problems
    years = set(model.calendar.years)
    times: list[tuple[str, tuple[str | int, ...]]] = [(scenario.start.at, ("start", "at"))]
    expectations: list[tuple[Expectation, tuple[str | int, ...]]] = []
    for index, step in enumerate(scenario.steps):
        for name in ("at", "until"):
            value = getattr(step, name)
            if value is not None:
                times.append((value, ("steps", index, name)))
        refused = step.expect is not None and step.expect.rejected is not None
        if step.signal is not None and step.signal not in model.transitions and not refused:
            known = ", ".join(model.transitions)
            problem(f"unknown signal {step.signal!r}; signals are: {known}", "steps", index)
        if step.expect is not None:
            expectations.append((step.expect, ("steps", index, "expect")))
    if scenario.expect is not None:
        expectations.append((scenario.expect, ("expect",)))
    for expect, where in expectations:
        if expect.state is not None and expect.state not in model.states:
            known = ", ".join(model.states)
            problem(f"unknown state {expect.state!r}; states are: {known}", *where, "state")
    for text, where in times:
        try:
            moment = instant(text)
        except LaporError as exc:
            problem(exc.message, *where)
            continue
        if moment.year not in years:
            problem(
                f"{text} is in {moment.year}, which the workflow's calendar does not cover "
                f"(it has {', '.join(map(str, sorted(years)))})",
                *where,
            )
    return problems


def _locate(raw: Any, loc: Sequence[Any]) -> Location:
    node, where = raw, getattr(raw, "location", Location("<scenario>"))
    for part in loc:
        if isinstance(node, MarkedDict) and isinstance(part, str) and part in node:
            where, node = node.where(part), node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            where = node.where(part) if hasattr(node, "where") else where
            node = node[part]
        else:
            break
    return where


RuntimeFactory = Callable[[Mapping[str, Model], datetime], Runtime]
"""``factory(models, start)``: a runtime on a virtual clock standing at ``start``."""


def run_scenario(
    path: Path,
    runtime_factory: RuntimeFactory | None = None,
    models: Mapping[str, Model] | None = None,
) -> ScenarioResult:
    """Run one scenario file; ``runtime_factory(models, start)`` builds the runtime to run it on
    (default: the in-memory runtime)."""
    scenario = load_scenario(path)
    if models is None:
        root = find_project_root(path.resolve().parent)
        models = load_models(root / "workflows", root / "policies")
    try:
        model_for_workflow(models, scenario.workflow)
    except UnknownWorkflowError as exc:
        raise ScenarioError(exc.message, location=Location(str(path))) from None
    start_at = _time(scenario.start.at, "start.at")
    runtime = (runtime_factory or _in_memory)(models, start_at)
    result = ScenarioResult(path, scenario.scenario)
    result.has_expectations = scenario.expect is not None or any(s.expect for s in scenario.steps)
    case_id = scenario.start.id
    started = runtime.start(
        scenario.workflow,
        case_id,
        scenario.start.data,
        reporter=scenario.start.reporter,
        actor=Actor.parse(scenario.start.actor),
        at=start_at,
    )
    if started.rejection is not None:
        result.failures.append(f"start was rejected: {started.rejection.reason}")
        return result
    for number, step in enumerate(scenario.steps, start=1):
        decision: Outcome | None = None
        if step.until is not None:
            runtime.advance_to(_time(step.until, f"steps[{number}].until"))
        else:
            assert step.signal is not None and step.actor is not None and step.at is not None
            signal = Signal(step.signal, Actor.parse(step.actor), step.data, step.key)
            # The scenario's reporter is the case's: its signals carry the token the start gave.
            decision = runtime.signal(
                case_id,
                signal,
                at=_time(step.at, f"steps[{number}].at"),
                reporter_token=started.reporter_token,
            )
        expectation = step.expect or Expectation()
        label = f"step {number} ({step.signal or 'until ' + str(step.until)})"
        if decision is not None and decision.rejection is not None and expectation.rejected is None:
            result.failures.append(f"{label}: unexpectedly rejected: {decision.rejection.reason}")
        result.failures.extend(
            f"{label}: {problem}"
            for problem in check(
                expectation, runtime.case(case_id), runtime.history(case_id), decision
            )
        )
    if scenario.expect is not None:
        result.failures.extend(
            f"end: {problem}"
            for problem in check(
                scenario.expect, runtime.case(case_id), runtime.history(case_id), None
            )
        )
    result.case = runtime.case(case_id)
    result.history = runtime.history(case_id)
    return result


def _in_memory(models: Mapping[str, Model], start: datetime) -> Runtime:
    return MemoryRuntime(models, VirtualClock(start))


def _time(text: str, where: str) -> datetime:
    try:
        return instant(text)
    except LaporError as exc:
        raise ScenarioError(f"{where}: {exc.message}") from None


def _same_instant(expected: str, actual: str | None) -> bool:
    if actual is None:
        return False
    return instant(expected) == instant(actual)


def check(
    expect: Expectation,
    case: Case,
    history: Sequence[HistoryRecord],
    decision: Outcome | None,
) -> list[str]:
    """Every way ``case``/``history`` (and the step's ``decision``) differ from ``expect``."""
    problems: list[str] = []
    for name in ("state", "status", "agency", "outcome", "escalation_level", "escalated_to"):
        wanted = getattr(expect, name)
        got = getattr(case, name)
        if wanted is not None and wanted != got:
            problems.append(f"expected {name} {wanted!r}, got {got!r}")
    if expect.rejected is not None:
        wanted_rejection = (
            RejectionExpectation(code=expect.rejected)
            if isinstance(expect.rejected, str)
            else expect.rejected
        )
        if decision is None or decision.rejection is None:
            problems.append(f"expected rejection {wanted_rejection.code!r}, but it was accepted")
        else:
            if decision.rejection.code != wanted_rejection.code:
                problems.append(
                    f"expected rejection {wanted_rejection.code!r}, got "
                    f"{decision.rejection.code!r}: {decision.rejection.reason}"
                )
            fragment = wanted_rejection.reason_contains
            if fragment and fragment not in decision.rejection.reason:
                problems.append(
                    f"rejection reason {decision.rejection.reason!r} does not contain {fragment!r}"
                )
    if expect.open_clocks is not None:
        got_open = sorted(c.name for c in case.clocks)
        if sorted(expect.open_clocks) != got_open:
            problems.append(f"expected open clocks {sorted(expect.open_clocks)}, got {got_open}")
    for name, clock_expect in (expect.clocks or {}).items():
        problems.extend(_check_clock(name, clock_expect, case))
    effects = [(record, effect) for record in history for effect in record.effects]
    if expect.escalations is not None:
        got_escalations = [(r, e) for r, e in effects if e["kind"] == "escalated"]
        problems.extend(_check_escalations(expect.escalations, got_escalations))
    if expect.lapses is not None:
        got_lapses = [e for _, e in effects if e["kind"] == "lapsed"]
        problems.extend(_check_lapses(expect.lapses, got_lapses))
    for note in expect.notifications_include or []:
        if not any(
            e["kind"] == "notify" and e["to"] == note.to and e["template"] == note.template
            for _, e in effects
        ):
            problems.append(f"expected a notification {note.template!r} to {note.to!r}")
    if expect.decisions is not None and expect.decisions != len(history):
        problems.append(f"expected {expect.decisions} recorded decisions, got {len(history)}")
    for key, value in (expect.data or {}).items():
        if case.data.get(key) != value:
            problems.append(f"expected data {key}={value!r}, got {case.data.get(key)!r}")
    return problems


def _check_clock(name: str, expect: ClockExpectation | None, case: Case) -> list[str]:
    clock = case.clock(name)
    if expect is None:
        return [] if clock is None else [f"expected clock {name!r} not to be open"]
    if clock is None:
        return [f"expected clock {name!r} to be open, it is not"]
    problems: list[str] = []
    if expect.running is not None and expect.running != clock.running:
        problems.append(f"clock {name!r}: expected running={expect.running}, got {clock.running}")
    due_text = clock.due_at.isoformat() if clock.due_at else None
    if expect.due_at is not None and not _same_instant(expect.due_at, due_text):
        problems.append(f"clock {name!r}: expected due {expect.due_at}, got {due_text}")
    remaining = str(clock.remaining) if clock.remaining else None
    if expect.remaining is not None and expect.remaining != remaining:
        problems.append(
            f"clock {name!r}: expected remaining {expect.remaining!r}, got {remaining!r}"
        )
    if expect.level is not None and expect.level != clock.level:
        problems.append(f"clock {name!r}: expected level {expect.level}, got {clock.level}")
    return problems


def _check_escalations(
    wanted: list[EscalationExpectation], got: list[tuple[HistoryRecord, Mapping[str, Any]]]
) -> list[str]:
    problems: list[str] = []
    if len(wanted) != len(got):
        summary = ", ".join(f"{e['clock']}→{e['to']} (level {e['level']})" for _, e in got)
        problems.append(
            f"expected {len(wanted)} escalation(s), got {len(got)}: {summary or 'none'}"
        )
    for index, (want, (record, effect)) in enumerate(zip(wanted, got, strict=False), start=1):
        actual = (effect["clock"], effect["level"], effect["to"])
        if (want.clock, want.level, want.to) != actual:
            problems.append(
                f"escalation {index}: expected {want.clock}→{want.to} (level {want.level}), "
                f"got {actual[0]}→{actual[2]} (level {actual[1]})"
            )
        if want.at is not None and not _same_instant(want.at, record.at):
            problems.append(f"escalation {index}: expected at {want.at}, got {record.at}")
        if want.due_at is not None and not _same_instant(want.due_at, effect["due_at"]):
            problems.append(
                f"escalation {index}: expected due {want.due_at}, got {effect['due_at']}"
            )
        joined = effect.get("joined", [])
        if want.joined is not None and want.joined != joined:
            problems.append(f"escalation {index}: expected joined by {want.joined}, got {joined}")
    return problems


def _check_lapses(wanted: list[LapseExpectation], got: list[Mapping[str, Any]]) -> list[str]:
    problems: list[str] = []
    if len(wanted) != len(got):
        summary = ", ".join(f"{e['clock']} (level {e['level']})" for e in got)
        problems.append(f"expected {len(wanted)} lapse(s), got {len(got)}: {summary or 'none'}")
    for index, (want, effect) in enumerate(zip(wanted, got, strict=False), start=1):
        if want.clock != effect["clock"]:
            problems.append(f"lapse {index}: expected clock {want.clock}, got {effect['clock']}")
        if want.due_at is not None and not _same_instant(want.due_at, effect["due_at"]):
            problems.append(f"lapse {index}: expected due {want.due_at}, got {effect['due_at']}")
        if want.level is not None and want.level != effect["level"]:
            problems.append(f"lapse {index}: expected level {want.level}, got {effect['level']}")
    return problems
