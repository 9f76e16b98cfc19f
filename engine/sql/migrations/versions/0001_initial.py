"""The embedded runtime's first schema: definitions, cases, reporters, history, timers, outbox,
idempotency keys (mirrors ``engine.sql.tables`` as of this revision).

Revision ID: 0001
Revises:
Create Date: 2026-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "definitions",
        sa.Column("model_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model_hash", name="pk_definitions"),
    )
    op.create_index("ix_definitions_name", "definitions", ["name"])

    op.create_table(
        "cases",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("workflow", sa.String(100), nullable=False),
        sa.Column("model_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(100), nullable=False),
        sa.Column("status", sa.String(100), nullable=False),
        sa.Column("agency", sa.String(100), nullable=True),
        sa.Column("region", sa.String(10), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(50), nullable=True),
        sa.Column("next_due_us", sa.BigInteger(), nullable=True),
        sa.Column("opened_us", sa.BigInteger(), nullable=False),
        sa.Column("closed_us", sa.BigInteger(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_hash"],
            ["definitions.model_hash"],
            name="fk_cases_model_hash_definitions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
    )
    op.create_index("ix_cases_state", "cases", ["state"])
    op.create_index("ix_cases_agency", "cases", ["agency"])

    op.create_table(
        "reporters",
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("identity", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_reporters_case_id_cases"),
        sa.PrimaryKeyConstraint("case_id", name="pk_reporters"),
    )

    op.create_table(
        "history",
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("format", sa.Integer(), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("model_hash", sa.String(64), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("effects", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_history_case_id_cases"),
        sa.PrimaryKeyConstraint("case_id", "seq", name="pk_history"),
    )

    op.create_table(
        "timers",
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("clock", sa.String(100), nullable=False),
        sa.Column("due_at", sa.String(40), nullable=False),
        sa.Column("wake_us", sa.BigInteger(), nullable=False),
        sa.Column("armed_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_timers_case_id_cases"),
        sa.PrimaryKeyConstraint("case_id", "clock", name="pk_timers"),
    )
    op.create_index("ix_timers_wake_us", "timers", ["wake_us"])

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger(), nullable=False),
        sa.Column("delivered_us", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
    )
    op.create_index("ix_outbox_pending", "outbox", ["delivered_us", "next_attempt_us"])

    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_timers_wake_us", table_name="timers")
    op.drop_table("timers")
    op.drop_table("history")
    op.drop_table("reporters")
    op.drop_index("ix_cases_agency", table_name="cases")
    op.drop_index("ix_cases_state", table_name="cases")
    op.drop_table("cases")
    op.drop_index("ix_definitions_name", table_name="definitions")
    op.drop_table("definitions")
