"""Audit and what-if over a case's recorded history.

Replay folds the recorded input events through ``decide`` with the pinned model. An audit passes
when the chain is unbroken (each ``prev_hash`` is the previous ``hash``, each ``hash`` matches its
record) and every re-derived decision equals the recorded one, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from engine.domain.canonical import canonical_json
from engine.domain.case import GENESIS, Case
from engine.domain.errors import LaporError
from engine.domain.events import ClockLapsed, Migrated, event_from_json, instant
from engine.domain.machine import Decision, decide, wake_at
from engine.domain.model import Model
from engine.domain.records import HistoryRecord

__all__ = ["MISSED_LAPSE_GRACE", "AuditReport", "audit_case", "replay", "verify_chain", "what_if"]


MISSED_LAPSE_GRACE = timedelta(minutes=15)
"""How long after a deadline's wake-up a runtime may take to record the lapse before an audit
calls it missed: a timer loop polls, and a busy one falls behind by seconds, not minutes."""


@dataclass(frozen=True, slots=True)
class AuditReport:
    records: int
    problems: tuple[str, ...] = ()
    case: Case | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(records: Sequence[HistoryRecord]) -> list[str]:
    """Problems with the hash chain itself, independent of any model."""
    problems: list[str] = []
    prev = GENESIS
    for expected_seq, record in enumerate(records, start=1):
        if record.seq != expected_seq:
            problems.append(f"record {record.seq}: expected sequence number {expected_seq}")
        if record.prev_hash != prev:
            problems.append(f"record {record.seq}: prev_hash does not match the previous record")
        if not record.hash_is_valid():
            problems.append(f"record {record.seq}: hash does not match its contents")
        prev = record.hash
    return problems


def replay(
    model: Model,
    records: Sequence[HistoryRecord],
    *,
    as_of: datetime | None = None,
    models: Callable[[str], Model | None] | None = None,
) -> AuditReport:
    """Re-derive every recorded decision with ``model`` (the one the case started under) and
    compare; ``models`` finds, by hash, the models a migration record moved the case to.

    A divergence is reported once, at the first record where it shows, naming what was recorded
    against what the policy derives (an escalation it did not call for, a lapse it called for
    that is missing); later records would only repeat it. ``as_of`` (the time the evidence was
    taken) also catches a deadline that passed with nothing recorded at the end of the history.
    """
    problems = verify_chain(records)
    case: Case | None = None
    for record in records:
        if record.event.get("kind") == "migrated" and case is not None:
            target = models(str(record.event.get("to_model"))) if models else None
            if target is None or target.hash != record.model_hash:
                problems.append(
                    f"record {record.seq}: the case migrated to model "
                    f"{str(record.event.get('to_model'))[:12]}, which is not available to replay"
                )
                break
            try:
                migrated = event_from_json(record.event)
                if not isinstance(migrated, Migrated):
                    raise ValueError("a migration record without a migration event")
                decision = decide(target, case, replace(migrated, source=model), instant(record.at))
            except (ValueError, LaporError, TypeError) as exc:
                problems.append(f"record {record.seq}: {exc}")
                break
            model = target
        elif record.model_hash != model.hash:
            problems.append(
                f"record {record.seq}: decided under model {record.model_hash[:12]}, but the "
                f"case is pinned to {model.hash[:12]}"
            )
            break
        else:
            try:
                event = event_from_json(record.event)
                decision = decide(model, case, event, instant(record.at))
            except (ValueError, LaporError) as exc:  # records out of time order, a garbled event
                problems.append(f"record {record.seq}: {exc}")
                break
        if decision.record is None:
            problems.append(f"record {record.seq}: {_not_accepted(record, case, decision)}")
            break
        recorded = [dict(e) for e in record.effects]
        derived = [dict(e) for e in decision.record.effects]
        if derived != recorded:
            problems.append(f"record {record.seq}: {_divergence(recorded, derived)}")
            break
        if decision.record.hash != record.hash:
            fields = [
                name
                for name in ("actor", "at", "event", "model_hash", "prev_hash")
                if getattr(decision.record, name) != getattr(record, name)
            ]
            problems.append(
                f"record {record.seq}: the recorded {', '.join(fields) or 'record'} is not "
                "what the event re-derives"
            )
            break
        case = decision.case
    else:
        if as_of is not None and case is not None:
            problems += _missed_lapse(model, case, as_of)
    return AuditReport(len(records), tuple(problems), case)


def audit_case(
    case: Case,
    model: Model,
    records: Sequence[HistoryRecord],
    *,
    as_of: datetime | None = None,
    models: Callable[[str], Model | None] | None = None,
) -> AuditReport:
    """``replay`` of a stored case's history, and a check that the stored case is the one its
    history derives (a hand-edited case row passes the chain but not this)."""
    report = replay(model, records, as_of=as_of, models=models)
    problems = list(report.problems)
    if report.ok and report.case != case:
        problems.append("the stored case differs from the one its history derives")
    return AuditReport(report.records, tuple(problems), report.case)


def _not_accepted(record: HistoryRecord, case: Case | None, decision: Decision) -> str:
    escalations = [e for e in record.effects if e.get("kind") == "escalated"]
    if record.event.get("kind") == "clock_lapsed" and case is not None:
        clock = case.clock(str(record.event.get("clock")))
        due = (
            "it is not running"
            if clock is None or clock.due_at is None
            else (f"its deadline is {clock.due_at.isoformat()}")
        )
        what = (
            f"an escalation to {escalations[0].get('to')} the policy did not call for"
            if escalations
            else "a lapse the policy did not call for"
        )
        return f"records {what}: clock {record.event.get('clock')} had not lapsed ({due})"
    reason = decision.rejection.reason if decision.rejection else "nothing to decide"
    return f"the policy would not accept this event ({reason})"


def _divergence(recorded: list[dict[str, Any]], derived: list[dict[str, Any]]) -> str:
    """The first difference between recorded and re-derived effects, in an auditor's words."""
    for kind in ("escalated", "lapsed"):
        ours = [e for e in recorded if e.get("kind") == kind]
        policy = [e for e in derived if e.get("kind") == kind]
        extra = [e for e in ours if e not in policy]
        missing = [e for e in policy if e not in ours]
        if extra:
            return f"records {_effect_text(extra[0])} that the policy did not call for"
        if missing:
            return f"the policy calls for {_effect_text(missing[0])} here; it was not recorded"
    for index, (ours_one, policy_one) in enumerate(zip(recorded, derived, strict=False), 1):
        if ours_one != policy_one:
            return (
                f"effect {index} differs: recorded {_compact(ours_one)}, "
                f"re-derived {_compact(policy_one)}"
            )
    return (
        f"recorded {len(recorded)} effect(s), the policy derives {len(derived)}: "
        f"first extra {_compact((recorded + derived)[min(len(recorded), len(derived))])}"
    )


