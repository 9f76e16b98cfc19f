"""A Temporal namespace as a ``HistorySource`` for the auditors' tools: each case's records from
its workflow (every run of the continue-as-new chain, merged by sequence number), its current
view and its pinned model.

Reading a finished run's records needs a worker (the ``history`` query replays it), as for
``lapor audit replay``, which adds the checks only Temporal's own event history allows.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.domain.errors import LaporError
from engine.domain.records import HistoryRecord
from engine.runtime.histories import EVERY_CASE, CaseHistory, Selection
from workers.runtime import TemporalRuntime, merge_runs

__all__ = ["TemporalHistories"]


class TemporalHistories:
    def __init__(self, backend: TemporalRuntime) -> None:
        self.backend = backend

    def _ids(self, selection: Selection) -> list[str]:
        return list(selection.case_ids) if selection.case_ids else self.backend.case_ids()

    def count(self, selection: Selection = EVERY_CASE) -> int | None:
        return len(selection.case_ids) if selection.case_ids else None

    def histories(self, selection: Selection = EVERY_CASE) -> Iterator[CaseHistory]:
        for case_id in self._ids(selection):
            try:
                chain, conflicts = merge_runs(self.backend.run_records(case_id))
                records = tuple(HistoryRecord.from_json(r) for r in chain)
                case = self.backend.case(case_id)
                current = self.backend.model_of(case_id)
            except LaporError as exc:
                yield CaseHistory(case_id, (), None, problem=exc.message)
                continue
            known = {m.hash: m for m in (*self.backend.models.values(), current)}
            first = records[0].model_hash if records else current.hash
            model = known.get(first)
            problem = "; ".join(conflicts) or None
            if model is None:  # migrated from a model this process does not have
                problem = f"model {first[:12]} the case started under is not registered here"
            found = CaseHistory(case_id, records, model, case, problem, models=known.get)
            if selection.wants(found):
                yield found
