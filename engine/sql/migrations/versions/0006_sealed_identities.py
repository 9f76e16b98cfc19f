"""Reporter identities encrypted at rest: ``reporters.identity`` becomes a sealed envelope.

``reporters.identity`` held the identity as plain JSON, found with ``strings`` on the database
file. Each row now holds the identity encrypted under its own data key, the data key wrapped by a
master key of the key ring (``key_id``, ``wrapped_key``, ``sealed``), and ``erased_us`` once it
was erased. Rows written before are sealed here with the ring of ``$LAPOR_KEY_FILE`` or
``$LAPOR_IDENTITY_KEY``; without one the upgrade stops before changing anything. SQLite's
``secure_delete`` zeroes the pages the clear text leaves behind.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from engine.runtime.identity import KEY_ENV, KEY_FILE_ENV, IdentityError, KeyRing, SealedIdentity

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT case_id, identity FROM reporters")).all()
    ring = KeyRing.from_env() if rows else None
    if rows and ring is None:
        raise IdentityError(
            f"{len(rows)} reporter identities are stored in clear and must be encrypted: set "
            f"${KEY_FILE_ENV} (create one with `lapor identity init FILE`) or ${KEY_ENV}, then "
            f"run `lapor db upgrade` again"
        )
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
    with op.batch_alter_table("reporters") as batch:
        batch.add_column(sa.Column("key_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("wrapped_key", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("erased_us", sa.BigInteger(), nullable=True))
    reporters = sa.table(
        "reporters",
        sa.column("case_id", sa.String),
        sa.column("key_id", sa.String),
        sa.column("wrapped_key", sa.LargeBinary),
        sa.column("sealed", sa.LargeBinary),
    )
    for case_id, identity in rows:
        assert ring is not None
        sealed = ring.seal(case_id, json.loads(identity))
        conn.execute(
            reporters.update()
            .where(reporters.c.case_id == case_id)
            .values(key_id=sealed.key_id, wrapped_key=sealed.wrapped_key, sealed=sealed.ciphertext)
        )
    with op.batch_alter_table("reporters") as batch:
        batch.drop_column("identity")


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT case_id, key_id, wrapped_key, sealed FROM reporters WHERE sealed IS NOT NULL"
        )
    ).all()
    ring = KeyRing.from_env() if rows else None
    if rows and ring is None:
        raise IdentityError(
            f"downgrading below 0006 writes {len(rows)} reporter identities back in clear and "
            f"needs the key ring (${KEY_FILE_ENV} or ${KEY_ENV})"
        )
    with op.batch_alter_table("reporters") as batch:
        batch.add_column(sa.Column("identity", sa.Text(), nullable=False, server_default="{}"))
    for case_id, key_id, wrapped_key, sealed in rows:
        assert ring is not None
        identity = ring.open(case_id, SealedIdentity(key_id, wrapped_key, sealed))
        conn.execute(
            sa.text("UPDATE reporters SET identity = :identity WHERE case_id = :case_id"),
            {"identity": json.dumps(identity, sort_keys=True), "case_id": case_id},
        )
    with op.batch_alter_table("reporters") as batch:
        for column in ("key_id", "wrapped_key", "sealed", "erased_us"):
            batch.drop_column(column)