def _effect_text(effect: dict[str, Any]) -> str:
    if effect.get("kind") == "escalated":
        return (
            f"an escalation of clock {effect.get('clock')} to {effect.get('to')} "
            f"(level {effect.get('level')})"
        )
    return f"a lapse of clock {effect.get('clock')} (due {effect.get('due_at')})"


def _compact(effect: dict[str, Any]) -> str:
    text = canonical_json(effect)
    return text if len(text) <= 160 else text[:157] + "..."


def _missed_lapse(model: Model, case: Case, as_of: datetime) -> list[str]:
    """A running deadline that passed before ``as_of`` with no record of its lapse."""
    due = case.next_due
    if due is None or case.closed or wake_at(due) + MISSED_LAPSE_GRACE > as_of:
        return []
    clock = next(c for c in case.clocks if c.running and c.due_at == due)
    spec = model.clock(clock.name)
    then = "escalated" if spec.escalate is not None else f"taken {spec.fire!r}"
    return [
        f"record {case.seq + 1}: clock {clock.name} lapsed at {due.isoformat()} and should "
        f"have {then}; nothing was recorded by {as_of.isoformat()}"
    ]


def what_if(
    model: Model, records: Sequence[HistoryRecord], until: datetime | None = None
) -> list[Decision]:
    """The same inputs under another model: what would each decision have been?

    The recorded timers belong to the recorded model; the new model's own clocks are fired at
    their own deadlines between the inputs, and up to ``until`` (default: the last input).
    """
    decisions: list[Decision] = []
    case: Case | None = None

    def fire_timers_until(moment: datetime) -> None:
        nonlocal case
        while case is not None and case.next_due is not None:
            due = case.next_due
            if wake_at(due) > moment:
                return
            clock = next(c.name for c in case.clocks if c.running and c.due_at == due)
            decision = decide(model, case, ClockLapsed(clock, due), wake_at(due))
            decisions.append(decision)
            if not decision.accepted:
                return
            case = decision.case

    for record in records:
        if record.event.get("kind") == "clock_lapsed":
            continue
        at = instant(record.at)
        fire_timers_until(at)
        decision = decide(model, case, event_from_json(record.event), at)
        decisions.append(decision)
        if decision.case is not None and decision.accepted:
            case = decision.case
    if records:
        fire_timers_until(until or instant(records[-1].at))
    return decisions
