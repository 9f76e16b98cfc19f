"""Status changes of subscribed agencies' cases, written to the outbox at commit.

A group commit notes each accepted decision's case before and after (``StatusFeed.note``, cheap:
it runs for every decision). When the group commit is written, inside its transaction, the feed
reads which agencies have a webhook subscription and turns the noted changes of their cases into
``status_changed`` outbox rows (``engine.runtime.status_events``), which the signed delivery
(``lapor run --handler agency-webhooks``) drains like every other row. So:

* exactly once: a change's row commits with its decision or not at all, and its idempotency key
  is fixed by the history record;
* in order per case: rows are inserted in decision order, and the outbox delivers the
  ``status_changed`` rows of a case to an agency one after another (``engine.sql.outbox``);
* nothing for agencies that did not subscribe: no row is written for them, so a database
  without subscriptions (the national bulk demo) pays one small read per transaction that
  changed an agency's case, and nothing else;
* the core is untouched: no effect is added to what ``decide`` returns or the history records.

The subscriptions are read once per transaction: a session (``engine.sql.bulk``) writes many
group commits in one, and reading them at each cost the 20,000-complaint demo about 2 % of its
time. A subscription made meanwhile counts from the next transaction (on SQLite none can be
made meanwhile: the transaction holds the write lock); an earlier change is not replayed to it.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from sqlalchemy import Connection

from engine.domain.canonical import compact_json
from engine.domain.case import Case
from engine.domain.records import HistoryRecord
from engine.runtime.status_events import STATUS_CHANGED, receivers, status_key, status_payload

__all__ = ["StatusFeed", "subscribed_agencies"]

# Plain SQL, the same on both databases: no statement to compile on a path every write takes.
_SUBSCRIBED = "SELECT DISTINCT agency FROM webhook_subscriptions"
_CACHE = "lapor.subscribed_agencies"  # conn.info key: (transaction, agencies)


def subscribed_agencies(conn: Connection) -> Set[str]:
    """The agencies with at least one webhook subscription, read once per transaction of
    ``conn`` (the connection's ``info`` keeps the answer with the transaction it belongs to)."""
    transaction = conn.get_transaction()
    cached = conn.info.get(_CACHE)
    if transaction is not None and cached is not None and cached[0] is transaction:
        found: Set[str] = cached[1]
        return found
    found = frozenset(row[0] for row in conn.exec_driver_sql(_SUBSCRIBED))
    conn.info[_CACHE] = (transaction, found)
    return found


class StatusFeed:
    """The status changes of one group commit, as outbox rows for the subscribed agencies."""

    def __init__(self) -> None:
        # (case before, case after, its record, when it was decided): agency cases only.
        self._noted: list[tuple[Case, Case, HistoryRecord, int]] = []

    def note(self, before: Case | None, after: Case, record: HistoryRecord, now_us: int) -> None:
        """Remember an accepted decision that may concern an agency (``before`` is ``None``
        for a start, which concerns none)."""
        if before is not None and (after.agency is not None or before.agency is not None):
            self._noted.append((before, after, record, now_us))

    def rows(self, conn: Connection) -> list[dict[str, Any]]:
        """The outbox rows of the noted changes whose agency subscribed, in decision order.

        Reads the subscriptions on ``conn`` (the group commit's transaction); builds, never
        consumes, so a transaction retried after a rollback gets the same rows again."""
        if not self._noted:
            return []
        subscribed = subscribed_agencies(conn)
        if not subscribed:
            return []
        rows: list[dict[str, Any]] = []
        for before, after, record, now_us in self._noted:
            for agency in receivers(before, after):
                if agency not in subscribed:
                    continue
                payload = status_payload(before, after, record, agency)
                rows.append(
                    {
                        "case_id": after.id,
                        "seq": record.seq,
                        "idempotency_key": status_key(after.id, record.seq, agency),
                        "kind": STATUS_CHANGED,
                        "target": agency,
                        "payload": compact_json(payload),
                        "attempts": 0,
                        "next_attempt_us": now_us,
                    }
                )
        return rows
