"""The errors of ``HttpClient``: each RFC 9457 problem detail of the service API as a typed
exception, under the engine's own error classes.

A program written against ``Client`` keeps working over HTTP: a case that does not exist (or
that an agency key may not see) is still an ``UnknownCaseError``, a reused idempotency key still
a ``KeyReuseError``, an unreachable service still a ``RuntimeUnavailableError``. Every one
carries the problem's ``status``, ``type``, ``code``, ``title`` and ``detail``; branch on
``code`` (or the class), never on the words of ``detail``.

No error carries the API key or a reporter token: the server's details never quote them, and
the client builds its own messages from the method, path and status alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args, get_type_hints

from engine.domain.errors import LaporError
from engine.domain.events import Rejection
from engine.runtime.errors import (
    IdentityAccessError,
    IdentityErasedError,
    KeyReuseError,
    RuntimeUnavailableError,
    UnknownCaseError,
    UnknownWorkflowError,
)

__all__ = [
    "CORE_REJECTION_CODES",
    "ApiError",
    "CaseNotFound",
    "Forbidden",
    "IdempotencyKeyReused",
    "IdentityErased",
    "IdentityForbidden",
    "InvalidRequest",
    "RateLimited",
    "Rejected",
    "ServiceUnavailable",
    "Unauthorized",
    "UnknownWorkflow",
    "problem_error",
]

CORE_REJECTION_CODES: frozenset[str] = frozenset(get_args(get_type_hints(Rejection)["code"]))
"""The rejection codes of the core (``engine.domain.events.Rejection``)."""

_PROBLEM_BASE = "https://lapor-sla.dev/problems/"


class ApiError(LaporError):
    """A refusal of the service API (a problem detail), or an answer that was not one."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        type: str | None = None,
        instance: str | None = None,
        invalid_params: tuple[Mapping[str, Any], ...] = (),
        retry_after: float | None = None,
    ) -> None:
        # Not the engine classes' own constructors: their messages are built from fields a
        # problem detail does not carry; the server's detail is the message.
        LaporError.__init__(self, f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.type = type or _PROBLEM_BASE + code
        self.instance = instance
        self.invalid_params = invalid_params
        self.retry_after = retry_after


class Rejected(ApiError):
    """The workflow refused the start or signal; ``code`` is the core's rejection code
    (``wrong_state``, ``wrong_role``, ``missing_field``...), as ``Outcome.code`` is."""


class CaseNotFound(ApiError, UnknownCaseError):
    """No such case, or one the key may not see (an agency key and another agency's case:
    the API answers both alike)."""

    case_id: str = ""


class IdempotencyKeyReused(ApiError, KeyReuseError):
    """The Idempotency-Key was already used for a different request (422 ``key_reuse``)."""

    key: str = ""
    case_id: str = ""


class UnknownWorkflow(ApiError, UnknownWorkflowError):
    """The start named a workflow the service has no definition of."""

    workflow: str = ""


class IdentityForbidden(ApiError, IdentityAccessError):
    """The key's role may not read reporters' identities (only Admin Nasional may)."""

    case_id: str = ""


class IdentityErased(ApiError, IdentityErasedError):
    """The reporter's identity was erased; nobody can read it any more (410)."""

    case_id: str = ""


class Unauthorized(ApiError):
    """No API key, or an unknown or revoked one (401)."""


class Forbidden(ApiError):
    """The key's role may not use this endpoint (403 ``forbidden``)."""


class InvalidRequest(ApiError):
    """The request itself was malformed (422 ``invalid_request``); ``invalid_params`` says
    where."""


class RateLimited(ApiError):
    """Too many requests, still after the client's retries; ``retry_after`` in seconds."""


class ServiceUnavailable(ApiError, RuntimeUnavailableError):
    """The service answered 5xx through every retry, or did not answer at all (``status`` 0,
    ``code`` ``unreachable``: refused connections, timeouts, dropped connections)."""


_BY_CODE: Mapping[str, type[ApiError]] = {
    "unknown_case": CaseNotFound,
    "not_started": CaseNotFound,
    "key_reuse": IdempotencyKeyReused,
    "unknown_workflow": UnknownWorkflow,
    "identity_forbidden": IdentityForbidden,
    "identity_erased": IdentityErased,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "invalid_request": InvalidRequest,
    "rate_limited": RateLimited,
    "unavailable": ServiceUnavailable,
    "timeout": ServiceUnavailable,
    "internal": ServiceUnavailable,
}


def problem_error(
    status: int,
    body: Any,
    *,
    case_id: str | None = None,
    key: str | None = None,
    workflow: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """The typed error for an answer of ``status`` with ``body`` (its parsed JSON, or None).

    ``case_id``, ``key`` and ``workflow`` name what the request was about, for the attributes
    the engine's error classes have (``UnknownCaseError.case_id``...)."""
    problem: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    code = str(problem.get("code") or _code_of(problem.get("type")) or f"http_{status}")
    title = str(problem.get("title") or code.replace("_", " ").capitalize())
    detail = str(problem.get("detail") or f"the service answered HTTP {status}")
    kind = _BY_CODE.get(code)
    if kind is None:
        kind = Rejected if code in CORE_REJECTION_CODES else _by_status(status, case_id)
    params = problem.get("invalid-params")
    error = kind(
        int(problem.get("status") or status),
        code,
        title,
        detail,
        type=str(problem["type"]) if problem.get("type") else None,
        instance=str(problem["instance"]) if problem.get("instance") else None,
        invalid_params=tuple(p for p in params if isinstance(p, Mapping))
        if isinstance(params, list)
        else (),
        retry_after=retry_after,
    )
    # What the engine's classes name, so code written against ``Client`` reads the same.
    if case_id is not None and isinstance(
        error, CaseNotFound | IdempotencyKeyReused | IdentityForbidden | IdentityErased
    ):
        error.case_id = case_id
    if key is not None and isinstance(error, IdempotencyKeyReused):
        error.key = key
    if workflow is not None and isinstance(error, UnknownWorkflow):
        error.workflow = workflow
    return error


def _code_of(type_uri: Any) -> str | None:
    if isinstance(type_uri, str) and type_uri.startswith(_PROBLEM_BASE):
        return type_uri.removeprefix(_PROBLEM_BASE) or None
    return None


def _by_status(status: int, case_id: str | None) -> type[ApiError]:
    if status == 401:
        return Unauthorized
    if status == 404 and case_id is not None:  # a route of a case, not a wrong base URL
        return CaseNotFound
    if status == 429:
        return RateLimited
    if status >= 500 and status != 501:
        return ServiceUnavailable
    return ApiError
