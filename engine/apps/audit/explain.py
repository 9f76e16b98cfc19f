"""A human timeline of one complaint, read from its recorded history and its pinned model only.

``explain(model, records, lang)`` folds the records into ``Step`` values: what happened, who
acted (role and id as recorded; the records hold no reporter identity and nothing here looks for
one), when (in the case region's zone), which transition applied, which deadlines started,
paused, resumed or stopped, the holidays each deadline skipped, why a lapse escalated and to
whom, and whether the party whose signal stopped a clock was on time. ``render(steps)`` is the
text; ``Step.to_json()`` the same content for programs.

Pure: no I/O, no clock. Every number comes from the model's calendar over recorded instants, so
the same records explain the same way forever. Indonesian and English come from one table
(``engine.apps.audit.explain_words``); each rule here is written once and only picks a template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal

from engine.apps.audit.explain_words import LANGS, Lang, Words, check_lang
from engine.domain.calendar import REGION_NAMES, Duration, Holiday, zone_for_region
from engine.domain.errors import LaporError
from engine.domain.events import instant
from engine.domain.machine import LAPSE_MARGIN
from engine.domain.model import Clock, Model
from engine.domain.records import HistoryRecord

__all__ = [
    "LANGS",
    "Deadline",
    "Escalation",
    "Lang",
    "Lapse",
    "Pause",
    "Step",
    "Verdict",
    "check_lang",
    "explain",
    "render",
]

# --- the timeline, language-neutral ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deadline:
    """A clock given a due instant: ``started`` afresh, ``restarted`` in the step that stopped
    it (a re-route, a dispute), ``resumed`` after a pause (``duration`` is then what was left),
    with the weekday holidays its count skipped."""

    clock: str
    action: Literal["started", "restarted", "resumed"]
    duration: Duration | None
    due_at: datetime
    holidays: tuple[Holiday, ...]


@dataclass(frozen=True, slots=True)
class Pause:
    clock: str
    remaining: Duration


@dataclass(frozen=True, slots=True)
class Verdict:
    """A clock stopped. ``on_time`` is ``None`` when the system stopped it (nobody to judge).
    ``working_days_counted`` leaves out the days the clock was paused, and
    ``late_working_days`` is how many of those went beyond the clock's own allowance: the
    deadline the party had before any escalation rung."""

    clock: str
    due_at: datetime | None
    first_due: datetime | None
    level: int
    on_time: bool | None
    late_working_days: int | None
    working_days_since_start: int
    working_days_counted: int


@dataclass(frozen=True, slots=True)
class Escalation:
    level: int
    levels: int
    to: str
    deadline: Duration | None
    due_at: datetime | None
    holidays: tuple[Holiday, ...]
    joined: tuple[str, ...] = ()  # clocks whose lapse this one notice also covers
    notice_of: str | None = None  # the clock whose notice covered this lapse


@dataclass(frozen=True, slots=True)
class Lapse:
    """A deadline passed with no signal stopping its clock."""

    clock: str
    due_at: datetime
    level: int
    working_days_since_start: int
    escalation: Escalation | None


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened to the case; ``lines`` is it in words, in the language asked."""

    number: int
    seq: int
    kind: Literal["started", "signal", "lapsed"]
    at: datetime
    recorded_at: datetime
    actor_role: str
    actor_id: str
    trigger: str | None
    state_from: str | None
    state_to: str | None
    status: str | None
    working_days_since_previous: int | None
    fields: tuple[tuple[str, Any], ...] = ()
    text_fields: tuple[str, ...] = ()
    routed_to: str | None = None
    lapse: Lapse | None = None
    stopped: tuple[Verdict, ...] = ()
    paused: tuple[Pause, ...] = ()
    deadlines: tuple[Deadline, ...] = ()
    notified: tuple[str, ...] = ()
    outcome: str | None = None
    lines: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        """The step as JSON values: instants ISO 8601 with offset, durations as amount and
        unit, and ``lines`` in the language the step was explained in."""
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        out["fields"] = dict(self.fields)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Duration):
        return {"amount": value.amount, "unit": value.unit}
    if isinstance(value, Holiday):
        return {"date": value.day.isoformat(), "name": value.name, "kind": value.kind}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Deadline | Pause | Verdict | Escalation | Lapse):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


# --- folding the records --------------------------------------------------------------------


