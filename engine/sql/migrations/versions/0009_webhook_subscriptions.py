"""Agencies' webhook subscriptions: ``webhook_subscriptions``.

An agency's system subscribes a URL (``POST /v1/subscriptions``) to be told of its cases through
the outbox, as Standard Webhooks 1.0. The signing secret is shown once; the table keeps it only
sealed by the identity key ring (it must be read back to sign, so it cannot be hashed).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("agency", sa.String(100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_subscriptions"),
    )
    op.create_index(
        "ix_webhook_subscriptions_agency", "webhook_subscriptions", ["agency"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_subscriptions_agency", table_name="webhook_subscriptions")
    op.drop_table("webhook_subscriptions")
