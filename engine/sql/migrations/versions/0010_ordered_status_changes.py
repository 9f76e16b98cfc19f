"""Status changes are delivered in order per case and agency: ``ix_outbox_ordered_pending``.

The outbox delivers an agency's ``status_changed`` messages of one case one after another
(``engine.sql.outbox``): before sending one it asks whether an earlier one of the same case and
agency is still pending. This partial index answers that from the pending status changes only:
no other row is in it (an effect's insert does not touch it), and a row leaves it once delivered.
Without it the question would scan every pending row of the outbox.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

# The kind as of this revision (engine.runtime.status_events.STATUS_CHANGED).
_ORDERED_PENDING = sa.text("kind = 'status_changed' AND delivered_us IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_ordered_pending",
        "outbox",
        ["case_id", "target", "id"],
        sqlite_where=_ORDERED_PENDING,
        postgresql_where=_ORDERED_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_ordered_pending", table_name="outbox")
