"""What ``HttpClient`` answers: frozen dataclasses with the fields of the service API's response
bodies (``engine.faces.api.views``, ``docs/openapi.json``).

Plain dataclasses rather than the API's pydantic views: those live beside the server (FastAPI,
SQLAlchemy) and a client must not import it. Each ``from_json`` reads the documented fields and
ignores any it does not know, so a newer server with more fields does not break an older client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CaseList",
    "CaseStatus",
    "CaseSummary",
    "ClockStatus",
    "Health",
    "HistoryEntry",
    "Identity",
    "SignalResult",
    "StartedCase",
    "Tracking",
    "Workflow",
    "WorkflowSignal",
    "WorkflowState",
]


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in value or ())


@dataclass(frozen=True, slots=True)
class StartedCase:
    """A case opened by ``start``: its id (the tracking number) and the reporter token, which
    only the reporter should get (it tracks and signals as the reporter). ``replayed``: a
    retry answered with the case an earlier request with the same key opened."""

    case_id: str
    tracking_number: str
    reporter_token: str | None
    state: str
    status: str
    replayed: bool

    def __repr__(self) -> str:  # the token stays out of logs and tracebacks
        shown = "None" if self.reporter_token is None else "'***'"
        return (
            f"StartedCase(case_id={self.case_id!r}, state={self.state!r}, "
            f"status={self.status!r}, replayed={self.replayed}, reporter_token={shown})"
        )

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> StartedCase:
        return cls(
            case_id=str(body["case_id"]),
            tracking_number=str(body.get("tracking_number") or body["case_id"]),
            reporter_token=_opt_str(body.get("reporter_token")),
            state=str(body["state"]),
            status=str(body["status"]),
            replayed=bool(body.get("replayed", False)),
        )


@dataclass(frozen=True, slots=True)
class SignalResult:
    """An accepted signal: where the case stands now; ``seq`` the decision's number."""

    case_id: str
    signal: str
    state: str
    status: str
    seq: int | None
    replayed: bool

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SignalResult:
        seq = body.get("seq")
        return cls(
            case_id=str(body["case_id"]),
            signal=str(body["signal"]),
            state=str(body["state"]),
            status=str(body["status"]),
            seq=None if seq is None else int(seq),
            replayed=bool(body.get("replayed", False)),
        )


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """One SLA clock of a case; ``due_at`` in the zone of the region it counts in."""

    name: str
    running: bool
    due_at: str | None
    remaining: str | None
    level: int
    region: str
    overdue: bool
    provisional: bool

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ClockStatus:
        return cls(
            name=str(body["name"]),
            running=bool(body["running"]),
            due_at=_opt_str(body.get("due_at")),
            remaining=_opt_str(body.get("remaining")),
            level=int(body.get("level", 0)),
            region=str(body["region"]),
            overdue=bool(body.get("overdue", False)),
            provisional=bool(body.get("provisional", False)),
        )


