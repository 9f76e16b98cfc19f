"""The Python SDK over HTTP: ``HttpClient`` and ``AsyncHttpClient`` call a ``lapor serve``
service API (``/v1``) as ``Client`` calls a runtime in-process.

    from engine.faces.sdk_http import HttpClient

    with HttpClient("http://127.0.0.1:8000", api_key) as api:     # a channel's key
        started = api.start("sp4n-lapor", {"category": "kesehatan", "region": "ID-JK",
                                           "channel": "web", "description": "..."},
                            reporter={"name": "Siti", "phone": "0812..."})
        api.track(started.tracking_number, started.reporter_token).next_step
        api.signal(started.case_id, "confirm", {"rating": 5},
                   reporter_token=started.reporter_token)       # as the reporter

The actor of every call is the API key's role (an agency key acts as that agency and sees only
its cases), not an argument. Answers are frozen dataclasses (``engine.faces.sdk_http_models``);
refusals raise typed errors under the engine's own classes (``engine.faces.sdk_http_errors``:
a missing case is an ``UnknownCaseError``, a refused signal a ``Rejected`` with the core's code).

Retries are safe: ``start`` and ``signal`` always send an ``Idempotency-Key`` (drawn with
``secrets`` when the caller gives none, and kept for every retry of that call), so a retry
after a dropped connection, a timeout, a 5xx or a 429 answers the case the first attempt
opened instead of opening a second. Retries back off exponentially and wait as long as a
``Retry-After`` says (up to ``max_retry_after``). Neither the API key nor a reporter token is
ever logged, shown in a ``repr`` or put in an error message.

The module imports httpx and the engine's error classes only: no FastAPI, no SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx

from engine.faces.sdk_http_calls import (
    Call,
    ClientBase,
    case_call,
    list_call,
    new_idempotency_key,
    signal_call,
    start_call,
    track_call,
)
from engine.faces.sdk_http_errors import (
    ApiError,
    CaseNotFound,
    Forbidden,
    IdempotencyKeyReused,
    IdentityErased,
    IdentityForbidden,
    InvalidRequest,
    RateLimited,
    Rejected,
    ServiceUnavailable,
    Unauthorized,
    UnknownWorkflow,
)
from engine.faces.sdk_http_models import (
    CaseList,
    CaseStatus,
    CaseSummary,
    Health,
    HistoryEntry,
    Identity,
    SignalResult,
    StartedCase,
    Tracking,
    Workflow,
)

# The clients, and (re-exported) their answers and errors.
__all__ = [
    "ApiError",
    "AsyncHttpClient",
    "CaseList",
    "CaseNotFound",
    "CaseStatus",
    "CaseSummary",
    "Forbidden",
    "Health",
    "HistoryEntry",
    "HttpClient",
    "IdempotencyKeyReused",
    "Identity",
    "IdentityErased",
    "IdentityForbidden",
    "InvalidRequest",
    "RateLimited",
    "Rejected",
    "ServiceUnavailable",
    "SignalResult",
    "StartedCase",
    "Tracking",
    "Unauthorized",
    "UnknownWorkflow",
    "Workflow",
    "new_idempotency_key",
]


class HttpClient(ClientBase):
    """The service API over HTTP, blocking. ``api_key`` is a key from ``lapor keys create``
    (None: only ``track``, ``health`` and ``ready``); ``timeout`` is per attempt, in seconds;
    ``retries`` how many times a failed attempt is repeated (connection errors, timeouts,
    429 and 5xx answers), waiting ``backoff`` × 2ⁿ seconds or what ``Retry-After`` asks."""

    _http: httpx.Client

    def _open(self) -> None:
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, request: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    request.method,
                    request.path,
                    params=request.params,
                    json=request.json,
                    headers=self._headers(request),
                )
            except httpx.TransportError as error:
                delay = self._delay(attempt, None)
                if delay is None:
                    raise self._unreachable(request, error) from error
                self._retrying(request, attempt, type(error).__name__, delay)
            else:
                delay = self._delay(attempt, response)
                if delay is None:
                    return self._answer(request, response)
                self._retrying(request, attempt, f"HTTP {response.status_code}", delay)
                response.close()
            time.sleep(delay)
            attempt += 1

    def start(
        self,
        workflow: str,
        data: Mapping[str, Any],
        *,
        reporter: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> StartedCase:
        """File a complaint (``POST /v1/complaints``): its tracking number and reporter token.
        A retry with the same ``idempotency_key`` answers the same case (``replayed``)."""
        return StartedCase.from_json(
            self._send(start_call(workflow, data, reporter, idempotency_key))
        )

    def signal(
        self,
        case_id: str,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        reporter_token: str | None = None,
        idempotency_key: str | None = None,
    ) -> SignalResult:
        """Send signal ``name`` as the key's role; with ``reporter_token`` (a channel's key)
        as the case's reporter. A refusal raises ``Rejected`` with the core's code."""
        return SignalResult.from_json(
            self._send(signal_call(case_id, name, data, reporter_token, idempotency_key))
        )

    def status(self, case_id: str) -> CaseStatus:
        """The case as it stands (``GET /v1/complaints/{id}``)."""
        return CaseStatus.from_json(self._send(case_call(case_id)))

    def history(self, case_id: str) -> builtins.list[HistoryEntry]:
        """Every recorded decision of the case, oldest first."""
        return [HistoryEntry.from_json(e) for e in self._send(case_call(case_id, "/history"))]

    def identity(self, case_id: str) -> Identity:
        """The reporter's identity (Admin Nasional's key only: ``IdentityForbidden`` else)."""
        return Identity.from_json(self._send(case_call(case_id, "/identity")))

    def list(
        self,
        *,
        status: str | None = None,
        agency: str | None = None,
        region: str | None = None,
        overdue: bool | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> CaseList:
        """One page of cases, newest first (an agency key: its own cases only)."""
        request = list_call(status, agency, region, overdue, page, page_size)
        return CaseList.from_json(self._send(request))

    def iter_cases(
        self,
        *,
        status: str | None = None,
        agency: str | None = None,
        region: str | None = None,
        overdue: bool | None = None,
        page_size: int = 100,
    ) -> Iterator[CaseSummary]:
        """Every case of the list, page after page, each once (a case filed meanwhile shifts
        the pages; one seen already is not yielded again)."""
        seen: set[str] = set()
        page: int | None = 1
        while page is not None:
            listed = self.list(
                status=status,
                agency=agency,
                region=region,
                overdue=overdue,
                page=page,
                page_size=page_size,
            )
            for item in listed.items:
                if item.case_id not in seen:
                    seen.add(item.case_id)
                    yield item
            page = listed.next_page

    def workflows(self) -> builtins.list[Workflow]:
        """The workflows cases start under, with their intake fields and signals."""
        return [Workflow.from_json(w) for w in self._send(Call("GET", "/v1/workflows"))]

    def track(self, tracking: str, reporter_token: str | None = None) -> Tracking:
        """The reporter's page (no key sent); a confidential report needs its token."""
        return Tracking.from_json(self._send(track_call(tracking, reporter_token)))

    def health(self) -> Health:
        return Health.from_json(self._send(Call("GET", "/healthz", authenticated=False)))

    def ready(self) -> Health:
        """Whether the database answers with the newest schema (``ServiceUnavailable`` if
        not, after the retries)."""
        return Health.from_json(self._send(Call("GET", "/readyz", authenticated=False)))


