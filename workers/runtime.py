"""``TemporalRuntime``: the runtime contract (``engine.runtime.contract``) over a Temporal server.

    runtime = TemporalRuntime.connect(TemporalTarget("127.0.0.1:7233"), models=models)
    runtime.start("sp4n-lapor", "LAPOR-2026-7K3QXM2P", intake)

One ``CaseWorkflow`` per case (workflow id = case id) on the target's task queue, served by
``lapor worker`` (``workers.worker.case_worker``). The contract is synchronous and Temporal's
client is asyncio, so the runtime runs its own event loop in a daemon thread (``LoopThread``) and
submits every call to it. It is the one Temporal adapter: ``lapor`` uses it against a server, and
the tests use it on the time-skipping test server (``workers.testing``).

Time: on a server the case's time is the server's. On the time-skipping test server
(``time_skipping=env``) a case starts at the ``at`` it is given (a scenario's 2026) and the
workflow adds ``clock_offset_s = at - server_now`` to ``workflow.now()``; ``execute(at=...)`` and
``advance_to`` skip the server's clock to the matching instant, so timers fire at their
deadlines in case time.

How the contract's rules are kept here:

- **Keys.** A start's key and fingerprint travel in its input; a start that meets an existing
  workflow compares them (``start_request`` query). A keyed signal's key is kept by the workflow
  with its fingerprint and record (``KEYED_SIGNALS_PATCH``) and answered again, or refused.
- **The reporter's identity** is sealed before it leaves this process (``engine.runtime.identity``)
  and opened only by ``reporter()``; the workflow never sees it in clear.
- **Delivery** happens in the worker's activities; ``deliver()`` waits for the deliveries of the
  cases this runtime drove and reports them.
- **Errors.** Temporal's RPC errors become the contract's: ``NOT_FOUND`` an ``UnknownCaseError``,
  an unanswered query or an unreachable server a ``RuntimeUnavailableError``.

A case's history spans every run of its workflow: past ``continue_after`` records a run continues
as new carrying the latest ``history_keep`` records. ``history`` walks the chain of runs back from
the latest and merges each run's ``history`` query answer by sequence number. A query on a
finished run is answered by a worker replaying it, so reading needs a worker running.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
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
from temporalio.testing import WorkflowEnvironment

from engine.domain.case import Case
from engine.domain.errors import LaporError
from engine.domain.events import SEMANTICS, Rejection, Started, effect_from_json
from engine.domain.machine import Decision, decide, wake_at
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.runtime.contract import (
    Command,
    MigrateCommand,
    Outcome,
    Runtime,
    SignalCommand,
    StartCommand,
    check_key_reuse,
    model_for_workflow,
    reporter_refusal,
    request_fingerprint,
    with_reporter_token,
)
from engine.runtime.delivery import DeliveryReport
from engine.runtime.errors import KeyReuseError, RuntimeUnavailableError, UnknownCaseError
from engine.runtime.identity import KEY_ENV, KEY_FILE_ENV, KeyRing
from workers.connection import TemporalTarget
from workers.workflow import CaseInput, CaseWorkflow

__all__ = ["QUERY_TIMEOUT", "LoopThread", "TemporalRuntime", "merge_runs"]

T = TypeVar("T")

#: How long one query attempt waits for a worker's answer (for a finished run the worker first
#: replays it); without a bound, a query with no worker polling would wait forever.
QUERY_TIMEOUT = timedelta(seconds=5)
#: A query that reaches a run at the moment it continues as new is never answered ("workflow
#: execution already completed"); asking again reaches the new run. Hence a few attempts.
QUERY_ATTEMPTS = 3
_UNANSWERED = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)

#: How long ``advance_to`` and ``deliver`` wait for the workflow to catch up.
SETTLE_TIMEOUT = timedelta(seconds=30)


class LoopThread:
    """An asyncio event loop in a daemon thread; ``run(coro)`` blocks for the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="temporal")
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 300) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def merge_runs(
    runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """One chain from each run's records (oldest run first): ``(records by seq, problems)``.

    A continued run repeats the tail of the run before it; those copies must be identical. Where
    they are not, the earliest run's copy is kept (it was recorded first) and the disagreement is
    a problem. Gaps are left for the chain check (``engine.domain.history.verify_chain``).
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


@contextmanager
def _mapped(case_id: str | None = None) -> Iterator[None]:
    """Temporal's RPC errors as the contract's (the one place they are mapped)."""
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and case_id is not None:
            raise UnknownCaseError(case_id) from None
        raise RuntimeUnavailableError(
            f"Temporal refused or failed the call ({exc.status.name if exc.status else '?'}): "
            f"{exc.message}"
        ) from None


def _decision(case: Case | None, record_json: Mapping[str, Any] | None) -> Decision:
    record = None if record_json is None else HistoryRecord.from_json(record_json)
    effects = () if record is None else tuple(effect_from_json(e) for e in record.effects)
    return Decision(case, effects, record)


class TemporalRuntime(Runtime):
    """Cases as ``CaseWorkflow`` runs on a Temporal server (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        loop: LoopThread,
        *,
        task_queue: str,
        models: Mapping[str, Model] | None = None,
        query_timeout: timedelta = QUERY_TIMEOUT,
        time_skipping: WorkflowEnvironment | None = None,
        keyring: KeyRing | None = None,
        continue_after: int = 500,
        history_keep: int = 100,
        owns_loop: bool = False,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.models: dict[str, Model] = dict(models or {})
        self.query_timeout = query_timeout
        self.env = time_skipping
        self.keyring = keyring if keyring is not None else KeyRing.from_env()
        self.continue_after = continue_after
        self.history_keep = history_keep
        self.first_run_ids: dict[str, str] = {}
        self._loop = loop
        self._owns_loop = owns_loop
        self._offsets: dict[str, timedelta] = {}  # case time - server time, per case started here
        self._reported: dict[str, tuple[int, int]] = {}  # case: (delivered, gave up) reported

    @classmethod
    def connect(
        cls, target: TemporalTarget, *, models: Mapping[str, Model] | None = None, **options: Any
    ) -> TemporalRuntime:
        """A runtime on its own event loop, connected to ``target`` (credentials, TLS)."""
        loop = LoopThread()
        try:
            client = loop.run(target.connect())
        except BaseException:
            loop.close()
            raise
        return cls(
            client, loop, task_queue=target.task_queue, models=models, owns_loop=True, **options
        )

    # --- the contract ----------------------------------------------------------------------

    def register(self, models: Mapping[str, Model]) -> None:
        self.models.update(models)

    def execute(self, commands: Sequence[Command], at: datetime | None = None) -> list[Outcome]:
        if at is not None and self.env is None:
            raise LaporError("at= needs the time-skipping test server; a server's clock is real")
        return [self._loop.run(self._execute(command, at)) for command in commands]

    async def _execute(self, command: Command, at: datetime | None) -> Outcome:
        if isinstance(command, StartCommand):
            return with_reporter_token(self.keyring, await self._start(command, at))
        if at is not None:
            await self._skip_to(command.case_id, at)
        if isinstance(command, MigrateCommand):
            return await self._migrate(command)
        # Checked here, before the signal reaches the server: the token must never sit in the
        # workflow's event history.
        refusal = reporter_refusal(self.keyring, command)
        if refusal is not None:
            case = await self._case(command.case_id)
            return Outcome(command.case_id, Decision(case, rejection=refusal))
        return await self._signal(command)

    def case(self, case_id: str) -> Case:
        return self._loop.run(self._case(case_id))

    def model_of(self, case_id: str) -> Model:
        return self._loop.run(self._model_of(self.case(case_id)))

    def history(self, case_id: str) -> list[HistoryRecord]:
        """Every record of the case, across all runs of its workflow, by sequence number."""
        records, _ = merge_runs(self.run_records(case_id))
        return [HistoryRecord.from_json(r) for r in records]

    def reporter(self, case_id: str) -> Mapping[str, Any] | None:
        request = self._loop.run(self._query(case_id, CaseWorkflow.start_request))
        sealed = request.get("reporter_sealed")
        if not sealed:
            return None
        return self._keyring().open_text(case_id, sealed)

    def erase_reporter(self, case_id: str, at: datetime | None = None) -> bool:
        """Not possible here: the sealed identity is part of the workflow's start input, in the
        server's event history, until the namespace's retention period removes the closed run."""
        self.case(case_id)
        raise LaporError(
            f"case {case_id}: an identity cannot be erased on Temporal; its sealed form stays in "
            "the workflow's event history until the namespace's retention period removes it "
            "(run cases that need erasure on the embedded runtime)"
        )

    def advance_to(self, moment: datetime) -> None:
        """Time-skipping server: skip to ``moment`` and wait until every case started here has
        recorded the lapses waking by then."""
        if self.env is None:
            raise LaporError("advance_to needs the time-skipping test server")
        self._loop.run(self._advance_to(moment))

    def fire_due(self, now: datetime, limit: int = 1000) -> int:
        """Nothing to do: a Temporal server fires each case's clock itself, as a workflow timer."""
        return 0

    def deliver(self, now: datetime | None = None) -> DeliveryReport:
        """Wait until the deliveries of every case this runtime started have finished (the
        worker's activities deliver them), and report the messages finished since last asked."""
        return self._loop.run(self._deliver())

    def close(self) -> None:
        if self._owns_loop:
            self._loop.close()
            self._owns_loop = False

    # --- runs (the auditor's view: ``workers.audit``) ----------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the runtime's event loop, where ``self.client`` lives."""
        return self._loop.run(coro)

    def case_ids(self) -> list[str]:
        """Every case of the namespace, sorted (from the visibility store, each id once)."""
        return self._loop.run(self._case_ids())

    async def _case_ids(self) -> list[str]:
        found: set[str] = set()
        query = f"WorkflowType = '{CaseWorkflow.__name__}'"
        with _mapped("the namespace"):
            async for execution in self.client.list_workflows(query):
                found.add(execution.id)
        return sorted(found)

    def run_ids(self, case_id: str) -> list[str]:
        """The run ids of the case's workflow, first to latest (continue-as-new links them)."""
        return self._loop.run(self._run_ids(case_id))

    def run_records(self, case_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
        """Each run's ``history`` query answer (record JSON), first run to latest."""
        return self._loop.run(self._run_records(case_id))

    def run_history(self, case_id: str, run_id: str) -> WorkflowHistory:
        """Temporal's event history of one run."""
        handle = self.client.get_workflow_handle(case_id, run_id=run_id)
        with _mapped(case_id):
            return self._loop.run(handle.fetch_history())

    def current_run_id(self, case_id: str) -> str:
        """The run id of the case's latest run (differs from the first after continue-as-new)."""
        with _mapped(case_id):
            return self._loop.run(self._handle(case_id).describe()).run_id

    # --- starts ------------------------------------------------------------------------------

    def _keyring(self) -> KeyRing:
        if self.keyring is None:
            raise LaporError(
                "a reporter identity on Temporal is sealed before it reaches the server: set "
                f"${KEY_FILE_ENV} or ${KEY_ENV} on every client that starts or reads cases"
            )
        return self.keyring

    async def _start(self, command: StartCommand, at: datetime | None) -> Outcome:
        model = model_for_workflow(self.models, command.workflow)
        offset = timedelta(0)
        if at is not None:
            assert self.env is not None
            offset = at - await self.env.get_current_time()
        self._offsets[command.case_id] = offset
        sealed = None
        if command.reporter:
            sealed = self._keyring().seal(command.case_id, command.reporter).to_text()
        params = CaseInput(
            model_json=json.dumps(model.to_data()),
            case_id=command.case_id,
            data=dict(command.data),
            actor=str(command.actor),
            clock_offset_s=offset.total_seconds(),
            continue_after=self.continue_after,
            history_keep=self.history_keep,
            key=command.key,
            fingerprint=None if command.key is None else request_fingerprint(command),
            reporter_sealed=sealed,
            semantics=SEMANTICS,
        )
        try:
            return await self._start_run(params, WorkflowIDReusePolicy.REJECT_DUPLICATE)
        except WorkflowAlreadyStartedError:
            return await self._started_before(command, model, params)

    async def _start_run(self, params: CaseInput, policy: WorkflowIDReusePolicy) -> Outcome:
        with _mapped():
            handle = await self.client.start_workflow(
                CaseWorkflow.run,
                params,
                id=params.case_id,
                task_queue=self.task_queue,
                id_reuse_policy=policy,
            )
        run_id = handle.first_execution_run_id or handle.result_run_id
        if run_id:
            self.first_run_ids[params.case_id] = run_id
        try:
            outcome = await handle.execute_update(CaseWorkflow.started)
        except RPCError:  # the start was refused and the run ended before the update reached it
            outcome = {"rejection": (await handle.result())["rejected"]}
        if "rejection" in outcome:
            code, reason = outcome["rejection"]
            return Outcome(params.case_id, Decision(None, rejection=Rejection(code, reason)))
        case = Case.from_json(outcome["case"])
        return Outcome(params.case_id, _decision(case, outcome["record"]))

    async def _started_before(
        self, command: StartCommand, model: Model, params: CaseInput
    ) -> Outcome:
        """A start that met a workflow with its id. A refused start records nothing (as on every
        runtime), so its run is replaced; a case that exists answers the first outcome again
        for the same keyed request, ``KeyReuseError`` for another one under the same key, and
        ``already_started`` otherwise."""
        handle = self._handle(command.case_id)
        try:
            # Waits until the first start is decided, even if that call is still in flight.
            outcome = await handle.execute_update(CaseWorkflow.started)
        except RPCError:  # the run has ended: a refused start, or a case closed since
            outcome = await handle.result()
        if "rejection" in outcome or "rejected" in outcome:
            await handle.result()  # a refused run ends at once; then its id may be reused
            return await self._start_run(params, WorkflowIDReusePolicy.ALLOW_DUPLICATE)
        case = await self._case(command.case_id)
        request = await self._query(command.case_id, CaseWorkflow.start_request)
        if command.key is not None and request.get("key") == command.key:
            check_key_reuse(command.key, request.get("fingerprint"), command, command.case_id)
            first = (await self._run_records(command.case_id))[0][1][0]
            return Outcome(command.case_id, _decision(case, first), replayed=True)
        event = Started(command.case_id, dict(command.data), command.actor)
        refused = decide(model, case, event, case.last_at).rejection
        return Outcome(command.case_id, Decision(case, rejection=refused))

    # --- signals -----------------------------------------------------------------------------

    async def _signal(self, command: SignalCommand) -> Outcome:
        signal, case_id = command.signal, command.case_id
        args = [signal.name, str(signal.actor), dict(signal.data), signal.key]
        try:
            outcome = await self._handle(case_id).execute_update(
                CaseWorkflow.signal_case, args=args
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if not (isinstance(cause, ApplicationError) and cause.type):
                raise RuntimeUnavailableError(f"case {case_id}: the update failed: {exc}") from None
            if cause.type == "key_reused":
                raise KeyReuseError(signal.key or "", case_id) from None
            case = await self._case(case_id)
            rejection = Rejection(cause.type, cause.message)  # type: ignore[arg-type]
            return Outcome(case_id, Decision(case, rejection=rejection))
        except RPCError as exc:  # NOT_FOUND for a finished run too: describe tells them apart
            return await self._refuse_on_closed(command, exc)
        case = Case.from_json(outcome["case"])
        record = outcome["record"]
        replayed = bool(outcome.get("replayed"))
        if replayed and record is None:  # the record went to an earlier run: read it there
            seq = outcome.get("seq")
            record = next((r for r in await self._merged(case_id) if r["seq"] == seq), None)
        return Outcome(case_id, _decision(case, record), replayed=replayed)

    async def _migrate(self, command: MigrateCommand) -> Outcome:
        case_id = command.case_id
        args = [json.dumps(command.model.to_data()), str(command.actor), dict(command.states)]
        try:
            outcome = await self._handle(case_id).execute_update(
                CaseWorkflow.migrate_case, args=args
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if not (isinstance(cause, ApplicationError) and cause.type):
                raise RuntimeUnavailableError(f"case {case_id}: the update failed: {exc}") from None
            case = await self._case(case_id)
            rejection = Rejection(cause.type, cause.message)  # type: ignore[arg-type]
            return Outcome(case_id, Decision(case, rejection=rejection))
        except RPCError as exc:
            with _mapped(case_id):
                raise exc from None
        return Outcome(case_id, _decision(Case.from_json(outcome["case"]), outcome["record"]))

    async def _refuse_on_closed(self, command: SignalCommand, error: RPCError) -> Outcome:
        """The run ended because the case closed: the core still gives the refusal's reason.

        ``decide`` is pure, so asking it here (on the case the finished workflow reports) gives
        the same ``closed`` rejection the workflow would have given; nothing is recorded.
        """
        case_id = command.case_id
        with _mapped(case_id):
            description = await self._handle(case_id).describe()
        if description.status == WorkflowExecutionStatus.RUNNING:
            raise RuntimeUnavailableError(f"case {case_id}: {error.message}") from None
        case = await self._case(case_id)
        now = max(await self._case_now(case_id), case.last_at).replace(microsecond=0)
        model = await self._model_of(case)
        rejection = decide(model, case, command.signal, now).rejection
        if rejection is None:  # pragma: no cover - a closed case accepts nothing
            raise LaporError(f"case {case_id!r}: workflow ended but the core accepted the signal")
        return Outcome(case_id, Decision(case, rejection=rejection))

    async def _model_of(self, case: Case) -> Model:
        """The model the case pinned: a registered one with its hash, else the workflow's own."""
        for model in self.models.values():
            if model.hash == case.model_hash:
                return model
        return Model.from_data(json.loads(await self._query(case.id, CaseWorkflow.model)))

    # --- time --------------------------------------------------------------------------------

    async def _case_now(self, case_id: str) -> datetime:
        if self.env is None:
            return datetime.now(UTC)
        return await self.env.get_current_time() + self._offsets.get(case_id, timedelta(0))

    async def _skip_to(self, case_id: str, moment: datetime) -> None:
        assert self.env is not None
        gap = moment - await self._case_now(case_id)
        if gap > timedelta(0):
            await self.env.sleep(gap)

    async def _advance_to(self, moment: datetime) -> None:
        for case_id in list(self._offsets):
            await self._skip_to(case_id, moment)
            await self._settle(case_id, moment)

    async def _settle(self, case_id: str, moment: datetime) -> None:
        """Wait until the workflow has recorded every lapse whose wake-up time is ``<= moment``."""
        deadline = time.monotonic() + SETTLE_TIMEOUT.total_seconds()
        while True:
            try:
                case = await self._case(case_id)
            except UnknownCaseError:
                return  # a refused start: nothing to settle
            due = case.next_due
            if case.closed or due is None or wake_at(due) > moment:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"case {case_id}: lapse due {due} was not recorded in time")
            await asyncio.sleep(0.02)

    async def _deliver(self) -> DeliveryReport:
        deadline = time.monotonic() + SETTLE_TIMEOUT.total_seconds()
        delivered = dead = pending = 0
        for case_id in list(self._offsets):
            while True:
                try:
                    counts = await self._query(case_id, CaseWorkflow.deliveries)
                except UnknownCaseError:
                    counts = {"delivered": 0, "gave_up": 0, "pending": 0}
                if counts["pending"] == 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
            before = self._reported.get(case_id, (0, 0))
            self._reported[case_id] = (counts["delivered"], counts["gave_up"])
            delivered += counts["delivered"] - before[0]
            dead += counts["gave_up"] - before[1]
            pending += counts["pending"]
        return DeliveryReport(delivered, 0, dead, pending)

    # --- reads -------------------------------------------------------------------------------

    def _handle(self, case_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(case_id)

    async def _case(self, case_id: str) -> Case:
        data = await self._query(case_id, CaseWorkflow.status)
        if data is None:
            raise UnknownCaseError(case_id)
        return Case.from_json(data)

    async def _merged(self, case_id: str) -> list[dict[str, Any]]:
        records, _ = merge_runs(await self._run_records(case_id))
        return records

    async def _run_ids(self, case_id: str) -> list[str]:
        # Back from the latest run: its id comes from describe, and each run's first event names
        # the run it continued. Forward would need each run's close event, which a running run
        # does not have yet.
        with _mapped(case_id):
            run_id: str | None = (await self._handle(case_id).describe()).run_id
        chain: list[str] = []
        while run_id:
            chain.append(run_id)
            handle = self.client.get_workflow_handle(case_id, run_id=run_id)
            run_id = None
            with _mapped(case_id):
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
                    raise UnknownCaseError(case_id) from None
                if exc.status not in _UNANSWERED:
                    with _mapped(case_id):
                        raise
                if attempt == QUERY_ATTEMPTS:
                    waited = self.query_timeout.total_seconds() * QUERY_ATTEMPTS
                    run = f" (run {run_id})" if run_id else ""
                    raise RuntimeUnavailableError(
                        f"case {case_id}{run}: no worker answered the query in {waited:g} s; "
                        "is `lapor worker` running on this server? (a finished run is queried "
                        "by a worker replaying it)"
                    ) from None
                await asyncio.sleep(0.05)
        raise AssertionError("unreachable")
