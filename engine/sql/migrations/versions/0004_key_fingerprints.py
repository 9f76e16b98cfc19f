"""Bind each idempotency key to its request: ``idempotency_keys.fingerprint``.

A key used again with a different request (another complaint, another signal) used to answer
the first call's outcome, so the second request was lost without a word. The column holds
``engine.runtime.contract.request_fingerprint`` of the request that first used the key; a reuse
with another fingerprint is refused (``KeyReuseError``). Keys written before it have none and
are compared by case id alone, as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("fingerprint")
