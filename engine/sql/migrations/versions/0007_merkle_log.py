"""The global Merkle log of record hashes: ``log_leaves``.

Per-case hash chains cannot show a case deleted outright, a truncated tail, or a chain rewritten
by someone with write access. Each record hash gets a position in one append-only log, an
RFC 6962 Merkle tree whose signed checkpoints an auditor keeps (``lapor audit checkpoint``).
Existing records are appended by the first checkpoint after this upgrade.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "log_leaves",
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("case_id", "seq", name="uq_log_leaves_case_id_seq"),
    )


def downgrade() -> None:
    op.drop_table("log_leaves")
