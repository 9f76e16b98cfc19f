"""Verifying recorded histories case by case, whatever holds them (``engine.runtime.histories``).

Each case's chain is checked and every decision re-derived under the model it names
(``engine.domain.history``); the first divergence of each case is reported with its sequence
number, and the walk goes on with the next case, so one bad case never hides another. Checks
that need the whole store (the Merkle log, a kept checkpoint) belong to the source's own
adapter and are added by the command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from engine.domain.history import AuditReport, audit_case, replay
from engine.runtime.histories import EVERY_CASE, CaseHistory, HistorySource, Selection

__all__ = ["CaseProblem", "VerifyTally", "verify_histories"]


@dataclass(frozen=True, slots=True)
class CaseProblem:
    case_id: str
    problem: str

    def __str__(self) -> str:
        return f"{self.case_id}: {self.problem}"


@dataclass(slots=True)
class VerifyTally:
    cases: int = 0
    records: int = 0
    failed: int = 0


def verify_histories(
    source: HistorySource,
    selection: Selection = EVERY_CASE,
    *,
    as_of: datetime | None = None,
    tally: VerifyTally | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[CaseProblem]:
    """Every problem of every selected case, streamed; ``tally`` counts what was checked and
    ``progress`` hears how many records each case had (for a progress bar)."""
    tally = tally if tally is not None else VerifyTally()
    for history in source.histories(selection):
        report = verify_history(history, as_of=as_of)
        tally.cases += 1
        tally.records += report.records
        if not report.ok:
            tally.failed += 1
            for problem in report.problems:
                yield CaseProblem(history.case_id, problem)
        if progress is not None:
            progress(report.records)


def verify_history(history: CaseHistory, *, as_of: datetime | None = None) -> AuditReport:
    """One case: its chain and decisions, and the source's view of the case if it keeps one."""
    if history.problem is not None or history.model is None:
        return AuditReport(len(history.records), (history.problem or "no model to replay",))
    if not history.records:
        return AuditReport(0, ("the case has no history records",))
    models = history.models
    if history.case is None:
        return replay(history.model, history.records, as_of=as_of, models=models)
    return audit_case(history.case, history.model, history.records, as_of=as_of, models=models)
