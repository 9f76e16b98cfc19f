"""Recorded histories, case by case, from wherever they are kept: the one input of the auditors'
tools (``lapor audit verify``, ``audit export``, ``audit explain``, ``whatif``, ``migrate``).

A source yields ``CaseHistory`` values one case at a time, so a tool streams a national year in
bounded memory whatever holds it: the embedded store (``engine.sql.auditlog.SqlHistories``), a
Temporal namespace (``workers.histories.TemporalHistories``) or an export file
(``engine.runtime.exports.ExportHistories``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from engine.domain.case import Case
from engine.domain.events import instant
from engine.domain.model import Model
from engine.domain.records import HistoryRecord

__all__ = ["EVERY_CASE", "CaseHistory", "HistorySource", "Selection", "named"]


@dataclass(frozen=True, slots=True)
class CaseHistory:
    """One case's records in sequence order, with the model it started under.

    ``case`` is the runtime's current view of the case where the source keeps one (a store row,
    a workflow's query answer), so an audit can also check it is the one the records derive;
    an export holds records only. ``problem`` says why the case could not be read (a corrupt
    row, a missing model): the tools report it against the case and go on with the next.
    """

    case_id: str
    records: tuple[HistoryRecord, ...]
    model: Model | None
    case: Case | None = None
    problem: str | None = None
    #: Finds, by hash, the models a migration moved the case to (``model`` is the first one).
    models: Callable[[str], Model | None] | None = field(default=None, compare=False)

    @property
    def opened_at(self) -> datetime | None:
        return instant(self.records[0].at) if self.records else None


@dataclass(frozen=True, slots=True)
class Selection:
    """Which cases a tool reads: named ones (all when empty), opened at or after ``since``."""

    case_ids: tuple[str, ...] = ()
    since: datetime | None = None

    def wants(self, history: CaseHistory) -> bool:
        if self.case_ids and history.case_id not in self.case_ids:
            return False
        opened = history.opened_at
        return self.since is None or (opened is not None and opened >= self.since)


EVERY_CASE = Selection()


class HistorySource(Protocol):
    """Where recorded histories come from; ``histories`` yields them in case id order."""

    def histories(self, selection: Selection = EVERY_CASE) -> Iterator[CaseHistory]: ...

    def count(self, selection: Selection = EVERY_CASE) -> int | None:
        """How many cases ``histories`` will yield, when the source can tell cheaply (for a
        progress bar); ``None`` otherwise."""
        ...


def named(case_ids: Sequence[str]) -> tuple[str, ...]:
    """Case ids as a selection keeps them: sorted, each once."""
    return tuple(sorted(set(case_ids)))
