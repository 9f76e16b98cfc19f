"""The embedded runtime's tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Instants the runtime sorts or compares on (deadlines, wake-ups, retry times) are stored as integer
microseconds since the Unix epoch (UTC): one representation, exact, index-friendly and free of the
time-zone handling differences between the two databases. Recorded times inside history rows stay
the ISO 8601 text the hash chain covers.

The reporter's identity lives in its own table, never joined into a case row, a history row or an
outbox payload, so no agency-facing query can reach it by accident.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "cases",
    "definitions",
    "history",
    "idempotency_keys",
    "metadata",
    "outbox",
    "reporters",
    "timers",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Compiled models, content-addressed: a case pins one by hash and replays under it forever.
definitions = Table(
    "definitions",
    metadata,
    Column("model_hash", String(64), primary_key=True),
    Column("name", String(100), nullable=False, index=True),
    Column("version", String(50), nullable=False),
    Column("body", Text, nullable=False),  # canonical JSON of Model.to_data()
    Column("created_us", BigInteger, nullable=False),
)

cases = Table(
    "cases",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("workflow", String(100), nullable=False),
    Column("model_hash", String(64), ForeignKey("definitions.model_hash"), nullable=False),
    Column("state", String(100), nullable=False),
    Column("status", String(100), nullable=False),
    Column("agency", String(100)),
    Column("region", String(10), nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("outcome", String(50)),
    Column("next_due_us", BigInteger),  # earliest running deadline, for status and dashboards
    Column("opened_us", BigInteger, nullable=False),
    Column("closed_us", BigInteger),
    Column("seq", Integer, nullable=False),  # history length
    Column("head", String(64), nullable=False),  # last history hash
    Column("version", Integer, nullable=False),  # optimistic concurrency: bumped by every write
    Column("body", Text, nullable=False),  # Case.to_json() without the reporter
)
Index("ix_cases_state", cases.c.state)
Index("ix_cases_agency", cases.c.agency)

reporters = Table(
    "reporters",
    metadata,
    Column("case_id", String(64), ForeignKey("cases.id"), primary_key=True),
    Column("identity", Text, nullable=False),  # JSON; read only by reporter-facing calls
)

history = Table(
    "history",
    metadata,
    Column("case_id", String(64), ForeignKey("cases.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("format", Integer, nullable=False),
    Column("at", String(40), nullable=False),  # ISO 8601 UTC, as hashed
    Column("actor", String(200), nullable=False),
    Column("model_hash", String(64), nullable=False),
    Column("event", Text, nullable=False),  # JSON
    Column("effects", Text, nullable=False),  # JSON list
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row per running clock of an open case: replaced whenever a decision changes that clock.
timers = Table(
    "timers",
    metadata,
    Column("case_id", String(64), ForeignKey("cases.id"), primary_key=True),
    Column("clock", String(100), primary_key=True),
    Column("due_at", String(40), nullable=False),  # the deadline exactly as the core computed it
    Column("wake_us", BigInteger, nullable=False),  # due + 1 s: when the lapse is delivered
    # No delivery order among one case's timers waking together: whichever wakes it, the core
    # settles every clock due by then and records the canonical first lapse (migration 0002).
)
Index("ix_timers_wake_us", timers.c.wake_us)

# Effects that touch the world, written in the decision's transaction, delivered afterwards.
outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("case_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("idempotency_key", String(200), nullable=False, unique=True),  # case:seq:index
    Column("kind", String(50), nullable=False),  # notify | routed | escalated | closed
    Column("target", String(100), nullable=False),
    Column("payload", Text, nullable=False),  # JSON: effect + agency-safe case summary
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_us", BigInteger, nullable=False),
    Column("delivered_us", BigInteger),
    Column("last_error", Text),
)
Index("ix_outbox_pending", outbox.c.delivered_us, outbox.c.next_attempt_us)

# Client-supplied keys that make a start or a signal safe to retry.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("case_id", String(64), nullable=False),
    Column("seq", Integer),  # the history record the key produced (null: it was rejected)
    Column("created_us", BigInteger, nullable=False),
)
