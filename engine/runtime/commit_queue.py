"""Group commit for concurrent callers: the commands of every caller waiting at a moment are
decided by one runtime in one ``execute``, committed in one transaction.

A served API receives its starts and signals one per request, from many threads at once. Each
in a transaction of its own costs one synchronous commit (an fsync on SQLite and PostgreSQL)
and, on SQLite, a turn at the database's single write lock, so writes queue behind each other's
fsyncs. Here they queue for one writer thread instead, which takes everything waiting when it
comes round, up to ``max_batch`` commands: at low load a batch is one command and costs one
thread hand-over; under load the batch grows with the queue and one fsync serves all of it
(the way PostgreSQL's WAL writer and group-commit databases amortise their flushes).

``execute`` already decides a list of commands in order and commits them together (the bulk
demo's path), so a batch changes nothing a caller can see: each gets the outcome its commands
would have had alone, in arrival order. A batch whose ``execute`` raises (a store error, a
command refused before deciding) is executed again one caller at a time, so one caller's
failure is never another's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.domain.case import Case
from engine.domain.model import Model
from engine.domain.records import HistoryRecord
from engine.runtime.contract import Command, Outcome, Runtime
from engine.runtime.delivery import DeliveryReport

__all__ = ["CommitQueue", "QueuedRuntime"]


@dataclass
class _Waiting:
    commands: list[Command]
    at: datetime | None
    answer: Future[list[Outcome]] = field(default_factory=Future)


class CommitQueue:
    """One writer thread and its runtime (from ``runtime_factory``, made in that thread), fed by
    every caller of ``execute``."""

    def __init__(self, runtime_factory: Callable[[], Runtime], max_batch: int = 128) -> None:
        self._factory = runtime_factory
        self._max_batch = max_batch
        self._waiting: deque[_Waiting] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._writer: threading.Thread | None = None

    def execute(self, commands: Sequence[Command], at: datetime | None = None) -> list[Outcome]:
        """Decide ``commands`` in order at ``at`` with whatever else is waiting; their
        outcomes (or the exception executing them alone raised)."""
        return self.submit(commands, at).result()

    def submit(
        self, commands: Sequence[Command], at: datetime | None = None
    ) -> Future[list[Outcome]]:
        """``execute`` without waiting: the future of the outcomes (``asyncio.wrap_future``
        awaits it on an event loop)."""
        waiting = _Waiting(list(commands), at)
        with self._ready:
            if self._closed:
                raise RuntimeError("the commit queue is closed")
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write, name="lapor-commit-queue", daemon=True
                )
                self._writer.start()
            self._waiting.append(waiting)
            self._ready.notify()
        return waiting.answer

    def close(self) -> None:
        """Finish what is waiting, then stop the writer and close its runtime."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            writer = self._writer
        if writer is not None:
            writer.join()

    def _next_batch(self) -> list[_Waiting] | None:
        """Everything waiting that can be decided at one ``at``, up to ``max_batch`` commands
        (at least one caller's); ``None`` once closed and drained."""
        with self._ready:
            while not self._waiting:
                if self._closed:
                    return None
                self._ready.wait()
            batch = [self._waiting.popleft()]
            size = len(batch[0].commands)
            while self._waiting and self._waiting[0].at == batch[0].at:
                if size + len(self._waiting[0].commands) > self._max_batch:
                    break
                size += len(self._waiting[0].commands)
                batch.append(self._waiting.popleft())
            return batch

    def _write(self) -> None:
        try:
            runtime = self._factory()
        except Exception as exc:  # e.g. the database unreachable: the waiting callers hear it
            self._fail_waiting(exc)
            return
        try:
            while (batch := self._next_batch()) is not None:
                # A caller that gave up meanwhile (the API's timeout cancels its future) is not
                # decided; the others' futures can no longer be cancelled, only answered.
                wanted = [w for w in batch if w.answer.set_running_or_notify_cancel()]
                if wanted:
                    self._decide(runtime, wanted)
        finally:
            runtime.close()

    def _fail_waiting(self, error: Exception) -> None:
        """Answer every waiting caller with ``error``; the next ``submit`` starts a writer."""
        with self._ready:
            waiting, self._waiting = list(self._waiting), deque()
            self._writer = None
        for each in waiting:
            if each.answer.set_running_or_notify_cancel():
                each.answer.set_exception(error)

    @staticmethod
    def _decide(runtime: Runtime, batch: list[_Waiting]) -> None:
        if len(batch) > 1:
            try:
                outcomes = runtime.execute([c for w in batch for c in w.commands], batch[0].at)
            except Exception:
                pass
            else:
                start = 0
                for waiting in batch:
                    end = start + len(waiting.commands)
                    waiting.answer.set_result(outcomes[start:end])
                    start = end
                return
        for waiting in batch:
            try:
                waiting.answer.set_result(runtime.execute(waiting.commands, waiting.at))
            except BaseException as exc:
                waiting.answer.set_exception(exc)


class QueuedRuntime(Runtime):
    """A runtime whose decisions (``execute``, hence ``start``, ``signal``, ``migrate``) go
    through a ``CommitQueue``; everything else is ``reads``' own."""

    def __init__(self, reads: Runtime, queue: CommitQueue) -> None:
        self.reads = reads
        self.queue = queue

    def execute(self, commands: Sequence[Command], at: datetime | None = None) -> list[Outcome]:
        return self.queue.execute(commands, at)

    def register(self, models: Mapping[str, Model]) -> None:
        self.reads.register(models)

    def case(self, case_id: str) -> Case:
        return self.reads.case(case_id)

    def model_of(self, case_id: str) -> Model:
        return self.reads.model_of(case_id)

    def history(self, case_id: str) -> list[HistoryRecord]:
        return self.reads.history(case_id)

    def reporter(self, case_id: str) -> Mapping[str, Any] | None:
        return self.reads.reporter(case_id)

    def erase_reporter(self, case_id: str, at: datetime | None = None) -> bool:
        return self.reads.erase_reporter(case_id, at)

    def advance_to(self, moment: datetime) -> None:
        self.reads.advance_to(moment)

    def fire_due(self, now: datetime, limit: int = 1000) -> int:
        return self.reads.fire_due(now, limit)

    def deliver(self, now: datetime | None = None) -> DeliveryReport:
        return self.reads.deliver(now)

    def close(self) -> None:
        self.reads.close()
