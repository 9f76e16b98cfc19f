"""A case that cannot be decided is set aside: the ``quarantine`` table.

One case whose next deadline fell in a year without a calendar (or whose row could not be read)
made ``lapor run`` exit, at every restart, so no other case's clock was ever fired again. The
timer loop now records such a case here with the reason, takes it out of the due index (its
``next_due_us`` becomes null) and goes on; ``lapor quarantine retry`` re-derives the deadline
from the case once the cause is fixed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("quarantined_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quarantine")
