"""Delivery handlers for the outbox: the shipped ones (log, webhook, reporter-gateway,
agency-webhooks) and plug-in loading.

A handler spec, as given on a command line, is ``log``, ``webhook:URL``, ``reporter-gateway:URL``
(``engine.runtime.gateway``), ``agency-webhooks`` (``engine.runtime.standard_webhooks``) or
``NAME[:ARG]``. The last two look things up at delivery (a reporter's contact, an agency's
subscriptions) through a ``HandlerContext`` the delivery process gives ``load_handlers``. Every
name resolves to a factory ``(arg: str | None) -> DeliveryHandler``: ``log`` and ``webhook`` to the
ones below, any other through the entry-point group ``lapor_sla.delivery_handlers``, so an SMS or
e-mail gateway is an installable package, not a change to the engine::

    [project.entry-points."lapor_sla.delivery_handlers"]
    sms = "lapor_sms:handler_factory"

The shipped names are resolved first, so an installed plug-in can never replace the signed webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

import structlog

from engine.domain.errors import LaporError
from engine.runtime.delivery import DeliveryHandler, OutboxMessage
from engine.runtime.gateway import (
    GATEWAY_SECRET_ENV,
    ContactSource,
    ReporterGatewayHandler,
)
from engine.runtime.posting import Poster, check_url, endpoint_of
from engine.runtime.standard_webhooks import AgencyWebhooksHandler, SubscriptionSource

__all__ = [
    "ENTRY_POINT_GROUP",
    "SECRET_ENV",
    "HandlerContext",
    "HandlerFactory",
    "LogHandler",
    "WebhookHandler",
    "agency_webhooks_handler",
    "load_handlers",
    "log_handler",
    "reporter_gateway_handler",
    "sign_body",
    "verify_signature",
    "webhook_body",
    "webhook_handler",
]

ENTRY_POINT_GROUP = "lapor_sla.delivery_handlers"
SECRET_ENV = "LAPOR_WEBHOOK_SECRET"

HandlerFactory = Callable[[str | None], DeliveryHandler]
"""What a plug-in entry point names: called with the text after ``NAME:`` (or ``None``)."""

_SCALARS = (str, int, float, bool, type(None))


def _accepts(
    message: OutboxMessage, kinds: frozenset[str] | None, targets: frozenset[str] | None
) -> bool:
    return (kinds is None or message.kind in kinds) and (
        targets is None or message.target in targets
    )


def _optional_set(values: Collection[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


class LogHandler:
    """Logs each message at info: what happened to which case, without any free text.

    The case's ``data`` appears as its keys only (its values are mostly what the reporter wrote)
    and effects by their scalar fields; the payload never holds the reporter's identity, and the
    logging configuration's redaction would mask it if it did.
    """

    name = "log"

    def __init__(
        self,
        *,
        accepts_kinds: Collection[str] | None = None,
        accepts_targets: Collection[str] | None = None,
    ) -> None:
        self._kinds = _optional_set(accepts_kinds)
        self._targets = _optional_set(accepts_targets)
        self._log = structlog.get_logger("lapor.delivery")

    def accepts(self, message: OutboxMessage) -> bool:
        return _accepts(message, self._kinds, self._targets)

    def deliver(self, message: OutboxMessage) -> None:
        effect = message.payload.get("effect")
        case = message.payload.get("case")
        case = case if isinstance(case, Mapping) else {}
        data = case.get("data")
        self._log.info(
            "outbox.message",
            message_id=message.id,
            idempotency_key=message.idempotency_key,
            case_id=message.case_id,
            seq=message.seq,
            kind=message.kind,
            target=message.target,
            attempt=message.attempts,
            effect=(
                {k: v for k, v in effect.items() if isinstance(v, _SCALARS)}
                if isinstance(effect, Mapping)
                else None
            ),
            workflow=case.get("workflow"),
            state=case.get("state"),
            status=case.get("status"),
            agency=case.get("agency"),
            region=case.get("region"),
            escalation_level=case.get("escalation_level"),
            data_keys=sorted(str(k) for k in data) if isinstance(data, Mapping) else [],
        )


def webhook_body(message: OutboxMessage) -> bytes:
    """The exact bytes POSTed for ``message``: the payload plus idempotency key, kind and target.

    Canonical JSON (sorted keys, no spaces, UTF-8), so every retry sends the same bytes with the
    same signature. The attempt number travels in a header for that reason.
    """
    body = {
        **message.payload,
        "idempotency_key": message.idempotency_key,
        "kind": message.kind,
        "target": message.target,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign_body(secret: str | bytes, body: bytes) -> str:
    """The ``X-Lapor-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """For receivers: whether ``header`` is the signature of the exact ``body`` bytes received.

    Compares in constant time. Verify before parsing the body, and deduplicate by the
    ``X-Lapor-Idempotency-Key`` header, since a message may arrive more than once.
    """
    if not header or not secret:
        return False
    return hmac.compare_digest(sign_body(secret, body).encode(), header.strip().encode())


