"""``TemporalScenarioRuntime``: the ``ScenarioRuntime`` protocol over a real Temporal server.

The scenario runner is synchronous; Temporal's client and worker are asyncio. One event loop runs
in a background thread (``LoopThread``) and every call is submitted to it with
``asyncio.run_coroutine_threadsafe``. ``TimeSkippingHarness`` owns that thread and a Java
time-skipping test server (``workers.servers.start_time_skipping``); each runtime it builds runs
its own ``Worker`` on a task queue of its own.

Time: a scenario's clock starts at its ``start.at`` (2026), the test server's at its own now. The
runtime computes ``clock_offset_s = at - server_now`` once per case and passes it to the workflow,
which adds it to ``workflow.now()``; ``signal(at=...)``/``advance_to`` skip the server's clock
(``env.sleep``) to the matching server instant, so timers fire at their deadlines in case time.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from engine.case import Case
from engine.core import Decision, decide, wake_at
from engine.errors import LaporError
from engine.events import SYSTEM, Actor, Rejection, Signal
from engine.model import Model
from engine.records import HistoryRecord
from workers import servers
from workers.activities import deliver_effects
from workers.workflow import PASSTHROUGH_MODULES, CaseInput, CaseWorkflow

__all__ = ["LoopThread", "TemporalScenarioRuntime", "TimeSkippingHarness", "case_worker"]

T = TypeVar("T")

#: Queries: per-attempt RPC timeout and attempts (see ``TemporalScenarioRuntime._query``).
QUERY_RPC_TIMEOUT = timedelta(seconds=3)
QUERY_ATTEMPTS = 5
_LOST = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED)  # how a timed-out query fails

#: How long ``advance_to`` waits for the workflow to record timers that fired during a skip.
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


def case_worker(
    client: Any,
    task_queue: str,
    *,
    max_cached_cases: int | None = None,
    max_workflow_tasks: int | None = None,
    max_activities: int | None = None,
) -> Worker:
    """A worker hosting ``CaseWorkflow`` with the engine passed through the sandbox.

    The limits default to the SDK's (1,000 cached workflows, 100 concurrent workflow tasks and
    activities). A case evicted from the cache replays its history on its next task, so the
    cache should hold the cases that are active at once; the slots bound memory and concurrency,
    not speed (a worker is one Python process: more processes, not more slots, use more cores).
    """
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[CaseWorkflow],
        activities=[deliver_effects],
        workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
        max_cached_workflows=max_cached_cases or _SDK_CACHED_WORKFLOWS,
        max_concurrent_workflow_tasks=max_workflow_tasks,  # None: the SDK's own default
        max_concurrent_activities=max_activities,
    )


_SDK_CACHED_WORKFLOWS = 1000  # temporalio.worker.Worker's default, which takes no None


class TimeSkippingHarness:
    """A loop thread plus a running time-skipping test server; builds scenario runtimes.

    ``with TimeSkippingHarness() as harness: run_scenario(path, harness.factory, models)``.
    """

    def __init__(self) -> None:
        self._loop: LoopThread | None = None
        self._cm: Any = None
        self.env: WorkflowEnvironment | None = None
        self._runtimes: list[TemporalScenarioRuntime] = []
        self.last_runtime: TemporalScenarioRuntime | None = None

    def __enter__(self) -> TimeSkippingHarness:
        self._loop = LoopThread()
        self._cm = servers.start_time_skipping()
        self.env = self._loop.run(self._cm.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        for runtime in self._runtimes:
            runtime.close()
        self._runtimes.clear()
        try:
            self._loop.run(self._cm.__aexit__(None, None, None))
        finally:
            self._loop.close()

    def factory(
        self, models: Mapping[str, Model], start: datetime, **options: Any
    ) -> TemporalScenarioRuntime:
        """``runtime_factory`` for ``engine.scenario.run_scenario``; ``options`` reach the runtime
        (``continue_after``, ``history_keep``)."""
        assert self.env is not None and self._loop is not None
        runtime = TemporalScenarioRuntime(self.env, models, self._loop, **options)
        self._runtimes.append(runtime)
        self.last_runtime = runtime
        return runtime

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the harness's event loop (where the client lives)."""
        assert self._loop is not None
        return self._loop.run(coro)


