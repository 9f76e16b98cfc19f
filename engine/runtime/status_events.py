"""What an agency is told when a case disposed to it changes status: the ``status_changed``
message.

The core decides effects for the parties a workflow names (a notice to the reporter, a referral
to Ombudsman RI); most status changes of an agency's case carry no effect addressed to the
agency: its own follow-up and answer, the reporter's confirmation, an auto-close, each rung of
escalation, a referral. An agency's system that integrates with LAPOR! still needs every one of
them. So the embedded runtime derives one message per history record that changes what the
agency's view of the case says about its status (state, status, agency, escalation rung,
escalated to, outcome) and writes it in the decision's transaction
(``engine.sql.status_feed``), without changing what the core decides or records.

Who is told: the agency the case is disposed to after the change, and the one it was disposed
to before when that differs (a re-routing: the old agency learns the case left it). The message
carries the two status snapshots and why the status changed (the event's kind, the signal's
name and the role that sent it: never an actor's id), and, only for the agency that holds the
case now, the case as any agency-facing message shows it (``agency_view``: never the reporter,
masked text for an anonymous or confidential report). The agency it left gets no case view:
it may not see the case any more (``Principal.may_see``).

The idempotency key, ``{case}:{seq}:status:{agency}``, is fixed by the history record, so a
retry carries the same Standard Webhooks ``webhook-id`` and receivers deduplicate by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.domain.case import Case, agency_view
from engine.domain.records import HistoryRecord

__all__ = ["STATUS_CHANGED", "receivers", "status_key", "status_payload", "status_snapshot"]

STATUS_CHANGED = "status_changed"
"""The outbox ``kind`` of these messages (``case.status_changed`` as a Standard Webhook)."""


def status_snapshot(case: Case) -> dict[str, Any]:
    """The status fields an agency's view of ``case`` shows (nothing of the complaint's text)."""
    return {
        "state": case.state,
        "status": case.status,
        "agency": case.agency,
        "escalation_level": case.escalation_level,
        "escalated_to": case.escalated_to,
        "outcome": case.outcome,
    }


def _same_status(before: Case, after: Case) -> bool:
    # Attribute by attribute, not two snapshots: this runs for every decision of a case that
    # has an agency, in every group commit, before anyone asks whether the agency subscribed.
    return (
        before.state == after.state
        and before.status == after.status
        and before.agency == after.agency
        and before.escalation_level == after.escalation_level
        and before.escalated_to == after.escalated_to
        and before.outcome == after.outcome
    )


def receivers(before: Case | None, after: Case) -> tuple[str, ...]:
    """The agencies to tell that ``before`` became ``after`` (none when the status did not
    change): the one holding the case now, then the one it left."""
    if before is None or _same_status(before, after):
        return ()  # a start disposes to no one: an agency first hears of it at verification
    if before.agency is None or before.agency == after.agency:
        return () if after.agency is None else (after.agency,)
    return (before.agency,) if after.agency is None else (after.agency, before.agency)


def status_key(case_id: str, seq: int, agency: str) -> str:
    """The idempotency key (``webhook-id``) of the status change of record ``seq`` for
    ``agency``: the same on every retry."""
    return f"{case_id}:{seq}:status:{agency}"


def _cause(record: HistoryRecord) -> dict[str, Any]:
    event: Mapping[str, Any] = record.event
    kind = event.get("kind")
    name = event.get("name") if kind == "signal" else None
    role = record.actor.partition(":")[0]  # the role only: an id may name a person
    return {"event": kind, "signal": name, "by": role}


def status_payload(before: Case, after: Case, record: HistoryRecord, agency: str) -> dict[str, Any]:
    """The outbox payload telling ``agency`` of the change ``record`` made."""
    return {
        "case_id": after.id,
        "seq": record.seq,
        "at": record.at,
        "cause": _cause(record),
        "from": status_snapshot(before),
        "to": status_snapshot(after),
        "case": agency_view(after) if after.agency == agency else None,
    }