class WebhookHandler:
    """POSTs each accepted message as signed JSON; any 2xx answer means delivered.

    Headers: ``X-Lapor-Signature`` (see ``sign_body``), ``X-Lapor-Idempotency-Key`` (stable across
    retries), ``X-Lapor-Delivery-Attempt`` (1 for the first). Anything but 2xx, a redirect, a
    refused connection or ``timeout`` seconds without an answer is a failure, retried later.
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        timeout: float = 10,
        accepts_kinds: Collection[str] | None = None,
        accepts_targets: Collection[str] | None = None,
        name: str = "webhook",
    ) -> None:
        check_url(url)
        if not secret:
            raise LaporError(f"the webhook to {endpoint_of(url)} needs a non-empty shared secret")
        self._poster = Poster(timeout)
        self.name = name
        self.url = url
        # Errors and logs name the host only: a webhook path often embeds a token.
        self.endpoint = endpoint_of(url)
        self.timeout = timeout
        self._secret = _key(secret)
        self._kinds = _optional_set(accepts_kinds)
        self._targets = _optional_set(accepts_targets)

    def __repr__(self) -> str:  # never the secret, nor the URL's path
        return f"WebhookHandler({self.endpoint!r}, name={self.name!r})"

    def accepts(self, message: OutboxMessage) -> bool:
        return _accepts(message, self._kinds, self._targets)

    def deliver(self, message: OutboxMessage) -> None:
        body = webhook_body(message)
        self._poster.post(
            self.url,
            body,
            {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "lapor-sla-webhook/1",
                "X-Lapor-Signature": sign_body(self._secret, body),
                "X-Lapor-Idempotency-Key": message.idempotency_key,
                "X-Lapor-Delivery-Attempt": str(message.attempts),
            },
        )


def log_handler(arg: str | None) -> LogHandler:
    """Factory for the spec ``log``."""
    if arg:
        raise LaporError(f"the log handler takes no argument, got 'log:{arg}'")
    return LogHandler()


def webhook_handler(arg: str | None) -> WebhookHandler:
    """Factory for the spec ``webhook:URL``; the secret comes from ``$LAPOR_WEBHOOK_SECRET``."""
    if not arg:
        raise LaporError("the webhook handler needs a URL: webhook:https://example.org/hook")
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise LaporError(f"webhook:{arg} needs a shared secret: set {SECRET_ENV}")
    return WebhookHandler(arg, secret)


@dataclass(frozen=True)
class HandlerContext:
    """What the delivery process can look up at delivery time, for the shipped handlers that
    need it: ``contacts`` opens a case's reporter identity (the runtime's ``reporter``, with
    this process's key ring), ``subscriptions`` lists an agency's webhook subscriptions. Both
    are ``None`` where the process has no database or key ring (a handler needing one refuses
    to load)."""

    contacts: ContactSource | None = None
    subscriptions: SubscriptionSource | None = None


def reporter_gateway_handler(arg: str | None, context: HandlerContext) -> ReporterGatewayHandler:
    """Factory for ``reporter-gateway:URL``; the secret comes from ``$LAPOR_GATEWAY_SECRET``."""
    if not arg:
        raise LaporError(
            "the reporter gateway needs a URL: reporter-gateway:https://gateway.example.id/send"
        )
    secret = os.environ.get(GATEWAY_SECRET_ENV, "")
    if not secret:
        raise LaporError(
            f"reporter-gateway:{endpoint_of(arg)} needs a secret: set {GATEWAY_SECRET_ENV}"
        )
    if context.contacts is None:
        raise LaporError(
            "reporter-gateway needs the reporters' identities at delivery: run it where the "
            "database and the key ring are (lapor run --db URL with $LAPOR_KEY_FILE or "
            "$LAPOR_IDENTITY_KEY set)"
        )
    return ReporterGatewayHandler(arg, secret, context.contacts)


def agency_webhooks_handler(arg: str | None, context: HandlerContext) -> AgencyWebhooksHandler:
    """Factory for ``agency-webhooks``: the agencies' own subscriptions (POST /v1/subscriptions)."""
    if arg:
        raise LaporError(f"agency-webhooks takes no argument, got 'agency-webhooks:{arg}'")
    if context.subscriptions is None:
        # Also the answer on Temporal: a worker does not open the SQL database that holds the
        # subscriptions (and the status changes they hear are derived in its commits).
        raise LaporError(
            "agency-webhooks needs the subscriptions at delivery: run it where the database and "
            "the key ring are (lapor run --db URL with $LAPOR_KEY_FILE or $LAPOR_IDENTITY_KEY "
            "set); lapor worker (Temporal) does not open that database, so it cannot deliver them"
        )
    return AgencyWebhooksHandler(context.subscriptions)


