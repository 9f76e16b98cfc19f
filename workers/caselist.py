"""The case list on Temporal: ``GET /v1/complaints`` (and Open311's list) from the visibility
store, through the search attributes every case workflow keeps (``workers.search_attributes``).

The same rows in the same order as the embedded store's list (``engine.sql.caselist``):

- **Filters.** ``status`` is ``LaporState = v OR LaporStatus = v`` (a state or its label);
  ``agency``, ``region`` are equalities; ``overdue`` is ``LaporEscalationLevel > 0 OR
  LaporNextDue < now`` (an unset next due compares as nothing, like SQL's NULL), and its
  negation spelled out, because the query language has no ``NOT``. Every value is a quoted
  literal with its quote and backslash escaped (``literal``): no value can end it and add a
  clause. Only cases are listed: ``WorkflowType = 'CaseWorkflow'``, not the closed runs of a
  continue-as-new chain (``ExecutionStatus != 'ContinuedAsNew'``), not a refused start's run
  (it never sets ``LaporOpenedAt``).
- **Order.** Newest first by the case's own opening (``LaporOpenedAt``), then by id, sorted here:
  SQL visibility stores (the dev server's SQLite, PostgreSQL, MySQL) refuse ``ORDER BY``, and
  their own order (running first, by run start) is not the case's. Sorting needs every case
  above the page, so the page is found by counting: the latest instant ``T`` with at least
  ``offset + limit`` cases opened at or after it (``count_workflows``, doubling back from
  ``now``, then halving), and only the cases from ``T`` on are read (at most ``SLACK`` more
  than needed, or the cases opened in the same second as the cut).
- **Depth.** That read grows with the offset, so a page starting past ``MAX_OFFSET`` is refused
  (``ListTooDeepError``, a 422 saying to narrow the filter) rather than read by the thousand;
  Elasticsearch visibility caps a listing the same way.
- **Consistency.** Visibility is eventually consistent: a case just started or just moved shows
  (or shows its new state) after a short delay, usually well under a second on the dev server.
  A case read while its run continues as new may briefly show twice; the list keeps it once.
- **Retention.** A namespace forgets a closed workflow after its retention period; its case then
  leaves the list (and every other read) on Temporal, where the embedded store keeps it.
- **Older runs.** A run recorded before ``CASE_LIST_PATCH`` does not set ``LaporOpenedAt`` (nor
  ``LaporWorkflow``, ``LaporOutcome``); its case is listed once it continues as new.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError, RPCStatusCode

from engine.domain.errors import LaporError
from engine.runtime.caselist import CaseFilter, CaseSummary, ListTooDeepError
from engine.runtime.errors import RuntimeUnavailableError
from workers import search_attributes as sa
from workers.runtime import TemporalRuntime
from workers.workflow import CaseWorkflow

__all__ = ["MAX_OFFSET", "SLACK", "TemporalCaseList", "literal", "newest_first", "where"]

#: The deepest page start served (page x page_size of the API; Elasticsearch's own default cap).
MAX_OFFSET = 10_000
#: How many cases more than needed a read may return before the cut is narrowed further: reading
#: one visibility page more is cheaper than another count.
SLACK = 1_000
#: Cases read per visibility page.
PAGE_SIZE = 1_000
#: A read that would return more than this (the cases of one second, say, after a bulk import)
#: is refused rather than held in memory.
MOST_READ = MAX_OFFSET + 10 * SLACK
#: Where the doubling search starts and how far it may go either side of ``now``.
_FIRST_STEP = timedelta(hours=1)
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2999, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def literal(value: str) -> str:
    """``value`` as a string literal of the visibility query language: in single quotes, the
    backslash and the quote escaped, so whatever a caller sends stays one value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _instant(moment: datetime) -> str:
    # UTC with microseconds: the embedded list compares to the microsecond too.
    return literal(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def where(found: CaseFilter, now: datetime) -> str:
    """The visibility query of the cases ``found`` selects at ``now`` (no opening bound)."""
    clauses = [
        f"WorkflowType = {literal(CaseWorkflow.__name__)}",
        f"ExecutionStatus != {literal('ContinuedAsNew')}",
        f"{sa.OPENED_AT.name} IS NOT NULL",
    ]
    if found.status is not None:
        value = literal(found.status)
        clauses.append(f"({sa.STATE.name} = {value} OR {sa.STATUS.name} = {value})")
    if found.agency is not None:
        clauses.append(f"{sa.AGENCY.name} = {literal(found.agency)}")
    if found.region is not None:
        clauses.append(f"{sa.REGION.name} = {literal(found.region)}")
    if found.overdue is not None:
        level, due, at = sa.ESCALATION_LEVEL.name, sa.NEXT_DUE.name, _instant(now)
        if found.overdue:
            clauses.append(f"({level} > 0 OR {due} < {at})")
        else:
            clauses.append(f"{level} <= 0 AND ({due} IS NULL OR {due} >= {at})")
    return " AND ".join(clauses)


def _opened_since(query: str, moment: datetime) -> str:
    return f"{query} AND {sa.OPENED_AT.name} >= {_instant(moment)}"


@contextmanager
def _mapped() -> Iterator[None]:
    """Visibility errors as the runtime's: an unknown attribute is a namespace set up before
    the case list existed; anything else, a server that failed."""
    try:
        yield
    except RPCError as exc:
        hint = ""
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            hint = (
                "; register the case search attributes in this namespace "
                "(`lapor temporal search-attributes`)"
            )
        status = exc.status.name if exc.status else "?"
        raise RuntimeUnavailableError(
            f"Temporal refused the case list ({status}): {exc.message}{hint}"
        ) from None


def _summary(execution: WorkflowExecution) -> CaseSummary | None:
    held = execution.typed_search_attributes
    opened, state = held.get(sa.OPENED_AT), held.get(sa.STATE)
    if opened is None or state is None:  # not (yet) indexed for the list
        return None
    due = held.get(sa.NEXT_DUE)
    return CaseSummary(
        case_id=execution.id,
        workflow=held.get(sa.WORKFLOW) or "",
        state=state,
        status=held.get(sa.STATUS) or "",
        agency=held.get(sa.AGENCY),
        region=held.get(sa.REGION) or "",
        escalation_level=held.get(sa.ESCALATION_LEVEL) or 0,
        outcome=held.get(sa.OUTCOME),
        opened_at=opened.astimezone(UTC),
        next_due=None if due is None else due.astimezone(UTC),
    )


def newest_first(rows: Sequence[CaseSummary]) -> list[CaseSummary]:
    """The embedded list's order: opening descending, then id ascending (two stable sorts)."""
    by_id = sorted(rows, key=lambda row: row.case_id)
    return sorted(by_id, key=lambda row: row.opened_at, reverse=True)


class TemporalCaseList:
    """A ``CaseLister`` (``engine.faces.api.service``) on ``runtime``'s client and event loop."""

    def __init__(
        self,
        runtime: TemporalRuntime,
        *,
        max_offset: int = MAX_OFFSET,
        slack: int = SLACK,
        most_read: int = MOST_READ,
    ) -> None:
        self.runtime = runtime
        self.max_offset = max_offset
        self.slack = slack
        self.most_read = most_read

    def __call__(
        self, found: CaseFilter, now: datetime, offset: int, limit: int
    ) -> list[CaseSummary]:
        """Up to ``limit`` cases matching ``found`` from ``offset``, newest first."""
        if offset > self.max_offset:
            raise ListTooDeepError(offset, self.max_offset)
        return self.runtime.run(self._page(found, now, offset, limit))

    @property
    def _client(self) -> Client:
        return self.runtime.client

    async def _count(self, query: str) -> int:
        with _mapped():
            return (await self._client.count_workflows(query)).count

    async def _read(self, query: str) -> list[CaseSummary]:
        seen: dict[str, CaseSummary] = {}
        with _mapped():
            async for execution in self._client.list_workflows(query, page_size=PAGE_SIZE):
                row = _summary(execution)
                if row is not None:
                    seen.setdefault(row.case_id, row)  # a run and its continuation: once
                if len(seen) > self.most_read:
                    raise LaporError(
                        f"more than {self.most_read:,} cases opened around the same instant "
                        "would have to be read for this page; narrow it with status, agency, "
                        "region or overdue"
                    )
        return list(seen.values())

    async def _page(
        self, found: CaseFilter, now: datetime, offset: int, limit: int
    ) -> list[CaseSummary]:
        query = where(found, now)
        wanted = offset + limit
        total = await self._count(query)
        if total <= wanted + self.slack:
            rows = await self._read(query)
        else:
            cut = await self._cut(query, wanted, now)
            rows = await self._read(_opened_since(query, cut))
        return newest_first(rows)[offset : offset + limit]

    async def _cut(self, query: str, wanted: int, now: datetime) -> datetime:
        """An instant with at least ``wanted`` matching cases opened at or after it and at most
        ``wanted + slack`` (or within a second of the fewest that hold ``wanted``).

        Called only when more than ``wanted + slack`` cases match in all, so going back far
        enough always finds ``wanted``. ``enough`` holds ``wanted`` or more, ``short`` fewer.
        """

        async def since(moment: datetime) -> int:
            return await self._count(_opened_since(query, moment))

        at_now = await since(now)
        step = _FIRST_STEP
        if at_now >= wanted:  # cases opened after ``now`` (a skewed clock): look forward
            enough, count = now, at_now
            short = min(now + step, _LATEST)
            ahead = await since(short)
            while ahead >= wanted and short < _LATEST:
                enough, count = short, ahead
                step *= 2
                short = min(now + step, _LATEST)
                ahead = await since(short)
        else:
            short = now
            enough = max(now - step, _EARLIEST)
            count = await since(enough)
            while count < wanted and enough > _EARLIEST:
                short = enough
                step *= 2
                enough = max(now - step, _EARLIEST)
                count = await since(enough)
        while count > wanted + self.slack and short - enough > _SECOND:
            middle = enough + (short - enough) / 2
            found = await since(middle)
            if found >= wanted:
                enough, count = middle, found
            else:
                short = middle
        return enough
