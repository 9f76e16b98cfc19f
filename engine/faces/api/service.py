"""What every route reaches: the runtime, the key store, the case list, the definitions.

Routes run in the server's worker threads. A runtime object keeps per-instance caches that are
not meant to be shared between threads (the embedded runtime's decoded cases), so each thread
gets its own from ``runtime_factory``; they share what the factory shares (one SQLAlchemy engine
and its connection pool). All of them are closed when the app shuts down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Request

from engine.domain.model import Model
from engine.faces.api.guards import RateLimiter
from engine.runtime.clock import Clock, WallClock
from engine.runtime.contract import Runtime
from engine.runtime.identity import KeyRing
from engine.sql.apikeys import ApiKeyStore
from engine.sql.caselist import CaseFilter, CaseSummary
from engine.sql.subscriptions import SubscriptionStore

__all__ = ["CaseLister", "Service", "service"]

CaseLister = Callable[[CaseFilter, datetime, int, int], list[CaseSummary]]
"""``(filter, now, offset, limit)`` -> a page of cases (the embedded store's query)."""


@dataclass
class Service:
    """The app's dependencies. ``case_lister`` is ``None`` on a runtime without a case index
    (Temporal): the list endpoint then answers 501. ``keyring`` checks reporter tokens on
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
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _made: list[Runtime] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def runtime(self) -> Runtime:
        """This thread's runtime, made on first use."""
        found: Runtime | None = getattr(self._local, "runtime", None)
        if found is None:
            found = self.runtime_factory()
            self._local.runtime = found
            with self._lock:
                self._made.append(found)
        return found

    def close(self) -> None:
        """Close every runtime made (at shutdown)."""
        with self._lock:
            made, self._made = self._made, []
        for runtime in made:
            runtime.close()


def service(request: Request) -> Service:
    """The app's ``Service`` (a FastAPI dependency)."""
    found: Service = request.app.state.service
    return found
