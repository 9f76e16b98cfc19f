"""The case row is its own timer; two indexes no query read are dropped.

Measured on a 20,000-complaint demo database, a decision dirtied about eight B-tree pages at
random places: the case row, its place in ``ix_cases_state``, the timer row, the timer's primary
key, two entries of ``ix_timers_wake_us``, the history key and the outbox key. Each is a whole
page written to the WAL and again at checkpoint, so at a national scale (a million cases) the
kernel's page copying, not Python, set the pace. This revision removes four of them:

* ``timers`` goes. ``cases.next_due_us`` (already written by every decision: the earliest
  running deadline) gets a partial index, and the timer loop claims cases whose deadline plus
  ``LAPSE_MARGIN`` has passed, then lapses the clock that owns that deadline. A case with several
  running clocks is woken at the earliest, as before; the core settles the rest.
* ``ix_cases_state`` goes: nothing queries cases by state, and almost every decision moved the
  case in it.
* ``uq_outbox_idempotency_key`` goes: the key is ``case:seq:index`` and ``(case, seq)`` is the
  history's primary key, written in the same transaction, so uniqueness is already guaranteed.

Downgrade rebuilds the timer rows from the case bodies (one per running clock with a deadline).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_HAS_DEADLINE = sa.text("next_due_us IS NOT NULL")
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_LAPSE_MARGIN = timedelta(seconds=1)  # engine.domain.machine.LAPSE_MARGIN as of this revision


def upgrade() -> None:
    op.create_index(
        "ix_cases_next_due_us",
        "cases",
        ["next_due_us"],
        sqlite_where=_HAS_DEADLINE,
        postgresql_where=_HAS_DEADLINE,
    )
    op.drop_index("ix_cases_state", table_name="cases")
    op.drop_index("ix_timers_wake_us", table_name="timers")
    op.drop_table("timers")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint("uq_outbox_idempotency_key", type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.create_unique_constraint("uq_outbox_idempotency_key", ["idempotency_key"])
    timers = op.create_table(
        "timers",
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("clock", sa.String(100), nullable=False),
        sa.Column("due_at", sa.String(40), nullable=False),
        sa.Column("wake_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_timers_case_id_cases"),
        sa.PrimaryKeyConstraint("case_id", "clock", name="pk_timers"),
    )
    op.create_index("ix_timers_wake_us", "timers", ["wake_us"])
    waiting = op.get_bind().execute(
        sa.text("SELECT id, body FROM cases WHERE next_due_us IS NOT NULL"),
        execution_options={"stream_results": True},
    )
    for part in waiting.partitions(10_000):  # a million cases need not sit in memory at once
        rows = [
            {
                "case_id": case_id,
                "clock": clock["name"],
                "due_at": clock["due_at"],
                "wake_us": _wake_us(clock["due_at"]),
            }
            for case_id, body in part
            for clock in json.loads(body)["clocks"]
            if clock["running"] and clock["due_at"] is not None
        ]
        if rows:
            op.bulk_insert(timers, rows)
    op.create_index("ix_cases_state", "cases", ["state"])
    op.drop_index("ix_cases_next_due_us", table_name="cases")


def _wake_us(due_at: str) -> int:
    return (datetime.fromisoformat(due_at) + _LAPSE_MARGIN - _EPOCH) // timedelta(microseconds=1)
