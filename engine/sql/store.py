"""Data access for the embedded runtime: SQLAlchemy Core over SQLite or PostgreSQL.

Core, not the ORM: a group-committed batch is a handful of ``executemany`` calls with lists of
plain dicts, which is what makes thousands of durable decisions per second possible. This module
opens engines, runs transactions and reads (models, cases, histories, keys, due cases);
``engine.sql.batch`` builds and writes a group commit's rows.

It is the database boundary: every driver error leaving it (or ``batch``) is a ``LaporError``
from ``engine.runtime.errors``, never a SQLAlchemy or psycopg traceback.

SQLite: WAL, ``synchronous=FULL`` (a committed decision survives power loss), foreign keys on, and
every write transaction starts with ``BEGIN IMMEDIATE``, so two processes on one file take turns
(waiting up to ``busy_timeout``) instead of failing half-way when both try to upgrade a read lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import re
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnClause,
    Connection,
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from engine.domain.canonical import parse_json
from engine.domain.case import Case
from engine.domain.events import utc_text
from engine.domain.machine import LAPSE_MARGIN
from engine.domain.model import Model, canonical_json
from engine.domain.records import HistoryRecord
from engine.runtime.errors import (
    CorruptCaseError,
    IntegrityViolationError,
    SchemaMissingError,
    StoreBusyError,
    StoreError,
)
from engine.runtime.identity import KeyRing, SealedIdentity
from engine.sql.tables import (
    cases,
    definitions,
    history,
    idempotency_keys,
    quarantine,
    reporters,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SCAN_START",
    "DueCase",
    "KeyRow",
    "QuarantinedCase",
    "ScanPosition",
    "StoredCase",
    "StoredReporter",
    "any_due",
    "chunks",
    "claim_due",
    "decode_case",
    "epoch_us",
    "erase_reporter",
    "from_epoch_us",
    "is_postgres",
    "list_quarantined",
    "load_cases",
    "load_history",
    "load_keys",
    "load_model_data",
    "load_record",
    "load_records",
    "load_reporter",
    "map_errors",
    "next_wake_us",
    "open_case_models",
    "open_engine",
    "read",
    "record_from_row",
    "release_quarantined",
    "rewrap_reporters",
    "safe_url",
    "save_models",
    "scan_due",
    "transact",
]

T = TypeVar("T")

POOL_SIZE = 12
"""Connections an engine keeps open. SQLAlchemy's default of 5 is below what ``lapor serve``
holds at once (eight reading threads, the commit queue's writer, the event loop's reads): every
connection past the pool was opened for one request and closed after it (psycopg's connect and
close showed in the API's profile under bench/api_load.py, and each PostgreSQL connection is a
server process forked and torn down; SQLite's ran its PRAGMAs again)."""

BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another process's transaction before failing."""


class _WriterTurn:
    """A SQLite database's writers take turns here before ``BEGIN IMMEDIATE``: the threads of
    this process on a lock, the processes (``lapor serve --workers N``, a worker beside the API)
    on an exclusive ``flock`` of a lock file named after the database's real path, in a folder of
    this user's under the temporary directory (beside the database it would be one more file
    left in the user's folder; the database file itself cannot be used: closing another
    descriptor of it drops SQLite's POSIX locks). A writer waiting on either wakes the
    moment the one before it is done, whereas one waiting in SQLite's busy handler sleeps in
    steps of up to 100 ms: under ``lapor serve`` that sleeping made the write latency's tail
    (p99) ten times its median. SQLite's own lock still decides; this only orders the queue.
    Re-entrant, as the lock it extends was."""

    def __init__(self, database: str | None) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._lock_path = None if not database or database == ":memory:" else _lock_file(database)
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1 and self._lock_path is not None:
            try:
                if self._fd is None:
                    self._lock_path.parent.mkdir(mode=0o700, exist_ok=True)
                    self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError:  # a read-only folder: SQLite's busy handler alone, as before
                self._lock_path = None

    def __exit__(self, *_exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None and self._lock_path is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


def _lock_file(database: str) -> Path:
    named = hashlib.sha256(str(Path(database).resolve()).encode()).hexdigest()[:32]
    return Path(tempfile.gettempdir()) / f"lapor-sla-{os.getuid()}" / f"{named}.lock"


_WRITERS: weakref.WeakKeyDictionary[Engine, _WriterTurn] = weakref.WeakKeyDictionary()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_IN_CHUNK = 500  # ids per IN (...) list: far below SQLite's bound-parameter limit
# PostgreSQL SQLSTATEs worth retrying: serialization failure, deadlock, lock not available.
_PG_TRANSIENT = {"40001", "40P01", "55P03"}
_PG_NO_SCHEMA = {"42P01", "42703"}  # undefined table / column


def epoch_us(moment: datetime) -> int:
    """Integer microseconds since the Unix epoch: how sortable instants are stored."""
    try:
        return (moment - _EPOCH) // _MICROSECOND
    except TypeError:  # a naive time: say so in the words every other time check uses
        utc_text(moment)
        raise


def from_epoch_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


# --- engine and transactions ------------------------------------------------------------------


def open_engine(
    url: str, *, durable: bool = True, create: bool = True, ping: bool = True
) -> Engine:
    """An Engine for ``url``: ``sqlite:///path.db`` or ``postgresql+psycopg://user@host/db``.

    ``postgresql://`` and ``postgres://`` are taken to mean the psycopg 3 driver we ship with.
    ``durable=False`` (SQLite, for simulations that rebuild their file on every run, such as
    ``lapor demo``): ``synchronous=OFF``, SQLite never waits for the disk. A crashed process
    leaves a consistent file (its writes are in the OS already); an OS crash or power loss can
    lose or corrupt it. Measured on a 200,000-complaint demo in two shard processes: 191 s and
    32.7 GB written to disk with ``NORMAL`` (its checkpoints fsync), 158 s and 3.2 GB with
    ``OFF``, because the kernel overwrites a WAL page in memory many times before writing it.

    ``ping`` (PostgreSQL): test each pooled connection with a round trip before use, so a
    long-running loop (``lapor run``, a worker) survives a database restart unnoticed.
    ``ping=False`` (``lapor serve``, where that round trip was a tenth of a request's cost):
    after a restart the statements in flight fail once, as ``StoreError`` (an HTTP 503 a
    client retries), and SQLAlchemy then drops every pooled connection.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    if not create and url.startswith("sqlite:///"):
        # SQLite creates a missing file on connect: a read would leave an empty database behind.
        path = url.removeprefix("sqlite:///").split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).exists():
            raise SchemaMissingError(
                f"no database at {path}: create it with `lapor db upgrade --db {safe_url(url)}`"
            )
    try:
        if url.startswith("sqlite"):
            # Named parameters, like psycopg's pyformat, take dicts: one precompiled statement
            # text serves executemany on both databases (see ``_executemany``).
            engine = create_engine(url, paramstyle="named", pool_size=POOL_SIZE)
            _configure_sqlite(engine, durable)
            _WRITERS[engine] = _WriterTurn(engine.url.database)
        else:
            engine = create_engine(url, pool_pre_ping=ping, pool_size=POOL_SIZE)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        shown = safe_url(url)
        raise StoreError(
            f"cannot open database {shown!r}: {str(exc).replace(url, shown)}"
        ) from None
    return engine


_USERINFO = re.compile(r"(?<=://)([^/@:]*):[^/@]*@")
_PASSWORD_PARAM = re.compile(r"([?&](?:password|passwd|pwd)=)[^&#]*", re.IGNORECASE)


def safe_url(url: str) -> str:
    """``url`` as it may be shown (errors, logs, confirmations): its password masked, in the
    user part or in the query."""
    return _PASSWORD_PARAM.sub(r"\1***", _USERINFO.sub(r"\1:***@", url))


def _configure_sqlite(engine: Engine, durable: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling issues a deferred BEGIN lazily and COMMITs before
        # DDL; switch it off and issue BEGIN ourselves (below), as SQLAlchemy's docs recommend.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # 64 MiB of page cache instead of SQLite's 2 MiB: case updates and history inserts land
        # all over a database of hundreds of MiB, and every miss is a read system call
        # (the 20k-complaint demo spent 4 s in the kernel with the default, 1 s with this).
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with "database is locked" without waiting, IMMEDIATE waits its turn.
        immediate = conn.get_execution_options().get("lapor_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_postgres(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "postgresql"


@contextmanager
def map_errors(action: str) -> Iterator[None]:
    """Turn driver errors raised inside the block into ``StoreError`` subclasses."""
    try:
        yield
    except DBAPIError as exc:
        raise _mapped(exc, action) from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot {action}: {exc.__class__.__name__}: {exc}") from exc


def _mapped(exc: DBAPIError, action: str) -> StoreError:
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    lowered = detail.lower()
    if code in _PG_TRANSIENT or "database is locked" in lowered or "database is busy" in lowered:
        return StoreBusyError(f"cannot {action}: the database is busy ({detail})")
    if code in _PG_NO_SCHEMA or "no such table" in lowered or "no such column" in lowered:
        return SchemaMissingError(
            f"cannot {action}: the database has no (or outdated) lapor tables ({detail}); "
            "run `lapor db upgrade --db URL` first"
        )
    if exc.__class__.__name__ == "IntegrityError":
        return IntegrityViolationError(f"cannot {action}: {detail}")
    return StoreError(f"cannot {action}: {exc.__class__.__name__}: {detail}")


def transact(
    engine: Engine, work: Callable[[Connection], T], *, action: str, attempts: int = 12
) -> T:
    """Run ``work`` in one write transaction, committed when it returns, rolled back if it raises.

    A busy database (another SQLite writer past ``busy_timeout``, a PostgreSQL deadlock or
    serialization failure) is retried with jittered backoff: ``work`` must therefore read what it
    needs inside the transaction, never rely on what an earlier attempt read.
    """
    turn = _WRITERS.get(engine)
    for attempt in range(attempts):
        try:
            with turn or _NO_LOCK, map_errors(action), engine.connect() as conn:
                conn.execution_options(lapor_write=True)
                with conn.begin():
                    return work(conn)
        except StoreBusyError:
            if attempt == attempts - 1:
                raise
            # jitter: two processes that collided should not collide again on the retry
            time.sleep(min(1.0, 0.01 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


_NO_LOCK = nullcontext()


def read(
    engine: Engine, work: Callable[[Connection], T], *, action: str, one_statement: bool = False
) -> T:
    """Run read-only ``work`` on a connection (a deferred transaction: never blocks writers).

    ``one_statement``: ``work`` runs a single query, whose own snapshot is all it needs; on
    PostgreSQL it then runs in autocommit, without the BEGIN and ROLLBACK round trips (each
    wakes a server process; with them gone the API's load over PostgreSQL ran at 795-1,008
    against 701-816 requests/s in alternating runs). Reads of several queries keep their one
    transaction."""
    with map_errors(action), engine.connect() as conn:
        if one_statement and is_postgres(conn):
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return work(conn)


# --- models -----------------------------------------------------------------------------------


def save_models(conn: Connection, models: Iterable[Model], now_us: int) -> None:
    """Store each model's canonical form under its hash (content-addressed: never overwritten)."""
    rows = [
        {
            "model_hash": m.hash,
            "name": m.name,
            "version": m.version,
            "body": canonical_json(m.to_data()),
            "created_us": now_us,
        }
        for m in models
    ]
    if not rows:
        return
    dialect = postgresql if is_postgres(conn) else sqlite
    # ON CONFLICT DO NOTHING: two processes registering the same model at once both succeed.
    conn.execute(dialect.insert(definitions).on_conflict_do_nothing(), rows)


def load_model_data(conn: Connection, model_hash: str) -> Mapping[str, Any] | None:
    body = conn.scalar(select(definitions.c.body).where(definitions.c.model_hash == model_hash))
    return None if body is None else dict(parse_json(body))


# --- cases, history, keys ---------------------------------------------------------------------


class StoredCase(NamedTuple):
    case: Case
    version: int


class KeyRow(NamedTuple):
    key: str
    case_id: str
    seq: int | None
    fingerprint: str | None


def chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def decode_case(body: str, case_id: str = "?") -> Case:
    """The case a row's body holds; ``CorruptCaseError`` naming the case if it holds none."""
    try:
        return Case.from_json(parse_json(body))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptCaseError(case_id, f"{type(exc).__name__}: {exc}") from None


_CASES_BY_ID = select(cases.c.id, cases.c.version, cases.c.body).where(
    cases.c.id.in_(bindparam("ids", expanding=True))
)
_CASES_BY_ID_LOCKED = _CASES_BY_ID.order_by(cases.c.id).with_for_update()
# One id (each served request reads one case): a plain equality, since an expanding IN is
# rewritten for its list on every execution.
_CASE_BY_ID = select(cases.c.id, cases.c.version, cases.c.body).where(cases.c.id == bindparam("id"))
_CASE_BY_ID_LOCKED = _CASE_BY_ID.with_for_update()


def load_cases(
    conn: Connection,
    ids: Iterable[str],
    *,
    lock: bool = False,
    decode: Callable[[str, int, str], Case] | None = None,
) -> dict[str, StoredCase]:
    """The cases with these ids (missing ones are absent), in one query per 500 ids.

    ``lock`` (PostgreSQL): ``SELECT ... FOR UPDATE`` in id order, so concurrent batches queue
    behind each other instead of deadlocking, and what we decide on cannot change under us.
    """
    found: dict[str, StoredCase] = {}
    for chunk in chunks(sorted(set(ids))):
        if len(chunk) == 1:
            rows = conn.execute(_CASE_BY_ID_LOCKED if lock else _CASE_BY_ID, {"id": chunk[0]})
        else:
            rows = conn.execute(_CASES_BY_ID_LOCKED if lock else _CASES_BY_ID, {"ids": chunk})
        for row in rows:
            case = (
                decode_case(row.body, row.id)
                if decode is None
                else decode(row.id, row.version, row.body)
            )
            found[row.id] = StoredCase(case, row.version)
    return found


@dataclass(frozen=True, slots=True)
class StoredReporter:
    """A ``reporters`` row: the sealed identity, or when it was erased."""

    sealed: SealedIdentity | None
    erased_at: datetime | None


def load_reporter(conn: Connection, case_id: str) -> StoredReporter | None:
    row = conn.execute(select(reporters).where(reporters.c.case_id == case_id)).first()
    if row is None:
        return None
    if row.erased_us is not None:
        return StoredReporter(None, from_epoch_us(row.erased_us))
    return StoredReporter(SealedIdentity(row.key_id, row.wrapped_key, row.sealed), None)


def erase_reporter(conn: Connection, case_id: str, now_us: int) -> bool:
    """Erase a stored identity: its wrapped data key and ciphertext go, the row stays with the
    instant. Whether there was one to erase."""
    if conn.dialect.name == "sqlite":
        # Zero the freed bytes in the file too (the ciphertext could no longer be opened
        # anyway, without its data key; this leaves not even that).
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
    result = conn.execute(
        reporters.update()
        .where(reporters.c.case_id == case_id, reporters.c.erased_us.is_(None))
        .values(key_id=None, wrapped_key=None, sealed=None, erased_us=now_us)
    )
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete = OFF")
    return bool(result.rowcount)


def rewrap_reporters(conn: Connection, ring: KeyRing) -> int:
    """Wrap every stored data key not yet under ``ring.active`` with it; how many."""
    rows = conn.execute(
        select(reporters).where(reporters.c.erased_us.is_(None), reporters.c.key_id != ring.active)
    ).all()
    for row in rows:
        sealed = ring.rewrap(row.case_id, SealedIdentity(row.key_id, row.wrapped_key, row.sealed))
        conn.execute(
            reporters.update()
            .where(reporters.c.case_id == row.case_id)
            .values(key_id=sealed.key_id, wrapped_key=sealed.wrapped_key)
        )
    return len(rows)


def record_from_row(row: Any) -> HistoryRecord:
    """A ``history`` row as the record it stores."""
    return _record(row)


def _record(row: Any) -> HistoryRecord:
    return HistoryRecord(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        model_hash=row.model_hash,
        event=parse_json(row.event),
        effects=tuple(parse_json(row.effects)),
        prev_hash=row.prev_hash,
        hash=row.hash,
        format=row.format,
    )


def load_history(conn: Connection, case_id: str) -> list[HistoryRecord]:
    query = select(history).where(history.c.case_id == case_id).order_by(history.c.seq)
    return [_record(row) for row in conn.execute(query)]


def load_record(conn: Connection, case_id: str, seq: int) -> HistoryRecord | None:
    return load_records(conn, [(case_id, seq)]).get((case_id, seq))


def load_records(
    conn: Connection, wanted: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], HistoryRecord]:
    """The history records at these ``(case id, seq)``, in one query per 500 (a batch's replayed
    requests read their first outcomes together, not one round trip each)."""
    found: dict[tuple[str, int], HistoryRecord] = {}
    for chunk in chunks(sorted(set(wanted))):
        query = select(history).where(tuple_(history.c.case_id, history.c.seq).in_(chunk))
        for row in conn.execute(query):
            found[(row.case_id, row.seq)] = _record(row)
    return found


_KEYS = select(
    idempotency_keys.c.key,
    idempotency_keys.c.case_id,
    idempotency_keys.c.seq,
    idempotency_keys.c.fingerprint,
).where(idempotency_keys.c.key.in_(bindparam("keys", expanding=True)))


_KEY = select(*_KEYS.selected_columns).where(idempotency_keys.c.key == bindparam("key"))


def load_keys(conn: Connection, keys: Iterable[str]) -> dict[str, KeyRow]:
    found: dict[str, KeyRow] = {}
    for chunk in chunks(sorted(set(keys))):
        one = len(chunk) == 1
        rows = (
            conn.execute(_KEY, {"key": chunk[0]}) if one else conn.execute(_KEYS, {"keys": chunk})
        )
        for row in rows:
            found[row.key] = KeyRow(row.key, row.case_id, row.seq, row.fingerprint)
    return found


# --- timers -----------------------------------------------------------------------------------
# A case row is its own timer (migration 0003): it is due once its earliest running deadline
# (``next_due_us``) plus ``LAPSE_MARGIN`` has passed, and the partial index on that column holds
# only cases with a running clock.

_MARGIN_US = LAPSE_MARGIN // _MICROSECOND


class DueCase(NamedTuple):
    """A claimed case row: the case whose earliest deadline passed, and its version."""

    case_id: str
    wake_us: int
    version: int
    body: str


# Built once: statements are compiled once and reused (SQLAlchemy caches by statement shape,
# but building a select() and its cache key per call is itself measurable per batch).
_DUE = (
    select(cases.c.id, cases.c.next_due_us + _MARGIN_US, cases.c.version, cases.c.body)
    .where(cases.c.next_due_us <= bindparam("due_by"))
    .order_by(cases.c.next_due_us)
    .limit(bindparam("limit"))
)
_DUE_LOCKED = _DUE.with_for_update(skip_locked=True)
_ANY_DUE = select(cases.c.id).where(cases.c.next_due_us <= bindparam("due_by")).limit(1)
_NEXT_WAKE = select(func.min(cases.c.next_due_us)).where(cases.c.next_due_us.isnot(None))


def shard_of(case_id: str, count: int) -> int:
    """The SQLite shard of a case: the code point of its id's last character modulo ``count``.

    Computable in SQL and in Python alike, so a driver can hand each process the cases whose
    timers it fires. Sequential or random ids spread evenly; ids that all end in the same
    character would all land in one shard (still correct, just not parallel).
    """
    return ord(case_id[-1]) % count


_DUE_IN_SHARD = _DUE.where(
    func.unicode(func.substr(cases.c.id, -1)) % bindparam("shard_count") == bindparam("shard_index")
)


def claim_due(
    conn: Connection,
    now_us: int,
    limit: int,
    *,
    lock: bool,
    shard: tuple[int, int] | None = None,
) -> list[DueCase]:
    """The cases that should wake at or before ``now_us``, earliest first.

    ``lock`` (PostgreSQL): the rows are locked ``FOR UPDATE SKIP LOCKED``: another worker's
    cases are skipped, not waited for, so two workers never decide the same case.
    ``shard`` (SQLite): ``(index, count)``, only that shard's cases.
    """
    params: dict[str, int] = {"due_by": now_us - _MARGIN_US, "limit": limit}
    if shard is not None:
        query = _DUE_IN_SHARD
        params["shard_index"], params["shard_count"] = shard
    else:
        query = _DUE_LOCKED if lock else _DUE
    return [DueCase(*row) for row in conn.execute(query, params)]


# A shard's cases in (next_due_us, rowid) order: the partial index's own order on SQLite, so
# ``scan_due`` resumes where it stopped without sorting (EXPLAIN: one index range search).
_ROWID: ColumnClause[int] = literal_column("cases.rowid", BigInteger())
_DUE_IN_SHARD_AFTER = (
    select(cases.c.id, cases.c.next_due_us + _MARGIN_US, cases.c.version, cases.c.body, _ROWID)
    .where(
        cases.c.next_due_us <= bindparam("due_by"),
        tuple_(cases.c.next_due_us, _ROWID)
        > tuple_(bindparam("after_due"), bindparam("after_rowid")),
        func.unicode(func.substr(cases.c.id, -1)) % bindparam("shard_count")
        == bindparam("shard_index"),
    )
    .order_by(cases.c.next_due_us, _ROWID)
    .limit(bindparam("limit"))
)

ScanPosition = tuple[int, int]
"""Where ``scan_due`` stopped: the last row's (next_due_us, rowid)."""

SCAN_START: ScanPosition = (-(2**63), 0)


def scan_due(
    conn: Connection,
    now_us: int,
    limit: int,
    *,
    shard: tuple[int, int],
    after: ScanPosition,
) -> tuple[list[DueCase], ScanPosition]:
    """Like ``claim_due`` for a SQLite shard, but only rows past ``after``, and where it stopped.

    For a process that holds its decisions in memory between commits (a shard's buffered
    session): until it commits, the rows of its cases do not change, so each due row is
    worth reading once; rows it already read and decided would otherwise come back first in
    every claim.
    """
    params = {
        "due_by": now_us - _MARGIN_US,
        "limit": limit,
        "after_due": after[0],
        "after_rowid": after[1],
        "shard_index": shard[0],
        "shard_count": shard[1],
    }
    rows = conn.execute(_DUE_IN_SHARD_AFTER, params).all()
    if not rows:
        return [], after
    last = rows[-1]
    return [DueCase(*row[:4]) for row in rows], (last[1] - _MARGIN_US, last[4])


def any_due(conn: Connection, now_us: int) -> bool:
    """Whether any case should wake at or before ``now_us`` (one index probe)."""
    return conn.scalar(_ANY_DUE, {"due_by": now_us - _MARGIN_US}) is not None


def next_wake_us(conn: Connection) -> int | None:
    """When the earliest case with a running clock should wake."""
    value = conn.scalar(_NEXT_WAKE)
    return None if value is None else int(value) + _MARGIN_US


def open_case_models(conn: Connection) -> list[str]:
    """The model hashes open cases are pinned to (a scan of the cases: for start-up checks)."""
    query = select(cases.c.model_hash).where(cases.c.outcome.is_(None)).distinct()
    return sorted(conn.scalars(query))


# --- quarantine -------------------------------------------------------------------------------


class QuarantinedCase(NamedTuple):
    case_id: str
    reason: str
    quarantined_us: int


def list_quarantined(conn: Connection) -> list[QuarantinedCase]:
    """Every case the timer loop set aside, oldest first."""
    query = select(quarantine.c.case_id, quarantine.c.reason, quarantine.c.quarantined_us)
    rows = conn.execute(query.order_by(quarantine.c.quarantined_us, quarantine.c.case_id))
    return [QuarantinedCase(*row) for row in rows]


def release_quarantined(conn: Connection, case_ids: Iterable[str] | None) -> list[str]:
    """Bring set-aside cases (all, or ``case_ids``) back: their deadline is re-derived from the
    case as stored, so the timer loop decides them again; returns the ids released. A case whose
    row still cannot be read stays where it is (``CorruptCaseError``)."""
    query = select(quarantine.c.case_id)
    if case_ids is not None:
        query = query.where(quarantine.c.case_id.in_(list(case_ids)))
    released: list[str] = []
    for case_id in sorted(conn.scalars(query)):
        body = conn.scalar(select(cases.c.body).where(cases.c.id == case_id))
        due = None if body is None else decode_case(body, case_id).next_due
        conn.execute(
            cases.update()
            .where(cases.c.id == case_id)
            .values(next_due_us=None if due is None else epoch_us(due))
        )
        conn.execute(quarantine.delete().where(quarantine.c.case_id == case_id))
        released.append(case_id)
    return released
