"""The state of one case between decisions: plain, immutable, JSON round-trippable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any

from engine.domain.calendar import Duration, DurationUnit
from engine.domain.events import instant
from engine.domain.masking import masked_fields

__all__ = ["GENESIS", "Case", "ClockState", "agency_view"]

GENESIS = "0" * 64
"""The ``prev_hash`` of a case's first history record."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_new = object.__new__
_set = object.__setattr__


@dataclass(frozen=True, slots=True)
class ClockState:
    """An open SLA clock. Running clocks have ``due_at``; paused ones keep ``remaining``.

    ``level`` is how many rungs of the ladder the clock has climbed (0: the original deadline).
    ``region`` is fixed when the clock starts, so a pause and resume count in the same zone.
    """

    name: str
    running: bool
    due_at: datetime | None
    remaining: Duration | None
    unit: DurationUnit
    level: int
    region: str

    # The JSON form, built on first use: a clock usually outlives many decisions of its case
    # unchanged, and each decision stores the case (``isoformat`` alone costs ~1.5 us).
    _json: dict[str, Any] | None = field(default=None, init=False, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        cached = self._json
        if cached is None:
            cached = {
                "name": self.name,
                "running": self.running,
                "due_at": None if self.due_at is None else self.due_at.isoformat(),
                "remaining": None if self.remaining is None else str(self.remaining),
                "unit": self.unit,
                "level": self.level,
                "region": self.region,
            }
            object.__setattr__(self, "_json", cached)
        return dict(cached)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClockState:
        return cls(
            name=data["name"],
            running=data["running"],
            due_at=None if data["due_at"] is None else instant(data["due_at"]),
            remaining=None if data["remaining"] is None else Duration.parse(data["remaining"]),
            unit=data["unit"],
            level=data["level"],
            region=data["region"],
        )


@dataclass(frozen=True, slots=True)
class Case:
    """A complaint as the core sees it.

    ``reporter`` (the identity) is carried for the runtimes to store apart; it is excluded from
    comparisons, from ``to_json`` unless asked for, and from every view an agency or a log gets.
    ``seq`` and ``head`` are the length and last hash of the case's history chain.
    """

    id: str
    workflow: str
    model_hash: str
    state: str
    status: str
    data: Mapping[str, Any]
    region: str
    opened_at: datetime
    last_at: datetime  # time of the last recorded decision: a case's time never runs backwards
    agency: str | None = None
    clocks: tuple[ClockState, ...] = ()
    escalation_level: int = 0
    escalated_to: str | None = None
    outcome: str | None = None
    closed_at: datetime | None = None
    seq: int = 0
    head: str = GENESIS
    semantics: int = 1  # the decision-rule version pinned at start (``events.SEMANTICS``)
    reporter: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def closed(self) -> bool:
        return self.outcome is not None

    @property
    def anonymous(self) -> bool:
        return bool(self.data.get("anonymous"))

    @property
    def confidential(self) -> bool:
        return bool(self.data.get("confidential"))

    def clock(self, name: str) -> ClockState | None:
        for clock in self.clocks:
            if clock.name == name:
                return clock
        return None

    @property
    def next_due(self) -> datetime | None:
        """The earliest deadline among running clocks: when a runtime must wake this case."""
        dues = [c.due_at for c in self.clocks if c.running and c.due_at is not None]
        return min(dues) if dues else None

    def evolve(self, **changes: Any) -> Case:
        """A copy with ``changes``.

        Written out field by field: this runs a few times per decision, and both
        ``dataclasses.replace`` and ``Case(**values)`` (a frozen dataclass's ``__init__`` sets
        each field through ``object.__setattr__`` after parsing keywords) cost several times
        more. ``tests/unit/test_case.py`` holds the list of fields here to ``fields(Case)``.
        """
        unknown = changes.keys() - _CASE_FIELD_SET
        if unknown:
            raise TypeError(f"Case has no field(s) {', '.join(sorted(unknown))}")
        new: Case = _new(Case)
        get = changes.get
        _set(new, "id", get("id", self.id))
        _set(new, "workflow", get("workflow", self.workflow))
        _set(new, "model_hash", get("model_hash", self.model_hash))
        _set(new, "state", get("state", self.state))
        _set(new, "status", get("status", self.status))
        _set(new, "data", get("data", self.data))
        _set(new, "region", get("region", self.region))
        _set(new, "opened_at", get("opened_at", self.opened_at))
        _set(new, "last_at", get("last_at", self.last_at))
        _set(new, "agency", get("agency", self.agency))
        _set(new, "clocks", get("clocks", self.clocks))
        _set(new, "escalation_level", get("escalation_level", self.escalation_level))
        _set(new, "escalated_to", get("escalated_to", self.escalated_to))
        _set(new, "outcome", get("outcome", self.outcome))
        _set(new, "closed_at", get("closed_at", self.closed_at))
        _set(new, "seq", get("seq", self.seq))
        _set(new, "head", get("head", self.head))
        _set(new, "semantics", get("semantics", self.semantics))
        _set(new, "reporter", get("reporter", self.reporter))
        return new

    def to_json(self, *, include_reporter: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "workflow": self.workflow,
            "model_hash": self.model_hash,
            "state": self.state,
            "status": self.status,
            "data": dict(self.data),
            "region": self.region,
            "opened_at": self.opened_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "agency": self.agency,
            "clocks": [c.to_json() for c in self.clocks],
            "escalation_level": self.escalation_level,
            "escalated_to": self.escalated_to,
            "outcome": self.outcome,
            "closed_at": None if self.closed_at is None else self.closed_at.isoformat(),
            "seq": self.seq,
            "head": self.head,
            "semantics": self.semantics,
        }
        if include_reporter:
            out["reporter"] = dict(self.reporter)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Case:
        return cls(
            id=data["id"],
            workflow=data["workflow"],
            model_hash=data["model_hash"],
            state=data["state"],
            status=data["status"],
            data=MappingProxyType(dict(data["data"])),
            region=data["region"],
            opened_at=instant(data["opened_at"]),
            last_at=instant(data["last_at"]),
            agency=data["agency"],
            clocks=tuple(ClockState.from_json(c) for c in data["clocks"]),
            escalation_level=data["escalation_level"],
            escalated_to=data["escalated_to"],
            outcome=data["outcome"],
            closed_at=None if data["closed_at"] is None else instant(data["closed_at"]),
            seq=data["seq"],
            head=data["head"],
            semantics=data.get("semantics", 1),
            reporter=MappingProxyType(dict(data.get("reporter") or {})),
        )


_CASE_FIELDS = tuple(f.name for f in fields(Case))
_CASE_FIELD_SET = frozenset(_CASE_FIELDS)


def agency_view(case: Case) -> dict[str, Any]:
    """What an agency-facing message may say about a case: never who reported it, and for an
    anonymous or confidential report no NIK, phone number or e-mail address in its text either
    (``engine.domain.masking``)."""
    data: dict[str, Any] = dict(case.data)
    if case.anonymous or case.confidential:
        data = masked_fields(data)
    return {
        "id": case.id,
        "workflow": case.workflow,
        "state": case.state,
        "status": case.status,
        "agency": case.agency,
        "region": case.region,
        "escalation_level": case.escalation_level,
        "data": data,
    }
