"""Drop ``timers.armed_seq``: same-instant lapses no longer need a delivery order.

It ordered two clocks of one case that wake at the same instant, because the first one's
``ClockLapsed`` used to be the recorded event. The core now records the canonical first lapse
(by deadline, then model clock order) whichever timer wakes the case, so the order of delivery
changes nothing and the column is dead weight on every timer write.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot drop a column in place before 3.35; Alembic copies the table.
    with op.batch_alter_table("timers") as batch:
        batch.drop_column("armed_seq")


def downgrade() -> None:
    with op.batch_alter_table("timers") as batch:
        batch.add_column(
            sa.Column("armed_seq", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
