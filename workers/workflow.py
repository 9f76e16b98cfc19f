"""The Temporal shell around the core: one ``CaseWorkflow`` per case (workflow id = case id).

The workflow owns no rules. It keeps the case and its history records in workflow state, asks
``engine.domain.machine.decide`` what every event does, and only decides *when* to ask: at start,
when an update (a party's signal) arrives, and when the earliest running clock's ``wake_at(due)``
passes.

Time: the case's time is ``workflow.now() + clock_offset_s``, floored to the whole second.
``clock_offset_s`` is 0 in production; scenario runs pass ``scenario_start - server_now`` so a
scenario written for 2026 hits the 2026 holidays on a test server that starts at its own now. The
floor absorbs the few milliseconds a workflow task runs after the instant that woke it (a timer
firing at its deadline, a signal sent at a skipped-to moment), so the recorded instants are the
ones the in-memory reference runtime records.

The model travels as plain data (``Model.to_data()`` as a JSON string: the calendar inside it,
never the ``holidays`` package), so the worker needs no definition files and replays see the exact
model. A string, not a dict, because Temporal's JSON converter sorts object keys and the order of
transitions is meaningful (rejection reasons list "allowed now: ..." in model order).

Effects that touch the world (notify/route/escalate) run as the ``deliver_effects`` activity
(``workers/activities.py``), started after the decision is recorded and not awaited by the loop, so
a slow delivery never delays a deadline; the run waits for outstanding deliveries before it ends.
The activity hands each effect to the worker's delivery handlers, as the embedded outbox does.

Keys: the start's idempotency key and request fingerprint travel in its input (``start_request``
query); a keyed signal's key is kept with its fingerprint and record, so a retry is answered from
them instead of being decided again (``KEYED_SIGNALS_PATCH``), and carried across continue-as-new.
The reporter's identity, when given, is in the input only sealed (``engine.runtime.identity``).

Continue-as-new: past ``continue_after`` records in one run (500 by default) the workflow starts a
new run with the case and the last ``history_keep`` records, once every effect delivery of this
run has finished; older records stay in the earlier runs (``workers.runtime.TemporalRuntime``
queries every run of the chain to put the full history together).

Search attributes (``workers.search_attributes``: status, state, agency, region, escalation level,
next due) are upserted after every recorded decision whose values differ from the run's current
ones, so cases can be found in the Temporal Web UI. Histories recorded before they existed hold
no upsert commands; ``workflow.patched(SEARCH_ATTRIBUTES_PATCH)`` keeps those (and runs in flight
at deploy time) on the old path, without upserts, until they continue as new. The attributes the
case list needs on top (workflow, opened at, outcome: ``search_attributes.LISTED``) came later,
under ``CASE_LIST_PATCH``, the same way: a run recorded before it upserts the first six only,
and its case shows in the list once it continues as new.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.domain.case import Case, agency_view
    from engine.domain.errors import LaporError
    from engine.domain.events import Actor, ClockLapsed, Migrated, Signal, Started
    from engine.domain.machine import Decision, decide, wake_at
    from engine.domain.model import Model
    from engine.runtime.contract import SignalCommand, request_fingerprint
    from workers import search_attributes
    from workers.activities import (
        DELIVERY_RETRY,
        DELIVERY_TIMEOUT,
        Deliveries,
        EffectBatch,
        batch_for,
    )

__all__ = [
    "CASE_LIST_PATCH",
    "KEYED_SIGNALS_PATCH",
    "MIGRATION_PATCH",
    "PASSTHROUGH_MODULES",
    "SEARCH_ATTRIBUTES_PATCH",
    "CaseInput",
    "CaseWorkflow",
]

#: Modules the workflow sandbox must pass through (pure, deterministic; ``cel`` is native).
PASSTHROUGH_MODULES = (
    "engine",
    "cel",
    "structlog",
    "workers.activities",
    "workers.search_attributes",
)

#: The ``workflow.patched`` id guarding the search-attribute upserts (see the module docstring).
#: Never rename it: recorded histories carry it in their patch markers.
SEARCH_ATTRIBUTES_PATCH = "search-attributes"
#: The ``workflow.patched`` id guarding the upserts of ``search_attributes.LISTED`` (what the
#: case list reads besides the first attributes). Never rename it.
CASE_LIST_PATCH = "case-list-attributes"
#: Marks the runs that moved their case onto another model (``migrate_case``): the model a run
#: continues with is then the migrated one, not its input's.
MIGRATION_PATCH = "migrate-case"

#: The ``workflow.patched`` id guarding idempotent keyed signals: a key seen before answers its
#: first outcome (or ``key_reused``) instead of being decided again. Never rename it.
KEYED_SIGNALS_PATCH = "keyed-signals"


@dataclass
class CaseInput:
    """What starts a case workflow. The reporter's identity is never here in clear (it would sit
    in Temporal's event history): only sealed, ``reporter_sealed`` (``engine.runtime.identity``),
    which the workflow never opens."""

    model_json: str  # json.dumps(Model.to_data()): a string, because Temporal's JSON converter
    # sorts object keys and the order of transitions is meaningful ("allowed now: ..." lists them)
    case_id: str
    data: dict[str, Any]
    actor: str = "system"
    clock_offset_s: float = 0.0
    #: Continue as new once the run holds this many history records (Temporal's event history
    #: grows with every decision, timer and update; a new run starts it afresh).
    continue_after: int = 500
    #: How many of the latest records a continued run carries (its ``history`` query shows them).
    history_keep: int = 100
    #: Set only on a continued run: the case and the tail of its history records.
    case: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None
    #: The start's idempotency key and ``request_fingerprint`` (a retried start is compared).
    key: str | None = None
    fingerprint: str | None = None
    reporter_sealed: str | None = None
    #: Keys of the signals decided so far: key -> [fingerprint, seq] (carried when continuing).
    keys: dict[str, list[Any]] | None = None
    #: The decision-rule version (``engine.domain.events.SEMANTICS``); runs started before the
    #: field existed were decided under version 1 and must replay so.
    semantics: int = 1


@dataclass
class _Pending:
    number: int
    signal: Signal | Migrated
    target: Model | None = None  # a migration's new model


@dataclass
class _Outcome:
    record: dict[str, Any] | None = None
    rejection: tuple[str, str] | None = None


# A LaporError is a definition problem (a malformed model, a deadline in a year the calendar
# does not cover): retrying the workflow task cannot fix it, so it fails the workflow, visibly,
# instead of retrying forever.
@workflow.defn(failure_exception_types=[LaporError])
class CaseWorkflow:
    @workflow.init
    def __init__(self, params: CaseInput) -> None:
        # Handlers may run before ``run`` does: an update that reaches a continued run within
        # its first workflow task is validated before ``run`` has started. So what they need
        # (the model, a continued run's case) is set here, from the input, not in ``run``.
        self._model: Model | None = _model_from(params.model_json)
        self._model_json = params.model_json
        self._offset = timedelta(seconds=params.clock_offset_s)
        self._case: Case | None = None
        self._history: list[dict[str, Any]] = []
        if params.case is not None:  # a continued run: the start was decided long ago
            self._case = Case.from_json(params.case)
            self._history = list(params.history or [])
        self._params = params
        self._keys: dict[str, list[Any]] = dict(params.keys or {})
        self._start_rejection: tuple[str, str] | None = None
        self._started = self._case is not None
        self._queue: list[_Pending] = []
        self._numbered = 0
        self._outcomes: dict[int, _Outcome] = {}
        self._deliveries: list[tuple[EffectBatch, asyncio.Task[Any]]] = []
        self._delivered = 0  # messages of finished deliveries (this run), for ``deliveries``
        self._undelivered = 0
        self._continue_at: int | None = None
        self._indexed = False  # whether this run upserts search attributes (patched)
        self._listed = False  # whether it upserts the case list's ones too (patched)

    # --- time --------------------------------------------------------------------------------

    def _exact_now(self) -> Any:
        return workflow.now() + self._offset

    def _now(self) -> Any:
        return self._exact_now().replace(microsecond=0)

    # --- the loop ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, params: CaseInput) -> dict[str, Any]:
        # First, before any other command: where the patch marker sits in a history must not
        # depend on what the case does.
        self._indexed = workflow.patched(SEARCH_ATTRIBUTES_PATCH)
        # Right after it, for the same reason; asked only on an indexed run, so a history from
        # before either patch records (and replays) neither marker.
        self._listed = self._indexed and workflow.patched(CASE_LIST_PATCH)
        assert self._model is not None
        if params.case is not None:
            # Continue-as-new carries the attributes over, but a run continued from one that
            # predates them (unpatched) has none yet.
            self._index()
        else:
            event = Started(
                params.case_id,
                dict(params.data),
                Actor.parse(params.actor),
                semantics=params.semantics,
            )
            decision = decide(self._model, None, event, self._now())
            self._started = True
            if decision.rejection is not None:
                self._start_rejection = (decision.rejection.code, decision.rejection.reason)
                await workflow.wait_condition(workflow.all_handlers_finished)
                return {"case_id": params.case_id, "rejected": list(self._start_rejection)}
            self._store(decision)
        carried = len(self._history)

        self._continue_at = carried + params.continue_after

        def should_continue() -> bool:
            return (
                self._over_threshold()
                and not self._queue
                and workflow.all_handlers_finished()
                and self._all_delivered()
            )

        while self._case is not None and not self._case.closed:
            if should_continue():
                # Continue in this very workflow task (no await), and only with every delivery
                # finished (an update answered past the threshold waits for its deliveries):
                # the answer and the continuation land together, so no client call meets the
                # old run half-finished, and no activity is left running against a closed run
                # (which also wedges the Java test server's time skipping).
                keep = self._history[-params.history_keep :] if params.history_keep > 0 else []
                workflow.continue_as_new(
                    CaseInput(
                        model_json=self._model_json,
                        case_id=params.case_id,
                        data={},
                        actor=params.actor,
                        clock_offset_s=params.clock_offset_s,
                        continue_after=params.continue_after,
                        history_keep=params.history_keep,
                        case=self._case.to_json(),
                        history=keep,
                        key=params.key,
                        fingerprint=params.fingerprint,
                        reporter_sealed=params.reporter_sealed,
                        keys=self._keys,
                    )
                )
            if self._lapse_if_due():
                continue
            if self._queue:
                self._decide_pending(self._queue.pop(0))
                continue
            due = self._case.next_due
            if due is None:
                await workflow.wait_condition(lambda: bool(self._queue) or should_continue())
                continue
            timeout = wake_at(due) - self._exact_now()
            if timeout <= timedelta(0):
                timeout = timedelta(milliseconds=1)  # a floor artefact; the next pass lapses it
            # A timeout is the clock's wake-up: the next pass delivers the lapse.
            # (asyncio.TimeoutError is TimeoutError on 3.11+.)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: bool(self._queue) or should_continue(),
                    timeout=timeout,
                    timeout_summary="sla-clock",
                )
        # Anything queued before the case closed is answered (rejected as closed), not dropped.
        while self._queue:
            self._decide_pending(self._queue.pop(0))
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._drain_deliveries()
        assert self._case is not None
        return {
            "case_id": self._case.id,
            "state": self._case.state,
            "status": self._case.status,
            "outcome": self._case.outcome,
            "decisions": len(self._history),
            "head": self._case.head,
        }

    def _over_threshold(self) -> bool:
        return self._continue_at is not None and len(self._history) >= self._continue_at

    def _all_delivered(self) -> bool:
        return all(task.done() for _, task in self._deliveries)

    def _lapse_if_due(self) -> bool:
        """Deliver ``ClockLapsed`` for the earliest running clock whose wake-up time has come."""
        assert self._case is not None and self._model is not None
        now = self._now()
        running = [c for c in self._case.clocks if c.running and c.due_at is not None]
        if not running:
            return False
        clock = min(running, key=lambda c: c.due_at)  # type: ignore[arg-type,return-value]
        assert clock.due_at is not None
        if wake_at(clock.due_at) > now:
            return False
        decision = decide(self._model, self._case, ClockLapsed(clock.name, clock.due_at), now)
        if decision.record is None:
            return False  # stale or early: nothing recorded; the loop waits for the next wake
        self._store(decision)
        return True

    def _decide_pending(self, pending: _Pending) -> None:
        assert self._model is not None
        if isinstance(pending.signal, Migrated):
            assert pending.target is not None and self._case is not None
            event = replace(pending.signal, source=self._model)
            decision = decide(pending.target, self._case, event, self._now())
            if decision.accepted and workflow.patched(MIGRATION_PATCH):
                self._model = pending.target
                self._model_json = json.dumps(pending.target.to_data())
        else:
            decision = decide(self._model, self._case, pending.signal, self._now())
        if decision.rejection is not None:
            rejection = (decision.rejection.code, decision.rejection.reason)
            self._outcomes[pending.number] = _Outcome(rejection=rejection)
            return
        self._store(decision)
        record = decision.record.to_json() if decision.record is not None else None
        signal = pending.signal
        if (
            isinstance(signal, Signal)
            and signal.key is not None
            and record is not None
            and self._case
        ):
            command = SignalCommand(self._case.id, signal)
            self._keys[signal.key] = [request_fingerprint(command), record["seq"]]
        self._outcomes[pending.number] = _Outcome(record=record)

    def _store(self, decision: Decision) -> None:
        if decision.record is None or decision.case is None:
            return
        self._case = decision.case
        record = decision.record.to_json()
        self._history.append(record)
        self._index()
        batch = batch_for(
            decision.case.id, decision.record.seq, record["effects"], agency_view(decision.case)
        )
        if batch is not None:
            self._deliver(batch)

    def _index(self) -> None:
        """Bring the run's search attributes up to date with the case (no command if equal)."""
        if not self._indexed or self._case is None:
            return
        keys = search_attributes.ALL if self._listed else search_attributes.INDEXED
        current = workflow.info().typed_search_attributes
        changes = search_attributes.updates(self._case, current, keys)
        if changes:
            workflow.upsert_search_attributes(changes)

    def _deliver(self, batch: EffectBatch) -> None:
        """Start delivering one decision's effects; the loop never waits for it."""
        self._prune_deliveries()
        task = workflow.start_activity_method(
            Deliveries.deliver_effects,
            batch,
            start_to_close_timeout=DELIVERY_TIMEOUT,
            retry_policy=DELIVERY_RETRY,
        )
        self._deliveries.append((batch, task))

    def _prune_deliveries(self) -> None:
        """Count the finished deliveries and forget them."""
        running: list[tuple[EffectBatch, asyncio.Task[Any]]] = []
        for batch, task in self._deliveries:
            if not task.done():
                running.append((batch, task))
            elif task.cancelled() or task.exception() is not None:
                self._undelivered += len(batch.effects)
            else:
                self._delivered += len(batch.effects)
        self._deliveries = running

    async def _drain_deliveries(self) -> None:
        """Let every delivery finish before the run ends (a failed one is logged, not fatal:
        the decision is recorded either way, and the history is the source of truth)."""
        results = await asyncio.gather(*(t for _, t in self._deliveries), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                workflow.logger.warning("effect delivery gave up: %s", type(result).__name__)
        self._prune_deliveries()

    # --- updates and queries -----------------------------------------------------------------

    @workflow.update
    async def started(self) -> dict[str, Any]:
        """The start's outcome once decided: ``{"case", "record"}`` or ``{"rejection"}``."""
        await workflow.wait_condition(lambda: self._started)
        if self._start_rejection is not None:
            return {"rejection": list(self._start_rejection)}
        assert self._case is not None
        return {"case": self._case.to_json(), "record": self._history[-1]}

    @workflow.update
    async def signal_case(
        self, name: str, actor: str, data: dict[str, Any], key: str | None = None
    ) -> dict[str, Any]:
        if key is not None and key in self._keys and workflow.patched(KEYED_SIGNALS_PATCH):
            return self._replay_key(Signal(name, Actor.parse(actor), dict(data), key))
        self._numbered += 1
        number = self._numbered
        self._queue.append(_Pending(number, Signal(name, Actor.parse(actor), dict(data), key)))
        await workflow.wait_condition(lambda: number in self._outcomes)
        if self._over_threshold():
            # The run continues as new right after this answer; let it go out with the
            # continuation (see the loop), not before it.
            await workflow.wait_condition(self._all_delivered)
        outcome = self._outcomes.pop(number)
        if outcome.rejection is not None:
            code, reason = outcome.rejection
            raise ApplicationError(reason, type=code, non_retryable=True)
        assert self._case is not None
        return {"case": self._case.to_json(), "record": outcome.record}

    @workflow.update
    async def migrate_case(
        self, model_json: str, actor: str, states: dict[str, str]
    ) -> dict[str, Any]:
        """Move the case onto the model ``model_json`` (``engine.runtime.contract.MigrateCommand``),
        decided in turn with the signals, like one."""
        target = _model_from(model_json)
        assert self._case is not None and self._model is not None
        applied = {k: v for k, v in states.items() if k == self._case.state}
        event = Migrated(self._case.model_hash, target.hash, Actor.parse(actor), applied)
        self._numbered += 1
        number = self._numbered
        self._queue.append(_Pending(number, event, target))
        await workflow.wait_condition(lambda: number in self._outcomes)
        outcome = self._outcomes.pop(number)
        if outcome.rejection is not None:
            code, reason = outcome.rejection
            raise ApplicationError(reason, type=code, non_retryable=True)
        assert self._case is not None
        return {"case": self._case.to_json(), "record": outcome.record}

    def _replay_key(self, signal: Signal) -> dict[str, Any]:
        """A keyed signal seen before: its first outcome again, or ``key_reused`` for another
        request under the same key (as every runtime answers, ``engine.runtime.contract``)."""
        assert self._case is not None and signal.key is not None
        fingerprint, seq = self._keys[signal.key]
        if fingerprint != request_fingerprint(SignalCommand(self._case.id, signal)):
            raise ApplicationError(
                f"idempotency key {signal.key!r} was already used for a different request",
                type="key_reused",
                non_retryable=True,
            )
        record = next((r for r in self._history if r["seq"] == seq), None)
        return {"case": self._case.to_json(), "record": record, "seq": seq, "replayed": True}

    @signal_case.validator
    def _validate_signal(
        self, name: str, actor: str, data: dict[str, Any], key: str | None = None
    ) -> None:
        if self._model is None or self._case is None:
            raise ApplicationError(
                "the case has not started", type="not_started", non_retryable=True
            )
        if key is not None and key in self._keys:
            return  # answered from the keys (``signal_case``), not decided again
        try:
            signal = Signal(name, Actor.parse(actor), dict(data), key)
        except Exception as exc:  # LaporError for a malformed actor
            raise ApplicationError(str(exc), type="invalid_actor", non_retryable=True) from None
        decision = decide(self._model, self._case, signal, self._now())
        if decision.rejection is not None:
            raise ApplicationError(
                decision.rejection.reason, type=decision.rejection.code, non_retryable=True
            )

    @workflow.query
    def status(self) -> dict[str, Any] | None:
        """The case as JSON (never the reporter), or ``None`` before/without a start."""
        return None if self._case is None else self._case.to_json()

    @workflow.query
    def history(self) -> list[dict[str, Any]]:
        return list(self._history)

    @workflow.query
    def start_request(self) -> dict[str, Any]:
        """The start's key and request fingerprint, and the sealed reporter identity: what a
        retried keyed start is compared with, and what reporter-facing calls open."""
        return {
            "key": self._params.key,
            "fingerprint": self._params.fingerprint,
            "reporter_sealed": self._params.reporter_sealed,
        }

    @workflow.query
    def model(self) -> str:
        """The pinned model (``Model.to_data()`` as JSON)."""
        return self._model_json

    @workflow.query
    def deliveries(self) -> dict[str, int]:
        """Messages of this run's deliveries: finished, given up, still running."""
        running = sum(len(b.effects) for b, t in self._deliveries if not t.done())
        done = sum(
            len(b.effects)
            for b, t in self._deliveries
            if t.done() and not t.cancelled() and t.exception() is None
        )
        failed = sum(
            len(b.effects)
            for b, t in self._deliveries
            if t.done() and (t.cancelled() or t.exception() is not None)
        )
        return {
            "delivered": self._delivered + done,
            "gave_up": self._undelivered + failed,
            "pending": running,
        }


def _model_from(model_json: str) -> Model:
    try:
        return Model.from_data(json.loads(model_json))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LaporError(f"the case's model is malformed: {type(exc).__name__}: {exc}") from None
