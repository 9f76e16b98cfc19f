"""``create_app``: the FastAPI application over a runtime, with its guards and error mapping.

Every failure leaves as one problem detail (``engine.faces.api.problems``): the core's
rejections by their code, the runtimes' errors by kind, request validation as
``invalid_request``, and anything unexpected as a bare 500 ``internal`` whose log line names the
exception's type only (its message might quote a request), never a traceback with values.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import structlog
from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from starlette.exceptions import HTTPException

from engine.domain.errors import LaporError
from engine.domain.model import Model
from engine.faces.api import complaints, open311, public, subscriptions
from engine.faces.api.guards import (
    BodyLimit,
    Message,
    RateLimiter,
    Receive,
    RequestLog,
    Scope,
    Send,
    Timeout,
)
from engine.faces.api.open311_format import Open311Errors
from engine.faces.api.openapi import install_openapi
from engine.faces.api.problems import ApiProblem, problem_response, validation_problem
from engine.faces.api.service import CaseLister, Service
from engine.runtime import metrics
from engine.runtime.clock import Clock, WallClock
from engine.runtime.commit_queue import CommitQueue
from engine.runtime.contract import Runtime
from engine.runtime.errors import (
    IdentityAccessError,
    IdentityErasedError,
    RuntimeUnavailableError,
    StoreError,
    UnknownCaseError,
    UnknownWorkflowError,
)
from engine.runtime.identity import IdentityError, KeyRing
from engine.sql.apikeys import ApiKeyStore
from engine.sql.subscriptions import SubscriptionStore

__all__ = ["DEFAULT_BODY_LIMIT", "DEFAULT_RATE", "DEFAULT_TIMEOUT", "create_app"]

DEFAULT_RATE = "600/minute"
DEFAULT_BODY_LIMIT = 256 * 1024  # a complaint with a long description is a few KiB
DEFAULT_TIMEOUT = 30.0

log = structlog.get_logger("lapor.api")

WORKER_THREADS = 8

api_requests_total = Counter(
    "lapor_api_requests_total",
    "Requests to the service API, by method, route template and status.",
    ["method", "route", "status"],
    registry=metrics.registry,
)


def _observe(method: str, route: str, status: int) -> None:
    api_requests_total.labels(method=method, route=route, status=str(status)).inc()


def create_app(
    runtime_factory: Callable[[], Runtime],
    *,
    keys: ApiKeyStore,
    models: Mapping[str, Model],
    keyring: KeyRing | None = None,
    case_lister: CaseLister | None = None,
    ready: Callable[[], None] | None = None,
    clock: Clock | None = None,
    rate: str = DEFAULT_RATE,
    body_limit: int = DEFAULT_BODY_LIMIT,
    timeout: float = DEFAULT_TIMEOUT,
    group_commit: bool = False,
    inline_point_reads: bool = False,
) -> FastAPI:
    """The service API. ``runtime_factory`` makes a runtime (one per worker thread, see
    ``Service``) whose workflows are ``models``; ``keys`` authenticates callers;
    ``case_lister`` answers ``GET /v1/complaints`` (``None``: 501); ``ready`` raises when the
    backing stores cannot serve (``/readyz``); ``group_commit`` sends every decision through one
    ``CommitQueue`` (for a runtime whose ``execute`` commits a list of commands together);
    ``inline_point_reads`` reads one case on the event loop (``Service.point_read``)."""
    found = Service(
        runtime_factory=runtime_factory,
        keys=keys,
        models=models,
        limiter=RateLimiter(rate),
        keyring=keyring,
        case_lister=case_lister,
        clock=clock or WallClock(),
        ready=ready,
        # Beside the keys, in the same database; the key ring seals the webhook secrets.
        subscriptions=None if keyring is None else SubscriptionStore(keys.engine, keyring),
        commits=CommitQueue(runtime_factory) if group_commit else None,
        inline_point_reads=inline_point_reads,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Few worker threads: the routes' threads only read (decisions go to the commit
        # queue), and every extra thread contending for the GIL cost the server more than
        # it gained (futex storms under load: bench/api_load.py).
        to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        # What the app holds from here on (models, routes, the loaded code) is long-lived:
        # frozen out of the collector's scans, and young collections made rarer, they cost less
        # of each request (the routes allocate many short-lived objects).
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        yield
        found.close()

    app = FastAPI(
        title="lapor-sla service API",
        version="1",
        description="Complaints (SP4N-LAPOR!) for intake channels, agency systems and "
        "reporters. Errors are RFC 9457 problem details with a stable `type` per reason.",
        lifespan=lifespan,
    )
    app.state.service = found
    app.include_router(complaints.router)
    app.include_router(public.router)
    app.include_router(subscriptions.router)
    _install_handlers(app)
    install_openapi(app)
    open311.install(app)
    # Added innermost first: the log sees every answer, the guards' own included.
    app.add_middleware(BodyLimit, limit=body_limit)
    app.add_middleware(Timeout, seconds=timeout)
    app.add_middleware(_CatchAll)
    app.add_middleware(Open311Errors)  # /open311/ answers its spec's errors, not problems
    app.add_middleware(RequestLog, observe=_observe)
    return app


def _handler(
    status: int, code: str, detail: Callable[[Exception], str], headers: Mapping[str, str] = {}
) -> Callable[[Request, Exception], Any]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        problem = ApiProblem(status, code, detail(exc), headers=headers)
        return problem_response(problem, request.url.path)

    return handle


def _install_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(validation_problem(exc.errors()), request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        problem = ApiProblem(exc.status_code, code, str(exc.detail), headers=exc.headers)
        return problem_response(problem, request.url.path)

    def same(exc: Exception) -> str:
        return str(exc)

    def unavailable(_exc: Exception) -> str:
        # The driver's words may quote a statement and its values: the log has the kind.
        return "the database or the runtime server is unavailable; retry shortly"

    retry = {"Retry-After": "1"}
    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(UnknownCaseError, _handler(404, "unknown_case", same))
    app.add_exception_handler(UnknownWorkflowError, _handler(422, "unknown_workflow", same))
    app.add_exception_handler(IdentityAccessError, _handler(403, "identity_forbidden", same))
    app.add_exception_handler(IdentityErasedError, _handler(410, "identity_erased", same))
    app.add_exception_handler(
        IdentityError,
        _handler(
            503,
            "unavailable",
            lambda _e: "this server has no usable key ring for reporters' identities",
        ),
    )
    app.add_exception_handler(StoreError, _handler(503, "unavailable", unavailable, retry))
    app.add_exception_handler(
        RuntimeUnavailableError, _handler(503, "unavailable", unavailable, retry)
    )
    app.add_exception_handler(LaporError, _handler(422, "invalid_request", same))


class _CatchAll:
    """The last resort: an unexpected exception answers a bare 500 problem, and its log line
    names the type and the route; ``LAPOR_DEBUG=1`` adds the traceback (it may show values)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Any]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            log.error(
                "api.internal_error",
                error=type(exc).__name__,
                path=scope.get("path", ""),
                exc_info=bool(os.environ.get("LAPOR_DEBUG")),
            )
            if started:
                raise
            problem = ApiProblem(500, "internal", "an internal error; it has been logged")
            await problem_response(problem, scope.get("path"))(scope, receive, send)
