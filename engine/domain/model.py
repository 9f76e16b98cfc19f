"""The compiled, immutable model (IR) a case runs against.

YAML and BPMN readers both produce these frozen dataclasses; the core only ever sees them. A model
bundles the workflow (states, transitions, intake fields), its SLA policy (clocks), escalation
ladders, routing table and the working calendar, so its hash pins everything that can change a
decision: a case started under one hash replays under that hash forever.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from engine.domain.calendar import Duration, WorkingCalendar
from engine.domain.canonical import canonical_json

__all__ = [
    "Agency",
    "Clock",
    "ClockDuration",
    "ClockRegion",
    "EscalationLadder",
    "EscalationLevel",
    "Model",
    "Notification",
    "RoutingRule",
    "RoutingTable",
    "State",
    "Transition",
    "canonical_json",
    "known_agencies",
]

ClockRegion = Literal["national", "agency", "case"]


@dataclass(frozen=True, slots=True)
class State:
    """A step of the process and the status label the public sees while a case is in it."""

    name: str
    status: str
    final: bool = False
    outcome: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Notification:
    """Tell a party (``reporter``, ``agency``, ``admin`` or a ladder target) using a template."""

    to: str
    template: str


@dataclass(frozen=True, slots=True)
class Transition:
    """A signal that moves a case from one of ``sources`` to ``target``.

    ``requires`` fields must be present and non-empty in the signal's data; ``accepts`` are
    optional; any other field is refused. Accepted values are recorded into the case data.
    ``route`` picks the responsible agency (the signal's ``agency`` field, else the routing
    table). ``restart`` names clocks that start afresh even when the case stays within their span
    (a dispute reopening follow-up, a re-route to a new agency).
    """

    trigger: str
    sources: tuple[str, ...]
    target: str
    roles: tuple[str, ...]
    requires: tuple[str, ...] = ()
    accepts: tuple[str, ...] = ()
    guard: str | None = None
    guard_message: str | None = None
    route: bool = False
    restart: tuple[str, ...] = ()
    notify: tuple[Notification, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class ClockDuration:
    """A fixed duration, or one chosen by a case data field (e.g. the completion tier)."""

    default: Duration | None
    by: str | None = None
    values: tuple[tuple[str, Duration], ...] = ()

    def for_data(self, data: Mapping[str, Any]) -> Duration | None:
        if self.by is not None:
            chosen = data.get(self.by)
            for value, duration in self.values:
                if value == chosen:
                    return duration
        return self.default


@dataclass(frozen=True, slots=True)
class Clock:
    """An SLA clock: runs in ``runs_in`` states, pauses in ``pauses_in``, stops elsewhere.

    On lapse it either climbs ``escalate`` (a ladder name) one level, or fires the ``fire`` trigger
    as the system actor (the auto-close after a follow-up nobody answered).
    """

    name: str
    duration: ClockDuration
    runs_in: tuple[str, ...]
    pauses_in: tuple[str, ...] = ()
    escalate: str | None = None
    fire: str | None = None
    region: ClockRegion = "agency"
    source: str = ""


@dataclass(frozen=True, slots=True)
class EscalationLevel:
    """One rung: who the case escalates to, and how long they have before the next rung."""

    level: int
    to: str
    deadline: Duration | None
    final: bool = False
    fire: str | None = None
    notify: str = "escalation"
    source: str = ""


@dataclass(frozen=True, slots=True)
class EscalationLadder:
    name: str
    levels: tuple[EscalationLevel, ...]

    def level(self, number: int) -> EscalationLevel:
        return self.levels[number - 1]


@dataclass(frozen=True, slots=True)
class Agency:
    code: str
    name: str
    region: str


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """``category`` × ``region`` → agency; ``*`` matches anything, the most specific rule wins."""

    category: str
    region: str
    agency: str


@dataclass(frozen=True, slots=True)
class RoutingTable:
    agencies: Mapping[str, Agency] = field(default_factory=lambda: MappingProxyType({}))
    rules: tuple[RoutingRule, ...] = ()

    def propose(self, category: str | None, region: str | None) -> str | None:
        """The agency the most specific matching rule names, or ``None``."""
        best: tuple[int, str] | None = None
        for rule in self.rules:
            if rule.category not in ("*", category) or rule.region not in ("*", region):
                continue
            specificity = (rule.category != "*") * 2 + (rule.region != "*")
            if best is None or specificity > best[0]:
                best = (specificity, rule.agency)
        return best[1] if best else None


@dataclass(frozen=True, slots=True)
class Model:
    """Everything a case needs to be decided, immutable and content-addressed by ``hash``."""

    name: str
    version: str
    title: str
    roles: Mapping[str, str]
    initial: str
    states: Mapping[str, State]
    transitions: Mapping[str, Transition]
    intake_requires: tuple[str, ...]
    intake_accepts: tuple[str, ...]
    clocks: tuple[Clock, ...]
    ladders: Mapping[str, EscalationLadder]
    routing: RoutingTable
    calendar: WorkingCalendar
    national_region: str = "ID-JK"
    #: Told when a case opens (a receipt, or a BPMN escalation thrown before the first task).
    intake_notify: tuple[Notification, ...] = ()
    hash: str = field(init=False, compare=False, default="")

    def __post_init__(self) -> None:
        # Always derived, never passed in: a model changed with dataclasses.replace() must not
        # keep the identity of the one it was made from.
        digest = hashlib.sha256(canonical_json(self.to_data()).encode()).hexdigest()
        object.__setattr__(self, "hash", digest)

    def clock(self, name: str) -> Clock:
        for clock in self.clocks:
            if clock.name == name:
                return clock
        raise KeyError(name)

    def to_data(self) -> dict[str, Any]:
        """Canonical plain form: what the hash covers and what the Temporal worker receives."""
        return {
            "name": self.name,
            "version": self.version,
            "title": self.title,
            "roles": dict(self.roles),
            "initial": self.initial,
            "states": {n: _state_data(s) for n, s in self.states.items()},
            "transitions": {n: _transition_data(t) for n, t in self.transitions.items()},
            "intake": {
                "requires": list(self.intake_requires),
                "accepts": list(self.intake_accepts),
                # Only when there are some: every model hashed before the field keeps its hash.
                **(
                    {"notify": [[n.to, n.template] for n in self.intake_notify]}
                    if self.intake_notify
                    else {}
                ),
            },
            "clocks": [_clock_data(c) for c in self.clocks],
            "ladders": {
                n: [_level_data(level) for level in ladder.levels]
                for n, ladder in self.ladders.items()
            },
            "routing": {
                "agencies": {
                    c: {"name": a.name, "region": a.region}
                    for c, a in self.routing.agencies.items()
                },
                "rules": [[r.category, r.region, r.agency] for r in self.routing.rules],
            },
            "calendar": self.calendar.to_data(),
            "national_region": self.national_region,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Model:
        """Rebuild a model from ``to_data()`` output (used by the Temporal worker and replays)."""
        return cls(
            name=data["name"],
            version=data["version"],
            title=data["title"],
            roles=MappingProxyType(dict(data["roles"])),
            initial=data["initial"],
            states=MappingProxyType({n: State(name=n, **s) for n, s in data["states"].items()}),
            transitions=MappingProxyType(
                {n: _transition_from(n, t) for n, t in data["transitions"].items()}
            ),
            intake_requires=tuple(data["intake"]["requires"]),
            intake_accepts=tuple(data["intake"]["accepts"]),
            intake_notify=tuple(
                Notification(to, template) for to, template in data["intake"].get("notify", ())
            ),
            clocks=tuple(_clock_from(c) for c in data["clocks"]),
            ladders=MappingProxyType(
                {
                    n: EscalationLadder(n, tuple(_level_from(level) for level in levels))
                    for n, levels in data["ladders"].items()
                }
            ),
            routing=RoutingTable(
                agencies=MappingProxyType(
                    {
                        c: Agency(c, a["name"], a["region"])
                        for c, a in data["routing"]["agencies"].items()
                    }
                ),
                rules=tuple(RoutingRule(*r) for r in data["routing"]["rules"]),
            ),
            calendar=WorkingCalendar.from_data(data["calendar"]),
            national_region=data["national_region"],
        )


def _opt_duration(value: Duration | None) -> str | None:
    return None if value is None else str(value)


def _state_data(s: State) -> dict[str, Any]:
    return {
        "status": s.status,
        "final": s.final,
        "outcome": s.outcome,
        "description": s.description,
    }


def _transition_data(t: Transition) -> dict[str, Any]:
    return {
        "sources": list(t.sources),
        "target": t.target,
        "roles": list(t.roles),
        "requires": list(t.requires),
        "accepts": list(t.accepts),
        "guard": t.guard,
        "guard_message": t.guard_message,
        "route": t.route,
        "restart": list(t.restart),
        "notify": [[n.to, n.template] for n in t.notify],
        "description": t.description,
    }


def _transition_from(trigger: str, d: Mapping[str, Any]) -> Transition:
    return Transition(
        trigger=trigger,
        sources=tuple(d["sources"]),
        target=d["target"],
        roles=tuple(d["roles"]),
        requires=tuple(d["requires"]),
        accepts=tuple(d["accepts"]),
        guard=d["guard"],
        guard_message=d["guard_message"],
        route=d["route"],
        restart=tuple(d["restart"]),
        notify=tuple(Notification(to, template) for to, template in d["notify"]),
        description=d["description"],
    )


def _clock_data(c: Clock) -> dict[str, Any]:
    return {
        "name": c.name,
        "duration": {
            "default": _opt_duration(c.duration.default),
            "by": c.duration.by,
            "values": [[v, str(d)] for v, d in c.duration.values],
        },
        "runs_in": list(c.runs_in),
        "pauses_in": list(c.pauses_in),
        "escalate": c.escalate,
        "fire": c.fire,
        "region": c.region,
        "source": c.source,
    }


def _clock_from(d: Mapping[str, Any]) -> Clock:
    duration = d["duration"]
    return Clock(
        name=d["name"],
        duration=ClockDuration(
            default=None if duration["default"] is None else Duration.parse(duration["default"]),
            by=duration["by"],
            values=tuple((v, Duration.parse(text)) for v, text in duration["values"]),
        ),
        runs_in=tuple(d["runs_in"]),
        pauses_in=tuple(d["pauses_in"]),
        escalate=d["escalate"],
        fire=d["fire"],
        region=d["region"],
        source=d["source"],
    )


def _level_data(level: EscalationLevel) -> dict[str, Any]:
    return {
        "level": level.level,
        "to": level.to,
        "deadline": _opt_duration(level.deadline),
        "final": level.final,
        "fire": level.fire,
        "notify": level.notify,
        "source": level.source,
    }


def _level_from(d: Mapping[str, Any]) -> EscalationLevel:
    return EscalationLevel(
        level=d["level"],
        to=d["to"],
        deadline=None if d["deadline"] is None else Duration.parse(d["deadline"]),
        final=d["final"],
        fire=d["fire"],
        notify=d["notify"],
        source=d["source"],
    )


def known_agencies(models: Iterable[Model]) -> frozenset[str]:
    """Every agency the routing tables of ``models`` name: what a key or a subscription scoped to
    an agency must name (a typo would see no case, silently). Empty when no table names any."""
    return frozenset(code for model in models for code in model.routing.agencies)
