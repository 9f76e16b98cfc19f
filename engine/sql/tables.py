"""The embedded runtime's tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Instants the runtime sorts or compares on (deadlines, wake-ups, retry times) are stored as integer
microseconds since the Unix epoch (UTC): one representation, exact, index-friendly and free of the
time-zone handling differences between the two databases. Recorded times inside history rows stay
the ISO 8601 text the hash chain covers.

The reporter's identity lives in its own table, never joined into a case row, a history row or an
outbox payload, so no agency-facing query can reach it by accident; and only encrypted
(``engine.runtime.identity``: the data key wrapped by master key ``key_id``). An erased identity
keeps its row with ``erased_us`` and nothing else.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "api_keys",
    "cases",
    "definitions",
    "history",
    "idempotency_keys",
    "log_leaves",
    "metadata",
    "outbox",
    "quarantine",
    "reporters",
    "webhook_subscriptions",
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
    # The earliest running deadline: the timer loop wakes the case one LAPSE_MARGIN after it.
    Column("next_due_us", BigInteger),
    Column("opened_us", BigInteger, nullable=False),
    Column("closed_us", BigInteger),
    Column("seq", Integer, nullable=False),  # history length
    Column("head", String(64), nullable=False),  # last history hash
    Column("version", Integer, nullable=False),  # optimistic concurrency: bumped by every write
    Column("body", Text, nullable=False),  # Case.to_json() without the reporter
)
Index("ix_cases_agency", cases.c.agency)
# The case row is its own timer (migration 0003): one index entry per case with a running clock,
# moved by the update that changes the deadline, instead of a timers table with three B-trees.
# Partial: closed and paused cases are not in it.
_HAS_DEADLINE = cases.c.next_due_us.isnot(None)
Index(
    "ix_cases_next_due_us",
    cases.c.next_due_us,
    sqlite_where=_HAS_DEADLINE,
    postgresql_where=_HAS_DEADLINE,
)

# Cases the timer loop could not decide (migration 0005): out of the due index until retried.
quarantine = Table(
    "quarantine",
    metadata,
    Column("case_id", String(64), ForeignKey("cases.id"), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("quarantined_us", BigInteger, nullable=False),
)

reporters = Table(
    "reporters",
    metadata,
    Column("case_id", String(64), ForeignKey("cases.id"), primary_key=True),
    Column("key_id", String(64), nullable=True),  # null once erased
    Column("wrapped_key", LargeBinary, nullable=True),
    Column("sealed", LargeBinary, nullable=True),
    Column("erased_us", BigInteger, nullable=True),
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

# The global Merkle log (engine.domain.merkle): every record hash at a position, appended by the
# sequencer (``engine.sql.auditlog``), never changed; a checkpoint signs its size and root.
log_leaves = Table(
    "log_leaves",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("case_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("record_hash", String(64), nullable=False),
    UniqueConstraint("case_id", "seq", name="uq_log_leaves_case_id_seq"),
)

# Effects that touch the world, written in the decision's transaction, delivered afterwards.
outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("case_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    # case:seq:index (an effect) or case:seq:status:agency (a status change), unique because
    # (case, seq) is the history's key; no index of its own (migration 0003): nothing looks a
    # row up by it, and every decision paid for it.
    Column("idempotency_key", String(200), nullable=False),
    Column("kind", String(50), nullable=False),  # notify | routed | escalated | status_changed
    Column("target", String(100), nullable=False),
    Column("payload", Text, nullable=False),  # JSON: effect + agency-safe case summary
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_us", BigInteger, nullable=False),
    Column("delivered_us", BigInteger),
    Column("last_error", Text),
)
Index("ix_outbox_pending", outbox.c.delivered_us, outbox.c.next_attempt_us)
# Status changes go out in order per case and agency (migration 0010): an earlier pending one of
# the same case and agency holds the next back. Partial, so no other row pays for it, and a
# delivered one leaves it. The kind is ``engine.runtime.status_events.STATUS_CHANGED``.
_ORDERED_PENDING = (outbox.c.kind == "status_changed") & outbox.c.delivered_us.is_(None)
Index(
    "ix_outbox_ordered_pending",
    outbox.c.case_id,
    outbox.c.target,
    outbox.c.id,
    sqlite_where=_ORDERED_PENDING,
    postgresql_where=_ORDERED_PENDING,
)

# Client-supplied keys that make a start or a signal safe to retry.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("case_id", String(64), nullable=False),
    Column("seq", Integer),  # the history record the key produced (null: it was rejected)
    Column("created_us", BigInteger, nullable=False),
    # request_fingerprint of the request that first used the key (null: written before 0004)
    Column("fingerprint", String(64)),
)

# Credentials of the HTTP API's callers (migration 0008): only a SHA-256 of each key is kept,
# never the key itself, which is shown once when it is made (``engine.sql.apikeys``).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(50), nullable=False),
    Column("scope", String(100)),  # the agency code of a role-agency key, else null
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger),
)

# Agencies' webhook endpoints (migration 0009, ``engine.sql.subscriptions``): the Standard
# Webhooks secret only sealed by the identity key ring (the secret must be read back to sign).
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("agency", String(100), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("secret_sealed", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)
