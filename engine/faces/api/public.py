"""The routes that are not about one caller's cases: the workflows, the reporter's tracking
page, health and readiness, and the Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from engine.faces.api.auth import Caller, anonymous_caller
from engine.faces.api.complaints import CASE_ID_PATTERN
from engine.faces.api.openapi import problems
from engine.faces.api.principals import METRICS_ROLES, require_role
from engine.faces.api.problems import ApiProblem
from engine.faces.api.service import Service, service
from engine.faces.api.track import TrackView, track_view
from engine.faces.api.views import WorkflowView, workflow_view
from engine.runtime import metrics
from engine.runtime.errors import UnknownCaseError

__all__ = ["Health", "router"]

router = APIRouter()
Found = Annotated[Service, Depends(service)]


_METRICS_BODY = {"content": {"text/plain": {"schema": {"type": "string"}}}}


class Health(BaseModel):
    status: str


@router.get(
    "/v1/workflows",
    tags=["definitions"],
    summary="The workflows cases start under",
    responses=problems(401, 429, 503, 504),
)
def workflows(principal: Caller, found: Found) -> list[WorkflowView]:
    """Each workflow's intake fields, states and the signals each role may send."""
    return [workflow_view(found.models[name]) for name in sorted(found.models)]


@router.get(
    "/v1/track/{tracking}",
    tags=["reporters"],
    summary="Where my report stands (for the reporter)",
    dependencies=[Depends(anonymous_caller)],
    responses=problems(403, 404, 422, 429, 503, 504),
)
def track(
    tracking: Annotated[str, Path(pattern=CASE_ID_PATTERN)],
    found: Found,
    reporter_token: Annotated[
        str | None,
        Header(alias="Reporter-Token", max_length=200, description="The case's reporter token"),
    ] = None,
) -> TrackView:
    """Public status, current deadline and what happens next, in Indonesian. No key needed; a
    confidential report is shown only with its reporter token (otherwise 404)."""
    runtime = found.runtime()
    case = runtime.case(tracking)
    valid = (
        reporter_token is not None
        and found.keyring is not None
        and found.keyring.is_reporter_token(case.id, reporter_token)
    )
    if case.confidential and not valid:
        raise UnknownCaseError(tracking)  # a confidential report does not exist without it
    if reporter_token is not None and not valid:
        raise ApiProblem(
            403, "not_the_reporter", f"that reporter token is not the one of {tracking}"
        )
    return track_view(case, runtime.model_of(tracking), with_token=valid)


@router.get("/healthz", tags=["operations"], summary="The process answers")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    tags=["operations"],
    summary="The database answers and has the newest schema",
    responses=problems(503, 504),
)
def readyz(found: Found) -> Health:
    if found.ready is not None:
        found.ready()
    return Health(status="ready")


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics (Admin Nasional and supervisors)",
    response_class=PlainTextResponse,
    responses=problems(401, 403, 429, 503, 504, also={200: _METRICS_BODY}),
)
def metrics_text(principal: Caller) -> PlainTextResponse:
    require_role(principal, METRICS_ROLES, "read the metrics")
    return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
