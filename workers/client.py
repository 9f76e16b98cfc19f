"""``TemporalBackend``: the ``engine.sdk.Backend`` protocol over a Temporal server.

    from engine.sdk import Client
    from workers.client import TemporalBackend

    client = Client(backend=TemporalBackend("127.0.0.1:7233"))

One ``CaseWorkflow`` per case (workflow id = case id) on ``task_queue``, served by ``lapor worker``.
The SDK is synchronous and Temporal's client is asyncio, so the backend runs its own event loop in
a daemon thread (``workers.runtime.LoopThread``). Time is the server's (clock offset 0).

A case's history spans every run of its workflow: past ``continue_after`` records a run continues
as new carrying only the latest ``history_keep`` records. ``history`` walks the chain of runs back
from the latest (each run's start event names the run it continued) and merges each run's
``history`` query answer by sequence number. A query on a finished run is answered by a worker
replaying that run, so reading history needs a worker running, as any query does; a query no
worker answers in time becomes a ``LaporError`` that says so instead of hanging.

Idempotent starts: a start with a key uses a case id derived from the key (``keyed_case_id``),
so a retried start meets the first one's workflow id and gets that case back (``replayed``);
after a refused keyed start, a corrected retry starts afresh. Not kept here: the reporter's
identity (workflow inputs sit in Temporal's event history in clear), so a start that carries one
is refused rather than silently dropped; a store of its own (or an encrypting payload codec) is
still to do.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from engine.case import Case
from engine.core import decide
from engine.errors import LaporError
from engine.events import Signal
from engine.model import Model
from engine.records import HistoryRecord
from engine.sdk import CallResult, default_project_root
from workers.connection import DEFAULT_ADDRESS, DEFAULT_TASK_QUEUE, TemporalTarget
from workers.runtime import LoopThread
from workers.workflow import CaseInput, CaseWorkflow

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_TASK_QUEUE",
    "QUERY_TIMEOUT",
    "TemporalBackend",
    "keyed_case_id",
    "merge_runs",
    "project_models",
]

T = TypeVar("T")


#: How long one query attempt waits for a worker's answer (for a finished run the worker first
#: replays it); without a bound, a query with no worker polling would wait forever.
QUERY_TIMEOUT = timedelta(seconds=10)
#: A query that reaches a run at the moment it continues as new is never answered; asking again
#: is answered (by the run itself, replayed). Hence a second attempt, never more.
QUERY_ATTEMPTS = 2
_UNANSWERED = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)


def merge_runs(
    runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """One chain from each run's records (oldest run first): ``(records by seq, problems)``.

    A continued run repeats the tail of the run before it; those copies must be identical. Where
    they are not, the earliest run's copy is kept (it was recorded first) and the disagreement is
    a problem. Gaps are left for the chain check (``engine.history.verify_chain``) to report.
    """
    merged: dict[int, dict[str, Any]] = {}
    first_seen: dict[int, str] = {}
    problems: list[str] = []
    for run_id, records in runs:
        for record in records:
            seq = int(record["seq"])
            if seq not in merged:
                merged[seq] = dict(record)
                first_seen[seq] = run_id
            elif merged[seq] != record:
                problems.append(
                    f"record {seq}: run {run_id} holds a copy that differs from run "
                    f"{first_seen[seq]}'s"
                )
    return [merged[seq] for seq in sorted(merged)], problems


def project_models(root: Path | None = None) -> dict[str, Model]:
    """The workflows of the project folder above the cwd (or this checkout's), by name."""
    from engine.definitions.loader import load_models

    base = root or default_project_root()
    return load_models(base / "workflows", base / "policies")


def keyed_case_id(key: str) -> str:
    """The case id a keyed start uses on Temporal: derived from the key, so a retried start
    meets the first one's workflow id (Temporal's own idempotency) instead of opening a twin."""
    digest = hashlib.sha256(key.encode()).digest()
    return "LAPOR-K-" + base64.b32encode(digest).decode()[:12]


class TemporalBackend:
    """Start, signal and read cases through ``CaseWorkflow`` runs on a Temporal server."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        namespace: str = "default",
        task_queue: str = DEFAULT_TASK_QUEUE,
        load_models: Callable[[], Mapping[str, Model]] = project_models,
        query_timeout: timedelta = QUERY_TIMEOUT,
        target: TemporalTarget | None = None,
    ) -> None:
        """``target`` (credentials, TLS; see ``workers.connection``) replaces ``address``,
        ``namespace`` and ``task_queue`` when given."""
        if target is None:
            target = TemporalTarget(address, namespace, task_queue)
        self.target = target
        self.task_queue = target.task_queue
        self.query_timeout = query_timeout
        self._load_models = load_models
        self._models: Mapping[str, Model] | None = None
        self._loop = LoopThread()
        try:
            self.client: Client = self._loop.run(target.connect())
        except BaseException:
            self._loop.close()
            raise

    # --- Backend -----------------------------------------------------------------------------

    def start(
        self,
        workflow: str,
        case_id: str,
        data: Mapping[str, Any],
        *,
        reporter: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> CallResult:
        if reporter:
            # Workflow inputs sit in Temporal's event history in clear, and an identity must
            # never be where an agency or an operator can read it; refusing beats dropping it.
            raise LaporError(
                "the Temporal backend keeps no reporter identities yet: keep the identity in "
                "the intake system (or use the embedded runtime) and start the case without it"
            )
        model = self.models().get(workflow)
        if model is None:
            known = ", ".join(sorted(self.models()))
            raise LaporError(f"unknown workflow {workflow!r}; known: {known}")
        if key is not None:
            case_id = keyed_case_id(key)
        return self._loop.run(self._start(model, case_id, data, keyed=key is not None))

    def signal(self, case_id: str, signal: Signal) -> CallResult:
        return self._loop.run(self._signal(case_id, signal))

    def case(self, case_id: str) -> tuple[Case, Model]:
        case = self._loop.run(self._case(case_id))
        return case, self._model_of(case)

    def history(self, case_id: str) -> list[HistoryRecord]:
        """Every record of the case, across all runs of its workflow, by sequence number."""
        records, _ = merge_runs(self.run_records(case_id))
        return [HistoryRecord.from_json(r) for r in records]

    def close(self) -> None:
        self._loop.close()

    # --- runs --------------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the backend's event loop, where ``self.client`` lives."""
        return self._loop.run(coro)

    def run_ids(self, case_id: str) -> list[str]:
        """The run ids of the case's workflow, first to latest (continue-as-new links them)."""
        return self._loop.run(self._run_ids(case_id))

    def run_records(self, case_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
        """Each run's ``history`` query answer (record JSON), first run to latest."""
        return self._loop.run(self._run_records(case_id))

    def run_history(self, case_id: str, run_id: str) -> WorkflowHistory:
        """Temporal's event history of one run."""
        handle = self.client.get_workflow_handle(case_id, run_id=run_id)
        return self._loop.run(handle.fetch_history())

    # --- helpers -----------------------------------------------------------------------------

    def models(self) -> Mapping[str, Model]:
        if self._models is None:
            self._models = self._load_models()
        return self._models

    def _model_of(self, case: Case) -> Model:
        model = self.models().get(case.workflow)
        if model is None or model.hash != case.model_hash:
            raise LaporError(
                f"case {case.id}: model {case.workflow}@{case.model_hash[:12]} "
                "is not among the project's workflows"
            )
        return model

    def _handle(self, case_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(case_id)

    async def _start(
        self,
        model: Model,
        case_id: str,
        data: Mapping[str, Any],
        *,
        keyed: bool = False,
        policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.REJECT_DUPLICATE,
    ) -> CallResult:
        params = CaseInput(model_json=json.dumps(model.to_data()), case_id=case_id, data=dict(data))
        try:
            handle = await self.client.start_workflow(
                CaseWorkflow.run,
                params,
                id=case_id,
                task_queue=self.task_queue,
                id_reuse_policy=policy,
            )
        except WorkflowAlreadyStartedError:
            if keyed:
                return await self._keyed_again(model, case_id, data)
            return CallResult(
                case_id, False, code="already_started", reason=f"case {case_id} already exists"
            )
        try:
            outcome = await handle.execute_update(CaseWorkflow.started)
        except RPCError:  # the start was refused and the run ended before the update reached it
            outcome = {"rejection": (await handle.result())["rejected"]}
        if "rejection" in outcome:
            code, reason = outcome["rejection"]
            return CallResult(case_id, False, code=code, reason=reason)
        case = Case.from_json(outcome["case"])
        return CallResult(case_id, True, case.state, case.status, seq=outcome["record"]["seq"])

    async def _keyed_again(self, model: Model, case_id: str, data: Mapping[str, Any]) -> CallResult:
        """A start whose key was used before: the case it started, again (as the embedded
        runtime answers). A refused start records nothing and keeps no key there, so here a
        corrected retry starts the case afresh, in place of the refused run."""
        handle = self.client.get_workflow_handle(case_id)
        try:
            # Waits until the first start is decided, even if that call is still in flight.
            outcome = await handle.execute_update(CaseWorkflow.started)
        except RPCError:  # the run has ended: a refused start, or a case closed since
            outcome = await handle.result()
            if "rejected" not in outcome:
                case = await self._case(case_id)
                return CallResult(case_id, True, case.state, case.status, seq=1, replayed=True)
        if "rejection" in outcome or "rejected" in outcome:
            await handle.result()  # a refused run ends at once; then its id may be reused
            return await self._start(
                model, case_id, data, policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE
            )
        case = Case.from_json(outcome["case"])
        return CallResult(case_id, True, case.state, case.status, seq=1, replayed=True)

    async def _signal(self, case_id: str, signal: Signal) -> CallResult:
        args = [signal.name, str(signal.actor), dict(signal.data), signal.key]
        try:
            outcome = await self._handle(case_id).execute_update(
                CaseWorkflow.signal_case, args=args
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if not (isinstance(cause, ApplicationError) and cause.type):
                raise
            case = await self._case(case_id)
            return CallResult(
                case_id, False, case.state, case.status, code=cause.type, reason=cause.message
            )
        except RPCError as exc:
            return await self._refuse_on_closed(case_id, signal, exc)
        case = Case.from_json(outcome["case"])
        return CallResult(case_id, True, case.state, case.status, seq=outcome["record"]["seq"])

    async def _refuse_on_closed(self, case_id: str, signal: Signal, error: RPCError) -> CallResult:
        """An update to a finished run fails as an RPC error; the core still gives the reason."""
        if error.status == RPCStatusCode.NOT_FOUND:
            raise LaporError(f"unknown case {case_id!r}") from None
        description = await self._handle(case_id).describe()
        if description.status == WorkflowExecutionStatus.RUNNING:
            raise error
        case = await self._case(case_id)
        now = max(datetime.now(UTC), case.last_at).replace(microsecond=0)
        rejection = decide(self._model_of(case), case, signal, now).rejection
        if rejection is None:  # pragma: no cover - a closed case accepts nothing
            raise error
        return CallResult(
            case_id, False, case.state, case.status, code=rejection.code, reason=rejection.reason
        )

    async def _case(self, case_id: str) -> Case:
        data = await self._query(case_id, CaseWorkflow.status)
        if data is None:
            raise LaporError(f"unknown case {case_id!r}")
        return Case.from_json(data)

    async def _run_ids(self, case_id: str) -> list[str]:
        # Back from the latest run: its id comes from describe, and each run's first event names
        # the run it continued. Forward would need each run's close event, which a running run
        # does not have yet.
        try:
            run_id: str | None = (await self._handle(case_id).describe()).run_id
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise LaporError(f"unknown case {case_id!r}") from None
            raise
        chain: list[str] = []
        while run_id:
            chain.append(run_id)
            handle = self.client.get_workflow_handle(case_id, run_id=run_id)
            run_id = None
            async for event in handle.fetch_history_events(page_size=1):
                started = event.workflow_execution_started_event_attributes
                run_id = started.continued_execution_run_id or None
                break
        return chain[::-1]

    async def _run_records(self, case_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
        out: list[tuple[str, list[dict[str, Any]]]] = []
        for run_id in await self._run_ids(case_id):
            out.append((run_id, await self._query(case_id, CaseWorkflow.history, run_id=run_id)))
        return out

    async def _query(self, case_id: str, query: Any, *, run_id: str | None = None) -> Any:
        handle = self.client.get_workflow_handle(case_id, run_id=run_id)
        for attempt in range(1, QUERY_ATTEMPTS + 1):
            try:
                return await handle.query(query, rpc_timeout=self.query_timeout)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    raise LaporError(f"unknown case {case_id!r}") from None
                if exc.status not in _UNANSWERED:
                    raise
                if attempt == QUERY_ATTEMPTS:
                    waited = self.query_timeout.total_seconds() * QUERY_ATTEMPTS
                    run = f" (run {run_id})" if run_id else ""
                    raise LaporError(
                        f"case {case_id}{run}: no worker answered the query in {waited:g} s; "
                        "is `lapor worker` running on this server? (a finished run is queried "
                        "by a worker replaying it)"
                    ) from None
        raise AssertionError("unreachable")