_SHIPPED: Mapping[str, HandlerFactory] = {"log": log_handler, "webhook": webhook_handler}
_LOOKING_UP: Mapping[str, Callable[[str | None, HandlerContext], DeliveryHandler]] = {
    "reporter-gateway": reporter_gateway_handler,
    "agency-webhooks": agency_webhooks_handler,
}


def load_handlers(
    specs: Sequence[str], context: HandlerContext | None = None
) -> list[DeliveryHandler]:
    """Build handlers from specs (``log``, ``webhook:URL``, ``reporter-gateway:URL``,
    ``agency-webhooks``, ``NAME[:ARG]``), in order; ``context`` is what the looking-up ones read.

    Order matters: each message goes to the first handler that accepts it.
    """
    context = context or HandlerContext()
    plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    handlers: list[DeliveryHandler] = []
    for spec in specs:
        name, sep, rest = spec.strip().partition(":")
        arg = rest if sep else None
        looking_up = _LOOKING_UP.get(name)
        if looking_up is not None:
            handlers.append(looking_up(arg, context))
            continue
        factory = _SHIPPED.get(name)
        if factory is None:
            plugin = plugins.get(name)
            if plugin is None:
                known = ", ".join(sorted({*_SHIPPED, *_LOOKING_UP, *plugins}))
                raise LaporError(f"unknown delivery handler {name!r} in {spec!r}; known: {known}")
            try:
                factory = plugin.load()
            except Exception as exc:  # a broken plug-in is a configuration error, not a crash
                raise LaporError(
                    f"delivery handler {name!r} ({plugin.value}) cannot be loaded: {exc}"
                ) from exc
        try:
            handler = factory(arg)
        except LaporError:
            raise
        except Exception as exc:  # a plug-in refusing its argument: say which spec, no traceback
            raise LaporError(f"delivery handler {name!r} refused {spec!r}: {exc}") from exc
        if not isinstance(handler, DeliveryHandler):
            raise LaporError(
                f"delivery handler {name!r} returned {type(handler).__name__}, which lacks "
                "name, accepts() and deliver()"
            )
        handlers.append(handler)
    return handlers
