"""Agencies' own webhook subscriptions, delivered as Standard Webhooks 1.0.

An agency's system subscribes a URL (``POST /v1/subscriptions``) and gets a secret once,
``whsec_`` and base64 as Standard Webhooks writes it. Two kinds of outbox messages go to every
subscription of the agency, looked up at delivery: each status change of a case disposed to it
(``case.status_changed``, written for subscribed agencies only: ``engine.runtime.status_events``)
and the workflow's messages addressed to it (``case.notify``, ``case.routed``: its disposition
notice, a reporter's reply or dispute). Each is POSTed with::

    webhook-id:        the outbox idempotency key (case:seq:index), stable across retries
    webhook-timestamp: unix seconds of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">

and a body ``{"type": "case.<kind>", "timestamp": ..., "data": {...}}`` whose ``data`` is what
the outbox row holds: never the reporter, and masked text for an anonymous or confidential
report (``engine.domain.case.agency_view``). Receivers verify with any Standard Webhooks library
and deduplicate by ``webhook-id``.

A status change whose agency has no subscription left when it is delivered (it unsubscribed
meanwhile) is settled as undeliverable, not retried: there is nobody to tell.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from engine.domain.errors import LaporError
from engine.runtime.delivery import DeliveryError, OutboxMessage, Undeliverable
from engine.runtime.posting import Poster, endpoint_of
from engine.runtime.status_events import STATUS_CHANGED

__all__ = [
    "SECRET_PREFIX",
    "AgencyWebhooksHandler",
    "Subscription",
    "SubscriptionSource",
    "event_body",
    "new_secret",
    "sign",
]

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 24

log = structlog.get_logger("lapor.delivery")


@dataclass(frozen=True, slots=True)
class Subscription:
    """One agency's webhook endpoint and the secret that signs what it receives."""

    id: str
    agency: str
    url: str
    secret: str  # whsec_...
    created_at: datetime

    def __repr__(self) -> str:  # never the secret, nor the URL's path
        return f"Subscription({self.id!r}, agency={self.agency!r}, {endpoint_of(self.url)!r})"


SubscriptionSource = Callable[[str], Sequence[Subscription]]
"""An agency code's subscriptions (``engine.sql.subscriptions.SubscriptionStore.for_agency``)."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 24 random bytes in standard base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise LaporError("a Standard Webhooks secret is whsec_ and base64") from None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of
    ``{id}.{timestamp}.{body}`` under the secret's decoded bytes."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _agency(message: OutboxMessage) -> str | None:
    if message.kind == STATUS_CHANGED:  # addressed by the feed, also to an agency a case left
        return message.target or None
    case = message.payload.get("case")
    agency = case.get("agency") if isinstance(case, Mapping) else None
    return agency if isinstance(agency, str) and agency else None


def event_body(message: OutboxMessage, at: datetime) -> bytes:
    """The body for ``message`` (canonical JSON): its type, when, and the agency view."""
    data: dict[str, Any] = {
        **message.payload,
        "idempotency_key": message.idempotency_key,
        "kind": message.kind,
        "target": message.target,
    }
    body = {
        "type": f"case.{message.kind}",
        "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class AgencyWebhooksHandler:
    """Takes every status change, and a message addressed to the agency its case is disposed to
    (``to: agency`` or the agency's code) when that agency has subscriptions, and POSTs it to
    each of them. One failed subscription fails the message, and the retry sends to all again:
    receivers deduplicate."""

    name = "agency-webhooks"

    def __init__(self, subscriptions: SubscriptionSource, *, timeout: float = 10) -> None:
        self._subscriptions = subscriptions
        self._poster = Poster(timeout)

    def __repr__(self) -> str:
        return "AgencyWebhooksHandler()"

    def accepts(self, message: OutboxMessage) -> bool:
        if message.kind == STATUS_CHANGED:
            # Written only for subscribed agencies and meant for nobody else; if the agency
            # unsubscribed since, ``deliver`` settles it rather than leave it to another handler.
            return True
        agency = _agency(message)
        if agency is None or message.target not in ("agency", agency):
            return False
        return bool(self._subscriptions(agency))

    def deliver(self, message: OutboxMessage) -> None:
        agency = _agency(message)
        found = self._subscriptions(agency) if agency else ()
        if not found:
            if message.kind == STATUS_CHANGED:
                raise Undeliverable(f"agency {agency!r} has no webhook subscription any more")
            raise DeliveryError(f"agency {agency!r} has no webhook subscription any more")
        now = time.time()
        timestamp = int(now)
        body = event_body(message, datetime.fromtimestamp(now, UTC))
        failures: list[str] = []
        for subscription in found:
            try:
                self._poster.post(
                    subscription.url,
                    body,
                    {
                        "Content-Type": "application/json; charset=utf-8",
                        "User-Agent": "lapor-sla-webhooks/1",
                        "webhook-id": message.idempotency_key,
                        "webhook-timestamp": str(timestamp),
                        "webhook-signature": sign(
                            subscription.secret, message.idempotency_key, timestamp, body
                        ),
                    },
                )
            except DeliveryError as exc:
                failures.append(f"{subscription.id}: {exc.message}")
        if failures:
            raise DeliveryError("; ".join(failures))
        log.debug(
            "webhooks.sent",
            idempotency_key=message.idempotency_key,
            agency=agency,
            subscriptions=[s.id for s in found],
        )
