"""Audit and what-if over a case's recorded history.

Replay folds the recorded input events through ``decide`` with the pinned model. An audit passes
when the chain is unbroken (each ``prev_hash`` is the previous ``hash``, each ``hash`` matches its
record) and every re-derived decision equals the recorded one, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from engine.domain.case import GENESIS, Case
from engine.domain.events import ClockLapsed, event_from_json, instant
from engine.domain.machine import Decision, decide, wake_at
from engine.domain.model import Model
from engine.domain.records import HistoryRecord

__all__ = ["AuditReport", "audit_case", "replay", "verify_chain", "what_if"]


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


def replay(model: Model, records: Sequence[HistoryRecord]) -> AuditReport:
    """Re-derive every recorded decision with ``model`` and compare."""
    problems = verify_chain(records)
    case: Case | None = None
    for record in records:
        if record.model_hash != model.hash:
            problems.append(
                f"record {record.seq}: recorded under model {record.model_hash[:12]}, "
                f"replaying with {model.hash[:12]}"
            )
            break
        try:
            decision = decide(model, case, event_from_json(record.event), instant(record.at))
        except ValueError as exc:  # e.g. records out of time order
            problems.append(f"record {record.seq}: {exc}")
            break
        if decision.record is None:
            reason = decision.rejection.reason if decision.rejection else "nothing to decide"
            problems.append(f"record {record.seq}: replay did not accept the event ({reason})")
            break
        if decision.record.effects != record.effects:
            problems.append(
                f"record {record.seq}: re-derived effects differ from the recorded ones"
            )
        elif decision.record.hash != record.hash:
            problems.append(f"record {record.seq}: re-derived record hash differs")
        case = decision.case
    return AuditReport(len(records), tuple(problems), case)


def audit_case(case: Case, model: Model, records: Sequence[HistoryRecord]) -> AuditReport:
    """``replay`` of a stored case's history, and a check that the stored case is the one its
    history derives (a hand-edited case row passes the chain but not this)."""
    report = replay(model, records)
    problems = list(report.problems)
    if report.ok and report.case != case:
        problems.append("the stored case differs from the one its history derives")
    return AuditReport(report.records, tuple(problems), report.case)


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
