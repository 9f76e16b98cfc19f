"""``lapor audit replay``: audit a case on Temporal with Temporal's own history as the evidence.

Three checks, each of which can fail on its own:

1. Determinism: every run of the case's workflow (the continue-as-new chain) is fetched from the
   server and replayed with ``temporalio.worker.Replayer`` against today's ``CaseWorkflow``, with
   the sandbox settings the worker uses. A failure means today's code would not reproduce what
   the run did (a change that needed ``workflow.patched``).
2. The records: each run's ``history`` query answer is merged into one chain by sequence number
   (``workers.runtime.merge_runs``); the copies a continued run carries must equal the originals,
   and every record that Temporal's event history itself holds (the answers of the ``started``
   and ``signal_case`` updates, the records handed to each continued run) must equal the chain's.
   The query answers come from a worker replaying the run with today's code; this cross-check
   ties them to what the run actually returned at the time.
3. The decisions: the chain is verified and every decision re-derived through ``decide`` under
   the pinned model (``engine.domain.history.audit_case``, the same audit every runtime gets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadConverter
from temporalio.worker import Replayer

from engine.domain.history import audit_case
from engine.domain.records import HistoryRecord
from workers.runtime import TemporalRuntime, merge_runs
from workers.worker import sandbox_runner
from workers.workflow import CaseWorkflow

__all__ = ["RunReplay", "TemporalAudit", "audit_replay", "case_replayer", "records_in_history"]


@dataclass(frozen=True, slots=True)
class RunReplay:
    """One run replayed by Temporal's ``Replayer``: ``problem`` is ``None`` when deterministic."""

    run_id: str
    events: int
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class TemporalAudit:
    case_id: str
    runs: tuple[RunReplay, ...]
    records: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """What ``lapor audit replay`` prints: a line per run, then the verdict or problems."""
        out = []
        for run in self.runs:
            if run.problem is None:
                out.append(f"run {run.run_id}: {run.events} events replayed deterministically")
            else:
                out.append(f"run {run.run_id}: {run.events} events; replay FAILED")
        if self.ok:
            out.append(
                f"ok: {self.records} record(s) across {len(self.runs)} run(s); chain intact; "
                "every decision re-derived; every record Temporal holds matches"
            )
        out += [f"PROBLEM {problem}" for problem in self.problems]
        return out


def case_replayer(workflows: Sequence[type] = (CaseWorkflow,)) -> Replayer:
    """A ``Replayer`` with the worker's sandbox (``workers.worker.case_worker``): a replay that
    passed other modules through could differ from what the worker ran."""
    return Replayer(workflows=list(workflows), workflow_runner=sandbox_runner())


def records_in_history(
    history: WorkflowHistory, converter: PayloadConverter
) -> list[dict[str, Any]]:
    """The history records a run's Temporal event history holds in its own payloads.

    The ``started`` and ``signal_case`` updates return ``{"case", "record"}``; a continue-as-new
    (and the start of the continued run) carries the latest records in ``CaseInput.history``.
    Records of clock lapses appear only in those carried tails; the rest of the chain is tied to
    them by the hashes.
    """
    found: list[dict[str, Any]] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            outcome = event.workflow_execution_update_completed_event_attributes.outcome
            if not outcome.HasField("success") or not outcome.success.payloads:
                continue
            value = converter.from_payloads(outcome.success.payloads)[0]
            if isinstance(value, dict) and isinstance(value.get("record"), dict):
                found.append(value["record"])
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            payloads = event.workflow_execution_continued_as_new_event_attributes.input.payloads
            if payloads:
                value = converter.from_payloads(payloads[:1])[0]
                if isinstance(value, dict):
                    found += [r for r in value.get("history") or [] if isinstance(r, dict)]
    return found


async def _replay(replayer: Replayer, history: WorkflowHistory) -> str | None:
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    failure = result.replay_failure
    return None if failure is None else f"{type(failure).__name__}: {failure}"


def audit_replay(
    backend: TemporalRuntime,
    case_id: str,
    *,
    workflows: Sequence[type] = (CaseWorkflow,),
) -> TemporalAudit:
    """Audit ``case_id`` over every run of its workflow (see the module docstring).

    ``workflows`` replaces the workflow classes the runs are replayed against (a test passes a
    deliberately changed ``CaseWorkflow`` to see the check fail). Raises ``LaporError`` for an
    unknown case, or when no worker answers a query.
    """
    run_ids = backend.run_ids(case_id)
    replayer = case_replayer(workflows)
    converter = backend.client.data_converter.payload_converter
    runs: list[RunReplay] = []
    problems: list[str] = []
    held: list[tuple[str, dict[str, Any]]] = []  # (run id, record) from Temporal's own payloads
    for run_id in run_ids:
        history = backend.run_history(case_id, run_id)
        problem = backend.run(_replay(replayer, history))
        runs.append(RunReplay(run_id, len(history.events), problem))
        if problem is not None:
            problems.append(f"run {run_id}: not deterministic under today's workflow: {problem}")
        held += [(run_id, record) for record in records_in_history(history, converter)]

    chain, conflicts = merge_runs(backend.run_records(case_id))
    problems += conflicts
    by_seq = {int(record["seq"]): record for record in chain}
    for run_id, record in held:
        seq = int(record["seq"])
        if by_seq.get(seq) != record:
            problems.append(
                f"record {seq}: the copy in run {run_id}'s Temporal history differs from the "
                "one the workflow reports (queried now)"
            )
            break  # one is enough to condemn the chain; the rest would repeat it

    records = [HistoryRecord.from_json(r) for r in chain]
    case = backend.case(case_id)
    report = audit_case(case, backend.model_of(case_id), records)
    problems += report.problems
    return TemporalAudit(case_id, tuple(runs), report.records, tuple(problems))
