"""``/v1/complaints``: start, signal, read, list a case; its history and (Admin Nasional only)
its reporter's identity.

Each route is the runtime contract's call with the actor derived from the key
(``engine.faces.api.principals``). An agency key reaches only the cases disposed to its agency;
any other case answers exactly as a case that does not exist (404), so an agency cannot learn
which cases exist elsewhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response

from engine.domain.canonical import json_problem
from engine.domain.case import Case
from engine.domain.errors import LaporError
from engine.domain.events import Signal
from engine.faces.api.auth import Caller
from engine.faces.api.openapi import problems
from engine.faces.api.principals import READ_ROLES, START_ROLES, Principal, require_role
from engine.faces.api.problems import ApiProblem, rejection_problem
from engine.faces.api.service import Service, service
from engine.faces.api.views import (
    CaseListView,
    CaseView,
    HistoryEntry,
    IdentityView,
    SignalRequest,
    SignalResult,
    StartedCase,
    StartRequest,
    case_view,
    history_view,
    summary_view,
)
from engine.faces.sdk import new_case_id
from engine.runtime.contract import (
    Outcome,
    Runtime,
    SignalCommand,
    StartCommand,
    keyed_case_id,
)
from engine.runtime.errors import KeyReuseError, UnknownCaseError
from engine.sql.caselist import CaseFilter

__all__ = ["CASE_ID_PATTERN", "router"]

CASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_ID_ATTEMPTS = 5

router = APIRouter(prefix="/v1/complaints", tags=["complaints"])

Found = Annotated[Service, Depends(service)]
CaseId = Annotated[
    str, Path(pattern=CASE_ID_PATTERN, description="The case id (its tracking number)")
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,100}$",
        description="Makes the request safe to retry: a retry answers the first outcome; the "
        "same key with another request is refused (422 key_reuse). Scoped to the API key.",
    ),
]
ReporterToken = Annotated[
    str | None,
    Header(
        alias="Reporter-Token",
        max_length=200,
        description="The reporter token a start answered: a channel signals as the reporter",
    ),
]


def _scoped_key(principal: Principal, key: str | None) -> str | None:
    """The runtime's idempotency key: the caller's own, under its API key's id, so two
    channels that happen to pick the same key never meet each other's requests."""
    return None if key is None else f"api:{principal.key.id}:{key}"


def _visible(runtime: Runtime, case_id: str, principal: Principal) -> Case:
    """The case, or 404 when there is none or the caller may not see it (the same answer)."""
    case = runtime.case(case_id)
    if not principal.may_see(case.agency):
        raise UnknownCaseError(case_id)
    return case


def _refused(outcome: Outcome) -> ApiProblem:
    return rejection_problem(outcome.code or "invalid_data", outcome.reason or "refused")


@router.post(
    "",
    status_code=201,
    summary="File a complaint",
    responses=problems(
        400,
        401,
        403,
        409,
        413,
        422,
        429,
        503,
        504,
        also={200: {"model": StartedCase, "description": "A retry: the same case again"}},
    ),
)
async def start(
    body: StartRequest,
    principal: Caller,
    found: Found,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> StartedCase:
    """Open a case; answers its tracking number and the reporter token (hand it to the
    reporter only). A retry with the same `Idempotency-Key` answers 200 with the same case."""
    require_role(principal, START_ROLES, "file complaints")
    if body.reporter is not None and json_problem(body.reporter, "reporter") is not None:
        # Not the helper's words: they would quote a value of the identity.
        raise ApiProblem(422, "invalid_data", "reporter must be plain JSON data (finite numbers)")
    key = _scoped_key(principal, idempotency_key)
    chosen = None if key is None else keyed_case_id(key)
    for _ in range(_ID_ATTEMPTS):
        case_id = chosen or new_case_id(found.clock)
        try:
            outcome = await found.decide(
                StartCommand(
                    body.workflow,
                    case_id,
                    dict(body.data),
                    dict(body.reporter or {}),
                    principal.starter(),
                    key,
                )
            )
        except KeyReuseError:
            raise ApiProblem(
                422,
                "key_reuse",
                "this Idempotency-Key was already used for a different request; a retry must "
                "repeat the request exactly, a new request needs a new key",
            ) from None
        if chosen is not None or outcome.code != "already_started":
            break
        # A drawn tracking number met an existing case (1 in 32^8): draw again.
    else:
        raise LaporError("could not draw an unused tracking number")
    if not outcome.accepted:
        raise _refused(outcome)
    assert outcome.state is not None and outcome.status is not None
    if outcome.replayed:
        response.status_code = 200
    return StartedCase(
        case_id=outcome.case_id,
        tracking_number=outcome.case_id,
        reporter_token=outcome.reporter_token,
        state=outcome.state,
        status=outcome.status,
        replayed=outcome.replayed,
    )


@router.post(
    "/{case_id}/signals/{name}",
    summary="Send a signal (verify, follow_up, confirm...)",
    responses=problems(400, 401, 403, 404, 409, 413, 422, 429, 503, 504),
)
async def signal(
    case_id: CaseId,
    name: Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,49}$")],
    principal: Caller,
    found: Found,
    body: SignalRequest | None = None,
    idempotency_key: IdempotencyKey = None,
    reporter_token: ReporterToken = None,
) -> SignalResult:
    """Act on a case as the key's role; the workflow decides whether that role may send this
    signal now (`wrong_role`, `wrong_state`... as problem types)."""
    if principal.agency is not None:
        # Only a scoped key needs the case read first (another agency's case is a 404); for
        # the others an unknown case is the runtime's UnknownCaseError, a 404 as well.
        await found.point_read(lambda runtime: _visible(runtime, case_id, principal))
    data = {} if body is None else body.data
    sent = Signal(name, principal.signaller(), data, _scoped_key(principal, idempotency_key))
    try:
        outcome = await found.decide(SignalCommand(case_id, sent, reporter_token))
    except KeyReuseError:
        raise ApiProblem(
            422,
            "key_reuse",
            "this Idempotency-Key was already used for a different request; use a new key",
        ) from None
    if not outcome.accepted:
        raise _refused(outcome)
    assert outcome.state is not None and outcome.status is not None
    return SignalResult(
        case_id=case_id,
        signal=name,
        state=outcome.state,
        status=outcome.status,
        seq=outcome.seq,
        replayed=outcome.replayed,
    )


