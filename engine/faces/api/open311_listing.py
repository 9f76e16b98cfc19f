"""Which cases the public Open311 reads show: never a confidential one, and for a list, those
opened in a window of at most 90 days (``window_bounds``), newest first.

The case list (``engine.sql.caselist``; ``workers.caselist`` on Temporal) has no column for
confidentiality, so a list scans it newest first and reads each case in the window; ordered by
opening, the scan stops at the window's start, and at the page being asked for.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.domain.case import Case
from engine.faces.api.problems import ApiProblem
from engine.faces.api.service import Service
from engine.runtime.errors import UnknownCaseError
from engine.sql.caselist import CaseFilter

__all__ = ["MAX_WINDOW", "comma_list", "public_case", "public_window", "window_bounds"]

MAX_WINDOW = timedelta(days=90)
_SCAN = 200  # index rows read per query while scanning a window


def public_case(found: Service, case_id: str) -> Case:
    case = found.runtime().case(case_id)
    if case.confidential:
        raise UnknownCaseError(case_id)  # a confidential report does not exist in public
    return case


def window_bounds(
    start_date: str | None, end_date: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """The window a list covers: by default the last 90 days; from ``start_date`` 90 days on;
    until ``end_date`` 90 days back; never longer than 90 days (a 400)."""
    start, end = _instant("start_date", start_date), _instant("end_date", end_date)
    if end is None:
        end = now if start is None else start + MAX_WINDOW
    if start is None:
        start = end - MAX_WINDOW
    if start > end or end - start > MAX_WINDOW:
        raise ApiProblem(
            422, "invalid_request", "start_date must precede end_date, at most 90 days apart"
        )
    return start, end


def _instant(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiProblem(
            422, "invalid_request", f"{name} must be ISO 8601 with a time zone, "
            "e.g. 2026-12-01T00:00:00+07:00"
        )  # fmt: skip
    return moment


def comma_list(name: str, values: str | None, allowed: set[str] | None = None) -> set[str] | None:
    """A comma-separated parameter (the spec's way of asking for several values)."""
    if values is None:
        return None
    chosen = {value for value in values.split(",") if value}
    if allowed is not None and not chosen <= allowed:
        raise ApiProblem(
            422, "invalid_request", f"{name} must be among {', '.join(sorted(allowed))}"
        )
    return chosen


def public_window(
    found: Service,
    now: datetime,
    window: tuple[datetime, datetime],
    enough: int,
    *,
    codes: set[str] | None = None,
    statuses: set[str] | None = None,
) -> list[Case]:
    """Up to ``enough`` public cases opened in ``window``, newest first, of the workflows
    ``codes`` and the statuses (``open``/``closed``) ``statuses`` (``None``: any). Both are
    matched on the index row; only a candidate is read, to leave a confidential one out."""
    if found.case_lister is None:
        raise ApiProblem(501, "not_implemented", "this app was built without a case list")
    start, end = window
    runtime = found.runtime()
    shown: list[Case] = []
    offset = 0
    while len(shown) < enough:
        rows = found.case_lister(CaseFilter(), now, offset, _SCAN)
        offset += len(rows)
        for row in rows:
            if row.opened_at < start:
                return shown
            status = "open" if row.outcome is None else "closed"
            if (
                row.opened_at > end
                or (codes is not None and row.workflow not in codes)
                or (statuses is not None and status not in statuses)
            ):
                continue
            case = runtime.case(row.case_id)
            if not case.confidential:
                shown.append(case)
                if len(shown) == enough:
                    return shown
        if len(rows) < _SCAN:
            break
    return shown