@dataclass(slots=True)
class _Running:
    """What the fold knows of one clock between its effects."""

    region: str
    started_at: datetime
    allowance: Duration | None
    due_at: datetime | None
    first_due: datetime | None = None  # the party's own deadline, before any rung
    level: int = 0
    used: int = 0  # working days counted in finished running stretches
    since: datetime | None = None  # start of the current running stretch (None: paused)
    remaining: Duration | None = None  # what a pause left, until the clock resumes


# Values shown only for fields that choose something (a tier, an agency, a flag): free text such
# as a description or a response may carry personal data a reporter wrote into it.
_SHOWN_FIELDS = frozenset({"agency", "category", "region", "channel", "type", "tier", "rating"})


def explain(model: Model, records: Sequence[HistoryRecord], lang: str = "id") -> list[Step]:
    """The steps of the case whose history is ``records`` (in sequence order), under ``model``,
    the model those records are pinned to."""
    chosen = check_lang(lang)
    if not records:
        raise LaporError("no history records to explain")
    pinned = {r.model_hash for r in records}
    if pinned != {model.hash}:
        shown = ", ".join(sorted(h[:12] for h in pinned))
        raise LaporError(f"the records are pinned to model {shown}, not {model.hash[:12]}")
    fold = _Fold(model, chosen)
    for record in records:
        fold.record(record)
    return fold.steps


