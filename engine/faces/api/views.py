"""The API's request and response bodies (pydantic models, so the OpenAPI document states them)
and how a case becomes one for a given caller.

No view has a place for the reporter's identity except ``IdentityView`` (Admin Nasional only);
complaint text of an anonymous or confidential report is masked for every role but Admin
Nasional (``Principal.sees_raw_text``), as the agency-facing outbox does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.domain.case import Case
from engine.domain.masking import masked_fields
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.faces.api.principals import Principal
from engine.faces.sdk import case_status
from engine.sql.caselist import CaseSummary

__all__ = [
    "CaseListView",
    "CaseSummaryView",
    "CaseView",
    "ClockView",
    "HistoryEntry",
    "IdentityView",
    "SignalRequest",
    "SignalResult",
    "StartRequest",
    "StartedCase",
    "StateView",
    "TransitionView",
    "WorkflowView",
    "case_view",
    "history_view",
    "summary_view",
    "workflow_view",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class StartRequest(BaseModel):
    """A new complaint: the workflow's intake fields, and the reporter's identity kept apart."""

    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(default="sp4n-lapor", pattern=_NAME)
    data: dict[str, Any] = Field(
        description="The intake fields (`GET /v1/workflows` lists them): category, region, "
        "channel, description, and optionally title, type, anonymous, confidential..."
    )
    reporter: dict[str, Any] | None = Field(
        default=None,
        description="Who reported it (name, phone, e-mail...): stored encrypted beside the "
        "case, never in its history, an agency's view or a log.",
    )


class StartedCase(BaseModel):
    case_id: str = Field(description="The case id, which is also its tracking number")
    tracking_number: str
    reporter_token: str | None = Field(
        description="What the reporter acts and tracks with; hand it to the reporter only. "
        "A retry with the same Idempotency-Key answers the same one."
    )
    state: str
    status: str
    replayed: bool = Field(description="A retry of an earlier request: nothing new recorded")


class SignalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any] = Field(default_factory=dict, description="The signal's fields")


class SignalResult(BaseModel):
    case_id: str
    signal: str
    state: str
    status: str
    seq: int | None
    replayed: bool


class ClockView(BaseModel):
    name: str
    running: bool
    due_at: str | None
    remaining: str | None
    level: int
    region: str
    overdue: bool
    provisional: bool


class CaseView(BaseModel):
    """A case as it stands. ``data``: the intake and signal fields as recorded, with NIK, phone
    numbers and e-mail addresses masked in an anonymous or confidential report for every role
    but Admin Nasional."""

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
    clocks: list[ClockView]
    allowed_signals: list[str]
    data: dict[str, Any]


class HistoryEntry(BaseModel):
    """One recorded decision. For a masked view the ``hash`` still covers the text as recorded:
    verify a history with `lapor audit`, not with this view."""

    seq: int
    at: str
    actor: str
    model_hash: str
    event: dict[str, Any]
    effects: list[dict[str, Any]]
    prev_hash: str
    hash: str


class CaseSummaryView(BaseModel):
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


class CaseListView(BaseModel):
    items: list[CaseSummaryView]
    page: int
    page_size: int
    next_page: int | None = Field(description="The next page's number, null on the last")


class StateView(BaseModel):
    name: str
    status: str
    final: bool


class TransitionView(BaseModel):
    name: str
    description: str
    roles: list[str]
    sources: list[str]
    target: str
    requires: list[str]
    accepts: list[str]


class WorkflowView(BaseModel):
    name: str
    version: str
    title: str
    model_hash: str
    intake_requires: list[str]
    intake_accepts: list[str]
    states: list[StateView]
    signals: list[TransitionView]


class IdentityView(BaseModel):
    case_id: str
    identity: dict[str, Any] | None = Field(description="null: the reporter gave none")


def case_view(case: Case, model: Model, now: datetime, principal: Principal) -> CaseView:
    view = case_status(case, model, now)
    return CaseView(**view, data=_shown(case, dict(case.data), principal))


def history_view(
    case: Case, records: list[HistoryRecord], principal: Principal
) -> list[HistoryEntry]:
    entries = []
    for record in records:
        data = record.to_json()
        entries.append(
            HistoryEntry(
                seq=data["seq"],
                at=data["at"],
                actor=data["actor"],
                model_hash=data["model_hash"],
                event=_shown(case, data["event"], principal),
                effects=data["effects"],
                prev_hash=data["prev_hash"],
                hash=data["hash"],
            )
        )
    return entries


def _shown(case: Case, value: dict[str, Any], principal: Principal) -> dict[str, Any]:
    if principal.sees_raw_text or not (case.anonymous or case.confidential):
        return value
    masked: dict[str, Any] = masked_fields(value)
    return masked


def summary_view(summary: CaseSummary) -> CaseSummaryView:
    return CaseSummaryView(
        case_id=summary.case_id,
        workflow=summary.workflow,
        state=summary.state,
        status=summary.status,
        agency=summary.agency,
        region=summary.region,
        escalation_level=summary.escalation_level,
        outcome=summary.outcome,
        opened_at=summary.opened_at.isoformat(),
        next_due=None if summary.next_due is None else summary.next_due.isoformat(),
    )


def workflow_view(model: Model) -> WorkflowView:
    return WorkflowView(
        name=model.name,
        version=model.version,
        title=model.title,
        model_hash=model.hash,
        intake_requires=list(model.intake_requires),
        intake_accepts=list(model.intake_accepts),
        states=[StateView(name=s.name, status=s.status, final=s.final) for s in _states(model)],
        signals=[
            TransitionView(
                name=t.trigger,
                description=t.description,
                roles=list(t.roles),
                sources=list(t.sources),
                target=t.target,
                requires=list(t.requires),
                accepts=list(t.accepts),
            )
            for t in sorted(model.transitions.values(), key=lambda t: t.trigger)
            if t.roles != ("system",)
        ],
    )


def _states(model: Model) -> list[Any]:
    states: Mapping[str, Any] = model.states
    return [states[name] for name in sorted(states)]
