"""What ``HttpClient`` and ``AsyncHttpClient`` share: the request each method sends, the retry
policy, and how an answer becomes a result or a typed error. Internal to ``engine.faces.sdk_http``;
the two clients differ only in how they wait (``time.sleep`` or ``asyncio.sleep``).
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from engine.faces.sdk_http_errors import ServiceUnavailable, problem_error

__all__ = [
    "Call",
    "ClientBase",
    "case_call",
    "list_call",
    "new_idempotency_key",
    "signal_call",
    "start_call",
    "track_call",
]

log = logging.getLogger("engine.faces.sdk_http")  # the clients' module: one logger to configure

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_BACKOFF = 10.0


def new_idempotency_key() -> str:
    """A fresh ``Idempotency-Key``: 32 URL-safe characters from ``secrets``."""
    return secrets.token_urlsafe(24)


def _segment(value: str) -> str:
    """``value`` as one path segment: a case id never reaches another route (``..``, ``/``)."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if set(quoted) == {"."} else quoted


@dataclass(frozen=True, slots=True)
class Call:
    """One API call, as both clients send it; ``case_id``/``key``/``workflow`` name what it
    is about, for the errors' attributes."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    authenticated: bool = True
    case_id: str | None = None
    key: str | None = None
    workflow: str | None = None


def start_call(
    workflow: str,
    data: Mapping[str, Any],
    reporter: Mapping[str, Any] | None,
    key: str | None,
) -> Call:
    key = key or new_idempotency_key()
    body: dict[str, Any] = {"workflow": workflow, "data": dict(data)}
    if reporter is not None:
        body["reporter"] = dict(reporter)
    return Call(
        "POST",
        "/v1/complaints",
        json=body,
        headers={"Idempotency-Key": key},
        key=key,
        workflow=workflow,
    )


def signal_call(
    case_id: str,
    name: str,
    data: Mapping[str, Any] | None,
    reporter_token: str | None,
    key: str | None,
) -> Call:
    key = key or new_idempotency_key()
    headers = {"Idempotency-Key": key}
    if reporter_token is not None:
        headers["Reporter-Token"] = reporter_token
    return Call(
        "POST",
        f"/v1/complaints/{_segment(case_id)}/signals/{_segment(name)}",
        json={"data": dict(data or {})},
        headers=headers,
        case_id=case_id,
        key=key,
    )


def case_call(case_id: str, tail: str = "") -> Call:
    return Call("GET", f"/v1/complaints/{_segment(case_id)}{tail}", case_id=case_id)


def list_call(
    status: str | None,
    agency: str | None,
    region: str | None,
    overdue: bool | None,
    page: int,
    page_size: int,
) -> Call:
    params: dict[str, str | int] = {"page": page, "page_size": page_size}
    for name, value in (("status", status), ("agency", agency), ("region", region)):
        if value is not None:
            params[name] = value
    if overdue is not None:
        params["overdue"] = "true" if overdue else "false"
    return Call("GET", "/v1/complaints", params=params)


def track_call(tracking: str, reporter_token: str | None) -> Call:
    headers = {} if reporter_token is None else {"Reporter-Token": reporter_token}
    return Call(
        "GET",
        f"/v1/track/{_segment(tracking)}",
        headers=headers,
        authenticated=False,
        case_id=tracking,
    )


class ClientBase(ABC):
    """What both clients share: headers, the retry policy, reading an answer."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_retry_after: float = 60.0,
    ) -> None:
        if retries < 0 or backoff < 0 or max_retry_after < 0:
            raise ValueError("retries, backoff and max_retry_after must not be negative")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self._jitter = random.Random()  # spreads clients' retries apart; not a secret
        self._open()

    @abstractmethod
    def _open(self) -> None:
        """Make the client's transport (blocking or asyncio), once the settings are set."""

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}({self.base_url!r}, api_key=***)"

    def _headers(self, request: Call) -> dict[str, str]:
        headers = dict(request.headers)
        if request.authenticated and self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """How long to wait before retry ``attempt + 1``; None: do not retry."""
        if attempt >= self.retries:
            return None
        if response is not None:
            if response.status_code not in _RETRY_STATUSES:
                return None
            asked = _retry_after(response)
            if asked is not None:
                return asked if asked <= self.max_retry_after else None
        exponential = min(_MAX_BACKOFF, self.backoff * 2.0**attempt)
        return exponential * self._jitter.uniform(0.5, 1.0)

    def _retrying(self, request: Call, attempt: int, why: str, delay: float) -> None:
        log.info(
            "retrying %s %s after %s in %.2fs (retry %d of %d)",
            request.method,
            request.path,
            why,
            delay,
            attempt + 1,
            self.retries,
        )

    def _unreachable(self, request: Call, error: httpx.TransportError) -> ServiceUnavailable:
        # The exception's type only: its text may name the URL, never a header, but stay plain.
        detail = (
            f"{request.method} {request.path}: no answer from {self.base_url} after "
            f"{self.retries + 1} attempt(s) ({type(error).__name__})"
        )
        return ServiceUnavailable(0, "unreachable", "The service did not answer", detail)

    def _answer(self, request: Call, response: httpx.Response) -> Any:
        """The JSON body of a 2xx answer, or the typed error of any other."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and body is not None:
            return body
        raise problem_error(
            response.status_code,
            body,
            case_id=request.case_id,
            key=request.key,
            workflow=request.workflow,
            retry_after=_retry_after(response),
        )


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
