"""The OpenAPI 3.1 document: every problem response declared as ``application/problem+json``,
written sorted so the checked-in copy (``docs/openapi.json``) diffs cleanly.

FastAPI declares its own 422 body (``HTTPValidationError``) for every route with parameters; the
API never answers it (``engine.faces.api.problems.validation_problem`` does), so each route
declares its 422 itself and every status of 400 and above is rewritten here to the ``Problem``
schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from engine.faces.api.problems import PROBLEM_MEDIA_TYPE, Problem

__all__ = ["REGENERATE", "document_text", "install_openapi", "problems"]

REGENERATE = "lapor serve --openapi docs/openapi.json"
"""The command that rewrites the checked-in document."""

_DESCRIPTIONS: Mapping[int, str] = {
    400: "The body cannot be read as JSON text at all (`invalid_request`)",
    401: "No valid API key (`unauthorized`)",
    403: "Refused for the caller's role (`forbidden`, `wrong_role`, `not_the_reporter`...)",
    404: "No such case, or one the caller may not see (`unknown_case`)",
    405: "Method not allowed",
    409: "Not possible in the case's current state (`wrong_state`, `closed`...)",
    410: "The reporter's identity was erased (`identity_erased`)",
    413: "The request body is too large (`payload_too_large`)",
    422: "The request is invalid (`invalid_request`, `missing_field`, `key_reuse`...)",
    429: "Over the caller's rate limit (`rate_limited`; see `Retry-After`)",
    501: "Not available on this runtime (`not_implemented`)",
    503: "The database or the Temporal server is unavailable (`unavailable`)",
    504: "No answer in time (`timeout`); retry with the same Idempotency-Key",
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problems(
    *statuses: int, also: Mapping[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry of a route for the problem statuses it may answer (and the
    other responses ``also`` declares)."""
    declared: dict[int | str, dict[str, Any]] = dict(also or {})
    declared.update((status, {"description": _DESCRIPTIONS[status]}) for status in statuses)
    return declared


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` produce the document described above (built once, cached)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            _declare_problems(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]  # FastAPI's documented override


def _declare_problems(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    problem = Problem.model_json_schema(
        by_alias=True, mode="serialization", ref_template="#/components/schemas/{model}"
    )
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": dict(_PROBLEM_REF)}}


def document_text(app: FastAPI) -> str:
    """The document as checked in: sorted keys, two-space indent, one final newline."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