class _Fold:
    def __init__(self, model: Model, lang: Lang) -> None:
        self.model = model
        self.lang = lang
        self.steps: list[Step] = []
        self.clocks: dict[str, _Running] = {}
        self.data: dict[str, Any] = {}
        self.region = model.national_region
        self.state: str | None = None
        self.agency: str | None = None
        self.previous: datetime | None = None

    def record(self, record: HistoryRecord) -> None:
        event, effects = record.event, [dict(e) for e in record.effects]
        at = instant(record.at)
        own = 0 if event.get("kind") == "started" else len(effects)
        if event.get("kind") == "signal":
            own = self._own_effects(str(event["name"]), effects)
        lapses = [i for i, e in enumerate(effects[:own]) if e["kind"] == "lapsed"]
        for n, index in enumerate(lapses):
            end = lapses[n + 1] if n + 1 < len(lapses) else own
            self._lapse(record, effects[index], effects[index + 1 : end], effects)
        if event.get("kind") == "started":
            self.data = dict(event["data"])
            region = self.data.get("region")
            self.region = region if isinstance(region, str) else self.model.national_region
            self._act(record, "started", None, at, effects)
        elif event.get("kind") == "signal":
            given = dict(event["data"])
            self.data.update(given)
            self._act(record, "signal", str(event["name"]), at, effects[own:], given)

    def _own_effects(self, trigger: str, effects: list[dict[str, Any]]) -> int:
        """Where a signal's own effects begin: lapses settled before it come first, and the
        signal's own part always enters its transition's target (``decide`` guarantees it)."""
        transition = self.model.transitions.get(trigger)
        if transition is None:
            return 0
        entered = [
            i
            for i, e in enumerate(effects)
            if e["kind"] == "entered" and e["state"] == transition.target
        ]
        if not entered:
            return 0
        first = entered[-1]
        if first > 0 and effects[first - 1]["kind"] == "routed":
            first -= 1
        return first

    # A step's own effects, in the order recorded.

    def _act(
        self,
        record: HistoryRecord,
        kind: Literal["started", "signal"],
        trigger: str | None,
        at: datetime,
        effects: list[dict[str, Any]],
        given: Mapping[str, Any] | None = None,
    ) -> None:
        role, _, ident = record.actor.partition(":")
        values = sorted((given if given is not None else self.data).items())
        shown = tuple((k, v) for k, v in values if _is_shown(k, v, self.model))
        hidden = tuple(k for k, v in values if not _is_shown(k, v, self.model))
        parts = self._effects(effects, at, judge=kind == "signal")
        self._add(
            Step(
                number=len(self.steps) + 1,
                seq=record.seq,
                kind=kind,
                at=at.astimezone(zone_for_region(self.region)),
                recorded_at=at,
                actor_role=role,
                actor_id=ident,
                trigger=trigger,
                fields=shown,
                text_fields=hidden,
                working_days_since_previous=self._since_previous(at),
                **parts,
            )
        )

    def _lapse(
        self,
        record: HistoryRecord,
        lapsed: Mapping[str, Any],
        effects: list[dict[str, Any]],
        whole: list[dict[str, Any]],
    ) -> None:
        name = str(lapsed["clock"])
        due = instant(str(lapsed["due_at"]))
        running = self.clocks.get(name)
        since_start = 0 if running is None else self._days(running.started_at, due, running.region)
        clock = self.model.clock(name)
        escalated = next((e for e in effects if e["kind"] == "escalated"), None)
        notice_of = None
        if escalated is None:  # joined another clock's notice to the same rung (semantics 2)
            escalated = next(
                (e for e in whole if e["kind"] == "escalated" and name in e.get("joined", ())),
                None,
            )
            notice_of = None if escalated is None else str(escalated["clock"])
        escalation = None
        trigger = clock.fire
        if escalated is not None and clock.escalate is not None:
            ladder = self.model.ladders[clock.escalate]
            rung = ladder.level(int(escalated["level"]))
            new_due = None if escalated["due_at"] is None else instant(str(escalated["due_at"]))
            region = running.region if running is not None else self.region
            escalation = Escalation(
                level=rung.level,
                levels=len(ladder.levels),
                to=str(escalated["to"]),
                deadline=rung.deadline if new_due is not None else None,
                due_at=new_due,
                holidays=() if new_due is None else self._holidays(due, new_due, region),
                joined=() if notice_of else tuple(str(j) for j in escalated.get("joined", ())),
                notice_of=notice_of,
            )
            trigger = rung.fire if new_due is None else None
            if running is not None and new_due is not None:
                running.level, running.due_at = rung.level, new_due
        if escalation is None or escalation.due_at is None:
            self.clocks.pop(name, None)  # a final rung or a fired trigger ends the clock
        moment = due + LAPSE_MARGIN
        fired = any(e["kind"] == "entered" for e in effects)
        # Effects of a lapse take place at the deadline, not when a runtime noticed it.
        parts = self._effects(effects, due, judge=False)
        self._add(
            Step(
                number=len(self.steps) + 1,
                seq=record.seq,
                kind="lapsed",
                at=moment.astimezone(zone_for_region(self.region)),
                recorded_at=instant(record.at),
                actor_role="system",
                actor_id="",
                trigger=trigger if fired else None,
                working_days_since_previous=self._since_previous(due),
                lapse=Lapse(name, due, int(lapsed["level"]), since_start, escalation),
                **parts,
            )
        )

    def _effects(
        self, effects: list[dict[str, Any]], at: datetime, *, judge: bool
    ) -> dict[str, Any]:
        """The parts of a step its effects give, applying them to what the fold tracks."""
        state_from, state_to, status, routed, outcome = self.state, None, None, None, None
        stopped: list[Verdict] = []
        paused: list[Pause] = []
        deadlines: list[Deadline] = []
        notified: list[str] = []
        for effect in effects:
            kind = effect["kind"]
            if kind == "routed":
                routed = self.agency = str(effect["agency"])
            elif kind == "entered":
                state_to, status = str(effect["state"]), str(effect["status"])
                self.state = state_to
            elif kind == "clock_stopped":
                verdict = self._stop(str(effect["clock"]), at, judge)
                if verdict is not None:
                    stopped.append(verdict)
            elif kind == "clock_started":
                deadline = self._start(str(effect["clock"]), at, effect)
                if any(v.clock == deadline.clock for v in stopped):
                    deadline = replace(deadline, action="restarted")
                deadlines.append(deadline)
            elif kind == "clock_paused":
                paused.append(self._pause(str(effect["clock"]), at, effect))
            elif kind == "clock_resumed":
                deadlines.append(self._resume(str(effect["clock"]), at, effect))
            elif kind == "notify" and str(effect["to"]) not in notified:
                notified.append(str(effect["to"]))
            elif kind == "closed":
                outcome = str(effect["outcome"])
        return {
            "state_from": state_from if state_to is not None else None,
            "state_to": state_to,
            "status": status,
            "routed_to": routed,
            "stopped": tuple(stopped),
            "paused": tuple(paused),
            "deadlines": tuple(deadlines),
            "notified": tuple(notified),
            "outcome": outcome,
        }

    def _start(self, name: str, at: datetime, effect: Mapping[str, Any]) -> Deadline:
        clock = self.model.clock(name)
        due = instant(str(effect["due_at"]))
        region = self._clock_region(clock)
        allowance = clock.duration.for_data(self.data)
        self.clocks[name] = _Running(region, at, allowance, due, first_due=due, since=at)
        return Deadline(name, "started", allowance, due, self._holidays(at, due, region))

    def _pause(self, name: str, at: datetime, effect: Mapping[str, Any]) -> Pause:
        remaining = Duration.parse(str(effect["remaining"]))
        running = self.clocks.get(name)
        if running is not None and running.since is not None:
            running.used += self._days(running.since, at, running.region)
            running.since, running.due_at, running.remaining = None, None, remaining
        return Pause(name, remaining)

    def _resume(self, name: str, at: datetime, effect: Mapping[str, Any]) -> Deadline:
        due = instant(str(effect["due_at"]))
        running = self.clocks.get(name)
        region = (
            running.region if running is not None else self._clock_region(self.model.clock(name))
        )
        left = None
        if running is not None:
            left, running.remaining = running.remaining, None
            running.since, running.due_at = at, due
            if running.level == 0:  # still the party's own deadline, moved by the pause
                running.first_due = due
        return Deadline(name, "resumed", left, due, self._holidays(at, due, region))

    def _stop(self, name: str, at: datetime, judge: bool) -> Verdict | None:
        running = self.clocks.pop(name, None)
        if running is None:
            return None
        since_start = self._days(running.started_at, at, running.region)
        used = running.used
        if running.since is not None:
            used += self._days(running.since, at, running.region)
        if not judge:
            return Verdict(
                name,
                running.due_at,
                running.first_due,
                running.level,
                None,
                None,
                since_start,
                used,
            )
        on_time = running.level == 0 and (running.due_at is None or at <= running.due_at)
        late = None
        if not on_time:
            allowance = running.allowance
            if allowance is not None and allowance.unit == "working_days":
                late = max(used - allowance.amount, 0)
            elif running.first_due is not None:
                late = self._days(running.first_due, at, running.region)
        return Verdict(
            name, running.due_at, running.first_due, running.level, on_time, late, since_start, used
        )

    # Calendar questions, each asked one way.

    def _clock_region(self, clock: Clock) -> str:
        """The region whose zone a clock counts in, as ``decide`` chooses it."""
        if clock.region == "national":
            return self.model.national_region
        if clock.region == "agency" and self.agency is not None:
            agency = self.model.routing.agencies.get(self.agency)
            if agency is not None:
                return agency.region
        return self.region

    def _days(self, start: datetime, end: datetime, region: str) -> int:
        """Working days after the local day of ``start`` up to the local day of ``end``: the
        count ``N hari kerja`` deadlines use, so elapsed days and due dates agree."""
        return self.model.calendar.remaining(start, end, "working_days", region).amount

    def _holidays(self, start: datetime, due: datetime, region: str) -> tuple[Holiday, ...]:
        """Holidays on weekdays after the local day of ``start`` up to the due day: the days the
        count passed over. One on a weekend is left out, as it moved no deadline."""
        zone = zone_for_region(region)
        first, last = start.astimezone(zone).date(), due.astimezone(zone).date()
        return tuple(
            h
            for year in self.model.calendar.calendar_years
            if first.year <= year.year <= last.year
            for h in year.holidays
            if first < h.day <= last and h.day.weekday() < 5
        )

    def _since_previous(self, at: datetime) -> int | None:
        previous, self.previous = self.previous, at
        return None if previous is None else self._days(previous, at, self.region)

    def _add(self, step: Step) -> None:
        lines = tuple(_lines(step, self.model, self.region, self.lang))
        self.steps.append(replace(step, lines=lines))


