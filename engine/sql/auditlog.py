"""The embedded runtime's Merkle log: appending record hashes, reading the tree, checking it.

Records are written by the runtime in their decisions' transactions; the log takes them
afterwards. ``sequence`` appends every history record that has no position yet, in the order
they were recorded, under the write lock (SQLite's, or an exclusive lock on ``log_leaves`` on
PostgreSQL), so positions are gapless and a record gets exactly one. Keeping the sequencer off
the decision path costs the hot path nothing; a record is covered from the next checkpoint on
(``lapor audit checkpoint`` sequences first), as a Certificate Transparency log merges within
its maximum merge delay.

``check_log`` re-reads the log against the history: a leaf whose record was changed (even with
its chain recomputed) or deleted, and a record older than the log's end that has no leaf, are
each a problem naming case and sequence number. Against a kept checkpoint, the tree of its size
must have its root: a rewritten, deleted or truncated record since then cannot hide.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, func, select

from engine.domain.history import AuditReport, audit_case
from engine.domain.merkle import MerkleTree, leaf_hash
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.runtime.errors import CorruptCaseError, StoreError
from engine.runtime.exports import LoggedHistory, LogSnapshot
from engine.runtime.histories import EVERY_CASE, CaseHistory, Selection
from engine.sql.store import decode_case, epoch_us, is_postgres, load_model_data, record_from_row
from engine.sql.tables import cases, history, log_leaves

__all__ = ["LogProblem", "SqlHistories", "audit_cases", "check_log", "log_root", "sequence"]

_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class LogProblem:
    case_id: str
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"{self.case_id} #{self.seq}: {self.problem}"


def sequence(conn: Connection) -> int:
    """Append every record without a position to the log; how many were appended."""
    if is_postgres(conn):
        conn.exec_driver_sql("LOCK TABLE log_leaves IN EXCLUSIVE MODE")
    size = conn.scalar(select(func.count()).select_from(log_leaves)) or 0
    pending = (
        select(history.c.case_id, history.c.seq, history.c.hash)
        .outerjoin(
            log_leaves,
            (log_leaves.c.case_id == history.c.case_id) & (log_leaves.c.seq == history.c.seq),
        )
        .where(log_leaves.c.position.is_(None))
        .order_by(history.c.at, history.c.case_id, history.c.seq)
    )
    added = 0
    rows = []
    for row in conn.execute(pending):
        rows.append(
            {
                "position": size + added,
                "case_id": row.case_id,
                "seq": row.seq,
                "record_hash": row.hash,
            }
        )
        added += 1
        if len(rows) >= _BATCH:
            conn.execute(log_leaves.insert(), rows)
            rows = []
    if rows:
        conn.execute(log_leaves.insert(), rows)
    return added


def _leaves(conn: Connection, upto: int | None = None) -> Iterator[tuple[int, str, int, str]]:
    query = select(
        log_leaves.c.position, log_leaves.c.case_id, log_leaves.c.seq, log_leaves.c.record_hash
    ).order_by(log_leaves.c.position)
    if upto is not None:
        query = query.where(log_leaves.c.position < upto)
    for row in conn.execute(query.execution_options(yield_per=_BATCH)):
        yield row.position, row.case_id, row.seq, row.record_hash


def log_root(conn: Connection, size: int | None = None) -> tuple[int, bytes]:
    """(size, root) of the log, or of its first ``size`` leaves."""
    tree = MerkleTree()
    for _, _, _, record_hash in _leaves(conn, size):
        tree.append(leaf_hash(bytes.fromhex(record_hash)))
    return tree.size, tree.root()


def check_log(conn: Connection) -> list[LogProblem]:
    """Every way the log and the history disagree (see the module docstring)."""
    problems: list[LogProblem] = []
    recorded = {
        (row.case_id, row.seq): row.hash
        for row in conn.execute(select(history.c.case_id, history.c.seq, history.c.hash))
    }
    expected = 0
    for position, case_id, seq, record_hash in _leaves(conn):
        if position != expected:
            problems.append(LogProblem(case_id, seq, f"log position {expected} is missing"))
            expected = position
        expected += 1
        now = recorded.pop((case_id, seq), None)
        if now is None:
            problems.append(LogProblem(case_id, seq, "the record in the log was deleted"))
        elif now != record_hash:
            problems.append(
                LogProblem(
                    case_id,
                    seq,
                    f"the record was changed since it was logged "
                    f"(logged {record_hash[:12]}, now {now[:12]})",
                )
            )
    del recorded  # records not logged yet wait for the next sequencing: not a problem
    return problems


class SqlHistories:
    """The embedded store as a ``HistorySource``: a batch of cases and their records per two
    queries, so the whole database streams through in bounded memory."""

    def __init__(self, conn: Connection, batch: int = 500) -> None:
        self.conn = conn
        self.batch = batch
        self._models: dict[str, Model] = {}

    def _where(self, query: Select[Any], selection: Selection) -> Select[Any]:
        if selection.since is not None:
            query = query.where(cases.c.opened_us >= epoch_us(selection.since))
        if selection.case_ids:
            query = query.where(cases.c.id.in_(selection.case_ids))
        return query

    def count(self, selection: Selection = EVERY_CASE) -> int | None:
        query = self._where(select(func.count()).select_from(cases), selection)
        return int(self.conn.scalar(query) or 0)

    def histories(self, selection: Selection = EVERY_CASE) -> Iterator[CaseHistory]:
        last = ""
        while True:
            query = select(cases.c.id, cases.c.body).where(cases.c.id > last)
            query = self._where(query, selection).order_by(cases.c.id).limit(self.batch)
            rows = self.conn.execute(query).all()
            if not rows:
                return
            ids = [row.id for row in rows]
            records: dict[str, list[HistoryRecord]] = {}
            chains = (
                select(history)
                .where(history.c.case_id.in_(ids))
                .order_by(history.c.case_id, history.c.seq)
            )
            for record_row in self.conn.execute(chains):
                records.setdefault(record_row.case_id, []).append(record_from_row(record_row))
            for row in rows:
                chain = tuple(records.get(row.id, ()))
                try:
                    case = decode_case(row.body, row.id)
                    first = chain[0].model_hash if chain else case.model_hash
                    model = self._models.get(first) or self._model(first)
                except (CorruptCaseError, StoreError) as exc:
                    yield CaseHistory(row.id, chain, None, problem=exc.message)
                    continue
                yield CaseHistory(row.id, chain, model, case, models=self._model_or_none)
            last = ids[-1]

    def _model_or_none(self, model_hash: str) -> Model | None:
        try:
            return self._models.get(model_hash) or self._model(model_hash)
        except StoreError:
            return None

    def _model(self, model_hash: str) -> Model:
        data = load_model_data(self.conn, model_hash)
        if data is None:
            raise StoreError(f"definition {model_hash[:12]} is missing from the database")
        model = Model.from_data(data)
        if model.hash != model_hash:
            raise StoreError(f"definition {model_hash[:12]} does not hash to its key")
        self._models[model_hash] = model
        return model


def audit_cases(conn: Connection, batch: int = 500) -> Iterator[tuple[str, AuditReport]]:
    """Every stored case, in id order, audited against its history under its pinned model."""
    for found in SqlHistories(conn, batch).histories():
        if found.problem is not None or found.model is None or found.case is None:
            yield found.case_id, AuditReport(0, (found.problem or "unreadable",))
            continue
        yield found.case_id, audit_case(found.case, found.model, found.records, models=found.models)


def export_snapshot(
    conn: Connection, selection: Selection = EVERY_CASE, batch: int = 500
) -> LogSnapshot:
    """The log as ``lapor audit export`` reads it: its size now, its record hashes in position
    order, and the selected cases' logged records with their positions, in case id order, a
    batch of cases per two queries.

    Only records below that size are exported: one decided after the sequencer last ran joins
    the next export, and a case with no logged record yet is left out. Leaves below the size
    never change and neither do records, so the three reads agree even where the transaction
    is no snapshot (PostgreSQL's READ COMMITTED while another sequencer appends).
    """
    size = int(conn.scalar(select(func.count()).select_from(log_leaves)) or 0)

    def record_hashes() -> Iterator[bytes]:
        for _, _, _, record_hash in _leaves(conn, size):
            yield bytes.fromhex(record_hash)

    def histories() -> Iterator[LoggedHistory]:
        last = ""
        while True:
            query = select(cases.c.id).where(cases.c.id > last)
            if selection.since is not None:
                query = query.where(cases.c.opened_us >= epoch_us(selection.since))
            if selection.case_ids:
                query = query.where(cases.c.id.in_(selection.case_ids))
            ids = list(conn.scalars(query.order_by(cases.c.id).limit(batch)))
            if not ids:
                return
            logged = (
                select(history, log_leaves.c.position)
                .join(
                    log_leaves,
                    (log_leaves.c.case_id == history.c.case_id)
                    & (log_leaves.c.seq == history.c.seq),
                )
                .where(history.c.case_id.in_(ids), log_leaves.c.position < size)
                .order_by(history.c.case_id, history.c.seq)
            )
            found: dict[str, list[tuple[int, HistoryRecord]]] = {}
            for row in conn.execute(logged):
                found.setdefault(row.case_id, []).append((row.position, record_from_row(row)))
            for case_id in ids:
                chain = found.get(case_id)
                if chain:
                    positions = tuple(position for position, _ in chain)
                    yield LoggedHistory(case_id, tuple(r for _, r in chain), positions)
            last = ids[-1]

    return LogSnapshot(size, record_hashes, histories)
