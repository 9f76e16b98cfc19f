"""What every route reaches: the runtime, the key store, the case list, the definitions.

Routes run in the server's worker threads. A runtime object keeps per-instance caches that are
not meant to be shared between threads (the embedded runtime's decoded cases), so each thread
gets its own from ``runtime_factory``; they share what the factory shares (one SQLAlchemy engine
and its connection pool). All of them are closed when the app shuts down.

With ``commits`` (the embedded runtime), every thread's decisions go through that one
``CommitQueue`` instead: concurrent requests' starts and signals share a transaction and its
commit (``engine.runtime.commit_queue``); reads stay on the thread's own runtime.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from engine.domain.model import Model
from engine.faces.api.guards import RateLimiter
from engine.runtime.clock import Clock, WallClock
from engine.runtime.commit_queue import CommitQueue, QueuedRuntime
from engine.runtime.contract import Command, Outcome, Runtime
from engine.runtime.identity import KeyRing
from engine.sql.apikeys import ApiKey, ApiKeyStore
from engine.sql.caselist import CaseFilter, CaseSummary
from engine.sql.subscriptions import SubscriptionStore

__all__ = ["KEY_CACHE_SECONDS", "CaseLister", "Service", "service"]

T = TypeVar("T")

KEY_CACHE_SECONDS = 1.0
"""How long a process trusts a key it found active without looking again: a revoked key is
refused everywhere within this time. Looking every key up on every request cost a database
read and a thread hand-over per request (``bench/api_load.py``)."""

CaseLister = Callable[[CaseFilter, datetime, int, int], list[CaseSummary]]
"""``(filter, now, offset, limit)`` -> a page of cases (the embedded store's query)."""


@dataclass
class Service:
    """The app's dependencies. ``case_lister`` pages through the cases (the embedded store's
    table, or Temporal's visibility); ``None`` only in the app that merely describes the API
    (``openapi_app``), where the list would answer 501. ``keyring`` checks reporter tokens on
    ``/v1/track`` (the runtime checks them on signals); ``subscriptions`` are the agencies'
    webhooks, their secrets sealed by it (``None`` without one: ``/v1/subscriptions`` is 503)."""

    runtime_factory: Callable[[], Runtime]
    keys: ApiKeyStore
    models: Mapping[str, Model]
    limiter: RateLimiter
    keyring: KeyRing | None = None
    case_lister: CaseLister | None = None
    clock: Clock = field(default_factory=WallClock)
    ready: Callable[[], None] | None = None
    subscriptions: SubscriptionStore | None = None
    commits: CommitQueue | None = None
    inline_point_reads: bool = False
    _recent_keys: dict[str, tuple[ApiKey, float]] = field(default_factory=dict, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _made: list[Runtime] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def runtime(self) -> Runtime:
        """This thread's runtime, made on first use."""
        found: Runtime | None = getattr(self._local, "runtime", None)
        if found is None:
            found = self.runtime_factory()
            with self._lock:
                self._made.append(found)
            if self.commits is not None:
                found = QueuedRuntime(found, self.commits)
            self._local.runtime = found
        return found

    async def on_thread(self, work: Callable[[Runtime], T]) -> T:
        """``work`` with this thread's runtime, on a worker thread (the runtimes block on their
        database), awaited."""
        return await run_in_threadpool(lambda: work(self.runtime()))

    async def point_read(self, work: Callable[[Runtime], T]) -> T:
        """``work``, a read of one case by its key, on the event loop itself when
        ``inline_point_reads`` (an SQLite file: a read of a page or two, no network, is cheaper
        than the thread hand-over and its fight for the GIL); on a worker thread otherwise."""
        if self.inline_point_reads:
            return work(self.runtime())
        return await self.on_thread(work)

    async def decide(self, command: Command) -> Outcome:
        """``command`` decided and committed: through the commit queue when there is one (no
        worker thread of its own), else on a worker thread."""
        if self.commits is not None:
            return (await asyncio.wrap_future(self.commits.submit([command])))[0]
        return await self.on_thread(lambda runtime: runtime.execute([command])[0])

    async def authenticate(self, plain: str) -> ApiKey | None:
        """The active key ``plain`` is, or ``None``; a key found active is trusted for
        ``KEY_CACHE_SECONDS`` (unknown keys are looked up every time: a key just made works
        at once)."""
        now = time.monotonic()
        known = self._recent_keys.get(plain)
        if known is not None and known[1] > now:
            return known[0]
        key = await run_in_threadpool(self.keys.authenticate, plain)
        if key is None:
            self._recent_keys.pop(plain, None)
            return None
        if len(self._recent_keys) >= 10_000:  # many keys in turn: forget all rather than grow
            self._recent_keys.clear()
        self._recent_keys[plain] = (key, now + KEY_CACHE_SECONDS)
        return key

    def close(self) -> None:
        """Close every runtime made (at shutdown), the commit queue's first: what waits in it
        is decided and committed before its runtime closes."""
        if self.commits is not None:
            self.commits.close()
        with self._lock:
            made, self._made = self._made, []
        for runtime in made:
            runtime.close()


async def service(request: Request) -> Service:
    """The app's ``Service`` (a FastAPI dependency)."""
    found: Service = request.app.state.service
    return found