class TemporalScenarioRuntime:
    """One worker on its own task queue; one ``CaseWorkflow`` per case (workflow id = case id)."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        models: Mapping[str, Model],
        loop: LoopThread,
        *,
        task_queue: str | None = None,
        continue_after: int = 500,
        history_keep: int = 100,
    ) -> None:
        self.env = env
        self.continue_after = continue_after
        self.history_keep = history_keep
        self.first_run_ids: dict[str, str] = {}
        self.models = dict(models)
        self._loop = loop
        self.task_queue = task_queue or f"lapor-cases-{uuid.uuid4()}"
        self._offsets: dict[str, timedelta] = {}
        self._models_by_case: dict[str, Model] = {}
        self._reporters: dict[str, Mapping[str, Any]] = {}
        self._worker: Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._loop.run(self._start_worker())

    async def _start_worker(self) -> None:
        # A Worker must be built inside the event loop that runs it.
        self._worker = case_worker(self.env.client, self.task_queue)
        self._worker_task = asyncio.get_running_loop().create_task(self._worker.run())
        await asyncio.sleep(0)

    def close(self) -> None:
        if self._worker_task is None:
            return
        self._loop.run(self._stop_worker())
        self._worker_task = None

    async def _stop_worker(self) -> None:
        assert self._worker is not None
        await self._worker.shutdown()
        if self._worker_task is not None:
            await self._worker_task

    # --- time --------------------------------------------------------------------------------

    async def _case_now(self, case_id: str) -> datetime:
        return await self.env.get_current_time() + self._offsets[case_id]

    async def _skip_to(self, case_id: str, moment: datetime) -> None:
        gap = moment - await self._case_now(case_id)
        if gap > timedelta(0):
            await self.env.sleep(gap)

    def _handle(self, case_id: str) -> WorkflowHandle[Any, Any]:
        return self.env.client.get_workflow_handle(case_id)

    async def _query(self, case_id: str, query: Any) -> Any:
        """A query on the case's latest run, retried when it is lost.

        A query that reaches a run just as it continues as new is never answered (the run is gone
        when its query task completes: "workflow execution already completed"); asking again
        reaches the new run. Hence a short RPC timeout and a few attempts.
        """
        for attempt in range(QUERY_ATTEMPTS):
            try:
                return await self._handle(case_id).query(query, rpc_timeout=QUERY_RPC_TIMEOUT)
            except RPCError as exc:
                if exc.status not in _LOST or attempt == QUERY_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.05)
        raise AssertionError("unreachable")

    # --- ScenarioRuntime ---------------------------------------------------------------------

    def start(
        self,
        workflow: str,
        case_id: str,
        data: Mapping[str, Any],
        *,
        reporter: Mapping[str, Any] | None = None,
        actor: Actor = SYSTEM,
        at: datetime | None = None,
    ) -> Decision:
        model = self.models.get(workflow)
        if model is None:
            raise LaporError(
                f"unknown workflow {workflow!r}; known: {', '.join(sorted(self.models))}"
            )
        return self._loop.run(self._start(model, case_id, data, reporter or {}, actor, at))

    async def _start(
        self,
        model: Model,
        case_id: str,
        data: Mapping[str, Any],
        reporter: Mapping[str, Any],
        actor: Actor,
        at: datetime | None,
    ) -> Decision:
        server_now = await self.env.get_current_time()
        offset = (at - server_now) if at is not None else timedelta(0)
        self._offsets[case_id] = offset
        params = CaseInput(
            model_json=json.dumps(model.to_data()),
            case_id=case_id,
            data=dict(data),
            actor=str(actor),
            clock_offset_s=offset.total_seconds(),
            continue_after=self.continue_after,
            history_keep=self.history_keep,
        )
        handle = await self.env.client.start_workflow(
            CaseWorkflow.run, params, id=case_id, task_queue=self.task_queue
        )
        if handle.first_execution_run_id:
            self.first_run_ids[case_id] = handle.first_execution_run_id
        elif handle.result_run_id:
            self.first_run_ids[case_id] = handle.result_run_id
        try:
            outcome = await handle.execute_update(CaseWorkflow.started)
        except RPCError:
            # The start was rejected and the run ended before the update reached it.
            summary = await handle.result()
            code, reason = summary["rejected"]
            return Decision(None, rejection=Rejection(code, reason))
        if "rejection" in outcome:
            code, reason = outcome["rejection"]
            return Decision(None, rejection=Rejection(code, reason))
        self._models_by_case[case_id] = model
        self._reporters[case_id] = dict(reporter)
        return Decision(
            self._with_reporter(Case.from_json(outcome["case"])),
            record=HistoryRecord.from_json(outcome["record"]),
        )

    def signal(self, case_id: str, signal: Signal, *, at: datetime | None = None) -> Decision:
        if case_id not in self._models_by_case:
            raise LaporError(f"unknown case {case_id!r}")
        return self._loop.run(self._signal(case_id, signal, at))

    async def _signal(self, case_id: str, signal: Signal, at: datetime | None) -> Decision:
        if at is not None:
            await self._skip_to(case_id, at)
        handle = self._handle(case_id)
        try:
            outcome = await handle.execute_update(
                CaseWorkflow.signal_case,
                args=[signal.name, str(signal.actor), dict(signal.data), signal.key],
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type:
                case = await self._query_case(case_id)
                return Decision(case, rejection=Rejection(cause.type, cause.message))  # type: ignore[arg-type]
            raise
        except RPCError as exc:
            return await self._decide_on_closed(case_id, signal, exc)
        return Decision(
            self._with_reporter(Case.from_json(outcome["case"])),
            record=HistoryRecord.from_json(outcome["record"]),
        )

    async def _decide_on_closed(self, case_id: str, signal: Signal, error: RPCError) -> Decision:
        """The run ended because the case closed: the core still gives the refusal's reason.

        ``decide`` is pure, so asking it here (on the case the finished workflow reports) gives the
        same ``closed`` rejection the workflow would have given; nothing is recorded either way.
        """
        description = await self._handle(case_id).describe()
        if description.status == WorkflowExecutionStatus.RUNNING:
            raise error
        case = await self._query_case(case_id)
        now = max(await self._case_now(case_id), case.last_at).replace(microsecond=0)
        decision = decide(self._models_by_case[case_id], case, signal, now)
        if decision.rejection is None:  # pragma: no cover - a closed case accepts nothing
            raise LaporError(f"case {case_id!r}: workflow ended but the core accepted {signal}")
        return Decision(case, rejection=decision.rejection)

    def advance_to(self, moment: datetime) -> None:
        self._loop.run(self._advance_to(moment))

    async def _advance_to(self, moment: datetime) -> None:
        for case_id in list(self._models_by_case):
            await self._skip_to(case_id, moment)
            await self._settle(case_id, moment)

    async def _settle(self, case_id: str, moment: datetime) -> None:
        """Wait until the workflow has recorded every lapse whose wake-up time is ``<= moment``."""
        deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT.total_seconds()
        while True:
            case = await self._query_case(case_id)
            due = case.next_due
            if case.closed or due is None or wake_at(due) > moment:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"case {case_id}: lapse due {due} was not recorded in time")
            await asyncio.sleep(0.02)

    def case(self, case_id: str) -> Case:
        return self._loop.run(self._query_case(case_id))

    async def _query_case(self, case_id: str) -> Case:
        data = await self._query(case_id, CaseWorkflow.status)
        if data is None:
            raise LaporError(f"unknown case {case_id!r}")
        return self._with_reporter(Case.from_json(data))

    def history(self, case_id: str) -> list[HistoryRecord]:
        records = self._loop.run(self._query(case_id, CaseWorkflow.history))
        return [HistoryRecord.from_json(r) for r in records]

    def current_run_id(self, case_id: str) -> str:
        """The run id of the case's latest run (differs from the first after continue-as-new)."""
        description = self._loop.run(self._handle(case_id).describe())
        return description.run_id

    def _with_reporter(self, case: Case) -> Case:
        reporter = self._reporters.get(case.id)
        return case.evolve(reporter=reporter) if reporter else case
