"""What goes into the core (events) and what comes out of it (effects), as plain values.

Every event and effect has a stable JSON form (``to_json`` and the ``*_from_json`` readers):
the history hash chain is computed over it, the Temporal runtime passes it across the wire, and the
scenario files and ``lapor history`` show it. Instants are serialised in UTC for inputs (so two
runtimes whose clocks report different offsets record the same bytes) and in the owning region's
zone for deadlines (what a person reads).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from engine.domain.calendar import Duration
from engine.domain.errors import LaporError

__all__ = [
    "SEMANTICS",
    "WORLD_EFFECTS",
    "Actor",
    "ClockLapsed",
    "ClockPaused",
    "ClockRescheduled",
    "ClockResumed",
    "ClockStarted",
    "ClockStopped",
    "Closed",
    "Effect",
    "Entered",
    "Escalated",
    "Event",
    "Lapsed",
    "Migrated",
    "Notify",
    "Rejection",
    "Routed",
    "Signal",
    "Started",
    "check_case_id",
    "effect_from_json",
    "effect_to_json",
    "event_from_json",
    "instant",
    "utc_text",
    "world_effects",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def utc_text(moment: datetime) -> str:
    """An aware instant as ISO 8601 in UTC: the recorded form of every input time."""
    text = _UTC_TEXTS.get(moment)
    if text is None:
        if moment.tzinfo is None:
            raise LaporError(f"time {moment.isoformat()} has no UTC offset; give one, e.g. +07:00")
        text = moment.astimezone(UTC).isoformat()
        if len(_UTC_TEXTS) >= 4096:
            _UTC_TEXTS.clear()
        _UTC_TEXTS[moment] = text
    return text


# A batch of decisions shares one ``now``: its text is worked out once. Keyed by the instant
# (equal instants have equal UTC texts whatever their offsets), bounded so it never grows.
_UTC_TEXTS: dict[datetime, str] = {}


def instant(text: str) -> datetime:
    """Parse an ISO 8601 instant that must carry an offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise LaporError(
            f"invalid time {text!r}; expected ISO 8601 with offset, e.g. 2026-03-13T15:00:00+07:00"
        ) from None
    if moment.tzinfo is None:
        raise LaporError(f"time {text!r} has no UTC offset; give one, e.g. +07:00")
    return moment


_ROLE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,49}")
_ACTOR_ID = re.compile(r"[A-Za-z0-9._-]{0,100}")
_CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_case_id(case_id: str) -> None:
    """A case id is at most 64 letters, digits, ``.``, ``_`` or ``-`` (it is a key in every
    table, a workflow id on Temporal and a line in a terminal): ``LaporError`` otherwise."""
    if not isinstance(case_id, str) or not _CASE_ID.fullmatch(case_id):
        shown = repr(case_id)[:70]
        raise LaporError(
            f"invalid case id {shown}: give 1-64 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit"
        )


@dataclass(frozen=True, slots=True)
class Actor:
    """Who sends a signal: ``role`` or ``role:id`` (``admin:nasional``, ``agency:kemenkes``)."""

    role: str
    id: str = ""

    @classmethod
    def parse(cls, text: str) -> Actor:
        role, _, ident = text.partition(":")
        if not _ROLE.fullmatch(role) or not _ACTOR_ID.fullmatch(ident):
            shown = text if len(text) <= 60 else text[:60] + "..."
            raise LaporError(
                f"invalid actor {shown!r}; expected ROLE or ROLE:ID (letters, digits, _ . -; "
                "at most 50 + 100 characters), e.g. admin:nasional"
            )
        return cls(role, ident)

    def __str__(self) -> str:
        return f"{self.role}:{self.id}" if self.id else self.role


SYSTEM = Actor("system")


# --- events (inputs) ---------------------------------------------------------------------------


SEMANTICS = 2
"""The version of the decision rules a new case is started under, pinned in its start record.

A change to what ``decide`` does for the same inputs gets a new number, and the old rules stay:
a recorded history re-derives under the version it was decided by, forever.

1. the first rules;
2. clocks lapsing to the same rung of a ladder at the same instant give one escalation notice
   (``Escalated.joined`` names the others), not one per clock.
"""


@dataclass(frozen=True, slots=True)
class Started:
    """A new complaint. ``reporter`` holds the identity and is never recorded or logged.

    ``semantics`` is the decision-rule version the case is pinned to (``SEMANTICS`` for a new
    case; a recorded start without the field was decided under version 1)."""

    case_id: str
    data: Mapping[str, Any]
    actor: Actor = SYSTEM
    reporter: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    semantics: int = SEMANTICS

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "started",
            "case_id": self.case_id,
            "actor": str(self.actor),
            "data": dict(self.data),
        }
        if self.semantics != 1:  # version-1 start records stay byte-identical
            out["semantics"] = self.semantics
        return out


