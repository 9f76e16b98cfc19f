"""``/v1/subscriptions``: an agency's webhook endpoints, delivered as Standard Webhooks 1.0.

An agency key manages its own agency's subscriptions; Admin Nasional any agency's (and names
it). The signing secret (``whsec_...``) is answered once, by the ``POST``; lists never show it.
What is delivered, and how it is signed, is ``engine.runtime.standard_webhooks`` (each status
change: ``engine.runtime.status_events``); ``lapor run --handler agency-webhooks`` delivers.
Another agency's subscription answers exactly as one that does not exist (404).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from engine.domain.errors import LaporError
from engine.domain.model import Model, known_agencies
from engine.faces.api.auth import Caller
from engine.faces.api.openapi import problems
from engine.faces.api.principals import Principal, require_role
from engine.faces.api.problems import ApiProblem
from engine.faces.api.service import Service, service
from engine.runtime.posting import check_url
from engine.runtime.standard_webhooks import Subscription
from engine.sql.subscriptions import SubscriptionStore

__all__ = ["SUBSCRIPTION_ROLES", "router"]

SUBSCRIPTION_ROLES = frozenset({"agency", "admin_nasional"})
AGENCY_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])

Found = Annotated[Service, Depends(service)]


class SubscriptionRequest(BaseModel):
    url: str = Field(
        min_length=1, max_length=2000, description="Where to POST: an http:// or https:// URL"
    )
    agency: str | None = Field(
        default=None,
        pattern=AGENCY_PATTERN,
        description="The agency whose cases to deliver: an agency key's own (the default); "
        "Admin Nasional must name one",
    )


class SubscriptionView(BaseModel):
    id: str
    agency: str
    url: str
    created_at: datetime


class CreatedSubscription(SubscriptionView):
    secret: str = Field(
        description="The Standard Webhooks signing secret (whsec_ and base64): shown only now"
    )


def _view(subscription: Subscription) -> SubscriptionView:
    return SubscriptionView(
        id=subscription.id,
        agency=subscription.agency,
        url=subscription.url,
        created_at=subscription.created_at,
    )


def _store(found: Service) -> SubscriptionStore:
    if found.subscriptions is None:
        raise ApiProblem(
            503,
            "unavailable",
            "this server has no key ring to seal webhook secrets with; start it with "
            "$LAPOR_KEY_FILE or $LAPOR_IDENTITY_KEY",
        )
    return found.subscriptions


def _agency_for(principal: Principal, asked: str | None, models: Mapping[str, Model]) -> str:
    require_role(principal, SUBSCRIPTION_ROLES, "manage webhook subscriptions")
    if principal.agency is not None:
        if asked is not None and asked != principal.agency:
            raise ApiProblem(
                403,
                "forbidden",
                f"an agency key subscribes for its own agency ({principal.agency}) only",
            )
        return principal.agency
    if asked is None:
        raise ApiProblem(422, "invalid_request", "name the agency to subscribe for: agency")
    known = known_agencies(models.values())
    if known and asked not in known:
        raise ApiProblem(
            422,
            "invalid_request",
            f"unknown agency {asked!r}; known agencies: {', '.join(sorted(known))}",
        )
    return asked


@router.post(
    "",
    status_code=201,
    summary="Subscribe a webhook endpoint to an agency's cases",
    responses=problems(400, 401, 403, 413, 422, 429, 503, 504),
)
def create(body: SubscriptionRequest, principal: Caller, found: Found) -> CreatedSubscription:
    """Deliver to `url` each status change of the agency's cases (`case.status_changed`, in
    order per case) and the workflow's messages to the agency (`case.notify`, `case.routed`),
    signed as Standard Webhooks 1.0 (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    Answers the secret, once."""
    agency = _agency_for(principal, body.agency, found.models)
    try:
        check_url(body.url)
    except LaporError as exc:
        raise ApiProblem(422, "invalid_request", exc.message) from None
    made = _store(found).create(agency, body.url, found.clock.now())
    return CreatedSubscription(**_view(made).model_dump(), secret=made.secret)


@router.get(
    "",
    summary="List webhook subscriptions",
    responses=problems(401, 403, 422, 429, 503, 504),
)
def list_subscriptions(
    principal: Caller,
    found: Found,
    agency: Annotated[
        str | None,
        Query(pattern=AGENCY_PATTERN, description="Admin Nasional: only this agency's"),
    ] = None,
) -> list[SubscriptionView]:
    """An agency key's own subscriptions; Admin Nasional's: every agency's (or `agency`'s).
    Never the secrets."""
    require_role(principal, SUBSCRIPTION_ROLES, "manage webhook subscriptions")
    scope = principal.agency if principal.agency is not None else agency
    if principal.agency is not None and agency not in (None, principal.agency):
        return []
    return [_view(s) for s in _store(found).all(scope)]


@router.delete(
    "/{subscription_id}",
    status_code=204,
    summary="Remove a webhook subscription",
    responses=problems(401, 403, 404, 422, 429, 503, 504),
)
def remove(
    subscription_id: Annotated[str, Path(pattern=r"^sub_[0-9a-f]{1,40}$")],
    principal: Caller,
    found: Found,
) -> Response:
    """Stop delivering to it; messages already sent stay sent."""
    require_role(principal, SUBSCRIPTION_ROLES, "manage webhook subscriptions")
    if not _store(found).delete(subscription_id, principal.agency):
        raise ApiProblem(404, "unknown_subscription", f"no subscription {subscription_id}")
    return Response(status_code=204)