@dataclass(frozen=True, slots=True)
class CaseStatus:
    """A case as it stands: the fields of ``Client.status`` (``case_status``), plus ``data``
    (masked in an anonymous or confidential report for every role but Admin Nasional)."""

    case_id: str
    workflow: str
    model_hash: str
    state: str
    status: str
    agency: str | None
    region: str
    escalation_level: int
    escalated_to: str | None
    outcome: str | None
    opened_at: str
    closed_at: str | None
    decisions: int
    clocks: tuple[ClockStatus, ...]
    allowed_signals: tuple[str, ...]
    data: Mapping[str, Any]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CaseStatus:
        return cls(
            case_id=str(body["case_id"]),
            workflow=str(body["workflow"]),
            model_hash=str(body["model_hash"]),
            state=str(body["state"]),
            status=str(body["status"]),
            agency=_opt_str(body.get("agency")),
            region=str(body["region"]),
            escalation_level=int(body.get("escalation_level", 0)),
            escalated_to=_opt_str(body.get("escalated_to")),
            outcome=_opt_str(body.get("outcome")),
            opened_at=str(body["opened_at"]),
            closed_at=_opt_str(body.get("closed_at")),
            decisions=int(body.get("decisions", 0)),
            clocks=tuple(ClockStatus.from_json(c) for c in body.get("clocks") or ()),
            allowed_signals=_strs(body.get("allowed_signals")),
            data=dict(body.get("data") or {}),
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One recorded decision, as the API shows it to the caller (masked text included; verify
    a history with ``lapor audit``, not with this view)."""

    seq: int
    at: str
    actor: str
    model_hash: str
    event: Mapping[str, Any]
    effects: tuple[Mapping[str, Any], ...]
    prev_hash: str
    hash: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> HistoryEntry:
        return cls(
            seq=int(body["seq"]),
            at=str(body["at"]),
            actor=str(body["actor"]),
            model_hash=str(body["model_hash"]),
            event=dict(body.get("event") or {}),
            effects=tuple(dict(e) for e in body.get("effects") or ()),
            prev_hash=str(body["prev_hash"]),
            hash=str(body["hash"]),
        )


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """One row of a case list."""

    case_id: str
    workflow: str
    state: str
    status: str
    agency: str | None
    region: str
    escalation_level: int
    outcome: str | None
    opened_at: str
    next_due: str | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CaseSummary:
        return cls(
            case_id=str(body["case_id"]),
            workflow=str(body["workflow"]),
            state=str(body["state"]),
            status=str(body["status"]),
            agency=_opt_str(body.get("agency")),
            region=str(body["region"]),
            escalation_level=int(body.get("escalation_level", 0)),
            outcome=_opt_str(body.get("outcome")),
            opened_at=str(body["opened_at"]),
            next_due=_opt_str(body.get("next_due")),
        )


@dataclass(frozen=True, slots=True)
class CaseList:
    """One page of a case list, newest first; ``next_page`` is None on the last."""

    items: tuple[CaseSummary, ...]
    page: int
    page_size: int
    next_page: int | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CaseList:
        following = body.get("next_page")
        return cls(
            items=tuple(CaseSummary.from_json(item) for item in body.get("items") or ()),
            page=int(body["page"]),
            page_size=int(body["page_size"]),
            next_page=None if following is None else int(following),
        )


@dataclass(frozen=True, slots=True)
class WorkflowState:
    name: str
    status: str
    final: bool


@dataclass(frozen=True, slots=True)
class WorkflowSignal:
    """A signal of a workflow: who may send it, from which states, with which fields."""

    name: str
    description: str
    roles: tuple[str, ...]
    sources: tuple[str, ...]
    target: str
    requires: tuple[str, ...]
    accepts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Workflow:
    """A workflow cases start under: its intake fields, states and signals."""

    name: str
    version: str
    title: str
    model_hash: str
    intake_requires: tuple[str, ...]
    intake_accepts: tuple[str, ...]
    states: tuple[WorkflowState, ...]
    signals: tuple[WorkflowSignal, ...]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Workflow:
        return cls(
            name=str(body["name"]),
            version=str(body["version"]),
            title=str(body["title"]),
            model_hash=str(body["model_hash"]),
            intake_requires=_strs(body.get("intake_requires")),
            intake_accepts=_strs(body.get("intake_accepts")),
            states=tuple(
                WorkflowState(str(s["name"]), str(s["status"]), bool(s["final"]))
                for s in body.get("states") or ()
            ),
            signals=tuple(
                WorkflowSignal(
                    name=str(t["name"]),
                    description=str(t.get("description", "")),
                    roles=_strs(t.get("roles")),
                    sources=_strs(t.get("sources")),
                    target=str(t["target"]),
                    requires=_strs(t.get("requires")),
                    accepts=_strs(t.get("accepts")),
                )
                for t in body.get("signals") or ()
            ),
        )


@dataclass(frozen=True, slots=True)
class Tracking:
    """The reporter's page: public status, current deadline, the next step in Indonesian;
    ``reporter_actions`` only with the reporter token."""

    tracking_number: str
    status: str
    opened_at: str
    deadline: str | None
    next_step: str
    closed: bool
    reporter_actions: tuple[str, ...] | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Tracking:
        actions = body.get("reporter_actions")
        return cls(
            tracking_number=str(body["tracking_number"]),
            status=str(body["status"]),
            opened_at=str(body["opened_at"]),
            deadline=_opt_str(body.get("deadline")),
            next_step=str(body["next_step"]),
            closed=bool(body["closed"]),
            reporter_actions=None if actions is None else _strs(actions),
        )


@dataclass(frozen=True, slots=True)
class Identity:
    """The identity the reporter gave (None: they gave none); Admin Nasional only."""

    case_id: str
    identity: Mapping[str, Any] | None

    def __repr__(self) -> str:  # an identity stays out of logs and tracebacks
        shown = "None" if self.identity is None else "{...}"
        return f"Identity(case_id={self.case_id!r}, identity={shown})"

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Identity:
        opened = body.get("identity")
        return cls(case_id=str(body["case_id"]), identity=None if opened is None else dict(opened))


@dataclass(frozen=True, slots=True)
class Health:
    """``/healthz`` (``ok``) or ``/readyz`` (``ready``)."""

    status: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Health:
        return cls(status=str(body["status"]))
