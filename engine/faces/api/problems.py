"""Every refusal of the service API as an RFC 9457 problem detail (``application/problem+json``).

One ``type`` URI per reason, stable across releases: ``https://lapor-sla.dev/problems/<code>``,
where ``code`` is the core's rejection code (``wrong_role``, ``wrong_state``...) for a refused
signal or start, or one of the API's own codes (``unauthorized``, ``rate_limited``...). A client
branches on ``type`` (or the ``code`` extension member), never on the words of ``detail``.

A detail never carries a reporter's identity or a secret: request validation errors name the
field and what was wrong with it, never the value sent (``validation_problem``), and errors of
the runtime are described here in our own words where theirs would quote an input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_MEDIA_TYPE",
    "REJECTION_STATUS",
    "ApiProblem",
    "InvalidParam",
    "Problem",
    "problem_response",
    "rejection_problem",
    "validation_problem",
]

PROBLEM_BASE = "https://lapor-sla.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

# The HTTP status of each rejection code of the core (``engine.domain.events.Rejection``):
# who you are (403), where the case stands (409), what you sent (422), no such case (404).
REJECTION_STATUS: Mapping[str, int] = {
    "wrong_role": 403,
    "not_assigned": 403,
    "not_the_reporter": 403,
    "wrong_state": 409,
    "closed": 409,
    "already_started": 409,
    "cannot_migrate": 409,
    "not_started": 404,
    "unknown_signal": 422,
    "missing_field": 422,
    "unexpected_field": 422,
    "guard_failed": 422,
    "no_route": 422,
    "invalid_data": 422,
}

_TITLES: Mapping[str, str] = {
    "wrong_role": "Your role may not send this signal",
    "not_assigned": "The case is not disposed to your agency",
    "not_the_reporter": "Only the case's reporter may do this",
    "wrong_state": "Not allowed in the case's current state",
    "closed": "The case is closed",
    "already_started": "The case already exists",
    "cannot_migrate": "The case cannot move to that model",
    "not_started": "No such case",
    "unknown_signal": "Unknown signal",
    "missing_field": "A required field is missing",
    "unexpected_field": "A field is not accepted here",
    "guard_failed": "The request breaks a rule of the workflow",
    "no_route": "No agency could be chosen",
    "invalid_data": "A field's value is invalid",
    "unauthorized": "A valid API key is required",
    "forbidden": "Your role may not use this endpoint",
    "identity_forbidden": "Your role may not read reporters' identities",
    "identity_erased": "The reporter's identity was erased",
    "not_found": "Not found",
    "unknown_case": "No such case",
    "unknown_subscription": "No such webhook subscription",
    "unknown_workflow": "Unknown workflow",
    "method_not_allowed": "Method not allowed",
    "key_reuse": "Idempotency-Key reused for another request",
    "invalid_request": "The request is invalid",
    "payload_too_large": "The request body is too large",
    "rate_limited": "Too many requests",
    "unavailable": "The service is unavailable",
    "timeout": "The request took too long",
    "not_implemented": "Not available on this runtime",
    "internal": "Internal error",
}


class InvalidParam(BaseModel):
    """One field of the request that failed validation (RFC 9457 §3 example extension)."""

    name: str = Field(description="Where: body.data.region, query.page, header.Idempotency-Key")
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem detail, with the stable ``code`` beside its ``type`` URI."""

    type: str = Field(description="A stable URI naming the reason: branch on this")
    title: str
    status: int
    detail: str
    code: str = Field(description="The last segment of ``type``: the core's rejection code")
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = Field(
        default=None, serialization_alias="invalid-params"
    )


class ApiProblem(Exception):
    """Raised by a route to answer a problem; ``headers`` go out with it (``Retry-After``...)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        invalid: Sequence[InvalidParam] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.invalid = list(invalid)


def rejection_problem(code: str, reason: str) -> ApiProblem:
    """The problem for a rejection of the core (``Outcome.code``, ``Outcome.reason``)."""
    return ApiProblem(REJECTION_STATUS.get(code, 422), code, reason)


def problem_response(problem: ApiProblem, instance: str | None = None) -> JSONResponse:
    """``problem`` as an ``application/problem+json`` response."""
    body = Problem(
        type=PROBLEM_BASE + problem.code,
        title=_TITLES.get(problem.code, problem.code.replace("_", " ").capitalize()),
        status=problem.status,
        detail=problem.detail,
        code=problem.code,
        instance=instance,
        invalid_params=problem.invalid or None,
    )
    return JSONResponse(
        body.model_dump(by_alias=True, exclude_none=True),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def validation_problem(errors: Iterable[Mapping[str, Any]]) -> ApiProblem:
    """A 422 for FastAPI's request validation errors: where and why, never the value sent (it
    may be a reporter's name or a phone number)."""
    invalid = [
        InvalidParam(
            name=".".join(str(part) for part in error.get("loc", ())) or "request",
            reason=str(error.get("msg", "invalid")),
        )
        for error in errors
    ]
    shown = "; ".join(f"{p.name}: {p.reason}" for p in invalid[:5])
    more = f" (and {len(invalid) - 5} more)" if len(invalid) > 5 else ""
    detail = f"the request is invalid: {shown}{more}"
    return ApiProblem(422, "invalid_request", detail, invalid=invalid)
