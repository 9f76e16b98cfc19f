"""Lists of cases by what a dashboard filters on: status, agency, region, overdue.

Read from the ``cases`` table's own columns, never from a decoded case body, so a page of fifty
costs one indexed query and no JSON. The reporter's identity lives in another table and is out
of reach of this module. The filter and the row are the runtimes' shared ones
(``engine.runtime.caselist``), re-exported here for the callers that import them from this module.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Engine, and_, not_, or_, select

from engine.runtime.caselist import CaseFilter, CaseSummary
from engine.sql import store
from engine.sql.tables import cases

__all__ = ["CaseFilter", "CaseSummary", "list_cases"]


def _conditions(found: CaseFilter, now: datetime) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if found.status is not None:
        conditions.append(or_(cases.c.state == found.status, cases.c.status == found.status))
    if found.agency is not None:
        conditions.append(cases.c.agency == found.agency)
    if found.region is not None:
        conditions.append(cases.c.region == found.region)
    if found.overdue is not None:
        late = or_(
            cases.c.escalation_level > 0,
            and_(cases.c.next_due_us.isnot(None), cases.c.next_due_us < store.epoch_us(now)),
        )
        conditions.append(late if found.overdue else not_(late))
    return conditions


def list_cases(
    engine: Engine, found: CaseFilter, now: datetime, *, offset: int, limit: int
) -> list[CaseSummary]:
    """Up to ``limit`` cases matching ``found`` from ``offset``, newest first."""
    query = (
        select(
            cases.c.id,
            cases.c.workflow,
            cases.c.state,
            cases.c.status,
            cases.c.agency,
            cases.c.region,
            cases.c.escalation_level,
            cases.c.outcome,
            cases.c.opened_us,
            cases.c.next_due_us,
        )
        .where(*_conditions(found, now))
        .order_by(cases.c.opened_us.desc(), cases.c.id)
        .offset(offset)
        .limit(limit)
    )
    rows = store.read(engine, lambda conn: conn.execute(query).all(), action="list cases")
    return [
        CaseSummary(
            case_id=row.id,
            workflow=row.workflow,
            state=row.state,
            status=row.status,
            agency=row.agency,
            region=row.region,
            escalation_level=row.escalation_level,
            outcome=row.outcome,
            opened_at=store.from_epoch_us(row.opened_us),
            next_due=None if row.next_due_us is None else store.from_epoch_us(row.next_due_us),
        )
        for row in rows
    ]