class AsyncHttpClient(ClientBase):
    """``HttpClient`` for asyncio: the same methods, awaited; ``iter_cases`` is an async
    iterator."""

    _http: httpx.AsyncClient

    def _open(self) -> None:
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout)

    async def __aenter__(self) -> AsyncHttpClient:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, request: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    request.method,
                    request.path,
                    params=request.params,
                    json=request.json,
                    headers=self._headers(request),
                )
            except httpx.TransportError as error:
                delay = self._delay(attempt, None)
                if delay is None:
                    raise self._unreachable(request, error) from error
                self._retrying(request, attempt, type(error).__name__, delay)
            else:
                delay = self._delay(attempt, response)
                if delay is None:
                    return self._answer(request, response)
                self._retrying(request, attempt, f"HTTP {response.status_code}", delay)
                await response.aclose()
            await asyncio.sleep(delay)
            attempt += 1

    async def start(
        self,
        workflow: str,
        data: Mapping[str, Any],
        *,
        reporter: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> StartedCase:
        """See ``HttpClient.start``."""
        body = await self._send(start_call(workflow, data, reporter, idempotency_key))
        return StartedCase.from_json(body)

    async def signal(
        self,
        case_id: str,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        reporter_token: str | None = None,
        idempotency_key: str | None = None,
    ) -> SignalResult:
        """See ``HttpClient.signal``."""
        body = await self._send(signal_call(case_id, name, data, reporter_token, idempotency_key))
        return SignalResult.from_json(body)

    async def status(self, case_id: str) -> CaseStatus:
        return CaseStatus.from_json(await self._send(case_call(case_id)))

    async def history(self, case_id: str) -> builtins.list[HistoryEntry]:
        return [HistoryEntry.from_json(e) for e in await self._send(case_call(case_id, "/history"))]

    async def identity(self, case_id: str) -> Identity:
        return Identity.from_json(await self._send(case_call(case_id, "/identity")))

    async def list(
        self,
        *,
        status: str | None = None,
        agency: str | None = None,
        region: str | None = None,
        overdue: bool | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> CaseList:
        request = list_call(status, agency, region, overdue, page, page_size)
        return CaseList.from_json(await self._send(request))

    async def iter_cases(
        self,
        *,
        status: str | None = None,
        agency: str | None = None,
        region: str | None = None,
        overdue: bool | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[CaseSummary]:
        """See ``HttpClient.iter_cases``."""
        seen: set[str] = set()
        page: int | None = 1
        while page is not None:
            listed = await self.list(
                status=status,
                agency=agency,
                region=region,
                overdue=overdue,
                page=page,
                page_size=page_size,
            )
            for item in listed.items:
                if item.case_id not in seen:
                    seen.add(item.case_id)
                    yield item
            page = listed.next_page

    async def workflows(self) -> builtins.list[Workflow]:
        body = await self._send(Call("GET", "/v1/workflows"))
        return [Workflow.from_json(w) for w in body]

    async def track(self, tracking: str, reporter_token: str | None = None) -> Tracking:
        return Tracking.from_json(await self._send(track_call(tracking, reporter_token)))

    async def health(self) -> Health:
        body = await self._send(Call("GET", "/healthz", authenticated=False))
        return Health.from_json(body)

    async def ready(self) -> Health:
        body = await self._send(Call("GET", "/readyz", authenticated=False))
        return Health.from_json(body)