def _is_shown(name: str, value: Any, model: Model) -> bool:
    choosers = {c.duration.by for c in model.clocks if c.duration.by}
    return isinstance(value, bool | int | float) or name in _SHOWN_FIELDS | choosers


def render(steps: Sequence[Step]) -> str:
    """The timeline as plain text, a blank line between steps."""
    return "\n\n".join("\n".join(step.lines) for step in steps) + "\n"


def _lines(step: Step, model: Model, region: str, lang: Lang) -> list[str]:
    w = Words(model, lang)
    lines = [w.say("head", n=step.number, when=w.when(step.at), seq=step.seq)]
    if step.kind == "started":
        zone = zone_for_region(region).tzname(None)
        name = REGION_NAMES.get(region, region)
        lines.append(w.say("started", region=region, region_name=name, zone=zone))
    elif step.kind == "signal":
        action = w.name("do", step.trigger or "")
        lines.append(w.say("signal", action=action))
    elif step.lapse is not None:
        lines.append(w.say("lapsed", clock=w.clock(step.lapse.clock)))
    actor = step.actor_role + (f":{step.actor_id}" if step.actor_id else "")
    lines.append(w.say("by", role=w.name("role", step.actor_role), actor=actor))
    if abs(step.recorded_at - step.at) > LAPSE_MARGIN:
        lines.append(w.say("recorded", when=w.when(step.recorded_at.astimezone(step.at.tzinfo))))
    if step.working_days_since_previous is not None:
        lines.append(w.say("since_previous", days=w.days(step.working_days_since_previous)))
    if step.lapse is not None:  # why it escalated comes before what the system then did
        lines.extend(_lapse_lines(step.lapse, w))
    if step.kind == "started":
        version = f"{model.name} {model.version} ({model.hash[:12]})"
        lines.append(w.say("initial", model=version, target=w.state(step.state_to)))
    elif step.state_to is not None:
        source, target = w.state(step.state_from), w.state(step.state_to)
        lines.append(w.say("rule", trigger=step.trigger, source=source, target=target))
    given = [f"{k}={_value(v)}" for k, v in step.fields]
    given += [w.say("hidden", name=k) for k in step.text_fields]
    if given:
        lines.append(w.say("fields", fields=", ".join(given)))
    if step.routed_to is not None:
        agency = model.routing.agencies.get(step.routed_to)
        shown_agency = step.routed_to if agency is None else f"{agency.name} [{agency.code}]"
        lines.append(w.say("routed", agency=shown_agency))
    for verdict in step.stopped:
        lines.append(_verdict_line(verdict, w))
    for pause in step.paused:
        lines.append(
            w.say("paused", clock=w.clock(pause.clock), remaining=w.duration(pause.remaining))
        )
    for deadline in step.deadlines:
        key = f"clock_{deadline.action}"
        duration = "?" if deadline.duration is None else w.duration(deadline.duration)
        due = w.when(deadline.due_at)
        lines.append(w.say(key, clock=w.clock(deadline.clock), duration=duration, due=due))
        if deadline.holidays:
            lines.append("  " + w.say("holidays", holidays=w.holidays(deadline.holidays)))
    if step.notified:
        lines.append(w.say("notified", targets=", ".join(w.target(t) for t in step.notified)))
    if step.outcome is not None:
        lines.append(w.say("closed", outcome=w.name("outcome", step.outcome)))
    return ["  " + line if n else line for n, line in enumerate(lines)]