@dataclass(frozen=True, slots=True)
class Signal:
    """A party acts on the case (``verify``, ``follow_up``...). ``key`` makes a retry idempotent."""

    name: str
    actor: Actor
    data: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "signal",
            "name": self.name,
            "actor": str(self.actor),
            "data": dict(self.data),
        }
        if self.key is not None:
            out["key"] = self.key
        return out


@dataclass(frozen=True, slots=True)
class ClockLapsed:
    """A timer fired: the clock ``clock`` whose deadline was ``due_at`` may have lapsed."""

    clock: str
    due_at: datetime

    @property
    def actor(self) -> Actor:
        return SYSTEM

    def to_json(self) -> dict[str, Any]:
        return {"kind": "clock_lapsed", "clock": self.clock, "due_at": utc_text(self.due_at)}


@dataclass(frozen=True, slots=True)
class Migrated:
    """An open case moves from the model it was pinned to onto another model of its workflow
    (a regulation changed a deadline): ``to_model`` is decided from here on.

    ``states`` maps a state of the old model to the one the case takes in the new (only where
    the name changes). ``source`` is the old model itself, handed in by the runtime (the record
    names it by ``from_model``); it is not part of the event's value."""

    from_model: str
    to_model: str
    actor: Actor
    states: Mapping[str, str] = field(default_factory=dict)
    source: Any = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "migrated",
            "from_model": self.from_model,
            "to_model": self.to_model,
            "actor": str(self.actor),
            "states": dict(self.states),
        }


Event = Started | Signal | ClockLapsed | Migrated


def event_from_json(data: Mapping[str, Any]) -> Event:
    kind = data.get("kind")
    if kind == "started":
        return Started(
            data["case_id"],
            dict(data["data"]),
            Actor.parse(data["actor"]),
            semantics=_semantics(data.get("semantics", 1)),
        )
    if kind == "signal":
        return Signal(data["name"], Actor.parse(data["actor"]), dict(data["data"]), data.get("key"))
    if kind == "clock_lapsed":
        return ClockLapsed(data["clock"], instant(data["due_at"]))
    if kind == "migrated":
        return Migrated(
            data["from_model"], data["to_model"], Actor.parse(data["actor"]), dict(data["states"])
        )
    raise LaporError(
        f"unknown event kind {kind!r}; expected started, signal, clock_lapsed or migrated"
    )


# --- effects (outputs) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entered:
    state: str
    status: str


@dataclass(frozen=True, slots=True)
class ClockStarted:
    clock: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class ClockStopped:
    clock: str


@dataclass(frozen=True, slots=True)
class ClockPaused:
    clock: str
    remaining: Duration


@dataclass(frozen=True, slots=True)
class ClockResumed:
    clock: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class ClockRescheduled:
    """A migration recomputed an open clock under the new rules: a running clock gets the new
    ``due_at``, a paused one the new ``remaining``."""

    clock: str
    due_at: datetime | None
    remaining: Duration | None


@dataclass(frozen=True, slots=True)
class Lapsed:
    """The deadline ``due_at`` of ``clock`` (at escalation ``level``, 0 = the original) passed."""

    clock: str
    due_at: datetime
    level: int


@dataclass(frozen=True, slots=True)
class Escalated:
    """The case climbed to ``level`` of its ladder; ``due_at`` is that rung's deadline, if any.

    ``joined`` names the other clocks that lapsed to the same rung at the same instant and share
    this one notice (semantics 2)."""

    clock: str
    level: int
    to: str
    due_at: datetime | None
    joined: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Routed:
    agency: str
    via: Literal["signal", "routing"]


@dataclass(frozen=True, slots=True)
class Notify:
    """A message to deliver. Carries a role/target and template name, never a person's identity."""

    to: str
    template: str


@dataclass(frozen=True, slots=True)
class Closed:
    outcome: str


Effect = (
    Entered
    | ClockStarted
    | ClockStopped
    | ClockPaused
    | ClockResumed
    | ClockRescheduled
    | Lapsed
    | Escalated
    | Routed
    | Notify
    | Closed
)

