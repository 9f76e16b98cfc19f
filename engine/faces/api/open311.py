"""Open311 GeoReport v2 under ``/open311/v2/``: the standard that 311 apps and civic clients
already speak, over the same runtime, keys and identity store as the v1 API.

- Reads (``services``, ``requests``, ``tokens``) are public: no key, rate limited per address.
  A confidential report is never in them (404, and left out of lists), and no view has a place
  for the reporter's identity (``engine.faces.api.open311_views``).
- ``POST requests`` files a case. The ``api_key`` form field is a v1 API key of a role that may
  start cases (a channel, or Admin Nasional); ``email``, ``first_name``, ``last_name``, ``phone``,
  ``device_id`` and ``account_id`` become the reporter's identity (encrypted beside the case) and
  never its data.
- The service request id is the tracking number. Cases are filed in real time, so the ``token``
  a filing answers is that number too; ``tokens/{token}`` maps it back, as the spec asks.
- ``GET requests`` lists newest first within at most 90 days of ``requested_datetime``
  (default: the last 90 days), ``page``/``page_size`` (50, at most 100).
- Every answer is JSON or XML by the path's suffix; errors are the spec's list
  (``engine.faces.api.open311_format``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Path, Query, Request
from fastapi.responses import Response

from engine.domain.model import Model
from engine.faces.api.auth import anonymous_caller
from engine.faces.api.complaints import CASE_ID_PATTERN
from engine.faces.api.open311_format import (
    JSON_MEDIA_TYPE,
    XML_MEDIA_TYPE,
    declare_open311_errors,
    render,
)
from engine.faces.api.open311_listing import (
    comma_list,
    public_case,
    public_window,
    window_bounds,
)
from engine.faces.api.open311_views import (
    IDENTITY_FIELDS,
    intake_data,
    request_view,
    service_definition,
    service_summary,
)
from engine.faces.api.openapi import problems
from engine.faces.api.principals import START_ROLES, Principal
from engine.faces.api.problems import ApiProblem, rejection_problem
from engine.faces.api.service import Service, service
from engine.faces.sdk import new_case_id
from engine.runtime.errors import UnknownCaseError

__all__ = ["install", "router"]

_CHANGESET = "2026-12-06T00:00:00+00:00"

router = APIRouter(prefix="/open311/v2", tags=["open311"])
Found = Annotated[Service, Depends(service)]
Format = Annotated[str, Path(pattern=r"^(json|xml)$", description="json or xml")]
Public = [Depends(anonymous_caller)]


def _ok(
    schema: dict[str, Any], description: str, status: int = 200
) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": description,
            "content": {
                JSON_MEDIA_TYPE: {"schema": schema},
                XML_MEDIA_TYPE: {"schema": {"type": "string"}},
            },
        }
    }


_NULLABLE_TEXT = {"type": ["string", "null"]}
_REQUEST_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "service_request_id": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "closed"]},
            "requested_datetime": {"type": "string"},
            "updated_datetime": {"type": "string"},
            "expected_datetime": _NULLABLE_TEXT,
            "agency_responsible": _NULLABLE_TEXT,
        },
        "required": ["service_request_id", "status", "requested_datetime"],
    },
}
_FILED_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"service_request_id": {"type": "string"}, "token": {"type": "string"}},
        "required": ["service_request_id"],
    },
}


def _model(found: Service, code: str) -> Model:
    model = found.models.get(code)
    if model is None:
        raise ApiProblem(
            404, "not_found", f"no service {code!r}; services: {', '.join(sorted(found.models))}"
        )
    return model


@router.get(
    "/discovery.{fmt}",
    dependencies=Public,
    summary="Open311 service discovery",
    response_model=None,
    responses=problems(422, 429, also=_ok({"type": "object"}, "Where the endpoint is")),
)
def discovery(fmt: Format, request: Request) -> Response:
    url = str(request.base_url).rstrip("/") + "/open311/v2"
    body = {
        "changeset": _CHANGESET,
        "contact": "Admin Nasional SP4N-LAPOR!",
        "key_service": "An API key of role channel from Admin Nasional (`lapor keys create`)",
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": url,
                "changeset": _CHANGESET,
                "type": "production",
                "formats": [XML_MEDIA_TYPE, JSON_MEDIA_TYPE],
            }
        ],
    }
    return render(body, fmt, "discovery")


@router.get(
    "/services.{fmt}",
    dependencies=Public,
    summary="Open311 services: one per workflow",
    response_model=None,
    responses=problems(422, 429, also=_ok({"type": "array"}, "The services")),
)
def services(fmt: Format, found: Found) -> Response:
    body = [service_summary(found.models[name]) for name in sorted(found.models)]
    return render(body, fmt, "services")


@router.get(
    "/services/{service_code}.{fmt}",
    dependencies=Public,
    summary="An Open311 service definition: the workflow's intake fields as attributes",
    response_model=None,
    responses=problems(404, 422, 429, also=_ok({"type": "object"}, "The definition")),
)
def definition(
    service_code: Annotated[str, Path(max_length=100)], fmt: Format, found: Found
) -> Response:
    return render(service_definition(_model(found, service_code)), fmt, "service_definition")


_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]{1,100})\](\[\])?$")


async def _attributes(request: Request) -> dict[str, str]:
    """The ``attribute[code]`` fields of the form (their names are the service's own)."""
    form = await request.form()
    found: dict[str, str] = {}
    for name, value in form.multi_items():
        match = _ATTRIBUTE.match(name)
        if match is None:
            continue
        if match.group(2) or not isinstance(value, str) or match.group(1) in found:
            raise ApiProblem(
                422, "invalid_request", f"{name}: every attribute takes one text value"
            )
        found[match.group(1)] = value
    return found


Text = Annotated[str | None, Form(max_length=200)]


@router.post(
    "/requests.{fmt}",
    status_code=201,
    summary="File an Open311 service request",
    response_model=None,
    responses=problems(
        403, 404, 409, 413, 422, 429, 503, 504, also=_ok(_FILED_SCHEMA, "The new request", 201)
    ),
)
def file_request(
    fmt: Format,
    found: Found,
    request: Request,
    attributes: Annotated[dict[str, str], Depends(_attributes)],
    service_code: Annotated[str, Form(max_length=100)],
    api_key: Annotated[str | None, Form(max_length=200)] = None,
    jurisdiction_id: Text = None,
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    long: Annotated[float | None, Form(ge=-180, le=180)] = None,
    address_string: Annotated[str | None, Form(max_length=500)] = None,
    address_id: Text = None,
    description: Annotated[str | None, Form(max_length=4000)] = None,
    media_url: Annotated[str | None, Form(max_length=2000)] = None,
    email: Text = None,
    first_name: Text = None,
    last_name: Text = None,
    phone: Text = None,
    device_id: Text = None,
    account_id: Text = None,
) -> Response:
    """Form-encoded. The `api_key` is a v1 API key of role channel (or admin_nasional);
    identity fields go to the encrypted identity store, never into the case."""
    principal = _authenticate(found, request, api_key)
    model = _model(found, service_code)
    if (lat is None) != (long is None):
        raise ApiProblem(422, "invalid_request", "lat and long go together")
    if lat is None and not address_string and not address_id:
        raise ApiProblem(
            422, "invalid_request", "a location is required: lat and long, address_string or "
            "address_id"
        )  # fmt: skip
    place = {"lat": lat, "long": long, "address_string": address_string, "address_id": address_id}
    location = {key: value for key, value in place.items() if value is not None}
    data = intake_data(model, attributes, description, location)
    given = {
        "email": email,
        "first_name": first_name,
        "last_name": last_name,
        "phone": phone,
        "device_id": device_id,
        "account_id": account_id,
    }
    reporter = {name: given[name] for name in IDENTITY_FIELDS if given[name]}
    runtime = found.runtime()
    for _ in range(5):
        case_id = new_case_id(found.clock)
        outcome = runtime.start(
            model.name, case_id, data, reporter=reporter or None, actor=principal.starter()
        )
        if outcome.code != "already_started":
            break
    if not outcome.accepted:
        raise rejection_problem(outcome.code or "invalid_data", outcome.reason or "refused")
    filed = {
        "service_request_id": outcome.case_id,
        "token": outcome.case_id,
        "service_notice": "Simpan nomor ini untuk memantau laporan Anda.",
        "account_id": None,
    }
    return render([filed], fmt, "service_requests", status=201)


def _authenticate(found: Service, request: Request, api_key: str | None) -> Principal:
    key = None if api_key is None else found.keys.authenticate(api_key)
    if key is None:
        address = request.client.host if request.client is not None else "unknown"
        found.limiter.hit("address", address)
        raise ApiProblem(403, "forbidden", "api_key is missing or not a valid key")
    request.state.key_id = key.id  # for the request log: the id, never the key
    found.limiter.hit("key", key.id)
    if key.role not in START_ROLES:
        raise ApiProblem(
            403, "forbidden", f"a key of role {key.role!r} may not file requests; "
            f"roles that may: {', '.join(sorted(START_ROLES))}"
        )  # fmt: skip
    return Principal(key)


@router.get(
    "/requests.{fmt}",
    dependencies=Public,
    summary="Open311 service requests (public, newest first, at most 90 days)",
    response_model=None,
    responses=problems(422, 429, 503, 504, also=_ok(_REQUEST_SCHEMA, "The requests")),
)
def list_requests(
    fmt: Format,
    found: Found,
    service_request_id: Annotated[str | None, Query(max_length=2000)] = None,
    service_code: Annotated[str | None, Query(max_length=500)] = None,
    start_date: Annotated[str | None, Query(max_length=40)] = None,
    end_date: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    jurisdiction_id: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1, le=100)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    """`service_request_id` (comma separated, at most 100) overrides every other filter;
    `page` goes up to 100 (narrow the window to reach further back)."""
    if service_request_id is not None:
        ids = [i for i in service_request_id.split(",") if re.match(CASE_ID_PATTERN, i)][:100]
        shown = []
        for case_id in ids:
            try:
                shown.append(request_view(public_case(found, case_id)))
            except UnknownCaseError:
                continue
        return render(shown, fmt, "service_requests")
    statuses = comma_list("status", status, {"open", "closed"})
    codes = comma_list("service_code", service_code)
    now = found.clock.now()
    window = window_bounds(start_date, end_date, now)
    chosen = public_window(found, now, window, page * page_size, codes=codes, statuses=statuses)
    page_of = chosen[(page - 1) * page_size : page * page_size]
    return render([request_view(case) for case in page_of], fmt, "service_requests")


@router.get(
    "/requests/{service_request_id}.{fmt}",
    dependencies=Public,
    summary="One Open311 service request (public)",
    response_model=None,
    responses=problems(404, 422, 429, 503, 504, also=_ok(_REQUEST_SCHEMA, "The request")),
)
def read_request(
    service_request_id: Annotated[str, Path(pattern=CASE_ID_PATTERN)], fmt: Format, found: Found
) -> Response:
    case = public_case(found, service_request_id)
    return render([request_view(case)], fmt, "service_requests")


@router.get(
    "/tokens/{token}.{fmt}",
    dependencies=Public,
    summary="The service request id of a token",
    response_model=None,
    responses=problems(404, 422, 429, 503, 504, also=_ok(_FILED_SCHEMA, "The request's id")),
)
def read_token(
    token: Annotated[str, Path(pattern=CASE_ID_PATTERN)], fmt: Format, found: Found
) -> Response:
    case = public_case(found, token)
    return render([{"service_request_id": case.id, "token": token}], fmt, "service_requests")


def install(app: FastAPI) -> None:
    """Add the routes and declare their errors in the app's OpenAPI document (call after
    ``install_openapi``)."""
    app.include_router(router)
    built = app.openapi

    def build() -> dict[str, Any]:
        schema = built()
        declare_open311_errors(schema)
        return schema

    app.openapi = build  # type: ignore[method-assign]  # FastAPI's documented override
