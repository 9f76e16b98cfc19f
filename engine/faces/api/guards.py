"""What stands between the network and the routes: a body size limit, a request timeout, rate
limits per key, and a request log that holds no secret.

Pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: the body limit must see the
bytes before any parser does, and the timeout must answer while the route still runs.

The request log names the method, the path without its query string (uvicorn's access log, which
is switched off, prints query strings), the status, the duration and the key's id: never a
header (``Authorization``, ``Reporter-Token``), a body or an identity.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from limits import RateLimitItem, parse

from engine.domain.errors import LaporError
from engine.faces.api.problems import ApiProblem, problem_response

__all__ = ["BodyLimit", "RateLimiter", "RequestLog", "Timeout"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger("lapor.api")


async def _answer(scope: Scope, send: Send, problem: ApiProblem) -> None:
    response = problem_response(problem, scope.get("path"))
    await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class BodyLimit:
    """Refuse a request body over ``limit`` bytes with a 413, before the route reads it.

    The body is read here whole (the API's bodies are small JSON documents) and handed on from
    memory, so a chunked upload without ``Content-Length`` is bounded as well."""

    def __init__(self, app: App, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = ApiProblem(
            413, "payload_too_large", f"the request body is limited to {self.limit} bytes"
        )
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _answer(scope, send, too_large)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _answer(scope, send, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: wait for the disconnect
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class Timeout:
    """Answer 504 when a request has not started its response within ``seconds``.

    A route already running in a worker thread cannot be stopped and may still commit; every
    write of the API is safe to retry with its ``Idempotency-Key``, which is what a client does
    after a 504."""

    def __init__(self, app: App, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        timed_out = False

        async def guarded(message: Message) -> None:
            nonlocal started
            if timed_out:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            # A deadline on this task, not wait_for's task per request (its creation and
            # scheduling cost more than many routes).
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, guarded)
        except TimeoutError:
            if started:
                raise
            timed_out = True
            detail = f"no answer within {self.seconds:g} s; retry with the same Idempotency-Key"
            await _answer(scope, send, ApiProblem(504, "timeout", detail))


class RequestLog:
    """One structured log line per request, and the request counter of ``/metrics``."""

    def __init__(self, app: App, observe: Callable[[str, str, int], None]) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.observe(scope["method"], template, status)
            state = scope.get("state") or {}
            log.info(
                "api.request",
                method=scope["method"],
                path=scope.get("path", ""),
                status=status,
                ms=round((time.perf_counter() - began) * 1000, 1),
                key_id=state.get("key_id"),
            )


class RateLimiter:
    """A moving-window limit per caller, in this process's memory: each key, and each client
    address for calls without a key. With ``lapor serve --workers N`` every worker process
    counts on its own, so a caller gets up to N times the limit.

    The rate is parsed by ``limits``; the window is counted here (a deque of instants per caller
    under one lock), the same moving window as ``limits``' ``MovingWindowRateLimiter``. Its
    ``MemoryStorage`` starts a timer thread to expire entries whenever the last one has ended,
    and the request that starts it waits for the thread to run: under load that was a new
    thread every 10 ms and about a millisecond of every request (``bench/api_load.py``)."""

    def __init__(self, rate: str) -> None:
        try:
            self.item: RateLimitItem = parse(rate)
        except ValueError:
            raise LaporError(
                f"invalid rate limit {rate!r}; expected e.g. '600/minute' or '20/second'"
            ) from None
        self._amount = self.item.amount
        self._window = float(self.item.get_expiry())
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def hit(self, kind: str, who: str) -> None:
        """Count one request of ``who``; a 429 with ``Retry-After`` once over the limit."""
        now = time.monotonic()
        with self._lock:
            if now >= self._next_sweep:  # forget callers silent for a whole window
                self._sweep(now)
            hits = self._hits.setdefault((kind, who), deque())
            while hits and hits[0] <= now - self._window:
                hits.popleft()
            if len(hits) < self._amount:
                hits.append(now)
                return
            wait = max(1, int(hits[0] + self._window - now + 0.999))
        raise ApiProblem(
            429,
            "rate_limited",
            f"at most {self._amount} requests per {self.item.get_expiry()} s per caller; "
            f"retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )

    def _sweep(self, now: float) -> None:
        gone = [
            who for who, hits in self._hits.items() if not hits or hits[-1] <= now - self._window
        ]
        for who in gone:
            del self._hits[who]
        self._next_sweep = now + self._window