_EFFECT_KINDS: dict[type[Any], str] = {
    Entered: "entered",
    ClockStarted: "clock_started",
    ClockStopped: "clock_stopped",
    ClockPaused: "clock_paused",
    ClockResumed: "clock_resumed",
    ClockRescheduled: "clock_rescheduled",
    Lapsed: "lapsed",
    Escalated: "escalated",
    Routed: "routed",
    Notify: "notify",
    Closed: "closed",
}
_KIND_EFFECTS = {kind: cls for cls, kind in _EFFECT_KINDS.items()}


def _due_text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# One encoder per effect type, written out: several effects are encoded per decision, and a
# generic walk over the fields (with a type test per value) cost three times as much.
# ``tests/unit/test_events.py`` holds each to the dataclass's fields.
_ENCODERS: dict[type[Any], Callable[[Any], dict[str, Any]]] = {
    Entered: lambda e: {"kind": "entered", "state": e.state, "status": e.status},
    ClockStarted: lambda e: {
        "kind": "clock_started",
        "clock": e.clock,
        "due_at": _due_text(e.due_at),
    },
    ClockStopped: lambda e: {"kind": "clock_stopped", "clock": e.clock},
    ClockPaused: lambda e: {
        "kind": "clock_paused",
        "clock": e.clock,
        "remaining": str(e.remaining),
    },
    ClockResumed: lambda e: {
        "kind": "clock_resumed",
        "clock": e.clock,
        "due_at": _due_text(e.due_at),
    },
    ClockRescheduled: lambda e: {
        "kind": "clock_rescheduled",
        "clock": e.clock,
        "due_at": _due_text(e.due_at),
        "remaining": None if e.remaining is None else str(e.remaining),
    },
    Lapsed: lambda e: {
        "kind": "lapsed",
        "clock": e.clock,
        "due_at": _due_text(e.due_at),
        "level": e.level,
    },
    Escalated: lambda e: {
        "kind": "escalated",
        "clock": e.clock,
        "level": e.level,
        "to": e.to,
        "due_at": _due_text(e.due_at),
        **({"joined": list(e.joined)} if e.joined else {}),
    },
    Routed: lambda e: {"kind": "routed", "agency": e.agency, "via": e.via},
    Notify: lambda e: {"kind": "notify", "to": e.to, "template": e.template},
    Closed: lambda e: {"kind": "closed", "outcome": e.outcome},
}


def _semantics(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= SEMANTICS:
        raise LaporError(
            f"a start record names decision semantics {value!r}; this engine knows 1 to "
            f"{SEMANTICS} (upgrade lapor-sla to read it)"
        )
    return value


def effect_to_json(effect: Effect) -> dict[str, Any]:
    return _ENCODERS[type(effect)](effect)


def effect_from_json(data: Mapping[str, Any]) -> Effect:
    cls = _KIND_EFFECTS.get(data.get("kind", ""))
    if cls is None:
        raise LaporError(f"unknown effect kind {data.get('kind')!r}")
    values: dict[str, Any] = {}
    for name in cls.__slots__:
        if name == "joined":  # written only when not empty
            values[name] = tuple(data.get(name, ()))
            continue
        value = data[name]
        if name == "due_at" and value is not None:
            value = instant(value)
        elif name == "remaining" and value is not None:
            value = Duration.parse(value)
        values[name] = value
    effect: Effect = cls(**values)
    return effect


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a signal is not allowed now: ``code`` for programs, ``reason`` for people."""

    code: Literal[
        "unknown_signal",
        "wrong_state",
        "wrong_role",
        "not_assigned",
        "missing_field",
        "unexpected_field",
        "guard_failed",
        "no_route",
        "invalid_data",
        "closed",
        "already_started",
        "not_started",
        "not_the_reporter",
        "cannot_migrate",
    ]
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.reason}


WORLD_EFFECTS: Mapping[str, str] = MappingProxyType(
    {"notify": "to", "escalated": "to", "routed": "agency"}
)
"""Effect kinds someone outside the case must be told of, each with the field naming whom.

Every runtime delivers exactly these (the embedded outbox, Temporal's delivery activity)."""


def world_effects(
    effects: Sequence[Mapping[str, Any]],
) -> list[tuple[int, Mapping[str, Any], str]]:
    """``(index, effect, target)`` of each world-facing effect among a record's ``effects``
    (JSON); the index is the effect's place in the record, part of its delivery key."""
    found: list[tuple[int, Mapping[str, Any], str]] = []
    for index, effect in enumerate(effects):
        target_field = WORLD_EFFECTS.get(effect["kind"])
        if target_field is not None:
            found.append((index, effect, str(effect[target_field])))
    return found
