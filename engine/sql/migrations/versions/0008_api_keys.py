"""The HTTP API's credentials: ``api_keys``.

Intake channels and agency systems call the service API (``lapor serve``) with an opaque key made
by ``lapor keys create``. The key is shown once; the table keeps only its SHA-256 (a key is 256
random bits, so a plain hash cannot be reversed by guessing), with the role and, for an agency,
the agency it acts for. A revoked key keeps its row with ``revoked_us``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(50), nullable=False),
        sa.Column("scope", sa.String(100), nullable=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
