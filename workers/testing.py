"""The Temporal runtime on the time-skipping test server, for tests and policy scenarios.

``TimeSkippingHarness`` owns an event loop thread and a Java time-skipping test server
(``workers.servers.start_time_skipping``); each runtime it builds is the production
``TemporalRuntime`` with a worker of its own on a fresh task queue, so 60-day SLAs take seconds:

    with TimeSkippingHarness() as harness:
        run_scenario(path, harness.factory, models)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from engine.domain.model import Model
from engine.runtime.delivery import DeliveryHandler
from engine.runtime.handlers import LogHandler
from engine.runtime.identity import KeyRing
from workers import servers
from workers.runtime import LoopThread, TemporalRuntime
from workers.worker import case_worker

__all__ = ["TimeSkippingHarness"]

T = TypeVar("T")


class TimeSkippingHarness:
    """A loop thread plus a running time-skipping test server; builds runtimes on it."""

    def __init__(
        self, *, handlers: Sequence[DeliveryHandler] | None = None, keyring: KeyRing | None = None
    ) -> None:
        # By default effects are logged, as ``lapor worker`` does without --handler: a worker
        # with no handler retries every delivery, and on this server each retry's backoff
        # skips time, moving every case's clock with it.
        self.handlers = [LogHandler()] if handlers is None else list(handlers)
        # Identities in scenarios are sealed under a key that lives as long as the harness.
        self.keyring = keyring or KeyRing.generate("harness")
        self._loop: LoopThread | None = None
        self._cm: Any = None
        self.env: WorkflowEnvironment | None = None
        self._workers: list[tuple[Worker, asyncio.Task[None]]] = []
        self.last_runtime: TemporalRuntime | None = None

    def __enter__(self) -> TimeSkippingHarness:
        self._loop = LoopThread()
        self._cm = servers.start_time_skipping()
        self.env = self._loop.run(self._cm.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        try:
            self._loop.run(self._stop_workers())
            self._loop.run(self._cm.__aexit__(None, None, None))
        finally:
            self._loop.close()

    def factory(
        self,
        models: Mapping[str, Model],
        start: datetime,
        *,
        handlers: Sequence[DeliveryHandler] | None = None,
        **options: Any,
    ) -> TemporalRuntime:
        """``runtime_factory`` for ``engine.apps.scenarios.run_scenario``: a runtime with a worker
        of its own, delivering through ``handlers`` (default: the harness's); ``options`` reach
        the runtime (``continue_after``, ``history_keep``). Case time starts at each start's
        ``at``, as on every virtual-clock runtime."""
        assert self.env is not None and self._loop is not None
        task_queue = f"lapor-cases-{uuid.uuid4()}"
        chosen = self.handlers if handlers is None else list(handlers)
        self._loop.run(self._start_worker(task_queue, chosen))
        options.setdefault("keyring", self.keyring)
        runtime = TemporalRuntime(
            self.env.client,
            self._loop,
            task_queue=task_queue,
            models=models,
            time_skipping=self.env,
            **options,
        )
        self.last_runtime = runtime
        return runtime

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the harness's event loop (where the client lives)."""
        assert self._loop is not None
        return self._loop.run(coro)

    async def _start_worker(self, task_queue: str, handlers: Sequence[DeliveryHandler]) -> None:
        # A Worker must be built inside the event loop that runs it.
        assert self.env is not None
        worker = case_worker(self.env.client, task_queue, handlers=handlers)
        task = asyncio.get_running_loop().create_task(worker.run())
        self._workers.append((worker, task))
        await asyncio.sleep(0)

    async def _stop_workers(self) -> None:
        for worker, task in self._workers:
            await worker.shutdown()
            await task
        self._workers.clear()