def _lapse_lines(lapse: Lapse, w: Words) -> list[str]:
    lines = [
        w.say("lapse", due=w.when(lapse.due_at), level=lapse.level,
              days=w.days(lapse.working_days_since_start))
    ]  # fmt: skip
    rung = lapse.escalation
    if rung is None:
        return lines
    to = w.target(rung.to)
    if rung.due_at is None or rung.deadline is None:
        lines.append(w.say("escalated_final", level=rung.level, levels=rung.levels, to=to))
    else:
        lines.append(
            w.say("escalated", level=rung.level, levels=rung.levels, to=to,
                  duration=w.duration(rung.deadline), due=w.when(rung.due_at))
        )  # fmt: skip
        if rung.holidays:
            lines.append("  " + w.say("holidays", holidays=w.holidays(rung.holidays)))
    if rung.joined:
        lines.append(w.say("joined", clocks=", ".join(w.clock(c) for c in rung.joined)))
    if rung.notice_of is not None:
        lines.append(w.say("notice_of", clock=w.clock(rung.notice_of)))
    return lines


def _verdict_line(verdict: Verdict, w: Words) -> str:
    clock = w.clock(verdict.clock)
    elapsed = w.say("since_start", days=w.days(verdict.working_days_since_start))
    if verdict.working_days_counted != verdict.working_days_since_start:
        elapsed += "; " + w.say("counted", days=w.days(verdict.working_days_counted))
    if verdict.on_time is None:
        return w.say("by_system", clock=clock, elapsed=elapsed)
    if verdict.on_time:
        due = "?" if verdict.due_at is None else w.when(verdict.due_at)
        return w.say("on_time", clock=clock, due=due, elapsed=elapsed)
    late = verdict.late_working_days
    shown = w.say("under_a_day") if not late else w.days(late)
    first = "?" if verdict.first_due is None else w.when(verdict.first_due)
    return w.say("late", clock=clock, late=shown, due=first, level=verdict.level, elapsed=elapsed)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
