"""What a case list is, whichever runtime answers it: the filter a dashboard sends and the row it
gets back. The embedded store answers from its ``cases`` table (``engine.sql.caselist``),
Temporal from its visibility store (``workers.caselist``); both give the same rows in the same
order for the same cases, so the service API does not care which one it holds.

Here, below both adapters, because neither may import the other (the layers contract).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.domain.errors import LaporError

__all__ = ["CaseFilter", "CaseSummary", "ListTooDeepError"]


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """What to list. ``status`` matches a state name (``disposed``) or its label
    (``Terdisposisi``); ``overdue``: a deadline has passed (escalated, or a running deadline
    behind ``now``), ``False`` for none has; ``None`` leaves any filter out."""

    status: str | None = None
    agency: str | None = None
    region: str | None = None
    overdue: bool | None = None


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """One line of a list: no complaint text, no identity."""

    case_id: str
    workflow: str
    state: str
    status: str
    agency: str | None
    region: str
    escalation_level: int
    outcome: str | None
    opened_at: datetime
    next_due: datetime | None


class ListTooDeepError(LaporError):
    """A page further down a list than the runtime pages (a caller's request, answered 422):
    the list can only be sorted by reading every case above the page."""

    def __init__(self, offset: int, deepest: int) -> None:
        self.offset = offset
        self.deepest = deepest
        super().__init__(
            f"this list reaches {deepest:,} cases deep and the page asked starts at {offset:,}; "
            "narrow it with status, agency, region or overdue"
        )