@router.get(
    "/{case_id}",
    summary="A case as it stands",
    responses=problems(401, 403, 404, 422, 429, 503, 504),
)
async def read(case_id: CaseId, principal: Caller, found: Found) -> CaseView:
    """State, status, agency, open clocks with their deadlines, allowed signals, fields."""
    require_role(principal, READ_ROLES, "read cases")

    def look(runtime: Runtime) -> CaseView:
        case = _visible(runtime, case_id, principal)
        current = found.models.get(case.workflow)
        pinned = current if current and current.hash == case.model_hash else None
        # Most cases pinned the model their workflow runs now: no second read for it.
        model = pinned or runtime.model_of(case_id)
        return case_view(case, model, found.clock.now(), principal)

    return await found.point_read(look)


@router.get(
    "/{case_id}/history",
    summary="Every recorded decision of a case",
    responses=problems(401, 403, 404, 422, 429, 503, 504),
)
def history(case_id: CaseId, principal: Caller, found: Found) -> list[HistoryEntry]:
    require_role(principal, READ_ROLES, "read histories")
    runtime = found.runtime()
    case = _visible(runtime, case_id, principal)
    return history_view(case, runtime.history(case_id), principal)


@router.get(
    "/{case_id}/identity",
    summary="The reporter's identity (Admin Nasional only)",
    responses=problems(401, 403, 404, 410, 422, 429, 503, 504),
)
def identity(case_id: CaseId, principal: Caller, found: Found) -> IdentityView:
    """Only the roles the policy lets read identities (`IDENTITY_READERS`: Admin Nasional);
    any other is refused (403 identity_forbidden)."""
    runtime = found.runtime()
    _visible(runtime, case_id, principal)
    opened = runtime.identity_for(case_id, principal.reader())
    return IdentityView(case_id=case_id, identity=None if opened is None else dict(opened))


@router.get(
    "",
    summary="List cases",
    responses=problems(401, 403, 422, 429, 503, 504),
)
def list_complaints(
    principal: Caller,
    found: Found,
    status: Annotated[
        str | None, Query(max_length=100, description="A state (disposed) or its label")
    ] = None,
    agency: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")] = None,
    region: Annotated[str | None, Query(pattern=r"^ID-[A-Z]{2}$")] = None,
    overdue: Annotated[
        bool | None, Query(description="true: a deadline has passed (escalated or late)")
    ] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 50,
) -> CaseListView:
    """Newest first. An agency key lists only its agency's cases, whatever `agency` says."""
    require_role(principal, READ_ROLES, "list cases")
    if found.case_lister is None:
        raise ApiProblem(501, "not_implemented", "this app was built without a case list")
    if principal.agency is not None:
        if agency not in (None, principal.agency):
            return CaseListView(items=[], page=page, page_size=page_size, next_page=None)
        agency = principal.agency
    wanted = CaseFilter(status=status, agency=agency, region=region, overdue=overdue)
    rows = found.case_lister(wanted, found.clock.now(), (page - 1) * page_size, page_size + 1)
    more = len(rows) > page_size
    return CaseListView(
        items=[summary_view(row) for row in rows[:page_size]],
        page=page,
        page_size=page_size,
        next_page=page + 1 if more else None,
    )
